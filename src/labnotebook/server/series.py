"""Metric series for charts: downsampled in the database, or raw after a step."""

from __future__ import annotations

import itertools
from typing import Any

from flask import Blueprint, request

from .._values import MAX_KEY_LENGTH, MAX_STEP
from ._auth import read
from ._errors import ApiError
from ._http import (
    check_params,
    choice_param,
    config,
    finite_list,
    int_param,
    step_range,
    store,
)
from .runs import _run_id

bp = Blueprint("series", __name__)

#: Default number of buckets of a downsampled series.
DEFAULT_BUCKETS = 1000
#: Default number of raw points in one page of ``/runs/<id>/points``.
DEFAULT_POINTS_PAGE = 10_000


@bp.get("/series")
@read
def get_series() -> dict[str, Any]:
    """Series of several runs and keys, each in at most ``buckets`` buckets."""
    check_params(("run", "key", "buckets", "start", "stop", "x"))
    run_args = _repeated("run")
    keys = _repeated("key")
    limit = config().max_series
    if len(run_args) * len(keys) > limit:
        raise ApiError(
            422,
            "limit_exceeded",
            f"{len(run_args)} runs times {len(keys)} keys is "
            f"{len(run_args) * len(keys)} series; the limit is {limit} (max_series) "
            "per request: ask for fewer and make several requests",
            {"parameter": "run", "limit": limit},
        )
    for key in keys:
        if len(key) > MAX_KEY_LENGTH:
            raise ApiError(
                422,
                "limit_exceeded",
                f"metric key {key[:40]!r}... is {len(key)} characters long; keys "
                f"have at most {MAX_KEY_LENGTH}",
                {"parameter": "key", "limit": MAX_KEY_LENGTH},
            )
    buckets = int_param(
        "buckets",
        DEFAULT_BUCKETS,
        minimum=1,
        maximum=config().max_buckets,
        limit_name="max_buckets",
    )
    start, stop = step_range()
    by_time = choice_param("x", ("step", "time"), "step") == "time"
    assert buckets is not None

    run_ids = list(dict.fromkeys(_run_id(r) for r in run_args))
    pairs = [(run_id, key) for run_id in run_ids for key in dict.fromkeys(keys)]
    found = store().downsample(pairs, buckets, start, stop)

    out = []
    for (run_id, key), data in zip(pairs, found, strict=True):
        entry: dict[str, Any] = {
            "run": run_id,
            "key": key,
            "x": [],
            "y": [],
            "downsampled": False,
            "count": 0,
        }
        if data is not None:
            x: list[Any] = data.times if by_time else data.steps
            y = data.values
            if by_time and any(b < a for a, b in itertools.pairwise(x)):
                ordered = sorted(zip(x, y, strict=True), key=lambda p: p[0])
                x = [p[0] for p in ordered]
                y = [p[1] for p in ordered]
            entry.update(
                x=x, y=finite_list(y), downsampled=data.downsampled, count=data.count
            )
        out.append(entry)
    return {"series": out}


@bp.get("/runs/<run_id>/points")
@read
def get_points(run_id: str) -> dict[str, Any]:
    """Raw points of one metric after a step, a page at a time (live charts)."""
    check_params(("key", "after", "limit"))
    key = request.args.get("key")
    if not key:
        raise ApiError(
            400,
            "missing_parameter",
            "query parameter 'key' is required: the metric key, e.g. key=loss",
            {"parameter": "key"},
        )
    after = int_param("after", None, minimum=0, maximum=MAX_STEP)
    limit = int_param(
        "limit",
        DEFAULT_POINTS_PAGE,
        minimum=1,
        maximum=config().max_points_page,
        limit_name="max_points_page",
    )
    assert limit is not None
    full = _run_id(run_id)

    found = store().points_after(full, key, after, limit)
    steps, values, times, more = found if found is not None else ([], [], [], False)
    return {
        "key": key,
        "x": steps,
        "y": finite_list(values),
        "t": times,
        "next": steps[-1] if more else None,
    }


def _repeated(name: str) -> list[str]:
    values = [v for v in request.args.getlist(name) if v]
    if not values:
        raise ApiError(
            400,
            "missing_parameter",
            f"query parameter {name!r} is required (repeat it for several), e.g. "
            f"/api/v1/series?run=<id>&key=loss",
            {"parameter": name},
        )
    return values
