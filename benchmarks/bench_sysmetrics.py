"""What sampling system metrics costs a training loop.

A busy loop stands in for training: per iteration, some pure-Python arithmetic
and a 96x96 numpy matrix product, then ``run.log()`` of two metrics. It runs for
a fixed wall time in three variants, taking turns in each repetition:

- off: ``start(system_metrics=False)``, the floor;
- 10 s: the sampler at the default interval;
- 1 s: the sampler ten times as often.

Figures per variant, medians of the repetitions (the variants take turns, in a
new order in each repetition):

- the CPU time of the sampler thread itself (``time.thread_time()`` read inside
  it) as a percentage of one core over the run's wall time; goal: under 1 % at
  10 s and at 1 s;
- the loop's throughput per second of its own CPU time, against the floor's;
  goal: at least 0.95x. The sampler holds the interpreter lock no longer than
  its CPU time, so what it takes from the loop beyond this is bounded by the
  figure above;
- the loop's throughput per second of wall time, against the floor's, without a
  goal: on a shared machine other processes move it far more than the sampler.

SQLite store in a temporary folder; the store does not matter here.

    .venv/bin/python benchmarks/bench_sysmetrics.py [--quick]
"""

from __future__ import annotations

import os

# One thread for the matrix product, so that the loop is one busy core.
for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, "1")

import time  # noqa: E402

import numpy as np  # noqa: E402
from _common import (  # noqa: E402
    Row,
    Table,
    fmt_us,
    header,
    median,
    parse_args,
    temp_dir,
)

from labnotebook import Notebook, Settings  # noqa: E402

CPU_GOAL = 1.0  # percent of one core
THROUGHPUT_GOAL = 0.95
VARIANTS = {"off": 0.0, "10 s": 10.0, "1 s": 1.0}


def busy_loop(notebook: Notebook, interval: float, seconds: float) -> dict[str, float]:
    """Train for ``seconds``; returns throughput and the sampler's CPU use."""
    a = np.random.default_rng(0).random((96, 96))
    run = notebook.start(experiment="bench-sysmetrics", system_metrics=interval > 0)
    sampler = run._sampler
    started = time.perf_counter()
    cpu_started = time.thread_time()
    deadline = started + seconds
    iterations = 0
    while time.perf_counter() < deadline:
        total = 0
        for i in range(300):
            total += i * i % 7
        b = a @ a
        run.log(loss=float(b[0, 0]) / (iterations + 1), work=float(total))
        iterations += 1
    loop_seconds = time.perf_counter() - started
    loop_cpu = time.thread_time() - cpu_started
    if not run.finish():
        raise SystemExit("the store did not take every point; see the warnings")
    wall = time.perf_counter() - started

    found = {
        "rate": iterations / loop_seconds,
        "cpu_rate": iterations / loop_cpu,
        "cpu": 0.0,
        "samples": 0.0,
    }
    if sampler is not None:
        found["cpu"] = 100 * sampler.cpu_time / wall
        found["samples"] = float(sampler.step)
        found["per_sample"] = sampler.cpu_time / max(1, sampler.step)
    return found


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    seconds, repeats = (2.0, 1) if args.quick else (15.0, 5)
    header(
        "bench_sysmetrics",
        args.quick,
        f"busy loop of {seconds:.0f} s per variant x {repeats} repeats (median), "
        "SQLite store",
    )

    results: dict[str, list[dict[str, float]]] = {name: [] for name in VARIANTS}
    with temp_dir() as folder:
        base = Settings(url=f"sqlite:///{folder / 'bench.db'}", home=str(folder))
        notebooks = {
            name: Notebook(
                base.replace(system_metrics_interval=interval or 10.0),
            )
            for name, interval in VARIANTS.items()
        }
        busy_loop(notebooks["off"], 0.0, 0.5)  # create the schema, warm up
        names = list(VARIANTS)
        for repeat in range(repeats):
            # Interleaved, so that a burst of load elsewhere hits every variant,
            # and in a new order each time, so that none always goes first.
            for name in names[repeat % 3 :] + names[: repeat % 3]:
                interval = VARIANTS[name]
                results[name].append(busy_loop(notebooks[name], interval, seconds))
        for notebook in notebooks.values():
            notebook.close()

    def med(name: str, figure: str) -> float:
        return median([r.get(figure, 0.0) for r in results[name]])

    floor = med("off", "cpu_rate")
    wall_floor = med("off", "rate")
    table = Table("sampler CPU time (share of one core) and loop throughput (median)")
    table.add(Row("loop per CPU s, sampler off", f"{floor:,.0f} it/s"))
    table.add(Row("loop per wall s, sampler off", f"{wall_floor:,.0f} it/s"))
    for name in ("10 s", "1 s"):
        cpu = med(name, "cpu")
        table.add(
            Row(
                f"sampler CPU, every {name}",
                f"{cpu:.4f} %",
                goal=f"< {CPU_GOAL:g} %",
                ok=cpu < CPU_GOAL,
            )
        )
        table.add(
            Row(
                f"CPU per sample, every {name}",
                fmt_us(med(name, "per_sample")),
            )
        )
        rate = med(name, "cpu_rate")
        table.add(
            Row(
                f"loop per CPU s, every {name}",
                f"{rate:,.0f} it/s",
                f"{floor:,.0f} it/s",
                rate / floor,
                f">= {THROUGHPUT_GOAL}x",
                rate / floor >= THROUGHPUT_GOAL,
            )
        )
        wall = med(name, "rate")
        table.add(
            Row(
                f"loop per wall s, every {name}",
                f"{wall:,.0f} it/s",
                f"{wall_floor:,.0f} it/s",
                wall / wall_floor,
            )
        )
    table.print()


if __name__ == "__main__":
    main()
