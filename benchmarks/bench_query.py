"""Finding runs: ``labnotebook.runs(where=...)`` over 10,000 runs.

Each run has nested params (``optim.lr``, ``model.depth``, lists, strings) and a few
metric summaries. The runs are written straight into a fresh store's tables (what a
store holds after 10,000 runs have finished), which takes seconds instead of the
minutes that 10,000 separate run starts would.

Figures, each the median of several calls:

- the selective filter ``params.optim.lr < 1e-3 and metrics.acc.max > 0.9``
  (about 3% of the runs), returned as a DataFrame; goal: under 150 ms. Its floor is
  the same selection written by hand in the database's own SQL and fetched by the
  driver (for scale; the goal is absolute);
- every run as a DataFrame (no filter), reported without a goal.

    .venv/bin/python benchmarks/bench_query.py [--quick]
"""

from __future__ import annotations

import random
import sqlite3
import sys
import time
import uuid
from collections.abc import Callable
from typing import Any

import psycopg
import sqlalchemy as sa
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
from labnotebook._schema import runs, series
from labnotebook._store.sql import SqlStore

GOAL = 0.150
WHERE = "params.optim.lr < 1e-3 and metrics.acc.max > 0.9"
RAW_WHERE = {
    "sqlite": (
        "SELECT runs.* FROM runs JOIN series ON series.run_id = runs.id "
        "AND series.key = 'acc' "
        "WHERE json_extract(runs.params, '$.optim.lr') < 1e-3 AND series.max > 0.9"
    ),
    "postgresql": (
        "SELECT runs.* FROM runs JOIN series ON series.run_id = runs.id "
        "AND series.key = 'acc' "
        "WHERE (runs.params #>> '{optim,lr}')::float8 < 1e-3 AND series.max > 0.9"
    ),
}
METRICS = ("acc", "loss", "val/loss", "lr")


def fake_params(rng: random.Random) -> dict[str, Any]:
    depth = rng.choice([2, 4, 8, 12, 16, 24])
    return {
        "optim": {
            "name": rng.choice(["adam", "adamw", "sgd"]),
            "lr": 10 ** rng.uniform(-5, -1),
            "betas": [0.9, rng.choice([0.98, 0.999])],
            "weight_decay": rng.choice([0.0, 0.01, 0.1]),
        },
        "model": {
            "name": rng.choice(["mlp", "resnet", "vit"]),
            "depth": depth,
            "widths": [rng.choice([64, 128, 256])] * min(depth, 4),
            "dropout": rng.choice([0.0, 0.1, 0.2]),
        },
        "data": {"name": rng.choice(["cifar10", "imagenet-1k"]), "augment": True},
        "seed": rng.randrange(1_000_000),
    }


def fake_summaries(rng: random.Random, run_id: str, now: float) -> list[dict[str, Any]]:
    steps = rng.randrange(100, 10_000)
    acc = 0.5 + 0.45 * rng.random() ** 2
    ranges = {
        "acc": (0.1, acc, acc * 0.99),
        "loss": (0.05, 2.5, 0.06),
        "val/loss": (0.1, 2.6, 0.12),
        "lr": (1e-6, 1e-3, 1e-6),
    }
    return [
        {
            "run_id": run_id, "key": key, "count": steps, "last": last,
            "last_step": steps - 1, "last_time": now, "min": lo, "max": hi,
        }
        for key, (lo, hi, last) in ranges.items()
    ]  # fmt: skip


def seed(url: str, count: int) -> None:
    """Write ``count`` finished runs, as a store holds them, in a few statements."""
    store = SqlStore(url)
    experiment_id = store.create_experiment("bench-query").id
    store.close()
    rng = random.Random(42)
    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    now = time.time()
    run_rows: list[dict[str, Any]] = []
    series_rows: list[dict[str, Any]] = []
    for i in range(count):
        run_id = uuid.UUID(int=rng.getrandbits(128)).hex
        started = now - (count - i) * 60.0
        run_rows.append(
            {
                "id": run_id, "experiment_id": experiment_id, "name": f"run-{i:05d}",
                "status": "finished", "params": fake_params(rng),
                "tags": rng.sample(["baseline", "ablation", "sweep", "final"], 2),
                "started_at": started, "ended_at": started + 50.0,
                "heartbeat_at": started + 50.0, "updated_at": started + 50.0,
                "host": "bench", "pid": 1000 + i, "command": "train.py",
                "error": None, "environment": None,
            }
        )  # fmt: skip
        series_rows.extend(fake_summaries(rng, run_id, started + 50.0))
    with engine.begin() as conn:
        conn.execute(runs.insert(), run_rows)
        conn.execute(series.insert(), series_rows)
        if engine.dialect.name == "postgresql":
            conn.exec_driver_sql("ANALYZE")
    engine.dispose()


def raw_query(kind: str, url: str) -> tuple[Callable[[], Any], Any]:
    """The selective filter in the database's own SQL, fetched by the driver."""
    conn: Any
    if kind == "sqlite":
        conn = sqlite3.connect(driver_url(url))
    else:
        conn = psycopg.connect(driver_url(url), autocommit=True)
    sql = RAW_WHERE[kind]

    def fetch() -> Any:
        cur = conn.cursor()
        cur.execute(sql)
        rows = cur.fetchall()
        cur.close()
        return rows

    return fetch, conn


def measure(kind: str, count: int, repeats: int) -> tuple[dict[str, float], int]:
    """Median seconds of the raw query, the filtered and the unfiltered runs()."""
    with temp_dir() as folder, fresh_store(kind, folder) as url:
        seed(url, count)
        labnotebook.init(url, home=str(folder))
        fetch, conn = raw_query(kind, url)
        matches = len(fetch())
        found = len(labnotebook.runs(where=WHERE))
        if found != matches:
            raise SystemExit(f"runs(where=...) found {found} runs, SQL finds {matches}")
        if len(labnotebook.runs()) != count:
            raise SystemExit(f"runs() did not return all {count} runs")

        times = median_times(
            {
                "floor": fetch,
                "filtered": lambda: labnotebook.runs(where=WHERE),
                "all": labnotebook.runs,
            },
            repeats,
        )
        conn.close()
        labnotebook.current().close()
    return times, matches


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    count, repeats = (500, 3) if args.quick else (10_000, 7)
    header(
        "bench_query",
        args.quick,
        f"runs() over {count:,} runs, {repeats} repeats (median); filter: {WHERE}",
    )

    table = Table("time to a DataFrame (median)")
    failures: list[str] = []
    for kind in store_kinds():
        name = label(kind)
        try:
            times, matches = measure(kind, count, repeats)
        except Exception as exc:  # report, then go on with the other database
            failures.append(f"{name}: {type(exc).__name__}: {exc}")
            table.add(
                Row(f"{name} runs(where=...)", "error", goal="< 150 ms", ok=False)
            )
            continue
        filtered = times["filtered"]
        table.add(Row(f"{name} floor (SQL, {matches} runs)", fmt_ms(times["floor"])))
        table.add(
            Row(
                f"{name} runs(where=...)",
                fmt_ms(filtered),
                fmt_ms(times["floor"]),
                filtered / times["floor"],
                f"< {GOAL * 1e3:.0f} ms",
                filtered < GOAL,
            )
        )
        table.add(Row(f"{name} runs(), all {count:,}", fmt_ms(times["all"])))
    table.print()
    for failure in failures:
        print(f"error: {failure}", file=sys.stderr)
    if failures:
        sys.exit(1)


if __name__ == "__main__":
    main()
