"""Downsampled series for charts: one long metric in N buckets, on both databases.

Writes one metric of 1,000,000 points (``--quick``: 100,000) through the store's
write path, then times ``SqlStore.downsample`` (1,000 buckets, in the database,
through the rollup table) against fetching the raw points, which is the floor a
chart would otherwise pay. Goal: the downsampled read under 100 ms (median).

    .venv/bin/python benchmarks/bench_series.py [--quick]

SQLite: ``LABNOTEBOOK_BENCH_SQLITE`` (default: a file in a temp folder).
PostgreSQL: a fresh database, dropped afterwards, on the server
``LABNOTEBOOK_BENCH_PG`` (default postgresql://postgres@127.0.0.1:5432/test; ``off``
to skip PostgreSQL).
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator

import psycopg
import sqlalchemy as sa

from labnotebook._store.base import Batch, RunCreate
from labnotebook._store.sql import SqlStore

PG_SERVER = "postgresql://postgres@127.0.0.1:5432/test"
GOAL_MS = 100.0
BATCH = 100_000


@contextlib.contextmanager
def pg_url(server: str) -> Iterator[str]:
    """A fresh database on the PostgreSQL ``server``, dropped afterwards."""
    name = f"lnb_bench_series_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield sa.engine.make_url(server).set(database=name).render_as_string(False)
    finally:
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextlib.contextmanager
def sqlite_url() -> Iterator[str]:
    given = os.environ.get("LABNOTEBOOK_BENCH_SQLITE")
    if given:
        yield given
        return
    with tempfile.TemporaryDirectory() as folder:
        yield f"sqlite:///{folder}/bench.db"


def median_ms(fn: Callable[[], object], repeat: int) -> float:
    fn()  # warm the caches
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def fill(store: SqlStore, points: int) -> tuple[str, float]:
    run_id = uuid.uuid4().hex
    store.write(
        Batch(run_id=run_id, create=RunCreate("bench", "series", {}, [], time.time()))
    )
    started = time.perf_counter()
    for first in range(0, points, BATCH):
        steps = list(range(first, min(points, first + BATCH)))
        values = [math.sin(s / 5000) + (5.0 if s % 99_991 == 0 else 0.0) for s in steps]
        store.write(
            Batch(
                run_id=run_id,
                points={"loss": (steps, values, [float(s) for s in steps])},
            )
        )
    return run_id, time.perf_counter() - started


def bench(label: str, url: str, points: int, repeat: int) -> list[tuple[str, ...]]:
    store = SqlStore(url)
    run_id, seconds = fill(store, points)
    down = median_ms(lambda: store.downsample([(run_id, "loss")], 1000), repeat)
    zoom = median_ms(
        lambda: store.downsample([(run_id, "loss")], 1000, points // 3, points // 2),
        repeat,
    )
    raw = median_ms(lambda: store.history(run_id, ["loss"]), max(3, repeat // 4))
    store.close()
    verdict = "PASS" if down < GOAL_MS else "MISS"
    zoom_verdict = "PASS" if zoom < GOAL_MS else "MISS"
    return [
        (f"{label}: write {points:,} points", f"{seconds:.2f} s", "", "", "", ""),
        (
            f"{label}: {points:,} -> 1000 buckets",
            f"{down:.1f} ms",
            f"{raw:.0f} ms",
            f"{down / raw:.3f}",
            f"< {GOAL_MS:.0f} ms",
            verdict,
        ),
        (
            f"{label}: zoom to 1/6 -> 1000 buckets",
            f"{zoom:.1f} ms",
            f"{raw:.0f} ms",
            f"{zoom / raw:.3f}",
            f"< {GOAL_MS:.0f} ms",
            zoom_verdict,
        ),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100,000 points")
    args = parser.parse_args(argv)
    points = 100_000 if args.quick else 1_000_000
    repeat = 5 if args.quick else 21

    rows: list[tuple[str, ...]] = []
    with sqlite_url() as url:
        rows += bench("sqlite", url, points, repeat)
    server = os.environ.get("LABNOTEBOOK_BENCH_PG", "").strip() or PG_SERVER
    if server.lower() != "off":
        with pg_url(server) as url:
            rows += bench("postgresql", url, points, repeat)

    header = ("figure", "median", "floor (raw fetch)", "ratio", "goal", "")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)))
    # A MISS is a finding for the table, not a failure of the script.
    return 0


if __name__ == "__main__":
    sys.exit(main())
