"""Artifacts: attaching files, folders and bytes, reading them back, and limits."""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import stat
import subprocess
import sys
import textwrap
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa
from click.testing import CliRunner, Result

from labnotebook import (
    LabnotebookError,
    Notebook,
    NotFoundError,
    Settings,
    StoreError,
    ValidationError,
)
from labnotebook._artifacts import BlobStore, check_sha256, guess_media_type
from labnotebook._spool import spool_files
from labnotebook._store.base import Artifact, ArtifactCreate, Batch
from labnotebook._store.sql import SqlStore
from labnotebook.cli import main
from proxy import Proxy

MiB = 2**20


def objects(settings: Settings) -> list[Path]:
    root = settings.artifacts_path / "objects"
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def temp_files(settings: Settings) -> list[Path]:
    tmp = settings.artifacts_path / "tmp"
    return sorted(tmp.iterdir()) if tmp.exists() else []


def make_tree(root: Path) -> dict[str, bytes]:
    files = {
        "config.yaml": b"lr: 0.1\n",
        "empty.txt": b"",
        "src/train.py": b"print('train')\n",
        "src/deep/er/weights.bin": os.urandom(70_000),
        "src/deep/copy.bin": b"same bytes",
        "other/copy.bin": b"same bytes",
    }
    for name, data in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    (root / "src/train.py").chmod(0o755)
    return files


# ------------------------------------------------------------- round trips


def test_attach_bytes_files_and_file_objects_round_trip(
    notebook: Notebook, tmp_path: Path
) -> None:
    data = os.urandom(100_000)
    path = tmp_path / "weights.bin"
    path.write_bytes(data)
    (tmp_path / "empty.csv").write_bytes(b"")

    with notebook.start("r") as run:
        made = run.attach(data, name="raw", step=3)
        run.attach(bytearray(b"abc"), name="ba")
        run.attach(memoryview(b"xyz"), name="mv")
        run.attach(str(path))
        run.attach(tmp_path / "empty.csv", name="empty.csv")
        with open(path, "rb") as f:
            run.attach(f, name="stream.bin")
        run.attach(io.BytesIO(b"{}"), name="meta.json")

    assert isinstance(made, ArtifactCreate)
    assert made.sha256 == hashlib.sha256(data).hexdigest()
    assert (made.size, made.step, made.kind) == (len(data), 3, "file")

    stored = notebook.get_run(run.id)
    listed = stored.artifacts()
    assert [a.name for a in listed] == [
        "raw",
        "ba",
        "mv",
        "weights.bin",
        "empty.csv",
        "stream.bin",
        "meta.json",
    ]
    assert all(a.run_id == run.id and a.kind == "file" for a in listed)
    by_name = {a.name: a for a in listed}
    assert by_name["meta.json"].media_type == "application/json"
    assert by_name["empty.csv"].media_type == "text/csv"
    assert by_name["raw"].media_type == "application/octet-stream"
    assert by_name["empty.csv"].size == 0

    assert stored.read_artifact("raw") == data
    assert stored.read_artifact("ba") == b"abc"
    assert stored.read_artifact("mv") == b"xyz"
    assert stored.read_artifact("weights.bin") == data
    assert stored.read_artifact("stream.bin") == data
    assert stored.read_artifact("empty.csv") == b""
    # The same bytes attached three times are stored once.
    assert len(objects(notebook.settings)) == 5
    assert not temp_files(notebook.settings)


def test_large_file_is_streamed_both_ways(notebook: Notebook, tmp_path: Path) -> None:
    path = tmp_path / "big.bin"
    digest = hashlib.sha256()
    with open(path, "wb") as f:
        for _ in range(12):
            chunk = os.urandom(MiB)
            digest.update(chunk)
            f.write(chunk)

    odd = os.urandom(9 * MiB + 7)
    with notebook.start("big") as run:
        run.attach(odd, name="odd size")
        stream: Any = io.BufferedReader(io.BytesIO(odd))  # type: ignore[arg-type]
        run.attach(stream, name="odd stream")
        stored = run.attach(path)
        assert stored.sha256 == digest.hexdigest()
        assert stored.size == 12 * MiB
        with run.open_artifact("big.bin") as f:
            first = f.read(MiB)
            assert len(first) == MiB
            assert first == path.read_bytes()[:MiB]

    assert notebook.read_artifact(run.id, "odd size") == odd
    assert notebook.read_artifact(run.id, "odd stream") == odd
    dest = notebook.download_artifact(run.id, "big.bin", tmp_path / "out")
    assert dest == tmp_path / "out"
    assert hashlib.sha256(dest.read_bytes()).hexdigest() == digest.hexdigest()
    (tmp_path / "into").mkdir()
    into = notebook.download_artifact(run.id, "big.bin", tmp_path / "into")
    assert into == tmp_path / "into" / "big.bin"
    assert into.stat().st_size == 12 * MiB


def test_folder_round_trip_with_nested_dirs(notebook: Notebook, tmp_path: Path) -> None:
    tree = tmp_path / "checkpoint"
    files = make_tree(tree)
    outside = tmp_path / "secret.txt"
    outside.write_text("not part of the folder")
    (tree / "link.txt").symlink_to(outside)
    (tree / "linked_dir").symlink_to(tmp_path, target_is_directory=True)

    with notebook.start("f") as run:
        stored = run.attach(tree, step=7)
    assert stored.kind == "folder"
    assert stored.name == "checkpoint"
    assert stored.meta == {
        "files": len(files),
        "total_size": sum(len(d) for d in files.values()),
        "skipped_links": 2,
    }

    manifest = json.loads(notebook.blobs.read(stored.sha256))
    paths = [e["path"] for e in manifest["files"]]
    assert paths == sorted(files)
    assert manifest["skipped_links"] == ["link.txt", "linked_dir"]
    entry = next(e for e in manifest["files"] if e["path"] == "src/train.py")
    assert entry["mode"] == 0o755
    assert entry["sha256"] == hashlib.sha256(files["src/train.py"]).hexdigest()

    out = notebook.download_artifact(run.id, "checkpoint", tmp_path / "restored")
    restored = {
        p.relative_to(out).as_posix(): p.read_bytes()
        for p in out.rglob("*")
        if p.is_file()
    }
    assert restored == files
    assert (out / "src/train.py").stat().st_mode & 0o777 == 0o755
    assert not (out / "link.txt").exists()

    reader = notebook.get_run(run.id)
    with pytest.raises(ValidationError, match="is a folder; copy it with"):
        reader.read_artifact("checkpoint")
    with pytest.raises(ValidationError, match="give a folder path"):
        reader.download_artifact("checkpoint", tmp_path / "secret.txt")


def test_a_folder_download_that_fails_leaves_no_folder_it_made(
    notebook: Notebook, tmp_path: Path
) -> None:
    files = make_tree(tmp_path / "tree")
    with notebook.start("f") as run:
        run.attach(tmp_path / "tree")
    lost = hashlib.sha256(files["src/deep/er/weights.bin"]).hexdigest()
    blob = notebook.blobs.path(lost)
    blob.chmod(0o644)
    blob.unlink()

    new = tmp_path / "new" / "restored"
    with pytest.raises(NotFoundError, match=lost):
        notebook.download_artifact(run.id, "tree", new)
    assert not new.exists()

    kept = tmp_path / "kept"
    kept.mkdir()
    (kept / "mine.txt").write_text("mine")
    with pytest.raises(NotFoundError):
        notebook.download_artifact(run.id, "tree", kept)
    assert (kept / "mine.txt").read_text() == "mine"  # a folder given is left


@pytest.mark.parametrize("bad", ["a\\b.txt", "c:notes.txt"])
def test_folder_with_a_name_that_cannot_be_restored_is_refused(
    notebook: Notebook, tmp_path: Path, bad: str
) -> None:
    tree = tmp_path / "outputs"
    make_tree(tree)
    (tree / bad).write_bytes(b"kept apart")
    (tree / "sub").mkdir()
    (tree / "sub" / "c:fine.txt").write_bytes(b"a colon further down is fine")
    with notebook.start("f") as run:
        with pytest.raises(ValidationError, match=re.escape(repr(bad))):
            run.attach(tree)
        (tree / bad).unlink()
        run.attach(tree)
    out = notebook.download_artifact(run.id, "outputs", tmp_path / "restored")
    assert (out / "sub" / "c:fine.txt").read_bytes() == b"a colon further down is fine"
    assert len(notebook.artifacts(run.id)) == 1
    assert not temp_files(notebook.settings)


def _unlistable(monkeypatch: pytest.MonkeyPatch, folder: Path) -> None:
    """Make os.scandir fail on ``folder`` as on a folder without read permission
    (root, who runs the tests in containers, can list any folder).
    """
    scandir = os.scandir

    def refusing(path: Any = ".") -> Any:
        if isinstance(path, str | os.PathLike) and os.fspath(path) == str(folder):
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return scandir(path)

    monkeypatch.setattr(os, "scandir", refusing)


def test_folder_with_an_unreadable_subfolder_is_refused(
    notebook: Notebook, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tree = tmp_path / "outputs"
    make_tree(tree)
    _unlistable(monkeypatch, tree / "src" / "deep")
    with notebook.start("f") as run:
        with pytest.raises(ValidationError, match=r"deep'.*cannot be read"):
            run.attach(tree)
        monkeypatch.undo()
        run.attach(tree)
    assert notebook.artifacts(run.id)[0].meta["files"] == 6


def test_latest_artifact_by_step_then_time(notebook: Notebook) -> None:
    with notebook.start("s") as run:
        run.attach(b"step 5", name="model", step=5)
        run.attach(b"step 9", name="model", step=9)
        run.attach(b"step 2", name="model", step=2)
        run.attach(b"step 9 again", name="model", step=9)
        run.attach(b"no step", name="model")
        run.attach(b"other", name="other")
        # Reading from an active run sees what was just attached.
        assert run.read_artifact("model") == b"step 9 again"

    assert notebook.read_artifact(run.id, "model", step=5) == b"step 5"
    assert [a.step for a in notebook.artifacts(run.id, name="model")] == [
        5,
        9,
        2,
        9,
        None,
    ]
    assert len(notebook.artifacts(run.id, kind="file")) == 6
    assert notebook.artifacts(run.id, kind="folder") == []
    with pytest.raises(NotFoundError, match="no artifact named 'model' at step 4"):
        notebook.read_artifact(run.id, "model", step=4)
    with pytest.raises(NotFoundError, match="no artifact named 'nope'"):
        notebook.read_artifact(run.id, "nope")
    with pytest.raises(ValidationError, match="artifact kind 'files'"):
        notebook.artifacts(run.id, kind="files")


def test_module_functions(lab: Any, tmp_path: Path) -> None:
    with lab.start("m") as run:
        run.attach(b"hello", name="greeting.txt")
    assert [a.name for a in lab.artifacts(run.id)] == ["greeting.txt"]
    assert lab.artifacts(run.id[:8], kind="file")[0].media_type == "text/plain"
    assert lab.read_artifact(run.id, "greeting.txt") == b"hello"
    out = lab.download_artifact(run.id, "greeting.txt", tmp_path)
    assert out == tmp_path / "greeting.txt"
    assert out.read_bytes() == b"hello"


def test_module_functions_see_what_an_active_run_just_attached(
    lab: Any, tmp_path: Path
) -> None:
    with lab.start("m") as run:
        for i in range(5):
            run.attach(b"fresh %d" % i, name=f"f{i}")
            assert lab.read_artifact(run.id, f"f{i}") == b"fresh %d" % i
            run.save_checkpoint(b"w%d" % i, name="model", step=i)
            assert lab.load_checkpoint(run.id) == b"w%d" % i
            run.attach(b"doomed", name=f"d{i}")
            assert [a.name for a in lab.delete_artifacts(run.id, f"d{i}")] == [f"d{i}"]
        assert [a.step for a in lab.prune_checkpoints(run.id, keep_last=1)] == [
            0,
            1,
            2,
            3,
        ]
    assert not [a for a in lab.artifacts(run.id) if a.name.startswith("d")]


@pytest.mark.parametrize("name", [None, 3])
def test_reading_needs_a_name(notebook: Notebook, tmp_path: Path, name: Any) -> None:
    with notebook.start("n") as run:
        run.attach(b"secret", name="a.bin")
    for read in (
        lambda: notebook.read_artifact(run.id, name),
        lambda: notebook.open_artifact(run.id, name),
        lambda: notebook.find_artifact(run.id, name),
        lambda: notebook.download_artifact(run.id, name, tmp_path / "out"),
        lambda: run.read_artifact(name),
    ):
        with pytest.raises(ValidationError, match="artifact name must be a string"):
            read()
    assert not (tmp_path / "out").exists()


def test_read_only_run_cannot_attach(notebook: Notebook) -> None:
    with notebook.start("r") as run:
        pass
    with pytest.raises(LabnotebookError, match="finished"):
        run.attach(b"x", name="late")
    with pytest.raises(LabnotebookError, match="resume"):
        notebook.get_run(run.id).attach(b"x", name="late")
    assert not objects(notebook.settings)


# ------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("a/b", "contains '/' or '\\\\'"),
        ("a\\b", "contains '/' or '\\\\'"),
        ("..", "is not allowed"),
        (".", "is not allowed"),
        ("a\x00b", "control character"),
        ("a\nb", "control character"),
        ("x" * 256, "the limit is 255"),
        ("", "must not be empty"),
        (3, "must be a string"),
        ("\ud800", "lone surrogate"),
    ],
)
def test_bad_names_are_refused(notebook: Notebook, name: Any, message: str) -> None:
    with notebook.start("bad") as run, pytest.raises(ValidationError, match=message):
        run.attach(b"data", name=name)
    assert notebook.artifacts(run.id) == []
    assert not objects(notebook.settings)


def test_bad_sources_and_steps_are_refused(notebook: Notebook, tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("text")
    with notebook.start("bad") as run:
        with pytest.raises(ValidationError, match="needs a name"):
            run.attach(b"data")
        with pytest.raises(ValidationError, match="needs a name"):
            run.attach(io.BytesIO(b"data"))
        with pytest.raises(ValidationError, match="does not exist"):
            run.attach(tmp_path / "missing.bin")
        with (
            open(tmp_path / "notes.txt") as text,
            pytest.raises(ValidationError, match="text file object"),
        ):
            run.attach(text, name="notes")  # type: ignore[arg-type]
        with pytest.raises(ValidationError, match="not bytes"):
            run.attach(_TextReader(), name="x")  # type: ignore[arg-type]
        with pytest.raises(ValidationError, match="cannot attach int"):
            run.attach(42, name="x")  # type: ignore[arg-type]
        for step in (-1, 1.5, "3", True):
            with pytest.raises(ValidationError, match="step must be"):
                run.attach(b"data", name="x", step=step)  # type: ignore[arg-type]
        with pytest.raises(ValidationError, match="step must be"):
            run.attach(tmp_path, step=-1)
        with pytest.raises(ValidationError, match="must not be empty"):
            run.attach("/")
    assert notebook.artifacts(run.id) == []
    assert not temp_files(notebook.settings)


def test_an_empty_path_is_refused_not_read_as_the_current_folder(
    notebook: Notebook, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "private.txt").write_text("not meant to be attached")
    monkeypatch.chdir(tmp_path)
    with notebook.start("empty") as run:
        for empty in ("", _PathLike("")):
            with pytest.raises(ValidationError, match="path to attach is empty"):
                run.attach(empty)
            with pytest.raises(ValidationError, match="path to attach is empty"):
                run.attach(empty, name="named")
    assert notebook.artifacts(run.id) == []
    assert not objects(notebook.settings)


class _PathLike:
    def __init__(self, path: str) -> None:
        self.path = path

    def __fspath__(self) -> str:
        return self.path


class _BytesPathLike:
    def __init__(self, path: Path) -> None:
        self.path = os.fsencode(path)

    def __fspath__(self) -> bytes:
        return self.path


def test_path_objects_that_give_bytes(notebook: Notebook, tmp_path: Path) -> None:
    (tmp_path / "weights.bin").write_bytes(b"w")
    (tmp_path / "tree").mkdir()
    (tmp_path / "tree" / "a.txt").write_bytes(b"a")
    with notebook.start("bytes paths") as run:
        assert (
            run.attach(_BytesPathLike(tmp_path / "weights.bin")).name == "weights.bin"
        )  # type: ignore[arg-type]
        tree = _BytesPathLike(tmp_path / "tree")
        assert run.attach(tree).kind == "folder"  # type: ignore[arg-type]
        run.save_checkpoint(_BytesPathLike(tmp_path / "weights.bin"), step=0)
    assert notebook.read_artifact(run.id, "weights.bin", kind="file") == b"w"
    assert notebook.load_checkpoint(run.id).read_bytes() == b"w"


def test_closed_files_nul_paths_and_strided_views(
    notebook: Notebook, tmp_path: Path
) -> None:
    path = tmp_path / "data.bin"
    path.write_bytes(b"data")
    with open(path, "rb") as closed_file:
        pass
    closed_buffer = io.BytesIO(b"data")
    closed_buffer.close()
    array = np.arange(12, dtype=np.int32).reshape(3, 4)
    with notebook.start("odd") as run:
        for closed in (closed_file, closed_buffer):
            with pytest.raises(ValidationError, match="is closed; attach it before"):
                run.attach(closed, name="closed")
        with pytest.raises(ValidationError, match="contains a NUL character"):
            run.attach(str(path) + "\x00.bak", name="nul")
        run.attach(memoryview(array)[::2], name="rows")
        run.attach(memoryview(np.asfortranarray(array)), name="fortran")
    assert notebook.read_artifact(run.id, "rows") == array[::2].tobytes()
    assert notebook.read_artifact(run.id, "fortran") == array.tobytes()
    assert [a.name for a in notebook.artifacts(run.id)] == ["rows", "fortran"]
    assert not temp_files(notebook.settings)


class _TextReader:
    def read(self, size: int = -1) -> str:
        return "text"


class _Reader:
    """read() hands out the given results in turn, then b""."""

    def __init__(self, *results: Any) -> None:
        self.results = list(results)

    def read(self, size: int = -1) -> Any:
        return self.results.pop(0) if self.results else b""


class _NonBlockingRaw(io.RawIOBase):
    def __init__(self) -> None:
        self.sent = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int | None:
        if self.sent:
            return None  # no bytes ready yet
        self.sent = True
        buffer[:5] = b"start"
        return 5


def test_readers_that_cannot_give_all_their_bytes_are_refused(
    notebook: Notebook,
) -> None:
    with notebook.start("readers") as run:
        with pytest.raises(ValidationError, match="returned str, not bytes"):
            run.attach(_Reader(""), name="text")  # type: ignore[arg-type]
        with pytest.raises(ValidationError, match="returned None: it is non-blocking"):
            run.attach(_Reader(b"start", None, b"end"), name="partial")
        with pytest.raises(ValidationError, match="returned None: it is non-blocking"):
            run.attach(_NonBlockingRaw(), name="raw")
        run.attach(_Reader(b"start", bytearray(b" and "), b"end"), name="whole")
    assert [a.name for a in notebook.artifacts(run.id)] == ["whole"]
    assert notebook.read_artifact(run.id, "whole") == b"start and end"
    assert not temp_files(notebook.settings)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files of any mode")
def test_unreadable_file_is_refused(notebook: Notebook, tmp_path: Path) -> None:
    path = tmp_path / "locked.bin"
    path.write_bytes(b"x")
    path.chmod(0)
    with (
        notebook.start("r") as run,
        pytest.raises(ValidationError, match="cannot be read"),
    ):
        run.attach(path)
    assert notebook.artifacts(run.id) == []


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")
def test_named_pipes_and_devices_are_refused_without_waiting(
    notebook: Notebook, tmp_path: Path
) -> None:
    # Opening a named pipe with no writer would block forever.
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "a.txt").write_bytes(b"a")
    os.mkfifo(folder / "pipe")
    with notebook.start("r") as run:
        for path in (fifo, Path("/dev/zero")):
            with pytest.raises(ValidationError, match="not a regular file"):
                run.attach(path)
            with pytest.raises(ValidationError, match="not an existing file"):
                run.save_checkpoint(path)
        # In a folder, only regular files are kept.
        assert run.attach(folder).meta["files"] == 1
    assert [a.name for a in notebook.artifacts(run.id)] == ["folder"]
    assert not temp_files(notebook.settings)


@pytest.mark.skipif(not Path("/proc/self/mem").exists(), reason="needs Linux /proc")
def test_file_that_fails_to_read_is_refused(notebook: Notebook) -> None:
    # Reading /proc/self/mem at offset 0 fails with EIO: a real unreadable file.
    with (
        notebook.start("r") as run,
        pytest.raises(ValidationError, match="cannot read"),
    ):
        run.attach("/proc/self/mem", name="mem")
    assert notebook.artifacts(run.id) == []
    assert not temp_files(notebook.settings)
    assert not objects(notebook.settings)


def test_size_limit_known_and_streamed(settings: Settings, tmp_path: Path) -> None:
    notebook = Notebook(settings.replace(max_artifact_size=MiB))
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(MiB + 1))
    try:
        with notebook.start("limit") as run:
            with pytest.raises(ValidationError, match="larger than the artifact size"):
                run.attach(big)
            with pytest.raises(ValidationError, match="larger than the artifact size"):
                run.attach(b"x" * (MiB + 1), name="b")
            with pytest.raises(ValidationError, match="MAX_ARTIFACT_SIZE"):
                run.attach(_Chunks(3 * MiB), name="stream")
            folder = tmp_path / "folder"
            make_tree(folder)
            (folder / "zz").mkdir()
            big.rename(folder / "zz" / "big.bin")
            with pytest.raises(ValidationError, match=r"big\.bin is larger"):
                run.attach(folder)
            run.attach(b"x" * MiB, name="exactly the limit")
        assert [a.name for a in notebook.artifacts(run.id)] == ["exactly the limit"]
        assert not temp_files(notebook.settings)
        assert len(objects(notebook.settings)) == 1
    finally:
        notebook.close()


class _Chunks:
    """A file object of unknown size, handing out chunks of zeros."""

    def __init__(self, total: int):
        self.left = total

    def read(self, size: int = -1) -> bytes:
        n = min(self.left, 256 * 1024)
        self.left -= n
        return bytes(n)


_DISK_FULL = textwrap.dedent(
    """
    import json, resource, signal, sys
    from labnotebook import Notebook, Settings, StoreError

    settings = Settings(**json.loads(sys.argv[1]))
    notebook = Notebook(settings)
    run = notebook.start("disk full")
    # Past RLIMIT_FSIZE the kernel fails the write with EFBIG, as a full disk
    # fails it with ENOSPC.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (4 * 2**20, 4 * 2**20))
    try:
        run.attach(b"x" * (6 * 2**20), name="too big for the disk")
    except StoreError as exc:
        print("refused:", exc)
    run.attach(b"small", name="small")
    run.finish()
    notebook.close()
    """
)


def test_disk_full_mid_write_leaves_nothing(settings: Settings, tmp_path: Path) -> None:
    config = {
        "url": settings.url,
        "home": settings.home,
        "flush_interval": 0.05,
        "artifacts": str(tmp_path / "artifacts"),
    }
    done = subprocess.run(
        [sys.executable, "-c", _DISK_FULL, json.dumps(config)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "refused: cannot write to the artifact store" in done.stdout
    assert "File too large" in done.stdout

    notebook = Notebook(settings.replace(artifacts=str(tmp_path / "artifacts")))
    try:
        run_id = notebook.store.list_runs()[0].id
        assert [a.name for a in notebook.artifacts(run_id)] == ["small"]
        assert not temp_files(notebook.settings)
        assert len(objects(notebook.settings)) == 1
    finally:
        notebook.close()


# ------------------------------------------------------------- dedup, delete


def test_dedup_across_runs_and_cleanup_on_delete(
    notebook: Notebook, tmp_path: Path
) -> None:
    tree = tmp_path / "tree"
    make_tree(tree)
    shared = os.urandom(50_000)
    with notebook.start("one") as one:
        one.attach(shared, name="shared")
        one.attach(b"only in one", name="own")
        one.attach(tree)
    with notebook.start("two") as two:
        two.attach(shared, name="same bytes, other name")
        two.attach(b"same bytes", name="equal to a folder file")

    # shared, own, 5 distinct folder files, the manifest.
    assert len(objects(notebook.settings)) == 8
    notebook.delete_run(one.id)
    left = {p.parent.name + p.name for p in objects(notebook.settings)}
    assert left == {
        hashlib.sha256(shared).hexdigest(),
        hashlib.sha256(b"same bytes").hexdigest(),
    }
    assert notebook.read_artifact(two.id, "same bytes, other name") == shared

    notebook.delete_run(two.id)
    assert objects(notebook.settings) == []


def test_delete_artifacts_returns_unreferenced_blobs(
    notebook: Notebook, tmp_path: Path
) -> None:
    tree = tmp_path / "tree"
    files = make_tree(tree)
    with notebook.start("one") as one:
        one.attach(tree)
        one.attach(tree, name="again")
        one.attach(b"lr: 0.1\n", name="config")
    store = notebook.store
    first, second, config = store.list_artifacts(one.id)

    assert store.delete_artifacts(one.id, [first.id]) == []
    freed = store.delete_artifacts(one.id, [second.id])
    expected = {
        hashlib.sha256(data).hexdigest()
        for name, data in files.items()
        if data != b"lr: 0.1\n"
    }
    assert set(freed) == expected | {second.sha256}
    assert store.delete_artifacts(one.id, [config.id, 12345]) == [config.sha256]
    assert store.list_artifacts(one.id) == []


def test_open_blob_is_scoped_to_the_run(notebook: Notebook, tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    files = make_tree(tree)
    with notebook.start("one") as one:
        folder = one.attach(tree)
        own = one.attach(b"mine", name="mine")
    with notebook.start("two") as two:
        pass
    store = notebook.store

    with store.open_blob(one.id, own.sha256) as f:
        assert f.read() == b"mine"
    member = hashlib.sha256(files["src/train.py"]).hexdigest()
    with store.open_blob(one.id, member) as f:
        assert f.read() == files["src/train.py"]
    with store.open_blob(one.id[:8], folder.sha256) as f:
        assert json.load(f)["format"] == 1
    with pytest.raises(NotFoundError, match="has no artifact with sha256"):
        store.open_blob(two.id, own.sha256)
    with pytest.raises(NotFoundError, match="has no artifact with sha256"):
        store.open_blob(two.id, member)
    with pytest.raises(ValidationError, match="64 lowercase hexadecimal"):
        store.open_blob(one.id, "../" + own.sha256[3:])
    bare = SqlStore(notebook.settings.store_url)
    with pytest.raises(StoreError, match="without an artifact folder"):
        bare.open_blob(one.id, own.sha256)
    bare.close()


# ------------------------------------------------------------- unsafe folders


@pytest.mark.parametrize(
    "path",
    ["../escape.txt", "/etc/escape.txt", "a/../../escape.txt", "a\x00b", "a//b", "."],
)
def test_manifest_with_unsafe_path_writes_nothing(
    notebook: Notebook, tmp_path: Path, path: str
) -> None:
    blob, size = notebook.blobs.put_bytes(b"payload")
    manifest = json.dumps(
        {
            "format": 1,
            "files": [{"path": path, "size": size, "sha256": blob, "mode": 0o644}],
        }
    ).encode()
    sha, size = notebook.blobs.put_bytes(manifest)
    with notebook.start("evil") as run:
        row = ArtifactCreate("folder", "evil", None, size, sha, "application/json", 1.0)
        run._queue_artifact(row)

    dest = tmp_path / "dest" / "inner"
    with pytest.raises(StoreError, match="unsafe path"):
        notebook.download_artifact(run.id, "evil", dest)
    assert not (tmp_path / "dest").exists()


def test_folder_never_written_through_a_symlink_in_dest(
    notebook: Notebook, tmp_path: Path
) -> None:
    tree = tmp_path / "tree"
    make_tree(tree)
    with notebook.start("f") as run:
        run.attach(tree)
    outside = tmp_path / "outside"
    outside.mkdir()
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "src").symlink_to(outside, target_is_directory=True)
    with pytest.raises(StoreError, match="through the symbolic link"):
        notebook.download_artifact(run.id, "tree", dest)
    assert list(outside.iterdir()) == []


def test_blob_store_checks_hashes() -> None:
    with pytest.raises(ValidationError):
        check_sha256("A" * 64)
    with pytest.raises(ValidationError):
        BlobStore(Path("/nonexistent"), 10).path("../../etc/passwd")
    assert guess_media_type("photo.PNG") == "image/png"
    assert guess_media_type("weights") == "application/octet-stream"
    # Python's table, not the machine's: ".pt" is no game console format here.
    assert guess_media_type("model.pt") == "application/octet-stream"
    assert guess_media_type("config.yaml") == "application/yaml"


def test_put_stream_verifies_the_expected_hash(tmp_path: Path) -> None:
    blobs = BlobStore(tmp_path / "blobs", 2**20)
    with pytest.raises(ValidationError, match="not the expected"):
        blobs.put_stream(io.BytesIO(b"abc"), expected_sha256="0" * 64)
    assert list((tmp_path / "blobs" / "tmp").iterdir()) == []
    assert not (tmp_path / "blobs" / "objects").exists()
    sha, size = blobs.put_stream(
        io.BytesIO(b"abc"), expected_sha256=hashlib.sha256(b"abc").hexdigest()
    )
    assert blobs.has(sha) and blobs.size(sha) == size == 3
    blobs.delete(sha)
    blobs.delete(sha)
    with pytest.raises(NotFoundError):
        blobs.open(sha)


# ------------------------------------------------------------- console rows


def test_console_rows_written_with_the_batch_and_searched(
    notebook: Notebook,
) -> None:
    with notebook.start("c") as run:
        pass
    store = notebook.store
    store.write(
        Batch(
            run_id=run.id,
            console=[
                (1.0, "stdout", "epoch 1 loss=0.5\n"),
                (2.0, "stderr", "Warning: 100% of 5_000 done\n"),
                (3.0, "stdout", "EPOCH 2\n"),
            ],
        )
    )
    chunks = store.console(run.id)
    assert [(c.stream, c.text) for c in chunks] == [
        ("stdout", "epoch 1 loss=0.5\n"),
        ("stderr", "Warning: 100% of 5_000 done\n"),
        ("stdout", "EPOCH 2\n"),
    ]
    assert store.console(run.id, after=chunks[0].id)[0].id == chunks[1].id
    assert [c.text for c in store.console(run.id, limit=1)] == [chunks[0].text]
    assert [c.time for c in store.console(run.id, search="epoch")] == [1.0, 3.0]
    assert [c.time for c in store.console(run.id, search="100%")] == [2.0]
    assert store.console(run.id, search="1_0") == []
    assert store.console(run.id, search="%") == [chunks[1]]

    notebook.delete_run(run.id)
    engine = sa.create_engine(
        notebook.settings.store_url.replace("postgresql://", "postgresql+psycopg://")
    )
    with engine.connect() as conn:
        left = conn.exec_driver_sql("SELECT count(*) FROM console").scalar()
        assert left == 0
    engine.dispose()


# ------------------------------------------------------------- store down


@pytest.fixture
def proxied_pg(
    make_pg_database: Callable[[], str], tmp_path: Path
) -> Iterator[tuple[Proxy, Settings]]:
    """A PostgreSQL store reached through a proxy the test can cut."""
    url = sa.engine.make_url(make_pg_database())
    proxy = Proxy(url.port or 5432)
    proxy.start()
    settings = Settings(
        url=url.set(port=proxy.port).render_as_string(hide_password=False),
        home=str(tmp_path / "home"),
        flush_interval=0.05,
        retry_interval=0.1,
        exit_timeout=20.0,
    )
    yield proxy, settings
    proxy.stop()


def test_attach_while_store_is_down_is_spooled(
    proxied_pg: tuple[Proxy, Settings], tmp_path: Path
) -> None:
    proxy, settings = proxied_pg
    notebook = Notebook(settings)
    tree = tmp_path / "tree"
    files = make_tree(tree)
    run = notebook.start("outage")
    run.attach(b"before", name="before")
    assert run.flush() is True

    proxy.stop()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run.attach(b"during the outage", name="during")
        run.attach(tree)
        assert run.flush() is False
    assert list(spool_files(Path(settings.home) / "spool"))
    assert notebook.blobs.read(hashlib.sha256(b"during the outage").hexdigest())

    proxy.start()
    assert run.finish() is True
    assert [a.name for a in notebook.artifacts(run.id)] == ["before", "during", "tree"]
    assert notebook.read_artifact(run.id, "during") == b"during the outage"
    out = notebook.download_artifact(run.id, "tree", tmp_path / "out")
    assert (out / "src/train.py").read_bytes() == files["src/train.py"]
    notebook.close()


# ------------------------------------------------------------- command line


def test_cli_lists_and_downloads_artifacts(
    notebook: Notebook, settings: Settings, tmp_path: Path, monkeypatch: Any
) -> None:
    tree = tmp_path / "tree"
    files = make_tree(tree)
    with notebook.start("c") as run:
        run.attach(b"a" * 3000, name="weights.bin", step=2)
        run.attach(tree)
    runner = CliRunner(
        env={
            "LABNOTEBOOK_URL": None,
            "LABNOTEBOOK_HOME": settings.home,
            "COLUMNS": None,
            "NO_COLOR": None,
        }
    )

    def cli(*args: str, code: int = 0) -> Result:
        result = runner.invoke(main, ["--store", settings.url, *args])
        assert result.exit_code == code, result.output
        return result

    listing = cli("artifacts", run.id[:8]).output.splitlines()
    assert listing[0].split() == [
        "NAME",
        "KIND",
        "STEP",
        "SIZE",
        "TYPE",
        "CREATED",
        "SHA256",
    ]
    assert listing[1].split()[:5] == ["weights.bin", "file", "2", "2.9", "KiB"]
    total = sum(len(d) for d in files.values())
    assert listing[2].split()[:3] == ["tree", "folder", f"{total / 1024:.1f}"]
    data = json.loads(cli("artifacts", run.id, "--kind", "folder", "--json").output)
    assert [a["name"] for a in data] == ["tree"]
    empty = cli("artifacts", run.id, "--name", "nope")
    assert (empty.stdout, empty.stderr) == ("", "no artifacts\n")
    assert (
        "'files' is not one of"
        in cli("artifacts", run.id, "--kind", "files", code=2).output
    )

    monkeypatch.chdir(tmp_path)
    written = cli("download", run.id, "weights.bin").output.strip()
    assert Path(written) == tmp_path / "weights.bin"
    assert Path(written).read_bytes() == b"a" * 3000
    written = cli("download", run.id, "tree").output.strip()
    assert Path(written) == tmp_path / "tree"
    out = cli("download", run.id, "tree", str(tmp_path / "copy")).output.strip()
    assert (Path(out) / "src/train.py").read_bytes() == files["src/train.py"]
    result = cli("download", run.id, "weights.bin", "--step", "3", code=1)
    assert "Error: run" in result.output and "at step 3" in result.output
    result = cli("download", run.id, "../x", code=1)
    assert "no artifact named" in result.output or "contains '/'" in result.output
    # "-" is standard output, byte for byte; a folder cannot go there.
    assert cli("download", run.id, "weights.bin", "-").stdout_bytes == b"a" * 3000
    assert (
        "cannot go to standard output"
        in cli("download", run.id, "tree", "-", code=1).output
    )
    result = cli("download", run.id, "weights.bin", "--kind", "image", code=1)
    assert "no artifact named 'weights.bin' of kind 'image'" in result.output

    # --delete needs a name, asks first, and deletes only what is selected.
    assert (
        "--delete needs --name" in cli("artifacts", run.id, "--delete", code=2).output
    )
    refused = runner.invoke(
        main,
        ["--store", settings.url, "artifacts", run.id, "--name", "tree", "--delete"],
        input="n\n",
    )
    assert refused.exit_code == 1
    assert [a.name for a in notebook.artifacts(run.id)] == ["weights.bin", "tree"]
    gone = cli(
        "artifacts", run.id, "--name", "weights.bin", "--step", "2", "--delete", "-y"
    )
    assert gone.stderr == "deleted 1 artifact(s) named 'weights.bin' (2.9 KiB)\n"
    assert [a.name for a in notebook.artifacts(run.id)] == ["tree"]
    nothing = cli("artifacts", run.id, "--name", "weights.bin", "--delete", "-y")
    assert nothing.stderr == "no artifacts to delete\n"


def test_cli_download_to_a_path_it_cannot_write_is_a_one_line_error(
    notebook: Notebook, settings: Settings, tmp_path: Path
) -> None:
    tree = tmp_path / "tree"
    make_tree(tree)
    with notebook.start("c") as run:
        run.attach(b"abc", name="a.txt")
        run.attach(tree)
    plain = tmp_path / "plain.txt"
    plain.write_bytes(b"keep")
    runner = CliRunner(env={"LABNOTEBOOK_URL": None, "LABNOTEBOOK_HOME": settings.home})
    for name, dest in [
        ("a.txt", plain / "x.txt"),  # the folder holding DEST is a file
        ("a.txt", plain / "sub" / "x.txt"),
        ("tree", plain / "out"),
    ]:
        result = runner.invoke(
            main, ["--store", settings.url, "download", run.id, name, str(dest)]
        )
        assert result.exit_code == 1, result.output
        assert result.stdout == ""
        # Named: the folder that cannot be made, since a file is in its way.
        assert result.stderr.startswith("Error: cannot create the folder ")
        assert f"folder {str(plain)!r} (File exists)" in result.stderr or (
            f"folder '{plain}/" in result.stderr
            and "(Not a directory)" in result.stderr
        )
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert plain.read_bytes() == b"keep"


def test_cli_download_to_standard_output_checks_the_bytes(
    notebook: Notebook, settings: Settings
) -> None:
    data = b"weights " * 1000
    with notebook.start("c") as run:
        artifact = run.attach(data, name="w.bin")
    runner = CliRunner(env={"LABNOTEBOOK_URL": None, "LABNOTEBOOK_HOME": settings.home})
    argv = ["--store", settings.url, "download", run.id, "w.bin", "-"]
    assert runner.invoke(main, argv).stdout_bytes == data

    blob = BlobStore(settings.artifacts_path, 2**30).path(artifact.sha256)
    blob.chmod(0o644)
    blob.write_bytes(data[:-1] + b"X")
    result = runner.invoke(main, argv)
    # What went out cannot be taken back, but the command fails and says why.
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("Error: ")
    assert artifact.sha256 in result.stderr
    assert "damaged" in result.stderr


def test_read_artifact_checks_the_bytes(notebook: Notebook, settings: Settings) -> None:
    data = b"weights " * 1000
    with notebook.start("c") as run:
        artifact = run.attach(data, name="w.bin")
    blob = BlobStore(settings.artifacts_path, 2**30).path(artifact.sha256)
    blob.chmod(0o644)
    blob.write_bytes(data[:-1] + b"X")

    with pytest.raises(StoreError, match="damaged") as caught:
        notebook.read_artifact(run.id, "w.bin")
    assert artifact.sha256 in str(caught.value)
    with notebook.open_artifact(run.id, "w.bin") as f:  # streamed as stored
        assert f.read() == data[:-1] + b"X"


def _read_pipe(path: Path, into: list[bytes]) -> threading.Thread:
    def read() -> None:
        with open(path, "rb") as f:
            into.append(f.read())

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    return reader


def test_a_download_into_a_named_pipe_writes_into_it(
    notebook: Notebook, settings: Settings, tmp_path: Path
) -> None:
    # A pipe (or a device such as /dev/null) given as DEST is written into; it is
    # never replaced by a regular file.
    data = os.urandom(300_000)
    with notebook.start("c") as run:
        run.attach(data, name="w.bin")
    out = tmp_path / "out"
    out.mkdir()
    fifo = out / "pipe"
    os.mkfifo(fifo)
    got: list[bytes] = []
    reader = _read_pipe(fifo, got)
    assert notebook.download_artifact(run.id, "w.bin", fifo) == fifo
    reader.join(10)
    assert got == [data]
    assert stat.S_ISFIFO(fifo.stat().st_mode)

    runner = CliRunner(env={"LABNOTEBOOK_URL": None, "LABNOTEBOOK_HOME": settings.home})
    reader = _read_pipe(fifo, got)
    result = runner.invoke(
        main, ["--store", settings.url, "download", run.id, "w.bin", str(fifo)]
    )
    reader.join(10)
    assert result.exit_code == 0, result.output
    assert got == [data, data]
    assert stat.S_ISFIFO(fifo.stat().st_mode)
    assert [p.name for p in out.iterdir()] == ["pipe"]


def test_temp_files_left_by_a_killed_write_are_removed_when_a_notebook_opens(
    settings: Settings, tmp_path: Path
) -> None:
    blobs = BlobStore(settings.artifacts_path, settings.max_artifact_size)
    blobs.tmp_dir.mkdir(parents=True)
    stale = blobs.tmp_dir / "put-stale"
    stale.write_bytes(b"half an upload")
    day_ago = time.time() - 25 * 3600
    os.utime(stale, (day_ago, day_ago))
    fresh = blobs.tmp_dir / "put-fresh"
    fresh.write_bytes(b"a write in progress")
    outside = tmp_path / "outside"
    outside.write_bytes(b"not the store's")
    os.utime(outside, (day_ago, day_ago))
    (blobs.tmp_dir / "link").symlink_to(outside)

    Notebook(settings).close()
    assert not stale.exists()
    assert fresh.exists()
    assert outside.exists()


def test_delete_artifacts_by_name_step_and_kind(notebook: Notebook) -> None:
    with notebook.start("d") as run:
        for step in (0, 1, 2):
            run.attach(f"sample {step}".encode(), name="samples", step=step)
        run.attach(b"shared", name="samples.bin")
        run.save_checkpoint(b"shared", name="samples")
    blobs = notebook.blobs
    sha = {a.step: a.sha256 for a in run.artifacts(kind="file", name="samples")}

    deleted = notebook.delete_artifacts(run.id, "samples", step=1, kind="file")
    assert [(a.name, a.step) for a in deleted] == [("samples", 1)]
    assert not blobs.has(sha[1]) and blobs.has(sha[0])
    assert [a.step for a in run.artifacts(kind="file", name="samples")] == [0, 2]

    # By kind: the checkpoint goes, its bytes stay for the file that shares them.
    (checkpoint,) = labnotebook_delete(notebook, run.id, "samples", kind="checkpoint")
    assert blobs.has(checkpoint.sha256)
    assert run.read_artifact("samples.bin") == b"shared"

    assert len(notebook.delete_artifacts(run.id, "samples")) == 2
    assert notebook.delete_artifacts(run.id, "samples") == []
    assert [a.name for a in notebook.artifacts(run.id)] == ["samples.bin"]

    with pytest.raises(ValidationError, match="contains '/'"):
        notebook.delete_artifacts(run.id, "../samples.bin")
    with pytest.raises(ValidationError, match="step must be"):
        notebook.delete_artifacts(run.id, "samples.bin", step=-1)
    with pytest.raises(ValidationError, match="kind"):
        notebook.delete_artifacts(run.id, "samples.bin", kind="files")
    assert [a.name for a in notebook.artifacts(run.id)] == ["samples.bin"]


def labnotebook_delete(
    notebook: Notebook, run_id: str, name: str, **options: Any
) -> list[Artifact]:
    return notebook.get_run(run_id).delete_artifacts(name, **options)


def test_a_name_shared_by_kinds_is_told_apart_by_kind(
    notebook: Notebook, tmp_path: Path
) -> None:
    with notebook.start("k") as run:
        run.image(np.zeros((2, 2), np.uint8), "weights", step=5)
        run.save_checkpoint(b"ckpt", name="weights", step=5)
        run.attach(b"early", name="weights", step=1)
    # Without a kind: the latest by step, then time.
    assert notebook.read_artifact(run.id, "weights") == b"ckpt"
    png = notebook.read_artifact(run.id, "weights", kind="image")
    assert png.startswith(b"\x89PNG")
    assert run.read_artifact("weights", kind="file") == b"early"
    with run.open_artifact("weights", 5, kind="checkpoint") as f:
        assert f.read() == b"ckpt"
    path = run.download_artifact("weights", tmp_path, kind="file")
    assert path.read_bytes() == b"early"
    with pytest.raises(NotFoundError, match="of kind 'file' at step 5"):
        notebook.find_artifact(run.id, "weights", step=5, kind="file")
    with pytest.raises(ValidationError, match="kind 'pictures' is not one of"):
        notebook.find_artifact(run.id, "weights", kind="pictures")


def test_download_under_a_file_is_refused(notebook: Notebook, tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    make_tree(tree)
    blocker = tmp_path / "blocker"
    blocker.write_text("a file, not a folder")
    with notebook.start("m") as run:
        run.attach(b"x", name="x.bin")
        run.attach(tree)
    for name, dest in (
        ("x.bin", blocker / "x.bin"),
        ("x.bin", blocker / "deeper" / "x.bin"),
        ("tree", blocker / "tree"),
    ):
        with pytest.raises(ValidationError, match="cannot create the folder"):
            notebook.download_artifact(run.id, name, dest)
    assert blocker.read_text() == "a file, not a folder"


def test_names_too_long_for_a_file_name_need_a_dest_path(
    notebook: Notebook, tmp_path: Path
) -> None:
    name = "é" * 200  # 200 characters, 400 bytes in UTF-8
    with notebook.start("m") as run:
        run.attach(b"x", name=name)
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(ValidationError, match="400 bytes long in UTF-8"):
        notebook.download_artifact(run.id, name, out, kind="file")
    assert list(out.iterdir()) == []
    path = notebook.download_artifact(run.id, name, out / "short.bin", kind="file")
    assert path.read_bytes() == b"x"


def test_downloaded_files_follow_the_umask(notebook: Notebook, tmp_path: Path) -> None:
    with notebook.start("m") as run:
        run.attach(b"x", name="x.bin")
    old = os.umask(0o027)
    try:
        path = notebook.download_artifact(run.id, "x.bin", tmp_path / "x.bin")
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o640
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".download-")]


def test_dot_and_dotdot_are_named_after_their_folder(
    notebook: Notebook, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    inner = tmp_path / "experiment" / "outputs"
    inner.mkdir(parents=True)
    (inner / "a.txt").write_text("a")
    monkeypatch.chdir(inner)
    with notebook.start("dots") as run:
        assert run.attach(".").name == "outputs"
        assert run.attach("./").name == "outputs"
        assert run.attach("..").name == "experiment"
        assert run.attach(".", name="named").name == "named"
