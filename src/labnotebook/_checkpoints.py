"""Checkpoints: what a training loop saves, turned into bytes and back.

Formats, kept in the artifact's ``meta["format"]``:

- ``torch``: a torch module (its ``state_dict()``), optimizer or scheduler (its
  ``state_dict()``), tensor, or a dict/list holding tensors, written by
  ``torch.save``; read back with ``torch.load(weights_only=True)`` unless the caller
  allows pickle.
- ``numpy``: an array (``np.save``) or a dict of arrays (``np.savez``), never pickled.
- ``bytes``: bytes as given.
- ``file`` / ``folder``: a path on disk, stored as it is.

torch is imported only when the object comes from torch, so saving bytes or arrays
never pays its import time.
"""

from __future__ import annotations

import io
import math
import os
import pathlib
import shutil
import sys
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from ._errors import ValidationError
from ._store.base import Artifact

FORMATS = ("torch", "numpy", "bytes", "file", "folder")
ACCEPTED = (
    "a torch module, optimizer, tensor or state dict, a numpy array or a dict of "
    "numpy arrays, bytes, or the path of a file or folder"
)
OCTET_STREAM = "application/octet-stream"
#: How deep :func:`_holds_torch` looks into nested containers.
_MAX_DEPTH = 8


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
        yield _path(obj)
        return

    if _holds_torch(obj, 0):
        with tempfile.TemporaryDirectory(prefix="labnotebook-") as folder:
            yield _torch(obj, pathlib.Path(folder) / "checkpoint.pt")
        return

    if _is_numpy(obj):
        with tempfile.TemporaryDirectory(prefix="labnotebook-") as folder:
            yield _numpy(obj, pathlib.Path(folder) / "checkpoint")
        return

    raise ValidationError(
        f"cannot save a {type(obj).__module__}.{type(obj).__qualname__} as a "
        f"checkpoint; give {ACCEPTED} (other objects: serialise them to bytes "
        "first)"
    )


def _path(obj: str | os.PathLike[str]) -> Serialised:
    path = pathlib.Path(obj)
    if path.is_dir():
        return Serialised(path, None, {"format": "folder"})
    if path.is_file():
        return Serialised(path, None, {"format": "file"})
    raise ValidationError(
        f"checkpoint path {str(path)!r} is not an existing file or folder; check "
        "the path (a str is read as a path: pass bytes to store text)"
    )


# --------------------------------------------------------------------- torch


def _holds_torch(obj: object, depth: int) -> bool:
    if "torch" not in sys.modules or depth > _MAX_DEPTH:
        return False
    if type(obj).__module__.split(".")[0] == "torch":
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
    module = sys.modules.get("numpy")
    if module is None:
        return False
    if isinstance(obj, module.ndarray):
        return True
    return (
        isinstance(obj, Mapping)
        and bool(obj)
        and all(isinstance(k, str) for k in obj)
        and all(isinstance(v, module.ndarray) for v in obj.values())
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
        np.savez(path, **arrays)
        meta = {"format": "numpy", "layout": "arrays", "keys": sorted(arrays)}
    return Serialised(path, OCTET_STREAM, meta)


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

    if fmt == "numpy":
        import numpy as np

        buffer = io.BytesIO(stream.read())
        if artifact.meta.get("layout") == "arrays":
            with np.load(buffer, allow_pickle=False) as archive:
                return {key: archive[key] for key in archive.files}
        return np.load(buffer, allow_pickle=False)

    if fmt == "torch":
        import torch

        buffer = io.BytesIO(stream.read())
        try:
            return torch.load(
                buffer, map_location=map_location, weights_only=not allow_pickle
            )
        except Exception as exc:
            if allow_pickle or "weights_only" not in str(exc):
                raise
            raise ValidationError(
                f"checkpoint {artifact.name!r} (step {artifact.step}) holds objects "
                "that torch.load(weights_only=True) refuses; if you trust who wrote "
                "it, load it with allow_pickle=True (unpickling runs code stored in "
                f"the file). torch said: {str(exc).splitlines()[0]}"
            ) from None

    raise ValidationError(
        f"checkpoint {artifact.name!r} has format {fmt!r}; expected one of {FORMATS}"
    )


def copy_stream(stream: BinaryIO, target: pathlib.Path) -> pathlib.Path:
    """Write a blob to ``target`` (which must not exist yet)."""
    with open(target, "xb") as out:
        shutil.copyfileobj(stream, out, 1 << 20)
    return target


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
