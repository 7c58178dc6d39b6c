"""Runs in Jupyter: a live summary of a run in the notebook, and cells run again.

Two parts, both used only inside a running IPython shell (a Jupyter kernel, or
the terminal ``ipython``); this module never imports IPython itself, so plain
Python pays nothing for it.

- A displayed run (a cell ending with ``run``, ``display(run)``, ``run.display()``)
  shows its name, status, id, elapsed time, the latest values of its first
  metrics by name and a sparkline of each, drawn here as inline SVG. While the
  run is active in this process a daemon thread refreshes the display every
  :data:`REFRESH_INTERVAL` seconds through an IPython display handle, reading only
  the points logged since the last refresh (one store read), and updates it a
  last time as soon as ``finish()`` has written the run's end.
- When the first run starts in a shell, ``pre_run_cell`` and ``post_run_cell``
  hooks are registered. A cell is known by the cell id of the execute request
  (the notebook's id of the cell), else by its source. When a cell that started
  runs is run again and starts a run, the runs its previous execution started
  that are still active are finished first: ``killed`` if that execution was
  interrupted, ``failed`` (with the traceback) if it raised, else ``finished``.
"""

from __future__ import annotations

import hashlib
import html
import logging
import math
import sys
import threading
import time
import traceback
import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from ._errors import LabnotebookError
from ._threads import start_thread

if TYPE_CHECKING:
    from ._run import Run
    from ._store.base import RunRecord

logger = logging.getLogger(__name__)

#: Seconds between refreshes of a live run summary.
REFRESH_INTERVAL = 1.5
#: Metrics shown in a summary (the first ones by name, system metrics left out).
SHOWN_METRICS = 4
#: Points kept per shown metric for its sparkline; older ones are thinned.
MAX_POINTS = 512
#: Buckets of the first read of a metric's curve (up to 3 points each).
SEED_BUCKETS = 128
SPARK_WIDTH = 120
SPARK_HEIGHT = 24
SYSTEM_PREFIX = "sys/"

_STATUS_COLOURS = {
    "running": "#1d6fd6",
    "finished": "#2e7d32",
    "failed": "#c62828",
    "killed": "#e65100",
    "crashed": "#6d4c41",
}


def ipython_shell() -> Any | None:
    """The running IPython shell, or None; IPython is not imported to find out."""
    module = sys.modules.get("IPython")
    if module is None:
        return None
    try:
        return module.get_ipython()
    except Exception:  # a half-imported or unusual IPython: behave as plain Python
        return None


# ------------------------------------------------------------------ summary


@dataclass
class _Series:
    """One metric's points for its sparkline: every ``stride``-th point received,
    the stride doubling whenever more than :data:`MAX_POINTS` are kept, and the
    latest point."""

    steps: list[int] = field(default_factory=list)
    values: list[float] = field(default_factory=list)
    #: The next step to read from the store.
    cursor: int = 0
    stride: int = 1
    received: int = 0
    last: tuple[int, float] | None = None

    def extend(self, steps: Sequence[int], values: Sequence[float]) -> None:
        for step, value in zip(steps, values, strict=True):
            if step < self.cursor:
                continue
            self.last = (int(step), float(value))
            self.cursor = self.last[0] + 1
            if self.received % self.stride == 0:
                self.steps.append(self.last[0])
                self.values.append(self.last[1])
                if len(self.steps) > MAX_POINTS:
                    self.stride *= 2
                    self.steps = self.steps[::2]
                    self.values = self.values[::2]
            self.received += 1

    def points(self) -> tuple[list[int], list[float]]:
        """The kept points, ending with the latest one."""
        steps, values = list(self.steps), list(self.values)
        if self.last is not None and (not steps or steps[-1] != self.last[0]):
            steps.append(self.last[0])
            values.append(self.last[1])
        return steps, values


def _read_from(shown: list[_Series | None]) -> int:
    """The first step to read for the shown metrics.

    From the highest step read so far (everything while none has points), so
    that a metric logged rarely never makes every refresh read the others' whole
    history again. Points logged at that same step after the last read
    (``run.log({"val/loss": ...}, step=step)``) are read; points logged at a
    lower step than the chart has reached show in the dashboard only.
    """
    cursors = [s.cursor for s in shown if s is not None and s.cursor > 0]
    return max(cursors) - 1 if cursors else 0


class RunSummary:
    """What a displayed run shows, and the points its sparklines are drawn from."""

    def __init__(self, run: Run):
        self.run = run
        self._series: dict[str, _Series] = {}
        self._lock = threading.Lock()
        self._record: RunRecord | None = run._record
        self._error: str | None = None
        #: Shown live: the status stays ``running`` until the read after the end.
        self.live = False
        self._read_whole = False

    def _keys(self) -> list[str]:
        """All metric keys known without a store read, system metrics left out."""
        known: set[str] = set(self._series)
        if self._record is not None:
            known.update(self._record.metrics)
        # Key sets this process logged; copied in one step, as log() adds to it.
        for keys in self.run._keys.copy():
            known.update(keys)
        return sorted(k for k in known if not k.startswith(SYSTEM_PREFIX))

    def read(self, *, whole: bool = False) -> None:
        """Read what is new from the store.

        whole: also read the run itself (status, end time, summaries): done for a
            run that is not active here, and once when an active run ends.
            Otherwise only the points logged since the last read are fetched.
        """
        store = self.run._notebook.store
        try:
            if whole:
                self._record = store.get_run(self.run.id)
                self._read_whole = True
            elif self.run._record is not None:
                # Kept current by rename() and set_tags() without a store read.
                self._record = self.run._record
            shown = self._keys()[:SHOWN_METRICS]
            if not shown:
                return
            with self._lock:
                new = [k for k in shown if k not in self._series]
            downsample = getattr(store, "downsample", None)
            if new and downsample is not None:
                # A metric seen for the first time: its whole curve in a bounded
                # number of buckets (min, max and last of each), however long.
                found = downsample([(self.run.id, k) for k in new], SEED_BUCKETS)
                with self._lock:
                    for key, curve in zip(new, found, strict=True):
                        seed = self._series[key] = _Series()
                        if curve is not None:
                            ordered = sorted(
                                zip(curve.steps, curve.values, strict=True)
                            )
                            seed.extend(
                                [p[0] for p in ordered], [p[1] for p in ordered]
                            )
                if not whole:
                    return
            with self._lock:
                start = _read_from([self._series.get(k) for k in shown])
            data = store.history(self.run.id, shown, start, None)
            with self._lock:
                for key in shown:
                    columns = data.get(key)
                    if columns is not None:
                        steps, values, _ = columns
                        self._series.setdefault(key, _Series()).extend(steps, values)
            self._error = None
        except Exception as exc:  # a summary never breaks the notebook
            logger.debug(
                "run %s: could not read for its summary", self.run.id, exc_info=True
            )
            self._error = f"{type(exc).__name__}: {exc}"

    def html(self) -> str:
        """The summary as HTML; every piece of user text is escaped."""
        run = self.run
        record = self._record
        active = run.is_active
        if self.live and not self._read_whole:
            # Ended while this read ran: what it read may be short of the end.
            status = "running"
        elif run._final_status is not None:
            status = run._final_status
        elif active:
            status = "running"
        else:
            status = record.status if record is not None else "unknown"
        name = record.name if record is not None else run.id[:8]
        experiment = record.experiment if record is not None else ""
        tags = record.tags if record is not None else []
        elapsed = ""
        if record is not None:
            ended = None if active else record.ended_at
            end = time.time() if ended is None else ended
            elapsed = _duration(end - record.started_at)

        keys = self._keys()
        shown = keys[:SHOWN_METRICS]
        rows = []
        with self._lock:
            for key in shown:
                series = self._series.get(key)
                value: float | None = None
                step: int | None = None
                points: tuple[list[int], list[float]] = ([], [])
                if series is not None and series.last is not None:
                    step, value = series.last
                    points = series.points()
                elif record is not None and key in record.metrics:
                    value = record.metrics[key].last
                    step = record.metrics[key].last_step
                rows.append(_metric_row(key, value, step, *points))
        more = len(keys) - len(shown)

        colour = _STATUS_COLOURS.get(status, "#555")
        head = (
            f'<strong style="font-size:1.05em">{_esc(name)}</strong> '
            f'<span style="color:{colour};font-weight:600">{_esc(status)}</span>'
            f' <code title="run id">{_esc(run.id[:8])}</code>'
        )
        if experiment:
            head += f' <span style="color:#666">· {_esc(experiment)}</span>'
        if elapsed:
            head += f' <span style="color:#666">· {_esc(elapsed)}</span>'
        parts = [f"<div>{head}</div>"]
        if tags:
            chips = " ".join(
                '<span style="background:#eef2f7;border-radius:3px;padding:0 4px">'
                f"{_esc(tag)}</span>"
                for tag in tags
            )
            parts.append(f'<div style="margin-top:2px">{chips}</div>')
        if rows:
            parts.append(
                '<table style="border-collapse:collapse;margin-top:4px">'
                + "".join(rows)
                + "</table>"
            )
        else:
            parts.append('<div style="color:#666;margin-top:4px">no metrics yet</div>')
        if more > 0:
            parts.append(
                f'<div style="color:#666">and {more} more metric'
                f"{'s' if more > 1 else ''}</div>"
            )
        failure = _last_line(record.error) if record is not None else ""
        if status == "failed" and failure:
            parts.append(
                '<div style="color:#c62828;margin-top:4px;white-space:pre-wrap">'
                f"{_esc(failure)}</div>"
            )
        link = dashboard_link(run)
        if link is not None:
            parts.append(
                f'<div style="margin-top:4px"><a href="{_esc(link)}" target="_blank" '
                'rel="noopener noreferrer">Open in the dashboard</a></div>'
            )
        if self._error is not None:
            parts.append(
                '<div style="color:#c62828;margin-top:4px">could not read the store: '
                f"{_esc(self._error)}</div>"
            )
        return (
            '<div class="labnotebook-run" style="font-family:system-ui,sans-serif;'
            "font-size:13px;border:1px solid #d0d7de;border-radius:6px;"
            f'padding:6px 10px;max-width:640px">{"".join(parts)}</div>'
        )

    def bundle(self) -> dict[str, str]:
        """The display data: HTML, and the run's repr as plain text."""
        page = self.html()
        run, record = self.run, self._record
        name = record.name if record is not None else ""
        return {"text/html": page, "text/plain": f"<Run {run.id[:8]} {name!r}>"}


def _last_line(error: str | None, limit: int = 300) -> str:
    """The last non-blank line of a traceback (the exception), cut to ``limit``."""
    lines = [line for line in (error or "").splitlines() if line.strip()]
    if not lines:
        return ""
    last = lines[-1].strip()
    return last if len(last) <= limit else last[: limit - 1] + "…"


def _esc(text: object) -> str:
    return html.escape(str(text), quote=True)


def _duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes:02d}m {secs:02d}s"
    if minutes:
        return f"{minutes}m {secs:02d}s"
    return f"{secs}s"


def _number(value: float | None) -> str:
    if value is None:
        return "-"
    if math.isnan(value) or math.isinf(value):
        return str(value)
    return f"{value:.4g}"


def _metric_row(
    key: str,
    value: float | None,
    step: int | None,
    steps: list[int],
    values: list[float],
) -> str:
    at = f"step {step}" if step is not None else ""
    return (
        "<tr>"
        '<td style="padding:1px 8px 1px 0;text-align:left">'
        f"<code>{_esc(key)}</code></td>"
        f'<td style="padding:1px 8px;text-align:right;font-variant-numeric:'
        f'tabular-nums">{_esc(_number(value))}</td>'
        f'<td style="padding:1px 8px;color:#666;text-align:left">{_esc(at)}</td>'
        f'<td style="padding:1px 0">{sparkline(steps, values, title=key)}</td>'
        "</tr>"
    )


def sparkline(steps: Sequence[int], values: Sequence[float], *, title: str = "") -> str:
    """An inline SVG line of values against steps (non-finite values left out).

    Thinned to the pixel width keeping each column's first, lowest, highest and
    last point, so spikes stay visible.
    """
    points = [
        (float(s), float(v))
        for s, v in zip(steps, values, strict=True)
        if math.isfinite(float(v))
    ]
    w, h = SPARK_WIDTH, SPARK_HEIGHT
    svg = (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" '
        f'viewBox="0 0 {w} {h}" role="img" aria-label="{_esc(title)}">'
        f"<title>{_esc(title)}</title>"
    )
    if not points:
        return svg + "</svg>"
    x0, x1 = points[0][0], points[-1][0]
    lo = min(v for _, v in points)
    hi = max(v for _, v in points)
    pad = 2.0

    def x(step: float) -> float:
        return pad if x1 == x0 else pad + (step - x0) / (x1 - x0) * (w - 2 * pad)

    def y(value: float) -> float:
        if hi == lo:
            return h / 2
        return pad + (hi - value) / (hi - lo) * (h - 2 * pad)

    columns: dict[int, list[tuple[float, float]]] = {}
    for step, value in points:
        columns.setdefault(round(x(step)), []).append((step, value))
    kept: list[tuple[float, float]] = []
    for column in columns.values():
        chosen = {0, len(column) - 1}
        chosen.add(min(range(len(column)), key=lambda i: column[i][1]))
        chosen.add(max(range(len(column)), key=lambda i: column[i][1]))
        kept.extend(column[i] for i in sorted(chosen))
    if len(kept) == 1:
        cx, cy = x(kept[0][0]), y(kept[0][1])
        return svg + f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="2" fill="#1d6fd6"/></svg>'
    line = " ".join(f"{x(s):.1f},{y(v):.1f}" for s, v in kept)
    return (
        svg + '<polyline fill="none" stroke="#1d6fd6" stroke-width="1.5" '
        f'stroke-linejoin="round" points="{line}"/></svg>'
    )


def dashboard_link(run: Run) -> str | None:
    """The run's page on the dashboard, if one is known.

    The ``dashboard_url`` setting, else the tracking server the run is logged to.
    """
    base = run._notebook.settings.dashboard_url
    if not base:
        url = run._notebook.store.url
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            return None
        # Credentials and query strings never go into a link.
        netloc = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
        if parts.port is not None:
            netloc += f":{parts.port}"
        base = f"{parts.scheme}://{netloc}{parts.path}"
    return f"{base.rstrip('/')}/runs/{run.id}"


def summary_html(run: Run) -> str:
    """A run's summary as HTML, read from the store once (for ``_repr_html_``)."""
    summary = RunSummary(run)
    summary.read(whole=not run.is_active)
    return summary.html()


# --------------------------------------------------------------- live display


class _Live:
    """One run's displays, refreshed by one daemon thread until the run ends."""

    def __init__(self, run: Run, summary: RunSummary):
        self.run = run
        self.summary = summary
        self.handles: list[Any] = []
        #: Set by finish() once the run's end is written.
        self.ended = run._ended
        self.thread: threading.Thread | None = None

    def _loop(self) -> None:
        try:
            ended = self.ended.is_set()
            while True:
                self.summary.read(whole=ended)
                self._publish()
                if ended:
                    return
                ended = self.ended.wait(REFRESH_INTERVAL)
        except Exception:  # never let a display thread raise into the kernel
            logger.debug("run %s: live display stopped", self.run.id, exc_info=True)
        finally:
            with _live_lock:
                if _live.get(self.run.id) is self:
                    del _live[self.run.id]

    def _publish(self) -> None:
        data = self.summary.bundle()
        with _live_lock:
            handles = list(self.handles)
        for handle in handles:
            handle.update(data, raw=True)


_live: dict[str, _Live] = {}
_live_lock = threading.Lock()


def display(run: Run) -> None:
    """Show the run's summary in the notebook, live while the run is active."""
    if ipython_shell() is None:
        raise LabnotebookError(
            "run.display() needs IPython (a Jupyter notebook or the ipython shell); "
            "in plain Python use print(run) or run.summary"
        )
    import IPython.display

    ipython_display: Any = IPython.display.display

    with _live_lock:
        live = _live.get(run.id)
    if live is not None and run.is_active:
        handle = ipython_display(live.summary.bundle(), raw=True, display_id=True)
        with _live_lock:
            live.handles.append(handle)
        return

    summary = RunSummary(run)
    if not run.is_active:
        # Not logging here: one read now, no refreshes.
        summary.read(whole=True)
        ipython_display(summary.bundle(), raw=True)
        return
    summary.live = True
    handle = ipython_display(summary.bundle(), raw=True, display_id=True)
    live = _Live(run, summary)
    live.handles.append(handle)
    with _live_lock:
        _live[run.id] = live
    live.thread = start_thread(live._loop, name=f"labnotebook-display-{run.id[:8]}")


# ------------------------------------------------------------- cells re-run


@dataclass
class _CellRuns:
    """The runs one execution of a cell started, and how that execution ended."""

    execution: int
    runs: list[weakref.ref[Run]] = field(default_factory=list)
    status: str = "finished"
    error: str | None = None


class CellTracker:
    """Finishes the runs a cell started when that cell runs again and starts one."""

    def __init__(self) -> None:
        self.execution = 0
        self.cell: str | None = None
        self.cells: dict[str, _CellRuns] = {}
        self._lock = threading.Lock()

    def pre_run_cell(self, info: Any) -> None:
        with self._lock:
            self.execution += 1
            self.cell = cell_key(info)

    def post_run_cell(self, result: Any) -> None:
        with self._lock:
            cell, self.cell = self.cell, None
            found = self.cells.get(cell) if cell is not None else None
            if found is None or found.execution != self.execution:
                return
            error = getattr(result, "error_in_exec", None)
            if isinstance(error, KeyboardInterrupt):
                found.status = "killed"
            elif isinstance(error, BaseException):
                found.status = "failed"
                found.error = "".join(
                    traceback.format_exception(type(error), error, error.__traceback__)
                )
            # Forget cells whose runs have all ended.
            for key in [k for k, c in self.cells.items() if not _any_active(c)]:
                del self.cells[key]

    def before_start(self) -> None:
        """End the runs an earlier execution of the current cell left active."""
        with self._lock:
            cell = self.cell
            found = self.cells.get(cell) if cell is not None else None
            if found is None or found.execution == self.execution:
                return
            del self.cells[cell]  # type: ignore[arg-type]
        for ref in found.runs:
            run = ref()
            if run is not None and run.is_active:
                run.finish(found.status, error=found.error)

    def started(self, run: Run) -> None:
        with self._lock:
            if self.cell is None:
                return
            found = self.cells.get(self.cell)
            if found is None or found.execution != self.execution:
                found = self.cells[self.cell] = _CellRuns(self.execution)
            found.runs.append(weakref.ref(run))


def _any_active(cell: _CellRuns) -> bool:
    return any((run := ref()) is not None and run.is_active for ref in cell.runs)


def cell_key(info: Any) -> str | None:
    """The cell id of the execute request, else a hash of the cell's source."""
    cell_id = getattr(info, "cell_id", None)
    if isinstance(cell_id, str) and cell_id:
        return f"id:{cell_id}"
    source = getattr(info, "raw_cell", None)
    if isinstance(source, str):
        return "source:" + hashlib.sha256(source.encode("utf-8", "replace")).hexdigest()
    return None


_tracker: CellTracker | None = None
_tracker_lock = threading.Lock()


def _install(shell: Any) -> CellTracker | None:
    global _tracker
    with _tracker_lock:
        if _tracker is not None:
            return _tracker
        events = getattr(shell, "events", None)
        if events is None:
            return None
        tracker = CellTracker()
        # Registered while a cell runs: that cell's pre_run_cell has passed, so
        # learn it from the result IPython keeps for the cell being run.
        result = getattr(getattr(shell, "displayhook", None), "exec_result", None)
        if result is not None:
            tracker.execution = 1
            tracker.cell = cell_key(getattr(result, "info", None))
        events.register("pre_run_cell", tracker.pre_run_cell)
        events.register("post_run_cell", tracker.post_run_cell)
        _tracker = tracker
        return tracker


def before_start() -> CellTracker | None:
    """Called by Notebook.start: in IPython, end what a re-run cell left running."""
    shell = ipython_shell()
    if shell is None:
        return None
    try:
        tracker = _install(shell)
        if tracker is not None:
            tracker.before_start()
        return tracker
    except Exception:  # starting a run never fails because of the notebook hooks
        logger.warning("could not end the runs of the cell run again", exc_info=True)
        return None
