"""The background writer: moves logged values from memory to the store.

Two daemon threads per run. The *collector* drains the run's in-memory buffer into
batches every flush interval (or sooner when the buffer fills). The *sender*
writes them to the store. Batches wait in memory up to ``buffer_limit`` points;
past that, and whenever the store fails, they go to the run's spool file, which the
sender replays when the store is back. A batch still unwritten one flush interval
after it was drained is copied to the spool as well, so a process killed with
SIGKILL loses at most its last flush interval. Replays are harmless: stores apply
each batch id once.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
import warnings
from array import array
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ._errors import StoreError
from ._spool import Spool
from ._store.base import Batch, Store
from ._threads import start_thread

logger = logging.getLogger(__name__)

#: Entries appended by Run.log(): (step, time, keys, values packed as float64
#: bytes, fields).
Entry = tuple[int, float, tuple[str, ...], Any, Any]

MAX_RETRY_INTERVAL = 10.0
WAKE_ENTRIES = 20_000
#: Larger drains are cut into several batches, so that encoding one for the spool
#: never holds the interpreter lock for long.
MAX_BATCH_POINTS = 50_000


class _Waiter:
    """Told when the batch it rode in reached the store (ok) or the spool."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.ok = False


@dataclass
class _Queued:
    batch: Batch
    drained_at: float
    spooled: bool = False
    points: int = field(default=0)


class Writer:
    """Moves one run's logged data to its store without ever blocking the caller."""

    def __init__(
        self,
        store: Store,
        run_id: str,
        spool: Spool,
        *,
        flush_interval: float,
        heartbeat_interval: float,
        buffer_limit: int,
        retry_interval: float,
        on_error: Callable[[str], None] | None = None,
    ):
        self.store = store
        self.run_id = run_id
        self.spool = spool
        self.flush_interval = flush_interval
        self.heartbeat_interval = heartbeat_interval
        self.buffer_limit = buffer_limit
        self.retry_interval = retry_interval
        self._on_error = on_error

        #: Appended to by Run.log() without a lock (deque appends are atomic).
        self.buffer: collections.deque[Entry] = collections.deque()
        self._control: list[Callable[[Batch], None]] = []
        #: Called with the last batch of every drain, before control changes, to
        #: add data kept outside the buffer (console output).
        self.sources: list[Callable[[Batch], None]] = []
        self._lock = threading.Lock()
        #: Held while the buffer is being drained, by the collector or by close().
        self._drain_lock = threading.Lock()
        self._wake = threading.Event()
        self._send_ready = threading.Condition(self._lock)
        self._outbox: collections.deque[_Queued] = collections.deque()
        self._outbox_points = 0
        self._spilling = False
        self._written_copies: set[str] = set()
        self._waiters: dict[str, _Waiter] = {}
        self._closing = False
        self._collector_done = False
        self._sender_done = threading.Event()
        self._next_retry = 0.0
        self._retry_wait = retry_interval
        self._last_heartbeat = 0.0
        self._warned_unavailable = False
        #: The store's last answer was one that waiting does not change (a
        #: refused token): close() then leaves the rest in the spool at once.
        self._refused = False
        self.written_points = 0

        self._collector = start_thread(
            self._collect_loop, name=f"labnotebook-collect-{run_id[:8]}"
        )
        self._sender = start_thread(
            self._send_loop, name=f"labnotebook-send-{run_id[:8]}"
        )

    # ------------------------------------------------------------ caller side

    def wake(self) -> None:
        if not self._wake.is_set():
            self._wake.set()

    def add(self, change: Callable[[Batch], None]) -> None:
        """Queue a change to the next batch (a note, a status...)."""
        with self._lock:
            self._control.append(change)
        self._wake.set()

    def submit_now(self, batch: Batch) -> None:
        """Hand over a ready batch (used for a run's first batch)."""
        self._enqueue(batch, time.time())

    def flush(self, timeout: float) -> bool:
        """Wait until what was logged so far is in the store (True) or spooled."""
        waiter = _Waiter()

        def mark(batch: Batch) -> None:
            batch.heartbeat = batch.heartbeat or time.time()
            self._waiters[batch.id] = waiter

        self.add(mark)
        if not waiter.event.wait(timeout):
            return False
        return waiter.ok

    def _settle(self, batch_id: str, ok: bool) -> None:
        waiter = self._waiters.pop(batch_id, None)
        if waiter is not None:
            waiter.ok = ok
            waiter.event.set()

    def close(self, timeout: float) -> bool:
        """Flush everything and stop; True if it all reached the store in time.

        What is not in the store when ``timeout`` runs out is left in the spool file
        for a later ``labnotebook sync``.
        """
        deadline = time.monotonic() + timeout
        with self._lock:
            self._closing = True
        self._wake.set()
        self._collector.join(max(0.0, deadline - time.monotonic()))
        with self._send_ready:
            self._send_ready.notify_all()
        while not self._sender_done.wait(
            min(0.1, max(0.0, deadline - time.monotonic()))
        ):
            if self._refused or time.monotonic() >= deadline:
                break

        if self._sender_done.is_set():
            complete = not self.spool.pending
            if complete:
                self.spool.close(remove=True)
            return complete

        # Out of time: make sure whatever is still in memory is on disk.
        with self._lock:
            for queued in self._outbox:
                if not queued.spooled:
                    self.spool.append(queued.batch)
                    queued.spooled = True
            self._drain_into_spool_locked()
        if self._refused:
            logger.warning(
                "run %s: store %s refused this process's token; what it did not take "
                "is in %s, run `labnotebook sync` with a valid token to send it",
                self.run_id,
                _safe(self.store.url),
                self.spool.path,
            )
            return False
        logger.warning(
            "run %s: store %s did not take everything within %.0f s; the rest is in "
            "%s, run `labnotebook sync` to send it",
            self.run_id,
            _safe(self.store.url),
            timeout,
            self.spool.path,
        )
        return False

    # ------------------------------------------------------------- collector

    def _collect_loop(self) -> None:
        while True:
            self._wake.wait(self.flush_interval)
            self._wake.clear()
            try:
                closing = self._collect_once()
            except Exception:  # keep the training process alive whatever happens
                logger.exception("run %s: collector failed", self.run_id)
                closing = self._closing
            if closing and not self.buffer:
                break
        with self._send_ready:
            self._collector_done = True
            self._send_ready.notify_all()

    def _collect_once(self) -> bool:
        now = time.time()
        with self._lock:
            closing = self._closing
            control, self._control = self._control, []
        with self._drain_lock:
            batches = self._drain(control)
        last = batches[-1]
        if now - self._last_heartbeat >= self.heartbeat_interval or closing:
            last.heartbeat = now
            self._last_heartbeat = now
        for batch in batches:
            if not batch.is_empty():
                self._enqueue(batch, now)
        self._copy_stale(now)
        return closing

    def _drain(self, control: list[Callable[[Batch], None]]) -> list[Batch]:
        """Turn buffered entries into batches of at most MAX_BATCH_POINTS points.

        Control changes (notes, status, flush markers) ride in the last batch, so
        they apply after every value logged before them; so does what the
        ``sources`` add.
        """
        popleft = self.buffer.popleft
        entries = [popleft() for _ in range(len(self.buffer))]
        batches: list[Batch] = []
        start = 0
        points = 0
        for i, entry in enumerate(entries):
            points += len(entry[2])
            if points >= MAX_BATCH_POINTS:
                batches.append(self._build(entries[start : i + 1]))
                start = i + 1
                points = 0
        batches.append(self._build(entries[start:]))
        for source in self.sources:
            try:
                source(batches[-1])
            except Exception:  # never lose the drained values to a failing source
                logger.exception("run %s: could not add console output", self.run_id)
        for change in control:
            change(batches[-1])
        return batches

    def _build(self, entries: list[Entry]) -> Batch:
        """One batch from entries, column by column with numpy."""
        batch = Batch(run_id=self.run_id)
        groups: dict[int, list[int]] = {}
        for index, entry in enumerate(entries):
            group = groups.get(id(entry[2]))
            if group is None:
                groups[id(entry[2])] = [index]
            else:
                group.append(index)
            if entry[4] is not None:
                batch.fields.append((entry[0], entry[1], entry[4]))

        parts: dict[str, list[tuple[Any, Any, Any, Any]]] = {}
        for indices in groups.values():
            members = [entries[i] for i in indices]
            keys = members[0][2]
            if not keys:
                continue
            n = len(members)
            steps = np.fromiter([e[0] for e in members], np.int64, n)
            times = np.fromiter([e[1] for e in members], np.float64, n)
            values = np.frombuffer(b"".join([e[3] for e in members]), "<f8")
            values = values.reshape(n, len(keys))
            order = np.asarray(indices, dtype=np.int64)
            for column, key in enumerate(keys):
                parts.setdefault(key, []).append(
                    (steps, values[:, column], times, order)
                )

        for key, pieces in parts.items():
            if len(pieces) == 1:
                steps, values, times, _ = pieces[0]
            else:
                # Several groups of entries share this key: keep logging order.
                order = np.argsort(np.concatenate([p[3] for p in pieces]))
                steps = np.concatenate([p[0] for p in pieces])[order]
                values = np.concatenate([p[1] for p in pieces])[order]
                times = np.concatenate([p[2] for p in pieces])[order]
            batch.points[key] = (
                _to_array("q", steps),
                _to_array("d", values),
                _to_array("d", times),
            )
        return batch

    def _enqueue(self, batch: Batch, now: float) -> None:
        points = batch.point_count
        with self._send_ready:
            if self._spilling or self._outbox_points + points > self.buffer_limit:
                self._spilling = True
                self.spool.append(batch)
                self._settle(batch.id, ok=False)
            else:
                self._outbox.append(_Queued(batch, now, points=points))
                self._outbox_points += points
            self._send_ready.notify_all()

    def _copy_stale(self, now: float) -> None:
        with self._lock:
            for queued in self._outbox:
                if (
                    not queued.spooled
                    and now - queued.drained_at >= self.flush_interval / 2
                ):
                    self.spool.append(queued.batch)
                    queued.spooled = True

    def _drain_into_spool_locked(self) -> None:
        control, self._control = self._control, []
        with self._drain_lock:
            drained = self._drain(control)
        for batch in drained:
            if not batch.is_empty():
                self.spool.append(batch)

    # ---------------------------------------------------------------- sender

    def _send_loop(self) -> None:
        try:
            while self._send_step():
                pass
        finally:
            self._sender_done.set()

    def _send_step(self) -> bool:
        """Send one batch or one spool pass; False when there is nothing left."""
        with self._send_ready:
            while True:
                has_outbox = bool(self._outbox)
                retry_due = time.monotonic() >= self._next_retry
                spool_due = self.spool.pending and retry_due and not has_outbox
                if (has_outbox and retry_due) or spool_due:
                    break
                if self._collector_done and not has_outbox and not self.spool.pending:
                    return False
                wait = max(0.05, self._next_retry - time.monotonic())
                self._send_ready.wait(min(wait, self.flush_interval))
            queued = self._outbox[0] if has_outbox else None

        if queued is not None:
            self._send_queued(queued)
        else:
            self._replay_spool()
        return True

    def _send_queued(self, queued: _Queued) -> None:
        try:
            self.store.write(queued.batch)
        except (StoreError, OSError) as exc:
            self._store_failed(exc)
            return
        except Exception as exc:
            self._reject(queued.batch, exc)
            with self._lock:
                if queued.spooled:
                    self._written_copies.add(queued.batch.id)
                self._pop(queued)
                self._settle(queued.batch.id, ok=False)
            return
        self._store_ok()
        with self._lock:
            self.written_points += queued.points
            if queued.spooled:
                self._written_copies.add(queued.batch.id)
            self._pop(queued)
            self._settle(queued.batch.id, ok=True)

    def _pop(self, queued: _Queued) -> None:
        self._outbox.popleft()
        self._outbox_points -= queued.points

    def _replay_spool(self) -> None:
        for batch_id, text, end in self.spool.read_pending():
            if batch_id not in self._written_copies:
                try:
                    batch = Batch.from_json(text)
                except (ValueError, TypeError, KeyError):
                    logger.warning("run %s: unreadable spool line skipped", self.run_id)
                    self.spool.advance(end)
                    continue
                try:
                    self.store.write(batch)
                except (StoreError, OSError) as exc:
                    self._store_failed(exc)
                    return
                except Exception as exc:
                    self._reject(batch, exc)
                else:
                    self.written_points += batch.point_count
            self.spool.advance(end)
        self._store_ok()
        with self._lock:
            if self.spool.reset_if_drained():
                self._spilling = False
                self._written_copies.clear()

    def _store_failed(self, exc: Exception) -> None:
        self._refused = bool(getattr(exc, "permanent", False))
        with self._lock:
            self._spilling = True
            for queued in self._outbox:
                if not queued.spooled:
                    self.spool.append(queued.batch)
                self._settle(queued.batch.id, ok=False)
            self._outbox.clear()
            self._outbox_points = 0
            self._next_retry = time.monotonic() + self._retry_wait
            self._retry_wait = min(self._retry_wait * 2, MAX_RETRY_INTERVAL)
        if not self._warned_unavailable:
            self._warned_unavailable = True
            shown = _safe(self.store.url)
            reason = str(exc)
            if shown not in reason:
                reason = f"cannot write to store {shown}: {reason}"
            self._report(
                f"{reason}; logging continues into {self.spool.path} and is sent "
                "when the store is back"
            )
        else:
            logger.info("run %s: store still failing: %s", self.run_id, exc)

    def _store_ok(self) -> None:
        self._refused = False
        self._retry_wait = self.retry_interval
        if self._warned_unavailable:
            self._warned_unavailable = False
            logger.warning("run %s: store is reachable again", self.run_id)

    def _reject(self, batch: Batch, exc: Exception) -> None:
        path = self.spool.reject(batch)
        self._report(
            f"store refused a batch ({type(exc).__name__}: {exc}); it was kept in "
            f"{path}"
        )

    def _report(self, message: str) -> None:
        logger.warning("run %s: %s", self.run_id, message)
        if self._on_error is not None:
            self._on_error(message)
        else:
            warnings.warn(message, RuntimeWarning, stacklevel=2)


def _to_array(code: str, values: Any) -> array[Any]:
    out = array(code)
    out.frombytes(np.ascontiguousarray(values).tobytes())
    return out


def _safe(url: str) -> str:
    from ._store.sql import _safe_url

    return _safe_url(url) if "://" in url and not url.startswith("http") else url
