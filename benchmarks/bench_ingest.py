"""Sustained ingest: points per second from ``run.log()`` into the database.

The figure is end to end: from the first ``run.log()`` call until ``finish()``
returns with every point in the store (10 metrics per step). The floor is the
driver's own bulk path for the same rows into the same ``points`` table of a fresh
store: one ``executemany`` of an INSERT in one transaction on SQLite; on PostgreSQL,
one ``COPY ... FROM STDIN`` in binary format with the column types declared, psycopg's
fastest way to copy rows. The floor's rows are built before its clock starts. Goal:
at least half the floor's rate, on both databases. At full sizes, PostgreSQL's
text-format COPY is shown too, for reference.

    .venv/bin/python benchmarks/bench_ingest.py [--quick]
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import psycopg
from _common import (
    Row,
    Table,
    driver_url,
    fmt_rate,
    fresh_store,
    header,
    label,
    median,
    parse_args,
    store_kinds,
    temp_dir,
)

from labnotebook import Notebook, Settings
from labnotebook._store.sql import SqlStore

RATE_GOAL = 0.5
KEYS = [f"m{i}" for i in range(10)]

Rows = list[tuple[int, int, float, float]]


def ingest_with_log(url: str, home: Path, steps: int) -> float:
    """Seconds from the first log() to finish() returning, everything stored."""
    notebook = Notebook(Settings(url=url, home=str(home), exit_timeout=3600))
    run = notebook.start(experiment="bench-ingest", system_metrics=False)
    start = time.perf_counter()
    for i in range(steps):
        x = i * 1e-3
        run.log({"m0": x, "m1": x, "m2": x, "m3": x, "m4": x,
                 "m5": x, "m6": x, "m7": x, "m8": x, "m9": x})  # fmt: skip
    complete = run.finish()
    elapsed = time.perf_counter() - start
    stored = sum(s.count for s in run.summary.values())
    notebook.close()
    if not complete or stored != steps * len(KEYS):
        raise SystemExit(
            f"only {stored} of {steps * len(KEYS)} points reached {url}; see warnings"
        )
    return elapsed


def floor_rows(steps: int) -> Rows:
    """The rows the store writes for the same log calls: per series, by step."""
    now = time.time()
    return [
        (series_id, i, i * 1e-3, now + i * 1e-6)
        for series_id in range(1, len(KEYS) + 1)
        for i in range(steps)
    ]


def ingest_floor(kind: str, url: str, rows: Rows, binary: bool = True) -> float:
    """Seconds the driver's bulk path takes to insert ``rows`` into points.

    binary: on PostgreSQL, COPY in binary format with declared column types (else
        in text format).
    """
    SqlStore(url).prepare()
    target = driver_url(url)
    if kind == "sqlite":
        conn = sqlite3.connect(target, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        start = time.perf_counter()
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany("INSERT INTO points VALUES (?, ?, ?, ?)", rows)
        conn.execute("COMMIT")
        elapsed = time.perf_counter() - start
        conn.close()
        return elapsed

    sql = "COPY points (series_id, step, value, time) FROM STDIN"
    with psycopg.connect(target) as pg:
        start = time.perf_counter()
        with (
            pg.cursor() as cur,
            cur.copy(sql + (" (FORMAT BINARY)" if binary else "")) as copy,
        ):
            if binary:
                copy.set_types(["int8", "int8", "float8", "float8"])
            for row in rows:
                copy.write_row(row)
        pg.commit()
        return time.perf_counter() - start


def measure(
    kind: str, rows: Rows, steps: int, repeats: int, text: bool
) -> dict[str, float]:
    """Median points per second of each way in, taking turns, each in a new store."""
    points = steps * len(KEYS)
    times: dict[str, list[float]] = {"floor": [], "log": []}
    if text and kind == "postgresql":
        times["text"] = []
    with temp_dir() as folder:
        for _ in range(repeats):
            for way, values in times.items():
                with fresh_store(kind, folder) as url:
                    if way == "log":
                        values.append(ingest_with_log(url, folder, steps))
                    else:
                        values.append(ingest_floor(kind, url, rows, way != "text"))
    return {way: points / median(values) for way, values in times.items()}


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    steps, repeats = (10_000, 2) if args.quick else (100_000, 3)
    points = steps * len(KEYS)
    header(
        "bench_ingest",
        args.quick,
        f"{points:,} points ({len(KEYS)} metrics x {steps:,} steps) end to end, "
        f"{repeats} repeats (median)",
    )

    rows = floor_rows(steps)
    table = Table("points per second (median)")
    for kind in store_kinds():
        rate = measure(kind, rows, steps, repeats, text=not args.quick)
        floor = rate["floor"]
        path = "executemany" if kind == "sqlite" else "binary COPY"
        table.add(Row(f"{label(kind)} floor ({path})", fmt_rate(floor)))
        if "text" in rate:
            table.add(Row(f"{label(kind)} text COPY", fmt_rate(rate["text"])))
        table.add(
            Row(
                f"{label(kind)} log() to finish()",
                fmt_rate(rate["log"]),
                fmt_rate(floor),
                rate["log"] / floor,
                f">= {RATE_GOAL}x",
                rate["log"] / floor >= RATE_GOAL,
            )
        )
    table.print()


if __name__ == "__main__":
    main()
