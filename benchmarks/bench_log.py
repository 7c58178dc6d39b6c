"""What ``run.log()`` costs the training loop.

Three loops build the same dict of 10 metrics per iteration:

- bare: the dict build only;
- floor: the least any background logger must do: timestamp the dict, copy it and
  append it to a deque that a thread drains every 0.5 s;
- log: ``run.log({...})`` and ``run.log(m0=..., ...)`` on a SQLite store in a
  temporary folder.

Only the caller's time is measured (the loop, not ``finish()``); the store write
runs in labnotebook's background threads meanwhile, as it does in training. The
garbage collector stays on, as it is in a training script. Goals: log within 1.3x
of the floor, and at most 2 µs more than the bare loop, in wall-clock time.

The caller thread's CPU time is shown as well, without a goal: the difference
between wall and CPU time is time the caller spent waiting, for the interpreter
lock held by background threads or for a core on a busy machine.

    .venv/bin/python benchmarks/bench_log.py [--quick]
"""

from __future__ import annotations

import collections
import threading
import time
from typing import Any

from _common import (
    Row,
    Table,
    fmt_us,
    header,
    median,
    parse_args,
    temp_dir,
)

import labnotebook
from labnotebook import Notebook, Settings

RATIO_GOAL = 1.3
OVERHEAD_GOAL = 2e-6
DRAIN_INTERVAL = 0.5
VARIANTS = {
    "bare": "bare loop",
    "floor": "floor",
    "dict": "run.log({...})",
    "kw": "run.log(m0=...)",
}


Clocks = tuple[float, float]


def clocks() -> Clocks:
    """Wall-clock time and the calling thread's CPU time."""
    return time.perf_counter(), time.thread_time()


def since(start: Clocks) -> Clocks:
    wall, cpu = clocks()
    return wall - start[0], cpu - start[1]


def loop_bare(n: int) -> Clocks:
    start = clocks()
    for i in range(n):
        x = i * 1e-3
        d = {"m0": x, "m1": x, "m2": x, "m3": x, "m4": x,
             "m5": x, "m6": x, "m7": x, "m8": x, "m9": x}  # fmt: skip
    del d
    return since(start)


def loop_floor(n: int, buffer: collections.deque[Any]) -> Clocks:
    start = clocks()
    for i in range(n):
        x = i * 1e-3
        d = {"m0": x, "m1": x, "m2": x, "m3": x, "m4": x,
             "m5": x, "m6": x, "m7": x, "m8": x, "m9": x}  # fmt: skip
        buffer.append((time.time(), d.copy()))
    return since(start)


def loop_log(n: int, run: labnotebook.Run) -> Clocks:
    start = clocks()
    for i in range(n):
        x = i * 1e-3
        run.log({"m0": x, "m1": x, "m2": x, "m3": x, "m4": x,
                 "m5": x, "m6": x, "m7": x, "m8": x, "m9": x})  # fmt: skip
    return since(start)


def loop_log_kwargs(n: int, run: labnotebook.Run) -> Clocks:
    start = clocks()
    for i in range(n):
        x = i * 1e-3
        run.log(m0=x, m1=x, m2=x, m3=x, m4=x, m5=x, m6=x, m7=x, m8=x, m9=x)
    return since(start)


class Drainer:
    """A thread that empties a deque every interval, like a minimal writer."""

    def __init__(self) -> None:
        self.buffer: collections.deque[Any] = collections.deque()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(DRAIN_INTERVAL):
            self._drain()
        self._drain()

    def _drain(self) -> None:
        popleft = self.buffer.popleft
        for _ in range(len(self.buffer)):
            popleft()

    def close(self) -> None:
        self._stop.set()
        self._thread.join()


def time_floor(n: int) -> Clocks:
    drainer = Drainer()
    try:
        return loop_floor(n, drainer.buffer)
    finally:
        drainer.close()


def time_log(notebook: Notebook, n: int, kwargs: bool) -> Clocks:
    run = notebook.start(experiment="bench-log", system_metrics=False)
    try:
        return loop_log_kwargs(n, run) if kwargs else loop_log(n, run)
    finally:
        if not run.finish():
            raise SystemExit("the store did not take every point; see the warnings")


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    n, repeats = (20_000, 3) if args.quick else (200_000, 5)
    header(
        "bench_log",
        args.quick,
        f"run.log() of 10 metrics, SQLite store, {n:,} iterations x {repeats} "
        "repeats (median per iteration)",
    )

    wall: dict[str, list[float]] = {k: [] for k in VARIANTS}
    cpu: dict[str, list[float]] = {k: [] for k in VARIANTS}
    with temp_dir() as folder:
        # finish() waits for the store as long as it takes: only the loop is timed.
        settings = Settings(
            url=f"sqlite:///{folder / 'bench.db'}", home=str(folder), exit_timeout=3600
        )
        notebook = Notebook(settings)
        time_log(notebook, 1000, kwargs=False)  # create the schema, warm up
        for _ in range(repeats):
            # Interleaved, so that a burst of load elsewhere hits every variant.
            found = {
                "bare": loop_bare(n),
                "floor": time_floor(n),
                "dict": time_log(notebook, n, kwargs=False),
                "kw": time_log(notebook, n, kwargs=True),
            }
            for key, (wall_s, cpu_s) in found.items():
                wall[key].append(wall_s / n)
                cpu[key].append(cpu_s / n)
        notebook.close()

    med = {key: median(values) for key, values in wall.items()}
    med_cpu = {key: median(values) for key, values in cpu.items()}
    bare, floor = med["bare"], med["floor"]
    table = Table("per iteration, caller's time (median)")
    table.add(Row("bare loop (dict build only)", fmt_us(bare)))
    table.add(Row("floor (stamp, copy, deque)", fmt_us(floor)))
    for key, name in VARIANTS.items():
        if key in ("bare", "floor"):
            continue
        value = med[key]
        table.add(
            Row(
                name,
                fmt_us(value),
                fmt_us(floor),
                value / floor,
                f"<= {RATIO_GOAL}x",
                value / floor <= RATIO_GOAL,
            )
        )
        table.add(
            Row(
                f"{name} - bare",
                fmt_us(value - bare),
                goal=f"<= {fmt_us(OVERHEAD_GOAL)}",
                ok=value - bare <= OVERHEAD_GOAL,
            )
        )
    for key, name in VARIANTS.items():
        table.add(
            Row(
                f"CPU time: {name}",
                fmt_us(med_cpu[key]),
                fmt_us(med_cpu["floor"]) if key not in ("bare", "floor") else "-",
                med_cpu[key] / med_cpu["floor"]
                if key not in ("bare", "floor")
                else None,
            )
        )
    table.print()


if __name__ == "__main__":
    main()
