"""What every benchmark script shares: arguments, stores, timing and the table.

Figures are medians of several repetitions, and each one that has a goal is set
against a raw floor measured in the same process, so that a busy machine slows the
figure and its floor alike and the ratio stays meaningful.

Stores are always new and empty, and removed when done: SQLite files in a temporary
folder, and on PostgreSQL either a new ``lnb_bench_*`` database on
``postgresql://postgres@127.0.0.1:5432/test`` or, when ``LABNOTEBOOK_BENCH_PG`` names
a database URL, a new ``lnb_bench_*`` schema in that database. Set
``LABNOTEBOOK_BENCH_PG=off`` to measure SQLite only.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import sqlalchemy as sa

PG_ENV = "LABNOTEBOOK_BENCH_PG"
PG_DEFAULT = "postgresql://postgres@127.0.0.1:5432/test"
COLUMNS = ("figure", "measured", "floor", "ratio", "goal", "result")


def parse_args(description: str) -> argparse.Namespace:
    """The options every benchmark takes."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--quick",
        action="store_true",
        help="small sizes that run in seconds (smoke test); figures are not "
        "representative",
    )
    return parser.parse_args()


# ------------------------------------------------------------------ stores


def pg_server() -> str | None:
    """The PostgreSQL URL given in the environment, or None when turned off."""
    url = os.environ.get(PG_ENV, "").strip()
    if url.lower() == "off":
        return None
    return url or PG_DEFAULT


def _admin(url: str) -> psycopg.Connection[tuple[object, ...]]:
    try:
        return psycopg.connect(url, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        sys.exit(
            f"PostgreSQL is not reachable at {url} ({exc}); start it, set {PG_ENV} "
            f"to a database URL, or set {PG_ENV}=off to benchmark SQLite only"
        )


@contextlib.contextmanager
def pg_database() -> Iterator[str]:
    """The URL of a new, empty PostgreSQL store, removed on exit.

    With ``LABNOTEBOOK_BENCH_PG`` set, the store is a new schema in that database
    (reached through ``search_path``); otherwise a new database on the default
    server.
    """
    given = os.environ.get(PG_ENV, "").strip()
    name = f"lnb_bench_{uuid.uuid4().hex[:12]}"
    if given:
        url = sa.engine.make_url(given)
        with _admin(given) as conn:
            conn.execute(f'CREATE SCHEMA "{name}"')
        try:
            yield url.update_query_dict(
                {"options": f"-csearch_path={name}"}
            ).render_as_string(hide_password=False)
        finally:
            with _admin(given) as conn:
                conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
        return

    with _admin(PG_DEFAULT) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield (
            sa.engine.make_url(PG_DEFAULT)
            .set(database=name)
            .render_as_string(hide_password=False)
        )
    finally:
        with _admin(PG_DEFAULT) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextlib.contextmanager
def temp_dir() -> Iterator[Path]:
    """A temporary folder (SQLite files, spool, home), removed on exit."""
    with tempfile.TemporaryDirectory(prefix="lnb-bench-") as folder:
        yield Path(folder)


@contextlib.contextmanager
def fresh_store(kind: str, folder: Path) -> Iterator[str]:
    """The URL of a new, empty store of ``kind`` (``sqlite`` or ``postgresql``)."""
    if kind == "sqlite":
        yield f"sqlite:///{folder / f'{uuid.uuid4().hex[:8]}.db'}"
    else:
        with pg_database() as url:
            yield url


def store_kinds() -> list[str]:
    """The databases to benchmark: SQLite always, PostgreSQL unless turned off."""
    return ["sqlite"] if pg_server() is None else ["sqlite", "postgresql"]


def label(kind: str) -> str:
    return {"sqlite": "SQLite", "postgresql": "PostgreSQL"}[kind]


def driver_url(url: str) -> str:
    """A store URL as the plain drivers take it (psycopg conninfo, sqlite path)."""
    if url.startswith("sqlite:///"):
        return url[len("sqlite:///") :]
    return url


# ------------------------------------------------------------------ timing


def median(values: list[float]) -> float:
    return statistics.median(values)


def timed(action: Callable[[], object]) -> float:
    """Seconds that one call of ``action`` takes."""
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def median_times(
    actions: dict[str, Callable[[], object]], repeats: int
) -> dict[str, float]:
    """Median seconds per action, the actions taking turns in each repetition.

    Taking turns spreads a burst of load from elsewhere over every action alike.
    """
    times: dict[str, list[float]] = {name: [] for name in actions}
    for _ in range(repeats):
        for name, action in actions.items():
            times[name].append(timed(action))
    return {name: median(values) for name, values in times.items()}


def fmt_us(seconds: float) -> str:
    return f"{seconds * 1e6:.2f} µs"


def fmt_ms(seconds: float) -> str:
    return f"{seconds * 1e3:.1f} ms"


def fmt_rate(per_second: float) -> str:
    return f"{per_second / 1e6:.2f} M/s"


def fmt_mib(nbytes: float) -> str:
    return f"{nbytes / 2**20:.0f} MiB"


# ------------------------------------------------------------------- table


@dataclass
class Row:
    """One line of a result table; ``ok`` is None for a figure without a goal."""

    figure: str
    measured: str
    floor: str = "-"
    ratio: float | None = None
    goal: str = "-"
    ok: bool | None = None

    def cells(self) -> tuple[str, ...]:
        ratio = "-" if self.ratio is None else f"{self.ratio:.2f}x"
        result = "-" if self.ok is None else ("PASS" if self.ok else "MISS")
        return (self.figure, self.measured, self.floor, ratio, self.goal, result)


class Table:
    """The table a benchmark prints: figure, measured, floor, ratio, goal, result."""

    def __init__(self, title: str):
        self.title = title
        self.rows: list[Row] = []

    def add(self, row: Row) -> None:
        self.rows.append(row)

    def render(self) -> str:
        lines = [COLUMNS, *(row.cells() for row in self.rows)]
        widths = [max(len(line[i]) for line in lines) for i in range(len(COLUMNS))]
        text = [self.title]
        for line in lines:
            cells = zip(line, widths, strict=True)
            text.append("  ".join(cell.ljust(width) for cell, width in cells).rstrip())
        return "\n".join(text)

    def print(self) -> None:
        print(self.render(), flush=True)


def revision() -> str:
    """The git commit measured, marked when the source differs from it."""
    root = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        changed = subprocess.run(
            ["git", "status", "--porcelain", "--", "src"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown revision"
    return f"{commit} + uncommitted changes in src/" if changed else commit


def header(name: str, quick: bool, detail: str) -> None:
    """The first lines of a benchmark's output: what runs, how big, where."""
    size = "quick sizes (not representative)" if quick else "full sizes"
    load = os.getloadavg()[0]
    print(f"== {name}: {detail}", flush=True)
    print(
        f"   {size}; {os.cpu_count()} cores, load {load:.1f}; python "
        f"{sys.version.split()[0]}; {revision()}; {time.strftime('%Y-%m-%d %H:%M')}",
        flush=True,
    )
