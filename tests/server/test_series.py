"""Downsampled series (in the database, through rollups) and raw points pages."""

from __future__ import annotations

import math
import random
import time
from typing import Any

import pytest
import sqlalchemy as sa
from flask.testing import FlaskClient
from servertools import error_of

from labnotebook._schema import point_rollups, series
from labnotebook._store import migrate, rollup
from labnotebook._store.base import Batch, RunCreate
from labnotebook._store.sql import SqlStore


def _new_run(store: SqlStore) -> str:
    run_id = f"run{random.randrange(10**12):012d}"
    store.write(Batch(run_id=run_id, create=RunCreate("e", "r", {}, [], time.time())))
    return run_id


def _log(
    store: SqlStore, run_id: str, points: dict[int, float], key: str = "loss"
) -> None:
    steps = sorted(points)
    store.write(
        Batch(
            run_id=run_id,
            points={
                key: (steps, [points[s] for s in steps], [1000.0 + s for s in steps])
            },
        )
    )


def _expected(
    points: dict[int, float], level: int, lo: int, hi: int
) -> dict[int, list[Any]]:
    """Per bucket of 2**level steps: count, min step, max step, last step."""
    out: dict[int, list[Any]] = {}
    best: dict[int, list[float]] = {}
    for step in sorted(points):
        if not lo <= step <= hi:
            continue
        value = points[step]
        entry = out.setdefault(step >> level, [0, None, None, None])
        low_high = best.setdefault(step >> level, [math.inf, -math.inf])
        entry[0] += 1
        if value == value and value < low_high[0]:
            low_high[0], entry[1] = value, step
        if value == value and value > low_high[1]:
            low_high[1], entry[2] = value, step
        entry[3] = step
    return out


@pytest.fixture
def store(store_url: str) -> Any:
    found = SqlStore(store_url)
    yield found
    found.close()


@pytest.fixture
def history(store: SqlStore) -> tuple[str, dict[int, float]]:
    """A series written in uneven batches with gaps, NaN, and rewritten steps."""
    rng = random.Random(7)
    run_id = _new_run(store)
    points: dict[int, float] = {}
    step = 0
    for _ in range(12):
        count = rng.randint(1, 2500)
        batch = {
            s: (math.nan if rng.random() < 0.01 else rng.gauss(0, 1))
            for s in range(step, step + count)
        }
        _log(store, run_id, batch)
        points.update(batch)
        step += count + rng.randint(0, 300)
    rewrite = {s: rng.gauss(5, 1) for s in range(500, 9000, 7)}
    _log(store, run_id, rewrite)
    points.update(rewrite)
    return run_id, points


def test_rollups_match_the_points_at_every_level(
    store: SqlStore, history: tuple[str, dict[int, float]]
) -> None:
    run_id, points = history
    with store.engine.connect() as conn:
        series_id = conn.execute(
            sa.select(series.c.id).where(series.c.run_id == run_id)
        ).scalar_one()
        for level in rollup.LEVELS:
            rows = conn.execute(
                sa.select(point_rollups)
                .where(
                    point_rollups.c.series_id == series_id,
                    point_rollups.c.level == level,
                )
                .order_by(point_rollups.c.bucket)
            ).all()
            expected = _expected(points, level, 0, 2**62)
            assert [r.bucket for r in rows] == sorted(expected), level
            for row in rows:
                count, low, high, last = expected[row.bucket]
                assert (row.count, row.min_step, row.max_step, row.last_step) == (
                    count,
                    low,
                    high,
                    last,
                ), (level, row)


@pytest.mark.parametrize(
    ("buckets", "start", "stop"),
    [
        (1000, None, None),
        (100, None, None),
        (37, 777, 20001),
        (10, 5, 100),
        (250, 12345, None),
        (3, None, 64),
    ],
)
def test_downsampling_keeps_every_buckets_min_max_and_last(
    client: FlaskClient,
    store: SqlStore,
    history: tuple[str, dict[int, float]],
    buckets: int,
    start: int | None,
    stop: int | None,
) -> None:
    run_id, points = history
    query: dict[str, Any] = {"run": run_id, "key": "loss", "buckets": buckets}
    if start is not None:
        query["start"] = start
    if stop is not None:
        query["stop"] = stop
    body = client.get("/api/v1/series", query_string=query).get_json()
    (found,) = body["series"]

    lo = start or 0
    hi = (stop - 1) if stop is not None else 2**62
    inside = sorted(s for s in points if lo <= s <= hi)
    assert found["count"] == len(inside)
    assert found["run"] == run_id
    assert found["key"] == "loss"
    assert found["x"] == sorted(found["x"])
    assert len(found["x"]) == len(found["y"])
    assert set(found["x"]) <= set(inside)
    if len(inside) <= buckets:
        assert found["x"] == inside
        assert found["downsampled"] is False
        return

    assert found["downsampled"] is True
    level = 0
    while (inside[-1] >> level) - (inside[0] >> level) + 1 > buckets:
        level += 1
    expected = _expected(points, level, lo, hi)
    assert len(expected) <= buckets
    kept = set(found["x"])
    for _count, low, high, last in expected.values():
        assert {s for s in (low, high, last) if s is not None} <= kept
    for x, y in zip(found["x"], found["y"], strict=True):
        value = points[x]
        assert (y == "NaN") if value != value else y == pytest.approx(value)


def test_a_spike_survives_downsampling(client: FlaskClient, store: SqlStore) -> None:
    run_id = _new_run(store)
    points = {s: 0.0 for s in range(100_000)}
    points[54_321] = 1e6
    points[77_777] = -math.inf
    _log(store, run_id, points)
    body = client.get(
        "/api/v1/series", query_string={"run": run_id, "key": "loss", "buckets": 50}
    ).get_json()
    (found,) = body["series"]
    assert found["count"] == 100_000
    assert len(found["x"]) <= 150
    pairs = dict(zip(found["x"], found["y"], strict=True))
    assert pairs[54_321] == 1e6
    assert pairs[77_777] == "-Infinity"


def test_several_runs_and_keys_and_x_as_time(
    client: FlaskClient, store: SqlStore
) -> None:
    first, second = _new_run(store), _new_run(store)
    _log(store, first, {s: float(s) for s in range(10)})
    _log(store, first, {s: -float(s) for s in range(5)}, key="acc")
    _log(store, second, {s: 1.0 for s in range(3)})
    body = client.get(
        f"/api/v1/series?run={first}&run={second[:6]}&key=loss&key=acc&x=time"
    ).get_json()["series"]
    summary = [(s["run"], s["key"], s["count"]) for s in body]
    assert summary == [
        (first, "loss", 10),
        (first, "acc", 5),
        (second, "loss", 3),
        (second, "acc", 0),
    ]
    assert body[0]["x"][:2] == [1000.0, 1001.0]
    assert body[3]["x"] == []


@pytest.mark.parametrize(
    ("query", "status", "code"),
    [
        ("key=loss", 400, "missing_parameter"),
        ("run=abcd1234", 400, "missing_parameter"),
        ("run=abcd1234&key=loss", 404, "not_found"),
        ("run={run}&key=loss&buckets=0", 400, "invalid_parameter"),
        ("run={run}&key=loss&buckets=10001", 422, "limit_exceeded"),
        ("run={run}&key=loss&start=10&stop=10", 400, "invalid_parameter"),
        ("run={run}&key=loss&start=-1", 400, "invalid_parameter"),
        ("run={run}&key=loss&x=epoch", 400, "invalid_parameter"),
        ("run={run}&key=loss&color=red", 400, "unknown_parameter"),
        (
            "run={run}&" + "&".join(f"key=k{i}" for i in range(201)),
            422,
            "limit_exceeded",
        ),
        ("run={run}&key=" + "k" * 251, 422, "limit_exceeded"),
    ],
)
def test_series_rejects_bad_parameters(
    client: FlaskClient, store: SqlStore, query: str, status: int, code: str
) -> None:
    run_id = _new_run(store)
    response = client.get("/api/v1/series?" + query.format(run=run_id))
    error_of(response, status, code)


def test_points_pages_after_a_step(client: FlaskClient, store: SqlStore) -> None:
    run_id = _new_run(store)
    _log(store, run_id, {s: (math.nan if s == 3 else s / 2) for s in range(10)})
    url = f"/api/v1/runs/{run_id}/points"
    page = client.get(url, query_string={"key": "loss", "limit": 4}).get_json()
    assert page == {
        "key": "loss",
        "x": [0, 1, 2, 3],
        "y": [0.0, 0.5, 1.0, "NaN"],
        "t": [1000.0, 1001.0, 1002.0, 1003.0],
        "next": 3,
    }
    rest = client.get(url, query_string={"key": "loss", "after": 3}).get_json()
    assert rest["x"] == [4, 5, 6, 7, 8, 9]
    assert rest["next"] is None
    empty = client.get(url, query_string={"key": "nope"}).get_json()
    assert empty == {"key": "nope", "x": [], "y": [], "t": [], "next": None}

    error_of(client.get(url), 400, "missing_parameter")
    error_of(
        client.get(url, query_string={"key": "loss", "limit": 10**6}),
        422,
        "limit_exceeded",
    )
    error_of(client.get(url, query_string={"key": "loss", "after": "x"}), 400)
    error_of(client.get("/api/v1/runs/ffff0000/points?key=loss"), 404)


def test_deleting_a_run_removes_its_rollups(store: SqlStore) -> None:
    run_id = _new_run(store)
    _log(store, run_id, {s: 1.0 for s in range(1000)})
    store.delete_run(run_id)
    with store.engine.connect() as conn:
        left = conn.execute(sa.select(sa.func.count()).select_from(point_rollups))
        assert left.scalar_one() == 0


def test_the_migration_builds_rollups_of_existing_points(
    store_url: str, make_pg_database: Any, tmp_path: Any
) -> None:
    url = (
        f"sqlite:///{tmp_path / 'old.db'}"
        if store_url.startswith("sqlite")
        else make_pg_database()
    )
    old = SqlStore(url, upgrade=False)
    migrate.upgrade(old.engine, "0001")
    old._ready = True
    with old.engine.begin() as conn:
        conn.exec_driver_sql(
            "INSERT INTO experiments (id, name, created_at) VALUES (1, 'e', 0)"
        )
        conn.exec_driver_sql(
            "INSERT INTO runs (id, experiment_id, name, status, params, tags, "
            "started_at, heartbeat_at, updated_at) VALUES "
            "('r1', 1, 'r', 'finished', '{}', '[]', 0, 0, 0)"
        )
        conn.exec_driver_sql(
            "INSERT INTO series (id, run_id, key) VALUES (1, 'r1', 'k')"
        )
    rng = random.Random(3)
    points = {s: rng.gauss(0, 1) for s in range(0, 30_000, 3)}
    with old.engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO points (series_id, step, value, time) "
                "VALUES (1, :s, :v, :s)"
            ),
            [{"s": s, "v": v} for s, v in points.items()],
        )
    old.close()

    new = SqlStore(url)
    new.prepare()
    with new.engine.connect() as conn:
        for level in rollup.LEVELS:
            rows = conn.execute(
                sa.select(point_rollups)
                .where(point_rollups.c.level == level)
                .order_by(point_rollups.c.bucket)
            ).all()
            expected = _expected(points, level, 0, 2**62)
            assert [
                (r.bucket, r.count, r.min_step, r.max_step, r.last_step) for r in rows
            ] == [(b, *e) for b, e in sorted(expected.items())]
    new.close()
