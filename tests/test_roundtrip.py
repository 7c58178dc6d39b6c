"""Property-based round-trips: metric values, params and fields survive the store."""

from __future__ import annotations

import math
import struct
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from labnotebook import Notebook
from labnotebook._store.base import Batch

floats = st.floats(allow_nan=True, allow_infinity=True, width=64)
# Lone surrogates are not valid Unicode: refused, as test_run checks.
text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
    max_size=20,
)
json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53), max_value=2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | text
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(text, inner, max_size=4)
    ),
    max_leaves=20,
)
keys = st.text(
    alphabet=st.characters(blacklist_categories=("Cc", "Cs", "Zs", "Zl", "Zp")),
    min_size=1,
    max_size=30,
)

slow = settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


def _same(a: float, b: float) -> bool:
    if math.isnan(a):
        return math.isnan(b)
    return struct.pack("<d", a) == struct.pack("<d", b) or a == b


@slow
@given(values=st.lists(floats, min_size=1, max_size=50), key=keys)
def test_metric_values_round_trip(
    notebook: Notebook, values: list[float], key: str
) -> None:
    with notebook.start() as run:
        for v in values:
            run.log({key: v})
    got = list(notebook.history(run.id, key)[key])
    assert len(got) == len(values)
    assert all(_same(a, b) for a, b in zip(values, got, strict=True))

    summary = notebook.get_run(run.id).summary[key]
    finite = [v for v in values if not math.isnan(v)]
    assert summary.count == len(values)
    assert _same(summary.last, values[-1])
    if finite:
        assert summary.min == min(finite) and summary.max == max(finite)
    else:
        assert math.isnan(summary.min) and math.isnan(summary.max)


@slow
@given(params=st.dictionaries(keys, json_values, max_size=6), fields=json_values)
def test_params_and_fields_round_trip(
    notebook: Notebook, params: dict[str, Any], fields: Any
) -> None:
    field_dict = {"f": fields}
    with notebook.start(params=params) as run:
        run.log(x=1.0, fields=field_dict)
    assert notebook.get_run(run.id).params == params
    assert notebook.store.step_fields(run.id)[0][2] == field_dict


@given(
    values=st.lists(floats, max_size=30),
    steps=st.lists(st.integers(min_value=0, max_value=2**63 - 1), max_size=30),
    note=st.text(max_size=50),
)
def test_batch_serialisation_round_trips(
    values: list[float], steps: list[int], note: str
) -> None:
    n = min(len(values), len(steps))
    batch = Batch(run_id="r" * 32)
    batch.points["k"] = (steps[:n], values[:n], [1.5] * n)
    batch.notes.append((2.0, None, note))
    again = Batch.from_json(batch.to_json())
    got_steps, got_values, got_times = again.points["k"]
    assert list(got_steps) == steps[:n]
    assert all(_same(a, b) for a, b in zip(values[:n], got_values, strict=True))
    assert list(got_times) == [1.5] * n
    assert again.notes == batch.notes
    assert again.id == batch.id
