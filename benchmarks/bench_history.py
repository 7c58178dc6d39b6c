"""Reading a long metric back: ``labnotebook.history(run_id, key)`` as a DataFrame.

A run with one metric of 1,000,000 steps is written straight to a fresh store (as
one run's batches, through the store interface). The figure is the time of
``labnotebook.history(run_id, "loss")``; the floor is the driver fetching the same
rows on a connection it already holds (``SELECT step, value FROM points WHERE
series_id = ? ORDER BY step``, then ``fetchall()``). Goal: within 1.5x of the floor
on both databases.

    .venv/bin/python benchmarks/bench_history.py [--quick]
"""

from __future__ import annotations

import sqlite3
import time
import uuid
from collections.abc import Callable
from typing import Any

import psycopg
from _common import (
    Row,
    Table,
    driver_url,
    fmt_ms,
    fresh_store,
    header,
    label,
    median_times,
    parse_args,
    store_kinds,
    temp_dir,
)

import labnotebook
from labnotebook._store.base import Batch, RunCreate
from labnotebook._store.sql import SqlStore

RATIO_GOAL = 1.5
KEY = "loss"
CHUNK = 200_000


def seed(url: str, steps: int) -> str:
    """A run with one metric of ``steps`` points; returns its id."""
    store = SqlStore(url)
    run_id = uuid.uuid4().hex
    now = time.time()
    create = RunCreate(
        experiment="bench-history", name="long", params={}, tags=[], started_at=now
    )
    store.write(Batch(run_id=run_id, create=create))
    for first in range(0, steps, CHUNK):
        chunk = range(first, min(first + CHUNK, steps))
        columns = (
            list(chunk),
            [1.0 / (1 + s) for s in chunk],
            [now + s * 1e-3 for s in chunk],
        )
        store.write(Batch(run_id=run_id, points={KEY: columns}))
    store.close()
    return run_id


def raw_fetch(kind: str, url: str, run_id: str) -> tuple[Callable[[], Any], Any]:
    """A fetch of the metric's (step, value) rows by the driver, and its connection."""
    sql = (
        "SELECT step, value FROM points WHERE series_id = "
        "(SELECT id FROM series WHERE run_id = {0} AND key = {0}) ORDER BY step"
    )
    conn: Any
    if kind == "sqlite":
        conn = sqlite3.connect(driver_url(url))
        query = sql.format("?")
    else:
        conn = psycopg.connect(driver_url(url), autocommit=True)
        query = sql.format("%s")

    def fetch() -> Any:
        cur = conn.cursor()
        cur.execute(query, (run_id, KEY))
        rows = cur.fetchall()
        cur.close()
        return rows

    return fetch, conn


def measure(kind: str, steps: int, repeats: int) -> dict[str, float]:
    """Median seconds of the raw fetch (floor) and of history() on one database."""
    with temp_dir() as folder, fresh_store(kind, folder) as url:
        run_id = seed(url, steps)
        labnotebook.init(url, home=str(folder))
        fetch, conn = raw_fetch(kind, url, run_id)
        if len(fetch()) != steps:
            raise SystemExit(f"the raw fetch did not return {steps} rows")
        if len(labnotebook.history(run_id, KEY)) != steps:
            raise SystemExit(f"history() did not return {steps} rows")

        found = median_times(
            {"floor": fetch, "history": lambda: labnotebook.history(run_id, KEY)},
            repeats,
        )
        conn.close()
        labnotebook.current().close()
    return found


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    steps, repeats = (50_000, 3) if args.quick else (1_000_000, 5)
    header(
        "bench_history",
        args.quick,
        f"history() of one metric of {steps:,} steps, {repeats} repeats (median)",
    )

    table = Table("time to read (median)")
    for kind in store_kinds():
        found = measure(kind, steps, repeats)
        floor, value = found["floor"], found["history"]
        table.add(Row(f"{label(kind)} floor (fetchall)", fmt_ms(floor)))
        table.add(
            Row(
                f"{label(kind)} history()",
                fmt_ms(value),
                fmt_ms(floor),
                value / floor,
                f"<= {RATIO_GOAL}x",
                value / floor <= RATIO_GOAL,
            )
        )
    table.print()


if __name__ == "__main__":
    main()
