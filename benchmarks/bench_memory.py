"""Memory while the store is down or slow: it must stay bounded.

A child process logs points (10 metrics per step) as fast as it can while its store
cannot keep up, and the parent reads the child's peak resident memory (RSS
high-water mark, from ``wait4``) when it exits:

- down: a PostgreSQL URL on a closed port (127.0.0.1:1), so everything goes to the
  spool file;
- slow: a SQLite store that another process keeps locked for 1 s at a time, so
  writes trickle through between the locks.

The baseline is the same child logging nothing. Each scenario logs 1M and then 10M
points with ``buffer_limit`` set below both, so the bound is reached in both runs:
memory is bounded if the 10M run grows no more than the 1M run (within 1.25x plus
32 MiB of slack for allocator noise). One more run (full sizes only) shows the slow
store at 10M points with the default ``buffer_limit``.

    .venv/bin/python benchmarks/bench_memory.py [--quick]
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from _common import Row, Table, fmt_mib, header, parse_args, temp_dir

import labnotebook
from labnotebook import Settings
from labnotebook._store.sql import SqlStore

CHILD = "--child"
DOWN_URL = "postgresql://postgres@127.0.0.1:1/down"
GROWTH_GOAL = 1.25
SLACK = 32 * 2**20
LOCK_HOLD = 1.0
LOCK_GAP = 0.05
METRICS = 10

# The other process of the slow scenario: holds SQLite's write lock for LOCK_HOLD
# seconds, lets writers in for LOCK_GAP seconds, and again, until it is terminated.
LOCKER = """
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], timeout=600, isolation_level=None)
print("locked", flush=True)
while True:
    conn.execute("BEGIN IMMEDIATE")
    time.sleep(float(sys.argv[2]))
    conn.execute("COMMIT")
    time.sleep(float(sys.argv[3]))
"""


def child(config: dict[str, Any]) -> None:
    """Log ``config["points"]`` points and report how long logging took."""
    settings = {
        "home": config["home"],
        "exit_timeout": 0.5,
        "retry_interval": 0.5,
    }
    if config["buffer_limit"]:
        settings["buffer_limit"] = config["buffer_limit"]
    labnotebook.init(config["url"], **settings)
    run = labnotebook.start(experiment="bench-memory", system_metrics=False)
    start = time.perf_counter()
    for i in range(config["points"] // METRICS):
        x = i * 1e-3
        run.log({"m0": x, "m1": x, "m2": x, "m3": x, "m4": x,
                 "m5": x, "m6": x, "m7": x, "m8": x, "m9": x})  # fmt: skip
    elapsed = time.perf_counter() - start
    run.finish()
    print(json.dumps({"seconds": elapsed}), flush=True)


class ChildFailed(Exception):
    """The logging child exited with an error; its peak RSS is still known."""

    def __init__(self, message: str, rss: int):
        super().__init__(message)
        self.rss = rss


def peak_rss(url: str, home: Path, points: int, buffer_limit: int) -> int:
    """Peak RSS in bytes of a child process that logs ``points`` points."""
    config = {
        "url": url,
        "home": str(home),
        "points": points,
        "buffer_limit": buffer_limit,
    }
    log = home / f"child-{points}-{buffer_limit}-{time.monotonic_ns()}.log"
    with log.open("wb") as stderr:
        proc = subprocess.Popen(
            [sys.executable, __file__, CHILD, json.dumps(config)],
            stdout=subprocess.PIPE,
            stderr=stderr,
        )
        assert proc.stdout is not None
        output = proc.stdout.read()
        _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    rss = usage.ru_maxrss * 1024  # kibibytes on Linux
    if proc.returncode != 0 or b"seconds" not in output:
        lines = log.read_text(errors="replace").strip().splitlines() or ["no output"]
        raise ChildFailed(
            f"logging {points:,} points to {url} failed with exit code "
            f"{proc.returncode}: {lines[-1]}",
            rss,
        )
    return rss


def slow_peak(folder: Path, points: int, buffer_limit: int) -> int:
    """Peak RSS logging to a SQLite store that another process keeps locking."""
    db = folder / f"slow-{points}-{buffer_limit}.db"
    SqlStore(f"sqlite:///{db}").prepare()
    locker = subprocess.Popen(
        [sys.executable, "-c", LOCKER, str(db), str(LOCK_HOLD), str(LOCK_GAP)],
        stdout=subprocess.PIPE,
    )
    try:
        assert locker.stdout is not None
        locker.stdout.readline()
        return peak_rss(f"sqlite:///{db}", folder, points, buffer_limit)
    finally:
        locker.terminate()
        locker.wait()


def main() -> None:
    if sys.argv[1:2] == [CHILD]:
        child(json.loads(sys.argv[2]))
        return

    args = parse_args(__doc__.splitlines()[0])
    small, large, limit = (
        (20_000, 200_000, 5_000) if args.quick else (1_000_000, 10_000_000, 200_000)
    )
    default_limit = Settings().buffer_limit
    header(
        "bench_memory",
        args.quick,
        f"peak RSS of a process logging {small:,} and {large:,} points to a store "
        f"that is down or slow, buffer_limit={limit:,} (default {default_limit:,})",
    )

    table = Table("peak resident memory of the logging process")
    failures: list[str] = []
    with temp_dir() as folder:

        def peak(scenario: str, points: int, buffer_limit: int) -> int:
            try:
                if scenario == "down":
                    return peak_rss(DOWN_URL, folder, points, buffer_limit)
                return slow_peak(folder, points, buffer_limit)
            except ChildFailed as exc:
                failures.append(str(exc))
                return exc.rss

        baseline = peak("down", 0, limit)
        table.add(Row("baseline (logs nothing)", fmt_mib(baseline)))
        for scenario in ("down", "slow"):
            name = f"store {scenario}"
            grew_small = peak(scenario, small, limit) - baseline
            grew_large = peak(scenario, large, limit) - baseline
            bound = GROWTH_GOAL * max(grew_small, 0) + SLACK
            table.add(Row(f"{name}, {small:,} points: growth", fmt_mib(grew_small)))
            table.add(
                Row(
                    f"{name}, {large:,} points: growth",
                    fmt_mib(grew_large),
                    fmt_mib(grew_small),
                    grew_large / max(grew_small, 1),
                    f"<= {GROWTH_GOAL}x + {fmt_mib(SLACK)}",
                    grew_large <= bound,
                )
            )
        if not args.quick:
            grew = peak("slow", large, default_limit) - baseline
            table.add(
                Row(
                    f"store slow, {large:,} points, default limit: growth",
                    fmt_mib(grew),
                )
            )
    table.print()
    for failure in failures:
        print(f"error: {failure}", file=sys.stderr)
    if failures:
        sys.exit(1)


if __name__ == "__main__":
    main()
