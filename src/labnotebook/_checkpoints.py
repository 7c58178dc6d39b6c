"""Checkpoints: what a training loop saves, turned into bytes and back.

Formats, kept in the artifact's ``meta["format"]``:

- ``torch``: a torch module (its ``state_dict()``), optimizer or scheduler (its
  ``state_dict()``), tensor, or a dict/list holding tensors, written by
  ``torch.save``; read back with ``torch.load(weights_only=True)`` unless the caller
  allows pickle.
- ``numpy``: an array (``np.save``), a dict of arrays (``np.savez``), or a tree of
  dicts, lists and tuples holding arrays, numbers, strings, booleans and None
  (``np.savez``: the arrays, plus the tree's shape as JSON); never pickled.
- ``bytes``: bytes as given.
- ``file``: the path of a file, stored as it is.
- ``folder``: the path of a folder, stored as one tar archive of its files.

torch is imported only when the object comes from torch, so saving bytes or arrays
never pays its import time.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import math
import os
import pathlib
import shutil
import sys
import tarfile
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Any, BinaryIO

from ._errors import NotFoundError, StoreError, ValidationError
from ._store.base import Artifact
from ._values import check_key, check_step

if TYPE_CHECKING:
    from ._notebook import Notebook

logger = logging.getLogger(__name__)

FORMATS = ("torch", "numpy", "bytes", "file", "folder")
ACCEPTED = (
    "a torch module, optimizer, tensor or state dict, a numpy array, a dict or list "
    "of numpy arrays, numbers and strings, bytes, or the path of a file or folder"
)
OCTET_STREAM = "application/octet-stream"
TAR_MEDIA_TYPE = "application/x-tar"
#: How deep :func:`_holds_torch` looks into nested containers.
_MAX_DEPTH = 8
#: How deeply a tree checkpoint may nest dicts, lists and tuples.
MAX_TREE_DEPTH = 32
#: The entry of a tree checkpoint's npz archive that holds the tree as JSON.
_TREE_ENTRY = "__labnotebook_tree__"


@dataclass
class Serialised:
    """A checkpoint ready to store: bytes or a path, its media type and meta."""

    source: bytes | pathlib.Path
    media_type: str | None
    meta: dict[str, Any] = field(default_factory=dict)


@contextmanager
def serialise(obj: object) -> Iterator[Serialised]:
    """Turn ``obj`` into something ``Run._add_artifact`` stores.

    A temporary file made on the way (torch and numpy checkpoints, which can be
    large) is removed when the block ends.
    """
    if isinstance(obj, (bytes, bytearray, memoryview)):
        yield Serialised(bytes(obj), OCTET_STREAM, {"format": "bytes"})
        return

    if isinstance(obj, (str, os.PathLike)):
        path = _path(obj)
        if path.is_dir():
            with tempfile.TemporaryDirectory(prefix="labnotebook-") as folder:
                yield _folder(path, pathlib.Path(folder) / "checkpoint.tar")
            return
        yield Serialised(path, None, {"format": "file", "filename": path.name})
        return

    if _holds_torch(obj, 0):
        with tempfile.TemporaryDirectory(prefix="labnotebook-") as folder:
            yield _torch(obj, pathlib.Path(folder) / "checkpoint.pt")
        return

    if _is_numpy(obj):
        with tempfile.TemporaryDirectory(prefix="labnotebook-") as folder:
            yield _numpy(obj, pathlib.Path(folder) / "checkpoint")
        return

    if isinstance(obj, (Mapping, list, tuple)):
        with tempfile.TemporaryDirectory(prefix="labnotebook-") as folder:
            yield _tree(obj, pathlib.Path(folder) / "checkpoint.npz")
        return

    raise ValidationError(
        f"cannot save a {type(obj).__module__}.{type(obj).__qualname__} as a "
        f"checkpoint; give {ACCEPTED} (other objects: serialise them to bytes "
        "first)"
    )


def _path(obj: str | os.PathLike[str]) -> pathlib.Path:
    if not os.fspath(obj):
        # Path("") is the current folder: never save it by accident.
        raise ValidationError(
            "the checkpoint path is empty; give a file or folder path ('.' for the "
            "current folder)"
        )
    path = pathlib.Path(os.fsdecode(obj))  # an os.PathLike may give bytes
    if not (path.is_dir() or path.is_file()):
        raise ValidationError(
            f"checkpoint path {str(path)!r} is not an existing file or folder; check "
            "the path (a str is read as a path: pass bytes to store text)"
        )
    return path


def _folder(root: pathlib.Path, archive: pathlib.Path) -> Serialised:
    from ._artifacts import unreadable_folder

    # One tar blob: the checkpoint stays a single self-contained artifact.
    # Symbolic links are skipped, never followed out of the folder.
    files = 0
    with tarfile.open(archive, "w") as tar:
        for top, folders, names in os.walk(root, onerror=unreadable_folder):
            folders.sort()
            here = pathlib.Path(top)
            for entry in [*folders, *sorted(names)]:
                path = here / entry
                if path.is_symlink() or not (path.is_file() or path.is_dir()):
                    continue
                arcname = path.relative_to(root).as_posix()
                if "\\" in arcname:
                    # load_checkpoint would refuse it as an unsafe path.
                    raise ValidationError(
                        f"{str(root)!r} holds {arcname!r}, whose name has a "
                        "backslash; a folder checkpoint could not restore it, so "
                        "nothing was stored: rename it"
                    )
                try:
                    tar.add(path, arcname=arcname, recursive=False)
                except OSError as exc:
                    raise ValidationError(
                        f"file {str(path)!r} cannot be read ({exc.strerror or exc}); "
                        "check its permissions, or move it out of the folder"
                    ) from None
                files += path.is_file()
    meta = {"format": "folder", "files": files, "folder": root.name}
    return Serialised(archive, TAR_MEDIA_TYPE, meta)


class _HashingReader:
    """A binary stream's ``read``, hashing what passes through it."""

    def __init__(self, stream: BinaryIO) -> None:
        self.stream = stream
        self.digest = hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        data = self.stream.read(size)
        self.digest.update(data)
        return data

    def finish(self) -> str:
        """Read what is left (a tar archive's padding) and return the sha256."""
        while self.read(1 << 20):
            pass
        return self.digest.hexdigest()


def extract_folder(
    stream: BinaryIO, dest: pathlib.Path, sha256: str | None = None
) -> pathlib.Path:
    """Restore a folder checkpoint under ``dest``: regular files and folders only,
    each at a relative path without ``..``, so nothing is written outside dest.

    Folders are created one level at a time and a symbolic link already in
    ``dest`` on the way is an error; a file is written beside its target and
    renamed over it, so a link in its place is replaced, never written through.
    With ``sha256``, the archive's bytes must have that hash (else StoreError).
    """
    reader = _HashingReader(stream)
    try:
        _extract(reader, dest.resolve())
        found = reader.finish()
    except tarfile.TarError as exc:
        raise StoreError(
            f"the folder checkpoint could not be read as a tar archive ({exc}); the "
            "stored blob is damaged"
        ) from None
    if sha256 is not None and found != sha256:
        raise StoreError(
            f"the folder checkpoint's bytes do not match their sha256 {sha256}; the "
            f"stored blob is damaged and the files restored under {str(dest)!r} may "
            "be wrong"
        )
    return dest


def _extract(stream: _HashingReader, root: pathlib.Path) -> None:
    from ._artifacts import make_folders

    with tarfile.open(fileobj=stream, mode="r|") as tar:  # type: ignore[call-overload]
        for member in tar:
            parts = pathlib.PurePosixPath(member.name).parts
            if (
                not parts
                or member.name.startswith("/")
                or any(p in ("..", "") or "\\" in p or "\x00" in p for p in parts)
            ):
                raise ValidationError(
                    f"folder checkpoint entry {member.name!r} is not a plain relative "
                    "path; the checkpoint is damaged or was not written by labnotebook"
                )
            if member.isdir():
                make_folders(root, parts, member.name)
            elif member.isfile():
                parent = make_folders(root, parts[:-1], member.name)
                source = tar.extractfile(member)
                assert source is not None
                _write_replacing(source, parent / parts[-1], member.mode & 0o755)


def _write_replacing(source: IO[bytes], target: pathlib.Path, mode: int) -> None:
    """Write ``target`` through a temp file beside it, renamed into place."""
    from ._artifacts import create_temp_file

    if target.is_dir() and not target.is_symlink():
        raise StoreError(
            f"cannot restore the checkpoint's file {str(target)!r}: a folder of that "
            "name is in the way; load into an empty folder"
        )
    fd, name = create_temp_file(target.parent, ".restore-")
    try:
        with os.fdopen(fd, "wb") as out:
            shutil.copyfileobj(source, out, 1 << 20)
        os.chmod(name, mode)
        os.replace(name, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(name)
        raise


# --------------------------------------------------------------------- torch


def _holds_torch(obj: object, depth: int) -> bool:
    if "torch" not in sys.modules or depth > _MAX_DEPTH:
        return False
    # A torch class or a subclass of one (a model defined in a training script).
    if any(c.__module__.split(".")[0] == "torch" for c in type(obj).__mro__):
        return True
    if isinstance(obj, Mapping):
        return any(_holds_torch(v, depth + 1) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return any(_holds_torch(v, depth + 1) for v in obj)
    return False


def _torch(obj: object, path: pathlib.Path) -> Serialised:
    import torch

    meta: dict[str, Any] = {"format": "torch", "torch": torch.__version__}
    if isinstance(obj, torch.nn.Module):
        meta["type"] = "state_dict"
        meta["class"] = type(obj).__qualname__
        obj = obj.state_dict()
    elif callable(getattr(obj, "state_dict", None)) and not isinstance(
        obj, torch.Tensor
    ):
        meta["type"] = "state_dict"
        meta["class"] = type(obj).__qualname__
        obj = obj.state_dict()  # type: ignore[attr-defined]
    else:
        meta["type"] = type(obj).__qualname__
    try:
        torch.save(obj, path)
    except (TypeError, AttributeError, RuntimeError) as exc:
        raise ValidationError(
            f"torch.save could not write the {type(obj).__qualname__} checkpoint: "
            f"{exc}; save a state dict (model.state_dict())"
        ) from None
    return Serialised(path, OCTET_STREAM, meta)


# --------------------------------------------------------------------- numpy


def _is_numpy(obj: object) -> bool:
    from ._images import loaded_class

    ndarray = loaded_class("numpy", "ndarray")
    if ndarray is None:
        return False
    if isinstance(obj, ndarray):
        return True
    return (
        isinstance(obj, Mapping)
        and bool(obj)
        and all(isinstance(k, str) for k in obj)
        and all(isinstance(v, ndarray) for v in obj.values())
    )


def _numpy(obj: Any, path: pathlib.Path) -> Serialised:
    import numpy as np

    arrays = {"array": obj} if isinstance(obj, np.ndarray) else dict(obj)
    for key, array in arrays.items():
        if array.dtype.hasobject:
            raise ValidationError(
                f"numpy array {key!r} has dtype {array.dtype}, which can only be "
                "saved with pickle; convert it to a numeric or string dtype"
            )
    if isinstance(obj, np.ndarray):
        path = path.with_suffix(".npy")
        np.save(path, obj, allow_pickle=False)
        meta = {
            "format": "numpy",
            "layout": "array",
            "shape": list(obj.shape),
            "dtype": str(obj.dtype),
        }
    else:
        path = path.with_suffix(".npz")
        _savez(path, arrays)
        meta = {"format": "numpy", "layout": "arrays", "keys": sorted(arrays)}
    return Serialised(path, OCTET_STREAM, meta)


def _savez(path: pathlib.Path, arrays: Mapping[str, Any]) -> None:
    """Write an npz archive as ``np.savez`` does, without pickle.

    ``np.savez(file, **arrays)`` takes a key named ``file`` or ``allow_pickle`` as
    its own argument (a TypeError, or an array silently left out), so the
    archive is written here: one ``<key>.npy`` member per array, uncompressed.
    """
    import zipfile

    import numpy as np

    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED, allowZip64=True) as archive:
        for key, array in arrays.items():
            with archive.open(f"{key}.npy", "w", force_zip64=True) as member:
                np.lib.format.write_array(
                    member, np.asanyarray(array), allow_pickle=False
                )


def _tree(obj: object, path: pathlib.Path) -> Serialised:
    """Save nested dicts, lists and tuples of arrays and plain values.

    The arrays go into an npz archive as entries ``"0"``, ``"1"``, ...; the tree
    itself goes in as JSON in which every container and array is a tagged object
    (``{"d": {...}}``, ``{"l": [...]}``, ``{"t": [...]}``, ``{"a": "0"}``), so a
    user's own key can never be mistaken for a tag.
    """
    import numpy as np

    arrays: dict[str, Any] = {}
    tree = _encode(obj, arrays, [], 0)
    text = json.dumps(tree)
    entries = {**arrays, _TREE_ENTRY: np.frombuffer(text.encode(), dtype=np.uint8)}
    _savez(path, entries)
    meta = {"format": "numpy", "layout": "tree", "arrays": len(arrays)}
    return Serialised(path, OCTET_STREAM, meta)


def _where(trail: list[str]) -> str:
    return "the checkpoint" + "".join(trail) if trail else "the checkpoint"


def _encode(obj: object, arrays: dict[str, Any], trail: list[str], depth: int) -> Any:
    import numpy as np

    if depth > MAX_TREE_DEPTH:
        raise ValidationError(
            f"{_where(trail)} nests deeper than {MAX_TREE_DEPTH} levels; flatten it"
        )
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if isinstance(obj, (np.ndarray, np.generic)):
        array = np.asarray(obj)
        if array.dtype.hasobject:
            raise ValidationError(
                f"numpy value at {_where(trail)} has dtype {array.dtype}, which can "
                "only be saved with pickle; convert it to a numeric or string dtype"
            )
        key = str(len(arrays))
        arrays[key] = array
        return {"a": key} if isinstance(obj, np.ndarray) else {"s": key}
    if isinstance(obj, Mapping):
        out = {}
        for key, value in obj.items():
            if not isinstance(key, str):
                raise ValidationError(
                    f"{_where(trail)} has a {type(key).__name__} key {key!r}; "
                    "dict keys in a checkpoint must be strings"
                )
            out[key] = _encode(value, arrays, [*trail, f"[{key!r}]"], depth + 1)
        return {"d": out}
    if isinstance(obj, (list, tuple)):
        items = [
            _encode(value, arrays, [*trail, f"[{i}]"], depth + 1)
            for i, value in enumerate(obj)
        ]
        return {"t": items} if isinstance(obj, tuple) else {"l": items}
    raise ValidationError(
        f"{_where(trail)} holds a {type(obj).__module__}.{type(obj).__qualname__}, "
        f"which cannot be saved without pickle; give {ACCEPTED} (other objects: "
        "serialise them to bytes first)"
    )


def _decode(node: Any, archive: Any) -> Any:
    if not isinstance(node, dict):
        return node
    if "d" in node:
        return {key: _decode(value, archive) for key, value in node["d"].items()}
    if "l" in node:
        return [_decode(value, archive) for value in node["l"]]
    if "t" in node:
        return tuple(_decode(value, archive) for value in node["t"])
    if "a" in node:
        return archive[node["a"]]
    if "s" in node:
        return archive[node["s"]][()]
    raise ValueError(f"unknown node {sorted(node)} in the checkpoint's tree")


# -------------------------------------------------------------------- reading


def choose(found: Sequence[Artifact], step: int | None) -> Artifact | None:
    """The checkpoint at ``step``, or the latest one when step is None.

    Latest means the highest step (a checkpoint without a step counts as older
    than any with one), then the newest.
    """
    if step is not None:
        found = [a for a in found if a.step == step]
    if not found:
        return None
    return max(
        found, key=lambda a: (a.step is not None, a.step or 0, a.created_at, a.id)
    )


def load_bytes(
    artifact: Artifact,
    stream: BinaryIO,
    *,
    allow_pickle: bool,
    map_location: Any,
) -> Any:
    """Read a torch, numpy or bytes checkpoint from its blob."""
    fmt = artifact.meta.get("format")
    if fmt == "bytes":
        return stream.read()
    if fmt not in ("numpy", "torch"):
        raise ValidationError(
            f"checkpoint {artifact.name!r} has format {fmt!r}; expected one of "
            f"{FORMATS}"
        )

    # A local blob is a file that torch and numpy read in place; bytes from a
    # server are read into memory first, since both need to seek.
    source: BinaryIO = stream
    if not _seekable(stream):
        source = io.BytesIO(stream.read())
    try:
        if fmt == "numpy":
            import numpy as np

            layout = artifact.meta.get("layout")
            if layout == "arrays":
                with np.load(source, allow_pickle=False) as archive:
                    return {key: archive[key] for key in archive.files}
            if layout == "tree":
                with np.load(source, allow_pickle=False) as archive:
                    tree = json.loads(archive[_TREE_ENTRY].tobytes())
                    return _decode(tree, archive)
            return np.load(source, allow_pickle=False)

        import torch

        return torch.load(
            source, map_location=map_location, weights_only=not allow_pickle
        )
    except Exception as exc:
        lines = str(exc).splitlines() or [type(exc).__name__]
        refused = [line for line in lines if "Unsupported global" in line]
        if fmt == "torch" and not allow_pickle and refused:
            raise ValidationError(
                f"checkpoint {artifact.name!r} (step {artifact.step}) holds objects "
                "that torch.load(weights_only=True) refuses; if you trust who wrote "
                "it, load it with allow_pickle=True (unpickling runs code stored in "
                f"the file). torch said: {refused[0].strip()}"
            ) from None
        first = lines[0]
        raise StoreError(
            f"checkpoint {artifact.name!r} (step {artifact.step}, sha256 "
            f"{artifact.sha256[:12]}) could not be read as {fmt}: {first}"
        ) from exc


def _seekable(stream: BinaryIO) -> bool:
    try:
        return bool(stream.seekable())
    except (AttributeError, OSError, ValueError):
        return False


# -------------------------------------------------------------------- pruning


def to_prune(
    found: Sequence[Artifact],
    *,
    keep_last: int,
    keep_best: int,
    values: Mapping[int, float],
    mode: str,
) -> list[Artifact]:
    """The checkpoints to delete: all but the ``keep_last`` latest and the
    ``keep_best`` best by the metric value logged at their step.

    Checkpoints without a step, or whose step has no finite metric value, never
    count among the best.
    """
    latest = sorted(
        found,
        key=lambda a: (a.step is not None, a.step or 0, a.created_at, a.id),
        reverse=True,
    )
    keep = {a.id for a in latest[:keep_last]}

    scored = [
        (values[a.step], a)
        for a in found
        if a.step is not None and a.step in values and math.isfinite(values[a.step])
    ]
    sign = 1.0 if mode == "min" else -1.0
    scored.sort(key=lambda pair: (sign * pair[0], -(pair[1].step or 0), -pair[1].id))
    keep.update(a.id for _, a in scored[:keep_best])
    return [a for a in found if a.id not in keep]


# ------------------------------------------------------- reading from a store


def load(
    notebook: Notebook,
    run_id: str,
    step: int | None,
    name: str,
    *,
    allow_pickle: bool,
    map_location: Any,
    dest: str | os.PathLike[str] | None,
) -> Any:
    """What :meth:`Notebook.load_checkpoint` returns (see its docstring)."""
    from ._artifacts import check_artifact_name, file_name_in, write_verified

    name = check_artifact_name(name)
    if step is not None:
        step = check_step(step)
    if not isinstance(allow_pickle, bool):
        raise ValidationError(
            f"allow_pickle must be True or False, got {allow_pickle!r}"
        )
    if dest is not None and not isinstance(dest, (str, os.PathLike)):
        raise ValidationError(f"dest must be a folder path, got {type(dest).__name__}")

    found = notebook.artifacts(run_id, kind="checkpoint", name=name)
    artifact = choose(found, step)
    if artifact is None:
        at = "" if step is None else f" at step {step}"
        steps = sorted({a.step for a in found if a.step is not None})
        known = f"; it has checkpoints at steps {steps}" if steps else ""
        raise NotFoundError(
            f"run {run_id[:8]} has no checkpoint named {name!r}{at}{known}; list them "
            "with run.artifacts(kind='checkpoint')"
        )

    fmt = artifact.meta.get("format")
    if fmt not in ("file", "folder"):
        with notebook._open_blob(artifact.run_id, artifact.sha256) as stream:
            return load_bytes(
                artifact, stream, allow_pickle=allow_pickle, map_location=map_location
            )

    folder = _destination(dest)
    try:
        with notebook._open_blob(artifact.run_id, artifact.sha256) as stream:
            if fmt == "folder":
                return extract_folder(stream, folder, artifact.sha256)
            target = file_name_in(
                folder,
                artifact.name,
                "copy it out with download_artifact(run_id, name, 'out/file.bin', "
                "kind='checkpoint')",
            )
            write_verified(stream, target, artifact.sha256)
            return target
    except BaseException:
        if dest is None:
            # The temporary folder made for this load holds nothing usable.
            shutil.rmtree(folder, ignore_errors=True)
        raise


def _destination(dest: str | os.PathLike[str] | None) -> pathlib.Path:
    from ._artifacts import make_dest_folder

    if dest is None:
        return pathlib.Path(tempfile.mkdtemp(prefix="labnotebook-checkpoint-"))
    folder = pathlib.Path(dest)
    if folder.exists() and not folder.is_dir():
        raise ValidationError(
            f"dest {str(folder)!r} is a file; give a folder to copy the checkpoint "
            "into (it is created if missing)"
        )
    make_dest_folder(folder)
    return folder


def _check_ranked(
    notebook: Notebook,
    run_id: str,
    name: str,
    metric: str,
    found: Sequence[Artifact],
    values: Mapping[int, float],
) -> None:
    """Refuse to prune by a metric that ranks none of the checkpoints.

    A misspelt metric, or one logged at other steps than the checkpoints, would
    otherwise keep no "best" checkpoint and delete the ones the caller meant to
    keep.
    """
    if not values:
        known = sorted(notebook.store.get_run(run_id).metrics)
        shown = ", ".join(repr(k) for k in known[:20]) or "none"
        raise ValidationError(
            f"run {run_id[:8]} has no values of metric {metric!r} to rank its "
            f"checkpoints by (its metrics: {shown}); nothing was deleted"
        )
    steps = sorted({a.step for a in found if a.step is not None})
    if not any(step in values and math.isfinite(values[step]) for step in steps):
        shown = ", ".join(str(step) for step in steps[:10]) or "none"
        raise ValidationError(
            f"no checkpoint {name!r} of run {run_id[:8]} is at a step where "
            f"{metric!r} has a value (checkpoint steps: {shown}); save checkpoints "
            "at the steps the metric is logged, or pass step= to save_checkpoint; "
            "nothing was deleted"
        )


def prune(
    notebook: Notebook,
    run_id: str,
    name: str,
    *,
    keep_last: int,
    keep_best: int,
    metric: str | None,
    mode: str,
) -> list[Artifact]:
    """What :meth:`Notebook.prune_checkpoints` does (see its docstring)."""
    from ._artifacts import check_artifact_name

    name = check_artifact_name(name)
    for what, value in (("keep_last", keep_last), ("keep_best", keep_best)):
        if type(value) is not int or value < 0:
            raise ValidationError(
                f"{what} must be a non-negative integer, got {value!r}"
            )
    if keep_last + keep_best == 0:
        raise ValidationError(
            "keep_last=0 and keep_best=0 would delete every checkpoint; keep at "
            "least one (delete a whole run with delete_run)"
        )
    if mode not in ("min", "max"):
        raise ValidationError(
            f"mode must be 'min' (lower is better) or 'max', got {mode!r}"
        )
    if keep_best and metric is None:
        raise ValidationError(
            "keep_best needs the metric that ranks checkpoints, e.g. "
            "metric='val/loss', mode='min'"
        )
    if metric is not None:
        metric = check_key(metric)

    found = notebook.artifacts(run_id, kind="checkpoint", name=name)
    values: dict[int, float] = {}
    if keep_best and metric is not None and found:
        columns = notebook.store.history(run_id, [metric]).get(metric)
        if columns is not None:
            values = dict(zip(columns[0], columns[1], strict=True))
        _check_ranked(notebook, run_id, name, metric, found, values)
    victims = to_prune(
        found, keep_last=keep_last, keep_best=keep_best, values=values, mode=mode
    )
    if not victims:
        return []

    notebook._remove_artifacts(run_id, victims)
    return victims
