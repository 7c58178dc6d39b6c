"""Checkpoints: serialising, choosing, loading and pruning."""

from __future__ import annotations

import io
import pathlib
from typing import Any

import numpy as np
import pytest
import torch

from labnotebook import ValidationError
from labnotebook._checkpoints import choose, load_bytes, serialise, to_prune
from labnotebook._store.base import Artifact


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
        assert saved.meta == {"format": "file"}
    with serialise(tmp_path) as saved:
        assert saved.meta == {"format": "folder"}
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


@pytest.mark.parametrize("value", [None, 3, {"a": 1}, [1, 2], object()])
def test_unsupported_objects(value: object) -> None:
    with (
        pytest.raises(ValidationError, match="as a checkpoint; give a torch module"),
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


class _Custom:
    def __init__(self) -> None:
        self.tensor = torch.ones(2)


def test_pickled_objects_need_allow_pickle() -> None:
    obj = {"weights": torch.zeros(2), "config": _Custom()}
    with pytest.raises(ValidationError, match="allow_pickle=True"):
        _round_trip(obj)
    loaded = _round_trip(obj, allow_pickle=True)
    assert torch.equal(loaded["config"].tensor, torch.ones(2))


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
