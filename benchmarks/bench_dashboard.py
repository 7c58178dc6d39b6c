"""The dashboard in headless Chromium against a real tracking server.

Three figures, each on every store kind (SQLite; PostgreSQL unless
``LABNOTEBOOK_BENCH_PG=off``):

- runs page: time from navigation to the first rows of a table of 10,000 runs
  (``--quick``: 1,000). Floor: the page fetching the first page of runs itself.
  Goal: under 1 s.
- run page: time from navigation to 20 charts of 100,000 points each drawn
  (``--quick``: 10,000). Floor: the page fetching the 20 downsampled series itself.
  Goal: under 1 s.
- memory: the tab's JS heap (after garbage collection) once a run page has followed
  an hour of logging at 100 steps/s of 4 metrics (360,000 steps), replayed in 2
  minutes (``--quick``: 36,000 steps in 8 s), against the heap after the first
  tenth of it, when the charts' buffers are full. Goal: within 20 %.

Chromium is Debian's (``scripts/ensure-chromium``); the dashboard is built first
(``scripts/build-frontend``).

    .venv/bin/python benchmarks/bench_dashboard.py [--quick]
"""

from __future__ import annotations

import importlib.util
import math
import statistics
import time
import uuid
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from _common import (
    Row,
    Table,
    fmt_ms,
    fresh_store,
    header,
    label,
    parse_args,
    store_kinds,
    temp_dir,
)
from playwright.sync_api import TimeoutError as PlaywrightTimeout
from playwright.sync_api import sync_playwright

from labnotebook._schema import experiments, runs, series
from labnotebook._store.base import Batch, RunCreate
from labnotebook._store.sql import SqlStore

ROOT = Path(__file__).resolve().parent.parent
GOAL_S = 1.0
HEAP_GOAL = 1.20
REPEATS = 5
CHARTS = 20
SOAK_METRICS = 4
# Playwright's wait_for_function evaluates its predicate with eval, which the
# dashboard's Content-Security-Policy forbids; the benchmark lifts the policy.
CONTEXT: dict[str, Any] = {
    "viewport": {"width": 1400, "height": 900},
    "bypass_csp": True,
}


def _load_helpers() -> Any:
    """The browser tests' helpers: server process, Chromium options, build step."""
    path = ROOT / "tests" / "browser" / "helpers.py"
    spec = importlib.util.spec_from_file_location("browser_helpers", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


helpers = _load_helpers()


# ------------------------------------------------------------------ seeding


def seed_runs(url: str, count: int) -> None:
    """``count`` finished runs with params and two metric summaries, inserted in bulk
    (as a direct database writer would) so that seeding takes seconds."""
    store = SqlStore(url)
    store.prepare()
    store.close()
    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    now = time.time()
    with engine.begin() as conn:
        exp_id = conn.execute(
            experiments.insert().values(name="bench", created_at=now)
        ).inserted_primary_key[0]
        ids = [uuid.uuid4().hex for _ in range(count)]
        conn.execute(
            runs.insert(),
            [
                {
                    "id": run_id,
                    "experiment_id": exp_id,
                    "name": f"run-{i:05d}",
                    "status": "finished" if i % 7 else "failed",
                    "params": {
                        "optim": {"lr": 10 ** -(1 + i % 4), "name": "adam"},
                        "batch": 32 << (i % 3),
                        "seed": i,
                    },
                    "tags": ["bench", "sweep"] if i % 2 else ["bench"],
                    "started_at": now - count + i,
                    "ended_at": now - count + i + 60,
                    "heartbeat_at": now - count + i + 60,
                    "updated_at": now - count + i + 60,
                    "host": "node-1",
                    "command": "python train.py",
                }
                for i, run_id in enumerate(ids)
            ],
        )
        conn.execute(
            series.insert(),
            [
                {
                    "run_id": run_id,
                    "key": key,
                    "count": 1000,
                    "last": 1 / (i + 1),
                    "last_step": 999,
                    "last_time": now,
                    "min": 0.0,
                    "max": 2.0,
                }
                for i, run_id in enumerate(ids)
                for key in ("loss", "val/acc")
            ],
        )
    engine.dispose()


def seed_long_run(url: str, points: int) -> str:
    """One run with CHARTS metrics of ``points`` points each, written by the store."""
    store = SqlStore(url)
    store.prepare()
    run_id = uuid.uuid4().hex
    now = time.time()
    store.write(
        Batch(run_id, create=RunCreate("long", "long-run", {"lr": 0.1}, [], now))
    )
    steps = list(range(points))
    times = [now + s * 0.01 for s in steps]
    for k in range(CHARTS):
        values = [
            math.sin(s / 500 + k) + (5.0 if s == points // 3 else 0.0) for s in steps
        ]
        store.write(Batch(run_id, points={f"metric-{k:02d}": (steps, values, times)}))
    store.write(Batch(run_id, status="finished", ended_at=time.time()))
    store.close()
    return run_id


class Soak:
    """A running run that logs SOAK_METRICS metrics per step, like a training job."""

    def __init__(self, url: str):
        self.store = SqlStore(url)
        self.store.prepare()
        self.run_id = uuid.uuid4().hex
        self.next_step = 1
        now = time.time()
        create = RunCreate("soak", "soak-run", {"lr": 0.01}, [], now)
        first = {f"m{k}": ([0], [1.0], [now]) for k in range(SOAK_METRICS)}
        self.store.write(Batch(self.run_id, create=create, points=first, heartbeat=now))

    def log(self, steps: int, seconds: float) -> None:
        """Log ``steps`` more steps, in batches every 0.25 s spread over ``seconds``."""
        ticks = max(1, int(seconds / 0.25))
        stop = self.next_step + steps
        per_tick = math.ceil(steps / ticks)
        start = time.monotonic()
        for tick in range(ticks):
            now = time.time()
            batch = list(range(self.next_step, min(stop, self.next_step + per_tick)))
            if not batch:
                break
            values = {
                f"m{k}": (
                    batch,
                    [math.cos(s / 1000 + k) for s in batch],
                    [now] * len(batch),
                )
                for k in range(SOAK_METRICS)
            }
            self.store.write(Batch(self.run_id, points=values, heartbeat=now))
            self.next_step = batch[-1] + 1
            delay = start + (tick + 1) * 0.25 - time.monotonic()
            if delay > 0:
                time.sleep(delay)

    def finish(self) -> None:
        self.store.write(Batch(self.run_id, status="finished", ended_at=time.time()))
        self.store.close()


# ------------------------------------------------------------------ measuring


def wait_until(page: Any, predicate: str, what: str, timeout: float = 60_000) -> None:
    """Wait for a JS predicate on every animation frame; on a timeout, keep a
    screenshot and the requests made in test-artifacts/ to see why."""
    try:
        page.wait_for_function(predicate, polling="raf", timeout=timeout)
    except PlaywrightTimeout:
        shot = helpers.screenshot_path(f"bench-dashboard-{what}")
        page.screenshot(path=shot)
        requests = page.evaluate(
            "performance.getEntriesByType('resource').map((e) => "
            "`${Math.round(e.startTime)}-${Math.round(e.responseEnd)} ms ${e.name}`)"
        )
        print(f"timed out waiting for {what}; screenshot {shot}; requests:", flush=True)
        print("\n".join(requests), flush=True)
        raise


def _now_ms(page: Any) -> float:
    return float(page.evaluate("performance.now()"))


def runs_page(browser: Any, base: str, repeats: int) -> tuple[float, float]:
    """Median seconds to the first rows of the runs page, and the fetch floor."""
    shown: list[float] = []
    floors: list[float] = []
    for _ in range(repeats):
        context = browser.new_context(**CONTEXT)
        page = context.new_page()
        page.goto(base + "/")
        wait_until(
            page,
            "document.querySelectorAll('.body .row[data-run-id]').length > 10",
            "runs-page",
        )
        shown.append(_now_ms(page) / 1000)
        floors.append(
            page.evaluate(
                """async () => { const t = performance.now();
                await (await fetch('/api/v1/runs?limit=200&offset=0')).json();
                return (performance.now() - t) / 1000 }"""
            )
        )
        context.close()
    return statistics.median(shown), statistics.median(floors)


def run_page(browser: Any, base: str, run_id: str, repeats: int) -> tuple[float, float]:
    """Median seconds until every chart of the long run is drawn, and the floor."""
    shown: list[float] = []
    floors: list[float] = []
    for _ in range(repeats):
        context = browser.new_context(**CONTEXT)
        page = context.new_page()
        page.goto(f"{base}/runs/{run_id}")
        wait_until(
            page,
            f"""() => {{
              const charts = document.querySelectorAll('figure.chart[data-points]');
              return charts.length === {CHARTS} && [...charts].every(
                (c) => Number(c.dataset.points) > 0 && c.querySelector('canvas'));
            }}""",
            "run-page",
        )
        shown.append(_now_ms(page) / 1000)
        floors.append(
            page.evaluate(
                f"""async () => {{ const t = performance.now();
                await Promise.all([...Array({CHARTS}).keys()].map(async (k) => {{
                  const key = 'metric-' + String(k).padStart(2, '0');
                  const r = await fetch('/api/v1/series?run={run_id}&key=' + key);
                  return r.json(); }}));
                return (performance.now() - t) / 1000 }}"""
            )
        )
        context.close()
    return statistics.median(shown), statistics.median(floors)


def fmt_heap(nbytes: float) -> str:
    return f"{nbytes / 2**20:.1f} MiB"


def heap(page: Any, cdp: Any) -> float:
    for _ in range(3):
        cdp.send("HeapProfiler.collectGarbage")
    page.wait_for_timeout(200)
    return float(cdp.send("Runtime.getHeapUsage")["usedSize"])


def soak(
    browser: Any, base: str, url: str, steps: int, seconds: float
) -> dict[str, Any]:
    """Heap of a run page once its charts are full (after a tenth of the steps), and
    again after the other nine tenths."""
    writer = Soak(url)
    context = browser.new_context(**CONTEXT)
    page = context.new_page()
    cdp = context.new_cdp_session(page)
    page.goto(f"{base}/runs/{writer.run_id}")
    charts = "document.querySelectorAll('figure.chart[data-points]').length"
    wait_until(page, f"{charts} === {SOAK_METRICS}", "soak-page")

    def caught_up() -> None:
        last = writer.next_step - 1
        wait_until(
            page,
            f"""() => [...document.querySelectorAll('figure.chart')].every(
                  (c) => Number(c.dataset.lastStep) === {last})""",
            "soak-catch-up",
            timeout=120_000,
        )
        page.wait_for_timeout(1500)

    warm_up = steps // 10
    writer.log(warm_up, seconds / 10)
    caught_up()
    start = heap(page, cdp)
    writer.log(steps - warm_up, seconds * 0.9)
    caught_up()
    end = heap(page, cdp)
    held = page.evaluate(
        "Math.max(...[...document.querySelectorAll('figure.chart')]"
        ".map((c) => Number(c.dataset.points)))"
    )
    writer.finish()
    context.close()
    return {"start": start, "end": end, "held": int(held)}


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    n_runs = 1_000 if args.quick else 10_000
    n_points = 10_000 if args.quick else 100_000
    soak_steps = 36_000 if args.quick else 360_000
    soak_seconds = 8.0 if args.quick else 120.0
    repeats = 2 if args.quick else REPEATS
    header(
        "bench_dashboard",
        args.quick,
        f"runs page with {n_runs:,} runs; run page with {CHARTS} x {n_points:,} "
        f"points; {soak_steps:,} live steps x {SOAK_METRICS} metrics in "
        f"{soak_seconds:.0f} s",
    )
    helpers.build_dashboard()

    table = Table(f"dashboard in headless Chromium (medians of {repeats} page loads)")
    with sync_playwright() as p, temp_dir() as folder:
        browser = p.chromium.launch(
            executable_path=helpers.CHROMIUM, args=helpers.CHROMIUM_ARGS
        )
        for kind in store_kinds():
            name = label(kind)
            with fresh_store(kind, folder) as url:
                seed_runs(url, n_runs)
                long_id = seed_long_run(url, n_points)
                log = folder / f"server-{kind}.log"
                with helpers.running_server(url, log, workers=2) as base:
                    shown, floor = runs_page(browser, base, repeats)
                    table.add(
                        Row(
                            f"{name}: runs page, {n_runs:,} runs",
                            fmt_ms(shown),
                            fmt_ms(floor),
                            shown / floor,
                            "< 1000 ms",
                            shown < GOAL_S,
                        )
                    )
                    shown, floor = run_page(browser, base, long_id, repeats)
                    table.add(
                        Row(
                            f"{name}: run page, {CHARTS} x {n_points:,} points",
                            fmt_ms(shown),
                            fmt_ms(floor),
                            shown / floor,
                            "< 1000 ms",
                            shown < GOAL_S,
                        )
                    )
                    result = soak(browser, base, url, soak_steps, soak_seconds)
                    ratio = result["end"] / result["start"]
                    table.add(
                        Row(
                            f"{name}: JS heap after {soak_steps:,} live steps",
                            fmt_heap(result["end"]),
                            fmt_heap(result["start"]),
                            ratio,
                            f"<= {HEAP_GOAL:.2f}x",
                            ratio <= HEAP_GOAL,
                        )
                    )
                    table.add(
                        Row(
                            f"{name}: points held per live chart", f"{result['held']:,}"
                        )
                    )
        browser.close()
    table.print()


if __name__ == "__main__":
    main()
