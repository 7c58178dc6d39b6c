"""The runs table: 10,000 runs filtered by a nested param and sorted by a metric.

Seeds 10,000 runs (``--quick``: 1,000) with nested params and a metric summary, then
times one page of the runs list as the dashboard asks for it,
``GET /api/v1/runs?where=params.optim.lr < 0.01&sort=metrics.loss.min&limit=100``,
through the Flask app (routing, filter compilation, the count and the page, JSON),
against the floor of reading the same 100 rows with a plain ``SELECT ... LIMIT 100``.
Goal: under 150 ms (median) on SQLite and PostgreSQL.

    .venv/bin/python benchmarks/bench_runs_list.py [--quick]

SQLite: a file in a temp folder. PostgreSQL: a fresh database, dropped afterwards,
on the server ``LABNOTEBOOK_BENCH_PG`` (default
postgresql://postgres@127.0.0.1:5432/test; ``off`` to skip PostgreSQL).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator

import psycopg
import sqlalchemy as sa

from labnotebook._schema import experiments, runs, series
from labnotebook._store.sql import SqlStore
from labnotebook.server import ServerConfig, create_app

PG_SERVER = "postgresql://postgres@127.0.0.1:5432/test"
GOAL_MS = 150.0
QUERY = {
    "where": "params.optim.lr < 0.01",
    "sort": "metrics.loss.min",
    "order": "asc",
    "limit": "100",
}


@contextlib.contextmanager
def pg_url(server: str) -> Iterator[str]:
    """A fresh database on the PostgreSQL ``server``, dropped afterwards."""
    name = f"lnb_bench_runs_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield sa.engine.make_url(server).set(database=name).render_as_string(False)
    finally:
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def median_ms(fn: Callable[[], object], repeat: int) -> float:
    fn()
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def seed(store: SqlStore, count: int) -> None:
    """Runs as the write path leaves them, inserted in bulk to save time."""
    store.prepare()
    rng = random.Random(0)
    now = time.time()
    with store.engine.begin() as conn:
        conn.execute(
            experiments.insert(), [{"id": 1, "name": "bench", "created_at": now}]
        )
        rows = []
        summaries = []
        for i in range(count):
            run_id = uuid.UUID(int=rng.getrandbits(128)).hex
            rows.append(
                {
                    "id": run_id,
                    "experiment_id": 1,
                    "name": f"run-{i}",
                    "status": "finished",
                    "params": {
                        "optim": {"lr": 10 ** rng.uniform(-4, -1), "name": "adam"},
                        "layers": rng.randint(1, 12),
                        "seed": i,
                    },
                    "tags": ["bench"],
                    "started_at": now - i,
                    "ended_at": now - i + 60,
                    "heartbeat_at": now,
                    "updated_at": now,
                }
            )
            for key in ("loss", "acc", "val/loss"):
                value = rng.random()
                summaries.append(
                    {
                        "run_id": run_id,
                        "key": key,
                        "count": 1000,
                        "last": value,
                        "last_step": 999,
                        "last_time": now,
                        "min": value / 2,
                        "max": value * 2,
                    }
                )
        conn.execute(runs.insert(), rows)
        conn.execute(series.insert(), summaries)
    if store.dialect == "postgresql":
        with store.engine.connect() as conn:
            conn.execute(sa.text("ANALYZE"))
            conn.commit()


def bench(label: str, url: str, count: int, repeat: int) -> list[tuple[str, ...]]:
    store = SqlStore(url)
    seed(store, count)
    app = create_app(ServerConfig(store=url))
    client = app.test_client()

    def page() -> None:
        response = client.get("/api/v1/runs", query_string=QUERY)
        assert response.status_code == 200, response.get_data(as_text=True)

    def floor() -> None:
        with store.engine.connect() as conn:
            conn.execute(sa.select(runs).limit(100)).all()

    body = client.get("/api/v1/runs", query_string=QUERY).get_json()
    measured = median_ms(page, repeat)
    raw = median_ms(floor, repeat)
    app.extensions["labnotebook"].store.close()
    store.close()
    verdict = "PASS" if measured < GOAL_MS else "MISS"
    return [
        (
            f"{label}: {count:,} runs, filter + sort, page of 100 "
            f"({body['total']:,} match)",
            f"{measured:.1f} ms",
            f"{raw:.1f} ms",
            f"{measured / raw:.1f}",
            f"< {GOAL_MS:.0f} ms",
            verdict,
        )
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1,000 runs")
    args = parser.parse_args(argv)
    count = 1_000 if args.quick else 10_000
    repeat = 5 if args.quick else 15

    rows: list[tuple[str, ...]] = []
    with tempfile.TemporaryDirectory() as folder:
        rows += bench("sqlite", f"sqlite:///{folder}/runs.db", count, repeat)
    server = os.environ.get("LABNOTEBOOK_BENCH_PG", "").strip() or PG_SERVER
    if server.lower() != "off":
        with pg_url(server) as url:
            rows += bench("postgresql", url, count, repeat)

    header = ("figure", "median", "floor (plain SELECT)", "ratio", "goal", "")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)))
    # A MISS is a finding for the table, not a failure of the script.
    return 0


if __name__ == "__main__":
    sys.exit(main())
