"""Checkpoints: serialising, choosing, loading and pruning."""

from __future__ import annotations

import io
import os
import pathlib
import tarfile
import tempfile
import time
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa
import torch

from labnotebook import Notebook, NotFoundError, Settings, StoreError, ValidationError
from labnotebook._checkpoints import choose, load_bytes, serialise, to_prune
from labnotebook._store.base import Artifact
from proxy import Proxy


def _artifact(
    id: int, step: int | None, meta: dict[str, Any] | None = None
) -> Artifact:
    return Artifact(
        id=id,
        run_id="r",
        kind="checkpoint",
        name="model",
        step=step,
        size=0,
        sha256="0" * 64,
        media_type="application/octet-stream",
        created_at=float(id),
        meta=meta or {},
    )


def _round_trip(obj: object, allow_pickle: bool = False) -> Any:
    with serialise(obj) as saved:
        source = saved.source
        data = source if isinstance(source, bytes) else source.read_bytes()
        meta = saved.meta
    return load_bytes(
        _artifact(1, 0, meta),
        io.BytesIO(data),
        allow_pickle=allow_pickle,
        map_location=None,
    )


# ----------------------------------------------------------------- serialise


def test_bytes() -> None:
    with serialise(bytearray(b"\x00\x01")) as saved:
        assert saved.source == b"\x00\x01"
        assert saved.meta == {"format": "bytes"}
    assert _round_trip(memoryview(b"abc")) == b"abc"


def test_paths(tmp_path: pathlib.Path) -> None:
    file = tmp_path / "weights.bin"
    file.write_bytes(b"w")
    with serialise(str(file)) as saved:
        assert saved.source == file
        assert saved.meta == {"format": "file", "filename": "weights.bin"}
    with serialise(tmp_path) as saved:
        assert saved.meta == {"format": "folder", "files": 1, "folder": tmp_path.name}
        assert saved.media_type == "application/x-tar"
    with (
        pytest.raises(ValidationError, match="not an existing file or folder"),
        serialise(tmp_path / "missing.pt"),
    ):
        pass


def test_numpy_array_round_trip() -> None:
    array = np.arange(12, dtype=np.float32).reshape(3, 4)
    with serialise(array) as saved:
        assert saved.meta == {
            "format": "numpy",
            "layout": "array",
            "shape": [3, 4],
            "dtype": "float32",
        }
        temporary = saved.source
        assert isinstance(temporary, pathlib.Path) and temporary.exists()
    assert not temporary.exists()
    loaded = _round_trip(array)
    assert loaded.dtype == np.float32
    assert np.array_equal(loaded, array)


def test_numpy_dict_round_trip() -> None:
    arrays = {"w": np.ones((2, 2)), "b": np.arange(3)}
    loaded = _round_trip(arrays)
    assert sorted(loaded) == ["b", "w"]
    assert np.array_equal(loaded["w"], arrays["w"])
    assert np.array_equal(loaded["b"], arrays["b"])


def test_numpy_object_arrays_are_refused() -> None:
    with (
        pytest.raises(ValidationError, match=r"dtype object.*pickle"),
        serialise(np.array([{"a": 1}], dtype=object)),
    ):
        pass


def test_trees_of_arrays_and_plain_values_round_trip() -> None:
    state = {
        "epoch": 3,
        "best": 0.25,
        "lr": float("nan"),
        "done": False,
        "note": "ünïcode \ud800 and a \x00",
        "missing": None,
        "big": 2**80,
        "layers": [
            {"w": np.ones((2, 3), dtype=np.float16), "b": np.zeros(3)},
            {"w": np.arange(4), "b": np.float32(0.5)},
        ],
        "shape": (2, 3),
        "d": {"l": 1, "a": "not a tag"},
        "words": np.array(["a", "bc"]),
        "empty": {},
    }
    with serialise(state) as saved:
        assert saved.meta == {"format": "numpy", "layout": "tree", "arrays": 5}
    loaded = _round_trip(state)
    assert loaded.keys() == state.keys()
    assert loaded["epoch"] == 3 and type(loaded["epoch"]) is int
    assert loaded["best"] == 0.25 and np.isnan(loaded["lr"])
    assert loaded["done"] is False and loaded["missing"] is None
    assert loaded["note"] == state["note"] and loaded["big"] == 2**80
    assert loaded["shape"] == (2, 3) and isinstance(loaded["shape"], tuple)
    assert loaded["d"] == {"l": 1, "a": "not a tag"} and loaded["empty"] == {}
    first, second = loaded["layers"]
    assert first["w"].dtype == np.float16 and np.array_equal(
        first["w"], np.ones((2, 3))
    )
    assert np.array_equal(second["w"], np.arange(4))
    assert isinstance(second["b"], np.float32) and second["b"] == 0.5
    assert list(loaded["words"]) == ["a", "bc"]
    assert _round_trip([1, "two", [3.0]]) == [1, "two", [3.0]]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"fn": print}, r"the checkpoint\['fn'\] holds a builtins.builtin_function"),
        ([1, {2: "x"}], r"the checkpoint\[1\] has a int key 2; dict keys"),
        ([np.array([object()])], r"at the checkpoint\[0\] has dtype object"),
        ({"s": {1, 2}}, r"holds a builtins.set"),
    ],
)
def test_trees_refuse_what_needs_pickle(value: object, message: str) -> None:
    with pytest.raises(ValidationError, match=message), serialise(value):
        pass


def test_trees_are_depth_limited() -> None:
    deep: list[Any] = []
    for _ in range(40):
        deep = [deep]
    with pytest.raises(ValidationError, match="deeper than 32"), serialise(deep):
        pass


@pytest.mark.parametrize("value", [None, 3, "text", object()])
def test_unsupported_objects(value: object) -> None:
    with (
        pytest.raises(ValidationError, match="checkpoint"),
        serialise(value),
    ):
        pass


def test_torch_module_is_saved_as_its_state_dict() -> None:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU())
    with serialise(model) as saved:
        assert saved.meta["format"] == "torch"
        assert saved.meta["type"] == "state_dict"
        assert saved.meta["class"] == "Sequential"
    state = _round_trip(model)
    fresh = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU())
    fresh.load_state_dict(state)
    x = torch.randn(2, 4)
    assert torch.equal(fresh(x), model(x))


def test_torch_state_dict_with_optimizer() -> None:
    model = torch.nn.Linear(2, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    state = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "epoch": 3,
    }
    loaded = _round_trip(state)
    assert loaded["epoch"] == 3
    assert torch.equal(loaded["model"]["weight"], model.weight)
    assert loaded["optimizer"]["param_groups"][0]["lr"] == 0.1


class _Net(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(2, 2)


def test_models_and_schedulers_defined_outside_torch() -> None:
    model = _Net()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=3)
    with serialise(model) as saved:
        assert saved.meta["format"] == "torch"
        assert saved.meta["class"] == "_Net"
    fresh = _Net()
    fresh.load_state_dict(_round_trip(model))
    assert torch.equal(fresh.layer.weight, model.layer.weight)
    assert _round_trip(scheduler)["step_size"] == 3
    assert _round_trip(optimizer)["param_groups"][0]["lr"] == 0.5


class _Custom:
    def __init__(self) -> None:
        self.tensor = torch.ones(2)


def test_pickled_objects_need_allow_pickle() -> None:
    obj = {"weights": torch.zeros(2), "config": _Custom()}
    with pytest.raises(ValidationError, match="allow_pickle=True"):
        _round_trip(obj)
    loaded = _round_trip(obj, allow_pickle=True)
    assert torch.equal(loaded["config"].tensor, torch.ones(2))


@pytest.mark.parametrize(
    "meta", [{"format": "torch"}, {"format": "numpy", "layout": "array"}]
)
def test_damaged_checkpoints_raise_store_errors(meta: dict[str, Any]) -> None:
    with pytest.raises(StoreError, match=r"could not be read as (torch|numpy)"):
        load_bytes(
            _artifact(1, 3, meta),
            io.BytesIO(b"not a checkpoint"),
            allow_pickle=False,
            map_location=None,
        )


def test_unknown_formats_are_refused() -> None:
    with pytest.raises(ValidationError, match="has format 'pickle'"):
        load_bytes(
            _artifact(1, 3, {"format": "pickle"}),
            io.BytesIO(b""),
            allow_pickle=True,
            map_location=None,
        )


# ------------------------------------------------------------ choose, prune


def test_choose_latest_step_then_newest() -> None:
    found = [_artifact(1, 5), _artifact(2, 9), _artifact(3, None), _artifact(4, 9)]
    chosen = choose(found, None)
    assert chosen is not None and chosen.id == 4
    chosen = choose(found, 5)
    assert chosen is not None and chosen.id == 1
    assert choose(found, 7) is None
    assert choose([], None) is None


def test_prune_keep_last() -> None:
    found = [_artifact(i, i * 10) for i in range(1, 6)]
    deleted = to_prune(found, keep_last=2, keep_best=0, values={}, mode="min")
    assert [a.id for a in deleted] == [1, 2, 3]


def test_prune_keep_best_and_last() -> None:
    found = [_artifact(i, i * 10) for i in range(1, 6)]
    values = {10: 0.5, 20: 0.1, 30: float("nan"), 40: 0.3, 50: 0.9}
    deleted = to_prune(found, keep_last=1, keep_best=2, values=values, mode="min")
    assert [a.id for a in deleted] == [1, 3]  # kept: 50 (last), 20 and 40 (best)
    deleted = to_prune(found, keep_last=0, keep_best=1, values=values, mode="max")
    assert [a.id for a in deleted] == [1, 2, 3, 4]


# --------------------------------------------------------- through the stores


def test_torch_module_round_trip(notebook: Notebook) -> None:
    torch.manual_seed(1)
    model = torch.nn.Sequential(torch.nn.Linear(8, 4), torch.nn.Tanh())
    with notebook.start() as run:
        run.log(loss=1.0, step=10)
        row = run.save_checkpoint(model)
        assert row.step == 10
        torch.nn.init.zeros_(model[0].weight)
        run.save_checkpoint(model, step=20)
        loaded_in_run = run.load_checkpoint(step=10)
    stored = notebook.artifacts(run.id, kind="checkpoint")
    assert [(a.name, a.step, a.meta["format"]) for a in stored] == [
        ("model", 10, "torch"),
        ("model", 20, "torch"),
    ]

    latest = labnotebook_load(notebook, run.id)
    assert torch.count_nonzero(latest["0.weight"]) == 0
    fresh = torch.nn.Sequential(torch.nn.Linear(8, 4), torch.nn.Tanh())
    fresh.load_state_dict(loaded_in_run)
    assert torch.count_nonzero(fresh[0].weight) == 32


def labnotebook_load(notebook: Notebook, run_id: str, **options: Any) -> Any:
    return notebook.load_checkpoint(run_id, **options)


def test_module_function(lab: Any) -> None:
    with lab.start() as run:
        run.save_checkpoint(b"weights", step=1, name="raw")
    assert lab.load_checkpoint(run.id, name="raw") == b"weights"
    with pytest.raises(lab.NotFoundError, match=r"no checkpoint named 'raw' at step 2"):
        lab.load_checkpoint(run.id, step=2, name="raw")
    with pytest.raises(lab.NotFoundError, match="no checkpoint named 'model'"):
        lab.load_checkpoint(run.id)


def test_numpy_bytes_file_and_folder(
    notebook: Notebook, tmp_path: pathlib.Path
) -> None:
    file = tmp_path / "weights.safetensors"
    file.write_bytes(bytes(range(256)) * 10)
    folder = tmp_path / "hf"
    (folder / "sub").mkdir(parents=True)
    (folder / "config.json").write_text('{"a": 1}')
    (folder / "sub" / "w.bin").write_bytes(b"\x00" * 1000)
    (folder / "link").symlink_to(file)
    arrays = {"w": np.eye(3)}
    with notebook.start() as run:
        run.save_checkpoint(np.arange(5), name="array", step=0)
        run.save_checkpoint(arrays, name="arrays", step=0)
        run.save_checkpoint(b"", name="empty", step=0)
        run.save_checkpoint(file, name="file", step=0)
        run.save_checkpoint(str(folder), name="folder", step=0)
        run.save_checkpoint({"coef": np.ones(2), "epoch": 7}, name="tree", step=0)

    assert np.array_equal(notebook.load_checkpoint(run.id, name="array"), np.arange(5))
    tree = notebook.load_checkpoint(run.id, name="tree")
    assert tree["epoch"] == 7 and np.array_equal(tree["coef"], np.ones(2))
    assert np.array_equal(
        notebook.load_checkpoint(run.id, name="arrays")["w"], np.eye(3)
    )
    assert notebook.load_checkpoint(run.id, name="empty") == b""

    copied = notebook.load_checkpoint(run.id, name="file", dest=tmp_path / "out")
    assert copied == tmp_path / "out" / "file"
    assert copied.read_bytes() == file.read_bytes()
    default = notebook.load_checkpoint(run.id, name="file")
    assert default.read_bytes() == file.read_bytes()

    restored = notebook.load_checkpoint(run.id, name="folder", dest=tmp_path / "back")
    assert restored == tmp_path / "back"
    assert (restored / "config.json").read_text() == '{"a": 1}'
    assert (restored / "sub" / "w.bin").read_bytes() == b"\x00" * 1000
    assert not (restored / "link").exists()

    meta = {a.name: a.meta for a in notebook.artifacts(run.id)}
    assert meta["folder"] == {"format": "folder", "files": 2, "folder": "hf"}
    assert meta["file"]["format"] == "file"
    assert meta["empty"] == {"format": "bytes"}
    assert meta["tree"] == {"format": "numpy", "layout": "tree", "arrays": 1}


def test_numpy_dict_keys_named_like_savez_arguments(notebook: Notebook) -> None:
    # np.savez(file, *args, allow_pickle=..., **arrays) would take these keys as
    # its own arguments: "file" clashed, "allow_pickle" vanished from the archive.
    arrays = {"file": np.arange(3), "allow_pickle": np.ones(2), "args": np.zeros(1)}
    tree = {"file": np.arange(2), "allow_pickle": 1}
    with notebook.start() as run:
        run.save_checkpoint(arrays, name="arrays", step=0)
        run.save_checkpoint(tree, name="tree", step=0)
    loaded = notebook.load_checkpoint(run.id, name="arrays")
    assert sorted(loaded) == ["allow_pickle", "args", "file"]
    for key, array in arrays.items():
        assert np.array_equal(loaded[key], array)
    back = notebook.load_checkpoint(run.id, name="tree")
    assert back["allow_pickle"] == 1 and np.array_equal(back["file"], np.arange(2))


def test_folder_with_a_backslash_in_a_name_is_refused(
    notebook: Notebook, tmp_path: pathlib.Path
) -> None:
    folder = tmp_path / "hf"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    (folder / "a\\b.bin").write_bytes(b"x")
    with notebook.start() as run:
        with pytest.raises(ValidationError, match=r"'a\\\\b\.bin'.*backslash"):
            run.save_checkpoint(folder, step=0)
        (folder / "a\\b.bin").unlink()
        run.save_checkpoint(folder, step=0)
    restored = notebook.load_checkpoint(run.id, dest=tmp_path / "back")
    assert sorted(p.name for p in restored.iterdir()) == ["config.json"]
    assert len(notebook.artifacts(run.id)) == 1


def test_an_empty_checkpoint_path_is_refused(
    notebook: Notebook, tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "private.txt").write_text("not meant to be saved")
    monkeypatch.chdir(tmp_path)
    with (
        notebook.start() as run,
        pytest.raises(ValidationError, match="checkpoint path is empty"),
    ):
        run.save_checkpoint("", step=0)
    assert notebook.artifacts(run.id) == []


def test_folder_is_never_restored_through_a_symlink_in_dest(
    notebook: Notebook, tmp_path: pathlib.Path
) -> None:
    folder = tmp_path / "hf"
    (folder / "sub").mkdir(parents=True)
    (folder / "config.json").write_text("new")
    (folder / "sub" / "w.bin").write_bytes(b"w")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "victim.txt").write_text("untouched")
    with notebook.start() as run:
        run.save_checkpoint(folder, step=0)

    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "config.json").symlink_to(outside / "victim.txt")
    restored = notebook.load_checkpoint(run.id, dest=dest)
    assert (outside / "victim.txt").read_text() == "untouched"
    assert not (restored / "config.json").is_symlink()
    assert (restored / "config.json").read_text() == "new"

    linked = tmp_path / "linked"
    linked.mkdir()
    (linked / "sub").symlink_to(outside, target_is_directory=True)
    with pytest.raises(StoreError, match="through the symbolic link"):
        notebook.load_checkpoint(run.id, dest=linked)
    assert sorted(p.name for p in outside.iterdir()) == ["victim.txt"]


def test_damaged_folder_and_file_checkpoints_leave_no_temporary_folder(
    notebook: Notebook, tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "hf"
    folder.mkdir()
    (folder / "w.bin").write_bytes(b"w" * 5000)
    file = tmp_path / "f.bin"
    file.write_bytes(b"f" * 100)
    with notebook.start() as run:
        stored = run.save_checkpoint(folder, step=0)
        run.save_checkpoint(file, step=0, name="file")
    temp = tmp_path / "temp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))

    blob = notebook.blobs.path(stored.sha256)
    data = blob.read_bytes()
    blob.chmod(0o644)
    flipped = data.replace(b"w" * 10, b"w" * 9 + b"x", 1)
    for damaged, message in (
        (data[:1000], "could not be read as a tar archive"),
        (b"garbage" * 100, "could not be read as a tar archive"),
        (flipped, "do not match their sha256"),
    ):
        blob.write_bytes(damaged)
        with pytest.raises(StoreError, match=message):
            notebook.load_checkpoint(run.id)
    blob.unlink()
    notebook.blobs.path(run.artifacts(name="file")[0].sha256).unlink()
    for name in ("model", "file"):
        with pytest.raises(NotFoundError, match="is not in the artifact store"):
            notebook.load_checkpoint(run.id, name=name)
    assert list(temp.iterdir()) == []


def test_file_checkpoint_named_too_long_for_a_file_name(
    notebook: Notebook, tmp_path: pathlib.Path
) -> None:
    file = tmp_path / "w.bin"
    file.write_bytes(b"w")
    name = "é" * 200  # 400 bytes in UTF-8
    with notebook.start() as run:
        run.save_checkpoint(file, name=name, step=0)
    out = tmp_path / "out"
    with pytest.raises(ValidationError, match="400 bytes long in UTF-8"):
        notebook.load_checkpoint(run.id, name=name, dest=out)
    assert list(out.iterdir()) == []


def test_folder_checkpoint_with_unreadable_parts_is_refused(
    notebook: Notebook, tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # root, who runs the tests in containers, reads everything: fail the calls.
    folder = tmp_path / "hf"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "w.bin").write_bytes(b"w")
    (folder / "config.json").write_text("{}")
    scandir, tar_open = os.scandir, tarfile.bltn_open  # type: ignore[attr-defined]

    def refusing_scandir(path: Any = ".") -> Any:
        if isinstance(path, str | os.PathLike) and os.fspath(path) == str(
            folder / "sub"
        ):
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return scandir(path)

    def refusing_open(name: Any, *args: Any) -> Any:
        if os.fspath(name) == str(folder / "config.json"):
            raise PermissionError(13, "Permission denied", os.fspath(name))
        return tar_open(name, *args)

    with notebook.start() as run:
        with monkeypatch.context() as patch:
            patch.setattr(os, "scandir", refusing_scandir)
            with pytest.raises(ValidationError, match=r"sub'.*cannot be read"):
                run.save_checkpoint(folder, step=0)
        with monkeypatch.context() as patch:
            patch.setattr(tarfile, "bltn_open", refusing_open)
            with pytest.raises(ValidationError, match=r"config\.json'.*cannot be read"):
                run.save_checkpoint(folder, step=0)
    assert notebook.artifacts(run.id) == []


def test_dest_must_be_a_folder(notebook: Notebook, tmp_path: pathlib.Path) -> None:
    file = tmp_path / "x"
    file.write_bytes(b"x")
    with notebook.start() as run:
        run.save_checkpoint(file, step=0)
    with pytest.raises(ValidationError, match="is a file"):
        notebook.load_checkpoint(run.id, dest=file)
    with pytest.raises(ValidationError, match="cannot create the folder"):
        notebook.load_checkpoint(run.id, dest=file / "sub")


def test_bad_checkpoints_store_nothing(notebook: Notebook) -> None:
    with notebook.start() as run:
        with pytest.raises(ValidationError, match="as a checkpoint"):
            run.save_checkpoint(object())
        with pytest.raises(ValidationError, match="name"):
            run.save_checkpoint(b"x", name="a/b")
        with pytest.raises(ValidationError, match="step"):
            run.save_checkpoint(b"x", step=-1)
    assert notebook.artifacts(run.id) == []


def test_prune_keeps_last_and_best(notebook: Notebook) -> None:
    losses = [0.9, 0.2, 0.5, 0.1, 0.7, 0.8]
    with notebook.start() as run:
        for step, loss in enumerate(losses):
            run.log({"val/loss": loss}, step=step)
            run.save_checkpoint(np.full(100, step), step=step)
        run.save_checkpoint(np.full(100, 99), step=0, name="other")
        run.save_checkpoint(np.full(100, 5), step=9, name="same-bytes")
        deleted = run.prune_checkpoints(keep_last=2, keep_best=2, metric="val/loss")
    assert sorted(a.step for a in deleted) == [0, 2]
    left = notebook.artifacts(run.id, kind="checkpoint", name="model")
    assert sorted(a.step for a in left) == [1, 3, 4, 5]
    assert len(notebook.artifacts(run.id, name="other")) == 1

    # Unreferenced blobs are gone, shared ones stay.
    sha = {a.step: a.sha256 for a in deleted}
    assert not notebook.blobs.has(sha[0])
    assert not notebook.blobs.has(sha[2])
    assert np.array_equal(notebook.load_checkpoint(run.id), np.full(100, 5))
    assert np.array_equal(
        notebook.load_checkpoint(run.id, name="same-bytes"), np.full(100, 5)
    )

    deleted = notebook.prune_checkpoints(
        run.id, keep_best=1, keep_last=0, metric="val/loss", mode="max"
    )
    assert sorted(a.step for a in deleted) == [1, 3, 4]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"keep_last": 0}, "would delete every checkpoint"),
        ({"keep_last": -1}, "keep_last must be a non-negative integer"),
        ({"keep_best": 1.5}, "keep_best must be a non-negative integer"),
        ({"keep_best": 2}, "keep_best needs the metric"),
        ({"mode": "lowest"}, "mode must be 'min'"),
        ({"name": "a/b"}, "name"),
    ],
)
def test_prune_validates(
    notebook: Notebook, options: dict[str, Any], message: str
) -> None:
    with notebook.start() as run:
        run.save_checkpoint(b"x", step=0)
    with pytest.raises(ValidationError, match=message):
        notebook.prune_checkpoints(run.id, **options)
    assert len(notebook.artifacts(run.id)) == 1


def test_prune_by_a_metric_that_ranks_nothing_deletes_nothing(
    notebook: Notebook,
) -> None:
    with notebook.start() as run:
        for step in range(4):
            run.log({"val/loss": 1.0 / (step + 1)}, step=2 * step)
            run.save_checkpoint(np.full(3, step), step=2 * step + 1)
    with pytest.raises(
        ValidationError, match=r"no values of metric 'val/los'.*'val/loss'.*nothing"
    ):
        run.prune_checkpoints(keep_best=1, metric="val/los")
    with pytest.raises(
        ValidationError, match=r"no checkpoint 'model' .* steps: 1, 3, 5, 7\).*nothing"
    ):
        run.prune_checkpoints(keep_best=1, metric="val/loss")
    assert len(notebook.artifacts(run.id, kind="checkpoint")) == 4
    # Without keep_best the metric is not needed, and keep_last works as before.
    assert len(run.prune_checkpoints(keep_last=1)) == 3


def test_pictures_and_checkpoints_survive_a_store_outage(
    make_pg_database: Callable[[], str], tmp_path: pathlib.Path
) -> None:
    url = sa.engine.make_url(make_pg_database())
    proxy = Proxy(url.port or 5432)
    proxy.start()
    settings = Settings(
        url=url.set(port=proxy.port).render_as_string(hide_password=False),
        home=str(tmp_path / "home"),
        flush_interval=0.05,
        retry_interval=0.1,
        exit_timeout=20.0,
        capture_console="off",
        system_metrics_interval=0,
    )
    notebook = Notebook(settings)
    try:
        run = notebook.start("outage")
        run.log(loss=1.0, step=0)
        assert run.flush() is True

        proxy.stop()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            started = time.perf_counter()
            run.save_checkpoint(np.arange(10), step=1)
            run.image(np.zeros((2, 2), np.uint8), "samples", step=1)
            run.note("down", images=[np.ones((2, 2), bool)])
            assert time.perf_counter() - started < 5, "the store is never waited for"
            assert run.flush() is False

        proxy.start()
        assert run.finish() is True
        stored = notebook.artifacts(run.id)
        assert [(a.kind, a.name) for a in stored] == [
            ("checkpoint", "model"),
            ("image", "samples"),
            ("image", "note-1"),
        ]
        assert np.array_equal(notebook.load_checkpoint(run.id), np.arange(10))
        note = notebook.get_run(run.id).notes()[0]
        assert note.text.endswith(f"(sha256:{stored[2].sha256})")
    finally:
        notebook.close()
        proxy.stop()
