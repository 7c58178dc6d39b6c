"""Live updates: ``GET /api/v1/events``, a server-sent event stream of changed runs.

Every event is ``event: runs`` with ``{"runs": [...], "cursor": "..."}``; a run
appears when it was created, logged to, noted, renamed, re-tagged, changed status
(``{"id", "updated_at", "status", "experiment"}``) or was deleted (``{"id",
"deleted": true}``). The event's ``id:`` line is the cursor, so a browser's
``EventSource`` resumes where it left off (``Last-Event-ID``), on this server process
or on any other one in front of the same database.

The database is the source of truth, so the stream sees writes made through any
server process and writes made straight into the database. One :class:`ChangeFeed`
per server process watches it for every open stream:

* it polls ``runs.updated_at`` (indexed) for rows changed since its high-water mark,
  minus an overlap that covers transactions committing out of order, and skips
  (run, updated_at) pairs it already reported;
* on PostgreSQL it also LISTENs on the channel that every write transaction notifies,
  so a change is seen when it commits, not at the next poll; a notified run that no
  longer exists was deleted;
* it compares the number of runs with the runs it knows and, when they differ (and
  every half minute anyway), reads all run ids to find deleted runs.

A stream ends by itself after :data:`STREAM_SECONDS` with an ``event: end`` that
carries the cursor, so it never holds a worker thread for long; comments are sent
every :data:`HEARTBEAT_SECONDS` so proxies keep the connection open. When the server
cannot tell what changed since a cursor (the cursor is older than what this process
has watched), the first event carries ``"reset": true``: reload the list of runs.
"""

from __future__ import annotations

import collections
import contextlib
import hashlib
import itertools
import json
import logging
import math
import os
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from flask import Blueprint, Response, request

from .._errors import StoreUnavailableError, ValidationError
from .._schema import effective_status, experiments, runs
from .._store.sql import CHANGES_CHANNEL, SqlStore
from ._auth import read
from ._errors import ApiError
from ._http import check_params, store

logger = logging.getLogger(__name__)

bp = Blueprint("events", __name__)

#: Seconds a stream stays open before it ends with ``event: end``.
STREAM_SECONDS = 30.0
#: Seconds between keep-alive comments on a quiet stream.
HEARTBEAT_SECONDS = 10.0
#: Milliseconds a browser waits before reconnecting (the stream's ``retry:`` field).
RECONNECT_MS = 500
#: Seconds between polls of the database on SQLite (no notifications there).
POLL_SECONDS = 0.25
#: Seconds between polls on PostgreSQL, where notifications wake the feed at once.
LISTEN_POLL_SECONDS = 1.0
#: Seconds between attempts to LISTEN again after the listening connection failed.
LISTEN_RETRY_SECONDS = 5.0
#: Shortest gap between two polls, so a burst of notifications is one query.
MIN_POLL_GAP = 0.05
#: Seconds of ``updated_at`` re-read behind the high-water mark, for transactions
#: that commit after a later one (SQLite stamps a write before it waits for the lock).
OVERLAP_SECONDS = {"postgresql": 5.0, "sqlite": 30.0}
#: Seconds between counts of the runs (deletion check) and full id comparisons.
COUNT_SECONDS = 1.0
FULL_SCAN_SECONDS = 30.0
#: How long a feed keeps changes for streams that resume, and how many at most.
KEEP_SECONDS = 600.0
KEEP_CHANGES = 50_000
#: A feed with no stream for this long stops (and releases its connection).
IDLE_SECONDS = 300.0
#: Most (run, updated_at) fingerprints carried in a cursor.
CURSOR_MARKS = 100
#: Runs per event at most; more changes are sent as several events.
EVENT_RUNS = 500

_FINGERPRINT_CHARS = 8


@dataclass(frozen=True)
class Change:
    """One change seen by a feed: a run changed (or was deleted)."""

    seq: int
    id: str
    updated_at: float
    status: str | None
    experiment: str | None
    deleted: bool

    def to_json(self) -> dict[str, Any]:
        if self.deleted:
            return {"id": self.id, "deleted": True, "updated_at": self.updated_at}
        return {
            "id": self.id,
            "updated_at": self.updated_at,
            "status": self.status,
            "experiment": self.experiment,
        }


@dataclass(frozen=True)
class Cursor:
    """Where a stream is: a high-water mark of ``updated_at``, and what it sent.

    ``marks`` are fingerprints of the (run, updated_at) pairs sent within the
    overlap below ``mark``, so a resumed stream does not send them again.
    """

    mark: float
    marks: frozenset[str] = frozenset()

    def encode(self) -> str:
        return f"{self.mark:.6f}" + (
            "~" + "".join(sorted(self.marks)) if self.marks else ""
        )

    @classmethod
    def decode(cls, text: str) -> Cursor:
        mark_text, _, marks_text = text.partition("~")
        try:
            mark = float(mark_text)
        except ValueError:
            mark = math.nan
        n = _FINGERPRINT_CHARS
        if (
            not math.isfinite(mark)
            or len(marks_text) % n
            or len(marks_text) > n * CURSOR_MARKS
            or any(c not in "0123456789abcdef" for c in marks_text)
        ):
            raise ValidationError(
                f"cursor {text[:80]!r} is not a cursor of this stream; reconnect "
                "without one (or with the id of the last event received)"
            )
        return cls(
            mark, frozenset(marks_text[i : i + n] for i in range(0, len(marks_text), n))
        )


def fingerprint(run_id: str, updated_at: float) -> str:
    """A short digest of one (run, updated_at) pair, for cursors."""
    digest = hashlib.blake2b(f"{run_id}:{updated_at!r}".encode(), digest_size=4)
    return digest.hexdigest()


class ChangeFeed:
    """Watches one store for changed runs on behalf of every stream of a process.

    Streams call :meth:`subscribe`, then :meth:`wait` in a loop, then
    :meth:`unsubscribe`. The feed's thread runs while streams are open (and a while
    after), with one database connection for polling and, on PostgreSQL, one
    listening connection.
    """

    def __init__(self, store: SqlStore):
        self.store = store
        self.dialect = store.dialect
        self.overlap = OVERLAP_SECONDS.get(self.dialect, 30.0)
        self.pid = os.getpid()
        self._cond = threading.Condition()
        self._log: collections.deque[tuple[Change, float, float]] = collections.deque()
        self._seq = 0
        self._mark = 0.0
        self._since = math.inf
        self._seen: dict[str, float] = {}
        self._known: set[str] = set()
        self._subscribers = 0
        self._idle_since = time.monotonic()
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._stop = threading.Event()
        self._last_count = 0.0
        self._last_scan = 0.0

    # ------------------------------------------------------------ stream side

    def subscribe(self, timeout: float = 10.0) -> tuple[int, float]:
        """Register a stream; returns the feed's position and mark to start from."""
        with self._cond:
            self._subscribers += 1
            if self._thread is None:
                self._ready.clear()
                self._thread = threading.Thread(
                    target=self._run, name="labnotebook-change-feed", daemon=True
                )
                self._thread.start()
        if not self._ready.wait(timeout):
            self.unsubscribe()
            raise StoreUnavailableError(
                "the live stream cannot read the store right now; retry in a few "
                "seconds"
            )
        with self._cond:
            return self._seq, self._mark

    def unsubscribe(self) -> None:
        """Tell the feed a stream has ended."""
        with self._cond:
            self._subscribers -= 1
            if self._subscribers <= 0:
                self._idle_since = time.monotonic()

    @property
    def since(self) -> float:
        """The mark from which this feed has watched the store without a gap."""
        with self._cond:
            return self._since

    def wait(self, after: int, timeout: float) -> tuple[list[Change], int, float, bool]:
        """Changes after position ``after``, waiting up to ``timeout`` for one.

        Returns the changes, the new position, the feed's mark, and whether
        changes were lost because the stream fell behind what the feed keeps.
        """
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._seq <= after:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return [], after, self._mark, False
                self._cond.wait(remaining)
            count = self._seq - after
            lost = count > len(self._log)
            tail = list(itertools.islice(reversed(self._log), count))
            tail.reverse()
            return [entry[0] for entry in tail], self._seq, self._mark, lost

    def deletes_after(self, mark: float) -> list[Change]:
        """Deletes this feed saw at a mark above ``mark``."""
        with self._cond:
            return [c for c, at, _ in self._log if c.deleted and at > mark]

    def changes_since(self, mark: float) -> list[Change]:
        """Runs changed above ``mark - overlap``, read from the database now."""
        try:
            with self._connect() as conn:
                rows = conn.execute(
                    self._query().where(runs.c.updated_at > mark - self.overlap)
                ).all()
        except sa.exc.DBAPIError as exc:
            raise StoreUnavailableError(
                f"the live stream cannot read the store: {exc.orig}"
            ) from exc
        return [
            Change(0, row.id, float(row.updated_at), row.status, row.experiment, False)
            for row in rows
        ]

    def stop(self) -> None:
        """Stop watching (streams still open get no more changes)."""
        self._stop.set()
        thread = self._thread
        if thread is not None:
            thread.join(5.0)

    # ------------------------------------------------------------- feed side

    def _run(self) -> None:
        listener = _Listener(self.store) if self.dialect == "postgresql" else None
        try:
            while not self._start(listener):
                if self._idle() or self._stop.wait(1.0):
                    return
            self._ready.set()
            last_poll = 0.0
            while not self._stop.is_set() and not self._idle():
                notified = self._wait_for_changes(listener, last_poll)
                last_poll = time.monotonic()
                try:
                    self._poll(notified, listening=bool(listener and listener.active))
                except Exception as exc:
                    logger.warning("live stream: reading changes failed: %s", exc)
                    self._stop.wait(1.0)
        finally:
            if listener is not None:
                listener.close()

    def _idle(self) -> bool:
        """True (and the feed gives up its thread) when no stream needs it."""
        with self._cond:
            idle = (
                self._subscribers <= 0
                and time.monotonic() - self._idle_since >= IDLE_SECONDS
            )
            if idle or self._stop.is_set():
                self._thread = None
                return True
            return False

    def _start(self, listener: _Listener | None) -> bool:
        """Learn the current runs and the database's clock; False on failure."""
        try:
            self.store.prepare()
            if listener is not None:
                listener.open()
            with self._connect() as conn:
                now = self._db_now(conn)
                rows = conn.execute(sa.select(runs.c.id, runs.c.updated_at)).all()
        except Exception as exc:
            logger.warning("live stream cannot read the store: %s", exc)
            return False
        with self._cond:
            self._mark = now
            self._since = now
            self._known = {row.id for row in rows}
            self._seen = {row.id: float(row.updated_at) for row in rows}
            self._last_scan = self._last_count = time.monotonic()
        return True

    def _wait_for_changes(
        self, listener: _Listener | None, last_poll: float
    ) -> set[str]:
        """Sleep until the next poll is due or a notification arrives."""
        gap = MIN_POLL_GAP - (time.monotonic() - last_poll)
        if gap > 0:
            self._stop.wait(gap)
        if listener is not None:
            notified = listener.wait(LISTEN_POLL_SECONDS)
            if notified is not None:
                return notified
        self._stop.wait(POLL_SECONDS)
        return set()

    def _poll(self, notified: set[str], listening: bool) -> None:
        with self._cond:
            mark = self._mark
        query = self._query()
        with self._connect() as conn:
            condition = runs.c.updated_at > mark - self.overlap
            if notified:
                condition = sa.or_(condition, runs.c.id.in_(sorted(notified)))
            rows = list(conn.execute(query.where(condition)))
            found = {row.id for row in rows}
            gone = {run_id for run_id in notified if run_id not in found}

            if self._scan_due(conn, found, listening):
                self._last_scan = self._last_count = time.monotonic()
                current = set(conn.execute(sa.select(runs.c.id)).scalars())
                gone |= self._known - current
                late = current - self._known - found
                if late:
                    rows += conn.execute(query.where(runs.c.id.in_(sorted(late))))

        self._publish(rows, gone)

    def _scan_due(self, conn: sa.Connection, found: set[str], listening: bool) -> bool:
        """Whether to compare all run ids now: periodically, or when counts differ."""
        now = time.monotonic()
        if now - self._last_scan >= FULL_SCAN_SECONDS:
            return True
        if listening and now - self._last_count < COUNT_SECONDS:
            return False
        self._last_count = now
        count = conn.execute(sa.select(sa.func.count()).select_from(runs)).scalar_one()
        return int(count) != len(self._known | found)

    def _publish(self, rows: Iterable[Any], gone: set[str]) -> None:
        now = time.monotonic()
        with self._cond:
            mark = self._mark
            fresh: list[Change] = []
            for row in rows:
                updated = float(row.updated_at)
                self._known.add(row.id)
                if self._seen.get(row.id) == updated:
                    continue
                self._seen[row.id] = updated
                mark = max(mark, updated)
                self._seq += 1
                fresh.append(
                    Change(
                        self._seq, row.id, updated, row.status, row.experiment, False
                    )
                )
            for run_id in sorted(gone):
                self._known.discard(run_id)
                self._seen.pop(run_id, None)
                self._seq += 1
                fresh.append(Change(self._seq, run_id, mark, None, None, True))
            self._mark = mark
            self._log.extend((change, mark, now) for change in fresh)
            self._trim(now)
            if fresh:
                self._cond.notify_all()

    def _trim(self, now: float) -> None:
        while self._log and (
            len(self._log) > KEEP_CHANGES or now - self._log[0][2] > KEEP_SECONDS
        ):
            _, at, _ = self._log.popleft()
            self._since = max(self._since, at)

    def _query(self) -> sa.Select[Any]:
        status = effective_status(time.time(), self.store.crash_timeout)
        return sa.select(
            runs.c.id,
            runs.c.updated_at,
            status.label("status"),
            experiments.c.name.label("experiment"),
        ).join(experiments, runs.c.experiment_id == experiments.c.id)

    def _db_now(self, conn: sa.Connection) -> float:
        if self.dialect == "postgresql":
            now = conn.execute(
                sa.select(sa.func.extract("epoch", sa.func.clock_timestamp()))
            ).scalar_one()
            return float(now)
        return time.time()

    @contextlib.contextmanager
    def _connect(self) -> Iterator[sa.Connection]:
        with self.store.engine.connect() as conn, conn.begin():
            yield conn


class _Listener:
    """A PostgreSQL connection that LISTENs for changed runs (used by one thread)."""

    def __init__(self, store: SqlStore):
        url = store.engine.url.set(drivername="postgresql")
        self._dsn = url.render_as_string(hide_password=False)
        self._conn: Any = None
        self._tried = -math.inf

    @property
    def active(self) -> bool:
        return self._conn is not None

    def open(self) -> None:
        """Connect and LISTEN, unless connected or tried in the last few seconds."""
        if self._conn is not None:
            return
        if time.monotonic() - self._tried < LISTEN_RETRY_SECONDS:
            return
        self._tried = time.monotonic()
        import psycopg

        try:
            conn = psycopg.connect(self._dsn, autocommit=True, connect_timeout=5)
            conn.execute(f"LISTEN {CHANGES_CHANNEL}")
        except Exception as exc:
            logger.warning("live stream cannot LISTEN, it polls instead: %s", exc)
            return
        self._conn = conn

    def wait(self, timeout: float) -> set[str] | None:
        """Ids of runs notified within ``timeout``; None when not listening."""
        self.open()
        if self._conn is None:
            return None
        notified: set[str] = set()
        try:
            for note in self._conn.notifies(timeout=timeout, stop_after=1):
                notified.add(note.payload)
            for note in self._conn.notifies(timeout=0.0):
                notified.add(note.payload)
        except Exception as exc:
            logger.warning("live stream lost its database listener: %s", exc)
            self.close()
            return None
        return notified

    def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()
            self._conn = None


# ------------------------------------------------------------------ the route

_feeds: dict[int, ChangeFeed] = {}
_feeds_lock = threading.Lock()


def feed_for(store: SqlStore) -> ChangeFeed:
    """The change feed of ``store`` in this process (one per store and process)."""
    with _feeds_lock:
        feed = _feeds.get(id(store))
        if feed is None or feed.store is not store or feed.pid != os.getpid():
            feed = _feeds[id(store)] = ChangeFeed(store)
        return feed


@bp.get("/events")
@read
def events() -> Response:
    """Server-sent events naming the runs that change, until the stream times out.

    cursor: where to resume (the ``id`` of the last event received); the
        ``Last-Event-ID`` header that browsers send on reconnect wins over it.
    experiment: only report runs of this experiment (deletes are always reported).
    """
    check_params(("cursor", "experiment"))
    text = request.headers.get("Last-Event-ID") or request.args.get("cursor")
    try:
        cursor = Cursor.decode(text) if text else None
    except ValidationError as exc:
        raise ApiError(
            400, "invalid_cursor", str(exc), {"parameter": "cursor"}
        ) from None
    experiment = request.args.get("experiment") or None

    feed = feed_for(store())
    position, mark = feed.subscribe()
    try:
        first, sent, reset, mark = _catch_up(feed, cursor, mark)
    except Exception:
        feed.unsubscribe()
        raise
    stream = _Stream(feed, position, mark, experiment)
    stream.sent.update(sent)
    response = Response(
        stream.events(first, reset),
        mimetype="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
    response.call_on_close(stream.close)
    return response


def _catch_up(
    feed: ChangeFeed, cursor: Cursor | None, mark: float
) -> tuple[list[Change], dict[str, float], bool, float]:
    """What changed since ``cursor``: runs read from the database, deletes seen.

    Returns the changes to send, the changes the cursor says were sent already,
    whether the client must reload everything (this process has not watched the
    store since the cursor), and the stream's mark.
    """
    if cursor is None:
        return [], {}, False, mark
    changes: list[Change] = []
    sent: dict[str, float] = {}
    for change in feed.changes_since(cursor.mark):
        if fingerprint(change.id, change.updated_at) in cursor.marks:
            sent[change.id] = change.updated_at
        else:
            changes.append(change)
    changes += feed.deletes_after(cursor.mark - feed.overlap)
    return changes, sent, cursor.mark < feed.since, max(mark, cursor.mark)


class _Stream:
    """One client's stream: what it was sent, and the text of its events."""

    def __init__(
        self, feed: ChangeFeed, position: int, mark: float, experiment: str | None
    ):
        self.feed = feed
        self.position = position
        self.mark = mark
        self.experiment = experiment
        self.sent: dict[str, float] = {}
        self._closed = False

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self.feed.unsubscribe()

    def events(self, first: list[Change], reset: bool) -> Iterator[str]:
        ends = time.monotonic() + STREAM_SECONDS
        yield f"retry: {RECONNECT_MS}\n\n"
        yield from self._event(self._pick(first), reset=reset, always=True)
        quiet_since = time.monotonic()

        while True:
            remaining = ends - time.monotonic()
            if remaining <= 0:
                break
            found, self.position, mark, lost = self.feed.wait(
                self.position, min(remaining, HEARTBEAT_SECONDS)
            )
            self.mark = max(self.mark, mark)
            picked = self._pick(found)
            if picked or lost:
                yield from self._event(picked, reset=lost)
                quiet_since = time.monotonic()
            elif time.monotonic() - quiet_since >= HEARTBEAT_SECONDS:
                yield ": keep-alive\n\n"
                quiet_since = time.monotonic()

        cursor = self.cursor()
        end = json.dumps(
            {"cursor": cursor, "reconnect_ms": RECONNECT_MS}, separators=(",", ":")
        )
        yield f"id: {cursor}\nevent: end\ndata: {end}\n\n"

    def _pick(self, changes: list[Change]) -> list[Change]:
        picked: list[Change] = []
        for change in changes:
            if change.deleted:
                self.sent.pop(change.id, None)
                picked.append(change)
                continue
            if self.sent.get(change.id) == change.updated_at:
                continue
            if self.experiment is not None and change.experiment != self.experiment:
                continue
            self.sent[change.id] = change.updated_at
            picked.append(change)
        return picked

    def _event(
        self, changes: list[Change], reset: bool = False, always: bool = False
    ) -> Iterator[str]:
        if not changes and not (reset or always):
            return
        floor = self.mark - self.feed.overlap
        self.sent = {k: v for k, v in self.sent.items() if v > floor}
        cursor = self.cursor()
        for i in range(0, max(len(changes), 1), EVENT_RUNS):
            body: dict[str, Any] = {
                "runs": [c.to_json() for c in changes[i : i + EVENT_RUNS]],
                "cursor": cursor,
            }
            if reset and i == 0:
                body["reset"] = True
            data = json.dumps(body, separators=(",", ":"), allow_nan=False)
            yield f"id: {cursor}\nevent: runs\ndata: {data}\n\n"

    def cursor(self) -> str:
        recent = sorted(self.sent.items(), key=lambda item: item[1])[-CURSOR_MARKS:]
        marks = frozenset(fingerprint(run_id, t) for run_id, t in recent)
        return Cursor(self.mark, marks).encode()
