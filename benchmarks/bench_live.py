"""Live updates: seconds from ``run.log()`` in a client to the change on a stream.

A tracking server (``python -m labnotebook.server``, default settings) runs on a
fresh store; a subscriber reads its ``GET /api/v1/events`` stream, reconnecting with
the cursor whenever the server ends a stream. A client logging through the server
with default settings (a flush every 0.5 s) logs one value at a random moment, and
the latency is the time until the subscriber receives the event for that run (an
event counts once the value is in the store, so a heartbeat does not). Goal: a
median under one second. The floor is the latency of a batch written straight into
the database: what the stream itself adds.

    .venv/bin/python benchmarks/bench_live.py [--quick]
"""

from __future__ import annotations

import json
import random
import statistics
import threading
import time
from collections.abc import Callable
from pathlib import Path

import requests
from _common import (
    Row,
    Table,
    fresh_store,
    header,
    label,
    median,
    parse_args,
    store_kinds,
    temp_dir,
)
from bench_remote import tracking_server

from labnotebook import Notebook, Settings
from labnotebook._store.base import Batch
from labnotebook._store.sql import SqlStore

GOAL_SECONDS = 1.0
WAIT_LIMIT = 10.0
TOKEN = "bench-token"


class Subscriber:
    """Reads the event stream in a thread; remembers when each run changed."""

    def __init__(self, url: str):
        self.url = url
        self.arrivals: list[tuple[float, str]] = []
        self.changed = threading.Condition()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        cursor = ""
        while not self.stop.is_set():
            headers = {"Authorization": f"Bearer {TOKEN}"}
            if cursor:
                headers["Last-Event-ID"] = cursor
            try:
                with requests.get(
                    f"{self.url}/api/v1/events",
                    headers=headers,
                    stream=True,
                    timeout=(5, 60),
                ) as response:
                    kind = ""
                    for line in response.iter_lines(decode_unicode=True):
                        if line.startswith("event:"):
                            kind = line.split(":", 1)[1].strip()
                        elif line.startswith("id:"):
                            cursor = line.split(":", 1)[1].strip()
                        elif line.startswith("data:") and kind == "runs":
                            self._arrived(json.loads(line.split(":", 1)[1]))
            except requests.RequestException:
                self.stop.wait(0.1)

    def _arrived(self, data: dict[str, list[dict[str, object]]]) -> None:
        now = time.perf_counter()
        with self.changed:
            self.arrivals.extend((now, str(run["id"])) for run in data["runs"])
            self.changed.notify_all()

    def wait(self, run_id: str, after: float, done: Callable[[], bool]) -> float | None:
        """Time of the first event for ``run_id`` after ``after`` once ``done()``."""
        deadline = time.perf_counter() + WAIT_LIMIT
        checked = 0
        with self.changed:
            while True:
                for at, changed in self.arrivals[checked:]:
                    if changed == run_id and at > after and done():
                        return at
                checked = len(self.arrivals)
                remaining = deadline - time.perf_counter()
                if remaining <= 0:
                    return None
                self.changed.wait(remaining)


def log_latencies(
    server: str, store: SqlStore, home: Path, samples: int
) -> list[float]:
    """Latency of ``samples`` single log() calls, through the server."""
    subscriber = Subscriber(server)
    notebook = Notebook(Settings(url=server, token=TOKEN, home=str(home)))
    run = notebook.start(experiment="bench-live", system_metrics=False)
    subscriber.wait(run.id, 0.0, lambda: True)

    latencies: list[float] = []
    for step in range(samples):
        time.sleep(random.uniform(0.1, 0.5))

        def stored(step: int = step) -> bool:
            summary = store.get_run(run.id).metrics.get("x")
            return summary is not None and (summary.last_step or 0) >= step

        start = time.perf_counter()
        run.log(x=float(step), step=step)
        arrived = subscriber.wait(run.id, start, stored)
        latencies.append(WAIT_LIMIT if arrived is None else arrived - start)
    run.finish()
    notebook.close()
    subscriber.stop.set()
    return latencies


def direct_latencies(
    server: str, store: SqlStore, home: Path, samples: int
) -> list[float]:
    """Latency of a batch written straight into the database (no client writer)."""
    subscriber = Subscriber(server)
    notebook = Notebook(Settings(url=store.url, home=str(home)))
    run = notebook.start(experiment="bench-live-floor", system_metrics=False)
    run_id = run.id
    subscriber.wait(run_id, 0.0, lambda: True)
    latencies: list[float] = []
    for step in range(samples):
        time.sleep(random.uniform(0.05, 0.2))
        start = time.perf_counter()
        store.write(Batch(run_id=run_id, points={"x": ([step], [1.0], [time.time()])}))
        arrived = subscriber.wait(run_id, start, lambda: True)
        latencies.append(WAIT_LIMIT if arrived is None else arrived - start)
    run.finish()
    notebook.close()
    subscriber.stop.set()
    return latencies


def p90(values: list[float]) -> float:
    return statistics.quantiles(values, n=10)[-1] if len(values) > 1 else values[0]


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    samples, floor_samples = (5, 5) if args.quick else (50, 20)
    header(
        "bench_live",
        args.quick,
        f"{samples} run.log() calls through the server to an event stream "
        f"subscriber, default settings; floor: {floor_samples} direct writes",
    )

    table = Table("seconds from the write to the event")
    for kind in store_kinds():
        with temp_dir() as folder, fresh_store(kind, folder) as url:
            store = SqlStore(url)
            store.prepare()
            with tracking_server(url, folder, TOKEN) as server:
                floor = direct_latencies(server, store, folder / "home", floor_samples)
                latencies = log_latencies(server, store, folder / "home", samples)
            store.close()
        middle = median(latencies)
        table.add(
            Row(f"{label(kind)} direct write, median (floor)", f"{median(floor):.3f} s")
        )
        table.add(
            Row(
                f"{label(kind)} run.log() to the stream, median",
                f"{middle:.3f} s",
                f"{median(floor):.3f} s",
                middle / median(floor),
                f"< {GOAL_SECONDS:g} s",
                middle < GOAL_SECONDS,
            )
        )
        table.add(
            Row(
                f"{label(kind)} run.log() to the stream, p90", f"{p90(latencies):.3f} s"
            )
        )
    table.print()


if __name__ == "__main__":
    main()
