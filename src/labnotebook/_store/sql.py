"""The SQL store: SQLite and PostgreSQL through SQLAlchemy Core.

Writes take the fast bulk path of each dialect (``executemany`` of one prepared
statement on SQLite, ``COPY`` on PostgreSQL) inside one transaction per batch. On
SQLite every write transaction starts with ``BEGIN IMMEDIATE``, so concurrent
writers queue on the busy timeout instead of failing with "database is locked".
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import math
import os
import threading
import time
import weakref
from array import array
from collections.abc import Iterator, MutableSequence
from operator import itemgetter
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import numpy as np
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects import sqlite as sqlite_dialect

from .._errors import (
    ConflictError,
    NotFoundError,
    StoreError,
    StoreUnavailableError,
    ValidationError,
)
from .._schema import (
    batches,
    console,
    effective_status,
    experiments,
    notes,
    points,
    runs,
    series,
    step_fields,
)
from . import migrate, rollup, sql_artifacts
from .base import (
    Artifact,
    Batch,
    Columns,
    ConsoleChunk,
    Experiment,
    Note,
    RunCreate,
    RunRecord,
    Summary,
)

if TYPE_CHECKING:
    from .._artifacts import BlobStore

logger = logging.getLogger(__name__)

SQLITE_BUSY_TIMEOUT = 60.0
PG_CONNECT_TIMEOUT = 5
MIN_PREFIX = 4
_WRITE = migrate.WRITE_OPTION
SQLITE_BUSY_RETRIES = 5
MAX_STEP = 2**63 - 1
_POINTS_RANGE = " FROM points WHERE series_id = {m} AND step >= {m} AND step <= {m}"
_HISTORY_SQL = {
    with_time: {
        dialect: "SELECT step, value"
        + (", time" if with_time else "")
        + _POINTS_RANGE.format(m=mark)
        + " ORDER BY step"
        for dialect, mark in (("sqlite", "?"), ("postgresql", "%s"))
    }
    for with_time in (True, False)
}
_COPY_POINTS = "COPY points (series_id, step, value, time) FROM STDIN (FORMAT BINARY)"
_UPSERT_POINTS = (
    "INSERT INTO points (series_id, step, value, time) VALUES ({m}, {m}, {m}, {m}) "
    "ON CONFLICT (series_id, step) "
    "DO UPDATE SET value = excluded.value, time = excluded.time"
)
_UPSERT_POINTS_SQLITE = _UPSERT_POINTS.format(m="?")
_UPSERT_POINTS_PG = _UPSERT_POINTS.format(m="%s")
# PostgreSQL's binary COPY format: a header, then per row a field count and each
# field as a length and big-endian bytes, then a trailer.
_PGCOPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + bytes(8)
_PGCOPY_TRAILER = b"\xff\xff"
_COPY_IN_ROW = np.dtype(
    [
        ("n", ">i2"),
        ("l1", ">i4"),
        ("series_id", ">i8"),
        ("l2", ">i4"),
        ("step", ">i8"),
        ("l3", ">i4"),
        ("value", ">f8"),
        ("l4", ">i4"),
        ("time", ">f8"),
    ]
)
#: PostgreSQL NOTIFY channel that carries the id of every run that changed.
CHANGES_CHANNEL = "labnotebook_changes"


def make_engine(url: str) -> sa.Engine:
    """Create an engine for a ``sqlite:///`` or ``postgresql://`` URL."""
    try:
        parsed = sa.engine.make_url(url)
    except sa.exc.ArgumentError:
        raise ValidationError(
            f"store URL {url!r} is not a valid URL; use sqlite:///path/to/file.db, "
            "postgresql://user@host/dbname or http://host:port"
        ) from None

    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return _sqlite_engine(parsed)
    if backend in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
        return sa.create_engine(
            parsed,
            pool_pre_ping=True,
            pool_size=4,
            max_overflow=8,
            connect_args={"connect_timeout": PG_CONNECT_TIMEOUT},
        )
    raise ValidationError(
        f"store URL scheme {parsed.drivername!r} is not supported; use sqlite:///, "
        "postgresql:// or http(s)://"
    )


def _sqlite_engine(parsed: sa.URL) -> sa.Engine:
    database = parsed.database
    if not database or database == ":memory:" or database.startswith("file:"):
        raise ValidationError(
            "an in-memory SQLite store cannot be shared with the background writer; "
            "give a file path, e.g. sqlite:///runs.db"
        )
    path = Path(database).expanduser()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ValidationError(
            f"cannot create the folder for SQLite store {str(path)!r}: {exc}"
        ) from None

    engine = sa.create_engine(
        parsed.set(database=str(path)),
        connect_args={"timeout": SQLITE_BUSY_TIMEOUT, "check_same_thread": False},
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: sa.Connection) -> None:
        write = conn.get_execution_options().get(_WRITE, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

    return engine


def _translate(exc: Exception, url: str) -> Exception:
    if isinstance(exc, sa.exc.OperationalError | sa.exc.InterfaceError):
        return StoreUnavailableError(
            f"store {_safe_url(url)} is unavailable: {exc.orig}"
        )
    if isinstance(exc, sa.exc.DBAPIError):
        return StoreError(f"store {_safe_url(url)} failed: {exc.orig}")
    return exc


def _safe_url(url: str) -> str:
    try:
        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return "<invalid URL>"


#: This process's stores, whose pooled connections a forked child must not share.
_stores: weakref.WeakSet[SqlStore] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for store in list(_stores):
        store._forget_connections()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


class SqlStore:
    """A store in a SQLite file or a PostgreSQL database."""

    def __init__(
        self,
        url: str,
        *,
        crash_timeout: float = 60.0,
        upgrade: bool = True,
        blobs: BlobStore | None = None,
    ):
        self.url = url
        self.crash_timeout = crash_timeout
        #: The artifact store holding the bytes of this store's artifacts.
        self.blobs = blobs
        self._members = (
            sql_artifacts.ManifestMembers(blobs) if blobs is not None else None
        )
        self.engine = make_engine(url)
        self.dialect = self.engine.dialect.name
        self._ready = not upgrade
        self._ready_lock = threading.Lock()
        _stores.add(self)

    def _forget_connections(self) -> None:
        """In a forked child: leave the parent's pooled connections to the parent.

        Two processes talking over one connection mix up each other's results;
        ``dispose(close=False)`` drops them from the child's pool without closing
        them, and the child opens its own on first use.
        """
        self.engine.dispose(close=False)
        self._ready_lock = threading.Lock()

    def prepare(self) -> None:
        """Create or upgrade the schema now (otherwise done on first use)."""
        with self._ready_lock:
            if self._ready:
                return
            try:
                migrate.upgrade(self.engine)
            except sa.exc.DBAPIError as exc:
                raise _translate(exc, self.url) from exc
            self._ready = True

    def close(self) -> None:
        self.engine.dispose()

    @contextlib.contextmanager
    def _connect(self, write: bool = False) -> Iterator[sa.Connection]:
        if not self._ready:
            self.prepare()
        try:
            with self.engine.connect() as conn:
                if write:
                    conn = conn.execution_options(**{_WRITE: True})
                with conn.begin():
                    yield conn
        except sa.exc.DBAPIError as exc:
            raise _translate(exc, self.url) from exc

    # ----------------------------------------------------------------- writing

    def write(self, batch: Batch) -> None:
        """Apply ``batch`` all-or-nothing; a batch already applied is skipped."""
        for attempt in range(SQLITE_BUSY_RETRIES):
            try:
                self._write(batch)
                return
            except StoreUnavailableError as exc:
                busy = self.dialect == "sqlite" and "locked" in str(exc)
                if not busy or attempt == SQLITE_BUSY_RETRIES - 1:
                    raise
                time.sleep(0.05 * 2**attempt)

    def _write(self, batch: Batch) -> None:
        now = time.time()
        with self._connect(write=True) as conn:
            if not self._claim_batch(conn, batch, now):
                return
            if batch.create is not None:
                self._create_run(conn, batch.run_id, batch.create, now)
            elif not conn.execute(
                sa.select(runs.c.id).where(runs.c.id == batch.run_id)
            ).first():
                raise NotFoundError(f"run {batch.run_id!r} does not exist (deleted?)")

            if batch.points:
                self._write_points(conn, batch.run_id, batch.points)
            if batch.fields:
                self._write_fields(conn, batch.run_id, batch.fields)
            if batch.notes:
                conn.execute(
                    notes.insert(),
                    [
                        {
                            "run_id": batch.run_id,
                            "step": step,
                            "created_at": t,
                            "updated_at": t,
                            "text": text,
                        }
                        for t, step, text in batch.notes
                    ],
                )
            if batch.artifacts:
                sql_artifacts.insert_artifacts(conn, batch.run_id, batch.artifacts)
            if batch.console:
                sql_artifacts.insert_console(conn, batch.run_id, batch.console)
            self._update_run_row(conn, batch, now)

    def _claim_batch(self, conn: sa.Connection, batch: Batch, now: float) -> bool:
        insert = _insert(self.dialect, batches).values(
            id=batch.id, run_id=batch.run_id, applied_at=now
        )
        claimed = conn.execute(
            insert.on_conflict_do_nothing(index_elements=["id"]).returning(batches.c.id)
        ).first()
        return claimed is not None

    def _create_run(
        self, conn: sa.Connection, run_id: str, create: RunCreate, now: float
    ) -> None:
        experiment_id = self._experiment_id(conn, create.experiment, now)
        insert = _insert(self.dialect, runs).values(
            id=run_id,
            experiment_id=experiment_id,
            name=create.name,
            status="running",
            params=create.params,
            tags=create.tags,
            started_at=create.started_at,
            heartbeat_at=now,
            updated_at=now,
            host=create.host,
            pid=create.pid,
            command=create.command,
            environment=create.environment,
        )
        conn.execute(insert.on_conflict_do_nothing(index_elements=["id"]))

    def _experiment_id(self, conn: sa.Connection, name: str, now: float) -> int:
        insert = _insert(self.dialect, experiments).values(name=name, created_at=now)
        conn.execute(insert.on_conflict_do_nothing(index_elements=["name"]))
        found = conn.execute(
            sa.select(experiments.c.id).where(experiments.c.name == name)
        ).scalar_one()
        return int(found)

    def _write_points(
        self, conn: sa.Connection, run_id: str, data: dict[str, Columns]
    ) -> None:
        keys = sorted(data)
        existing = self._series_rows(conn, run_id, keys)
        missing = [k for k in keys if k not in existing]
        if missing:
            insert = _insert(self.dialect, series).on_conflict_do_nothing(
                index_elements=["run_id", "key"]
            )
            conn.execute(insert, [{"run_id": run_id, "key": k} for k in missing])
            existing.update(self._series_rows(conn, run_id, missing))

        ids: list[int] = []
        columns: list[Columns] = []
        fresh: list[tuple[int, str, Columns]] = []
        overlapping: list[int] = []
        touched: list[tuple[int, Columns, int | None]] = []
        for key in keys:
            row = existing[key]
            cols = _dedupe(*data[key])
            series_id = int(row.id)
            ids.append(series_id)
            columns.append(cols)
            touched.append((series_id, cols, row.last_step))
            if row.last_step is not None and cols[0][0] <= row.last_step:
                overlapping.append(series_id)
            else:
                fresh.append((series_id, key, cols))

        self._insert_points(conn, ids, columns, upsert=bool(overlapping))
        rollup.record(conn, self.dialect, touched)

        updates = [
            _merge_summary(existing[key], cols) | {"sid": series_id}
            for series_id, key, cols in fresh
        ]
        if updates:
            conn.execute(
                series.update()
                .where(series.c.id == sa.bindparam("sid"))
                .values(
                    count=sa.bindparam("count"),
                    last=sa.bindparam("last"),
                    last_step=sa.bindparam("last_step"),
                    last_time=sa.bindparam("last_time"),
                    min=sa.bindparam("min"),
                    max=sa.bindparam("max"),
                ),
                updates,
            )
        for series_id in overlapping:
            self._recompute_summary(conn, series_id)

    def _series_rows(
        self, conn: sa.Connection, run_id: str, keys: list[str]
    ) -> dict[str, Any]:
        query = sa.select(series).where(
            series.c.run_id == run_id, series.c.key.in_(keys)
        )
        if self.dialect == "postgresql":
            query = query.with_for_update()
        return {row.key: row for row in conn.execute(query)}

    def _insert_points(
        self,
        conn: sa.Connection,
        ids: list[int],
        columns: list[Columns],
        upsert: bool,
    ) -> None:
        raw = conn.connection.driver_connection
        assert raw is not None
        if self.dialect == "postgresql" and not upsert:
            with raw.cursor() as cur, cur.copy(_COPY_POINTS) as copy:
                copy.write(_binary_copy_rows(ids, columns))
            return

        rows = itertools.chain.from_iterable(
            zip(
                itertools.repeat(series_id),
                np.asarray(steps).tolist(),
                np.asarray(values).tolist(),
                np.asarray(times).tolist(),
            )
            for series_id, (steps, values, times) in zip(ids, columns, strict=True)
        )
        if self.dialect == "postgresql":
            with raw.cursor() as cur:
                cur.executemany(_UPSERT_POINTS_PG, list(rows))
        else:
            raw.executemany(_UPSERT_POINTS_SQLITE, rows)

    def _recompute_summary(self, conn: sa.Connection, series_id: int) -> None:
        finite: sa.ColumnElement[bool] = points.c.value.isnot(None)
        if self.dialect == "postgresql":
            finite = points.c.value != sa.literal(float("nan"), sa.Double)
        agg = conn.execute(
            sa.select(
                sa.func.count(),
                sa.select(sa.func.min(points.c.value))
                .where(points.c.series_id == series_id, finite)
                .scalar_subquery(),
                sa.select(sa.func.max(points.c.value))
                .where(points.c.series_id == series_id, finite)
                .scalar_subquery(),
            ).where(points.c.series_id == series_id)
        ).one()
        last = conn.execute(
            sa.select(points.c.value, points.c.step, points.c.time)
            .where(points.c.series_id == series_id)
            .order_by(points.c.step.desc())
            .limit(1)
        ).one()
        conn.execute(
            series.update()
            .where(series.c.id == series_id)
            .values(
                count=agg[0],
                min=agg[1],
                max=agg[2],
                last=last.value,
                last_step=last.step,
                last_time=last.time,
            )
        )

    def _write_fields(
        self,
        conn: sa.Connection,
        run_id: str,
        rows: list[tuple[int, float, dict[str, Any]]],
    ) -> None:
        merged: dict[int, tuple[float, dict[str, Any]]] = {}
        for step, t, value in rows:
            previous = merged.get(step)
            merged[step] = (t, {**previous[1], **value} if previous else dict(value))
        insert = _insert(self.dialect, step_fields)
        combined: sa.ColumnElement[Any]
        if self.dialect == "postgresql":
            combined = step_fields.c.fields.op("||")(insert.excluded.fields)
        else:
            combined = sa.func.json_patch(step_fields.c.fields, insert.excluded.fields)
        conn.execute(
            insert.on_conflict_do_update(
                index_elements=["run_id", "step"],
                set_={"fields": combined, "time": insert.excluded.time},
            ),
            [
                {"run_id": run_id, "step": step, "time": t, "fields": value}
                for step, (t, value) in sorted(merged.items())
            ],
        )

    def _update_run_row(self, conn: sa.Connection, batch: Batch, now: float) -> None:
        values: dict[str, Any] = {"updated_at": self._clock(now)}
        if batch.heartbeat is not None:
            # The writer's own time: a batch replayed late must not make a run
            # that has died look alive.
            values["heartbeat_at"] = batch.heartbeat
        elif batch.resume:
            values["heartbeat_at"] = now
        if batch.resume:
            values.update(status="running", ended_at=None, error=None)
        if batch.status is not None:
            values["status"] = batch.status
            values["ended_at"] = batch.ended_at
            values["error"] = batch.error
        conn.execute(runs.update().where(runs.c.id == batch.run_id).values(**values))
        self._notify(conn, batch.run_id)

    def _clock(self, now: float) -> Any:
        """``updated_at`` for a change: the database's clock on PostgreSQL.

        Many machines write to one PostgreSQL, so their own clocks cannot order
        changes; SQLite is always local.
        """
        if self.dialect == "postgresql":
            return sa.func.extract("epoch", sa.func.clock_timestamp())
        return now

    def _notify(self, conn: sa.Connection, run_id: str) -> None:
        """Tell PostgreSQL listeners (live streams) that a run changed, at commit."""
        if self.dialect == "postgresql":
            conn.execute(sa.select(sa.func.pg_notify(CHANGES_CHANNEL, run_id)))

    # ----------------------------------------------------------------- reading

    def _status(self) -> sa.ColumnElement[str]:
        return effective_status(time.time(), self.crash_timeout)

    def _run_query(self) -> sa.Select[Any]:
        return sa.select(
            runs,
            experiments.c.name.label("experiment_name"),
            self._status().label("effective_status"),
        ).join(experiments, runs.c.experiment_id == experiments.c.id)

    def resolve_run_id(self, run_id: str) -> str:
        """Expand a unique prefix (at least 4 characters) into a full run id."""
        if not isinstance(run_id, str) or not run_id:
            raise ValidationError(f"run id must be a non-empty string, got {run_id!r}")
        with self._connect() as conn:
            if conn.execute(sa.select(runs.c.id).where(runs.c.id == run_id)).first():
                return run_id
            if len(run_id) < MIN_PREFIX:
                raise NotFoundError(f"no run with id {run_id!r}")
            escaped = (
                run_id.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            )
            found = (
                conn.execute(
                    sa.select(runs.c.id)
                    .where(runs.c.id.like(escaped + "%", escape="\\"))
                    .limit(2)
                )
                .scalars()
                .all()
            )
        if not found:
            raise NotFoundError(f"no run with id {run_id!r}")
        if len(found) > 1:
            raise ValidationError(
                f"run id prefix {run_id!r} matches several runs; give more characters"
            )
        return str(found[0])

    def get_run(self, run_id: str) -> RunRecord:
        full = self.resolve_run_id(run_id)
        with self._connect() as conn:
            row = conn.execute(self._run_query().where(runs.c.id == full)).one()
            summaries = self._summaries(conn, [full])
        return _record(row, summaries.get(full, {}))

    def _summaries(
        self, conn: sa.Connection, run_ids: list[str] | None
    ) -> dict[str, dict[str, Summary]]:
        query = sa.select(series)
        if run_ids is not None:
            query = query.where(series.c.run_id.in_(run_ids))
        out: dict[str, dict[str, Summary]] = {}
        for row in conn.execute(query.order_by(series.c.run_id, series.c.key)):
            out.setdefault(row.run_id, {})[row.key] = Summary(
                count=int(row._mapping["count"]),
                last=_nan(row.last),
                last_step=row.last_step,
                last_time=row.last_time,
                min=_nan(row.min),
                max=_nan(row.max),
            )
        return out

    def _filtered(
        self, query: sa.Select[Any], where: str | None, experiment: str | None
    ) -> sa.Select[Any]:
        if experiment is not None:
            query = query.where(experiments.c.name == experiment)
        if where:
            from .._query import compile_filter

            query = query.where(
                compile_filter(
                    where,
                    self.dialect,
                    now=time.time(),
                    crash_timeout=self.crash_timeout,
                )
            )
        return query

    def list_runs(
        self,
        where: str | None = None,
        experiment: str | None = None,
        order_by: str | None = None,
        descending: bool = True,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[RunRecord]:
        query = self._filtered(self._run_query(), where, experiment)
        if order_by:
            from .._query import compile_sort

            query = query.order_by(
                compile_sort(
                    order_by,
                    self.dialect,
                    descending=descending,
                    now=time.time(),
                    crash_timeout=self.crash_timeout,
                )
            )
        query = query.order_by(
            runs.c.started_at.desc() if descending else runs.c.started_at.asc(),
            runs.c.id,
        )
        if limit is not None:
            query = query.limit(limit)
        if offset:
            query = query.offset(offset)
        with self._connect() as conn:
            rows = conn.execute(query).all()
            ids = [r.id for r in rows]
            summaries = self._summaries(conn, ids if len(ids) <= 500 else None)
        return [_record(row, summaries.get(row.id, {})) for row in rows]

    def count_runs(
        self, where: str | None = None, experiment: str | None = None
    ) -> int:
        query = self._filtered(
            sa.select(sa.func.count()).select_from(
                runs.join(experiments, runs.c.experiment_id == experiments.c.id)
            ),
            where,
            experiment,
        )
        with self._connect() as conn:
            return int(conn.execute(query).scalar_one())

    def history(
        self,
        run_id: str,
        keys: list[str] | None = None,
        start: int | None = None,
        stop: int | None = None,
        with_time: bool = True,
    ) -> dict[str, Columns]:
        """Points of a run's metrics in ``[start, stop)``, in step order.

        with_time: also read wall times (otherwise the times column is empty).
        """
        full = self.resolve_run_id(run_id)
        with self._connect() as conn:
            query = sa.select(series.c.id, series.c.key).where(series.c.run_id == full)
            if keys is not None:
                query = query.where(series.c.key.in_(keys))
            ids = {row.key: row.id for row in conn.execute(query)}
            out: dict[str, Columns] = {}
            raw = conn.connection.driver_connection
            assert raw is not None
            first = 0 if start is None else start
            last = MAX_STEP if stop is None else stop - 1
            for key in keys if keys is not None else sorted(ids):
                if key in ids:
                    out[key] = self._read_points(raw, ids[key], first, last, with_time)
        return out

    def _read_points(
        self, raw: Any, series_id: int, first: int, last: int, with_time: bool
    ) -> Columns:
        # Binary results: psycopg then loads numbers without parsing text.
        cur = raw.cursor(binary=True) if self.dialect == "postgresql" else raw.cursor()
        cur.execute(_HISTORY_SQL[with_time][self.dialect], [series_id, first, last])
        rows = cur.fetchall()
        cur.close()
        if not rows:
            return array("q"), array("d"), array("d")
        steps = np.array(list(map(itemgetter(0), rows)), dtype=np.int64)
        # None (NaN on SQLite) becomes nan.
        values = np.array(list(map(itemgetter(1), rows)), dtype=np.float64)
        times = (
            np.array(list(map(itemgetter(2), rows)), dtype=np.float64)
            if with_time
            else np.empty(0)
        )
        return _as_array("q", steps), _as_array("d", values), _as_array("d", times)

    def metric_keys(self, run_id: str) -> list[str]:
        full = self.resolve_run_id(run_id)
        with self._connect() as conn:
            return list(
                conn.execute(
                    sa.select(series.c.key)
                    .where(series.c.run_id == full)
                    .order_by(series.c.key)
                ).scalars()
            )

    def step_fields(
        self, run_id: str, start: int | None = None, stop: int | None = None
    ) -> list[tuple[int, float, dict[str, Any]]]:
        full = self.resolve_run_id(run_id)
        query = sa.select(step_fields).where(step_fields.c.run_id == full)
        if start is not None:
            query = query.where(step_fields.c.step >= start)
        if stop is not None:
            query = query.where(step_fields.c.step < stop)
        with self._connect() as conn:
            return [
                (int(r.step), float(r.time), dict(r.fields))
                for r in conn.execute(query.order_by(step_fields.c.step))
            ]

    def notes(self, run_id: str) -> list[Note]:
        full = self.resolve_run_id(run_id)
        with self._connect() as conn:
            rows = conn.execute(
                sa.select(notes)
                .where(notes.c.run_id == full)
                .order_by(notes.c.created_at, notes.c.id)
            )
            return [_note(r) for r in rows]

    def edit_note(self, note_id: int, text: str) -> Note:
        now = time.time()
        with self._connect(write=True) as conn:
            row = conn.execute(
                notes.update()
                .where(notes.c.id == note_id)
                .values(text=text, updated_at=now)
                .returning(*notes.c)
            ).first()
            if row is None:
                raise NotFoundError(f"no note with id {note_id}")
            conn.execute(
                runs.update()
                .where(runs.c.id == row.run_id)
                .values(updated_at=self._clock(now))
            )
            self._notify(conn, row.run_id)
            return _note(row)

    def experiments(self) -> list[Experiment]:
        count = (
            sa.select(sa.func.count())
            .where(runs.c.experiment_id == experiments.c.id)
            .scalar_subquery()
        )
        with self._connect() as conn:
            rows = conn.execute(
                sa.select(experiments, count.label("run_count")).order_by(
                    experiments.c.name
                )
            )
            return [
                Experiment(int(r.id), r.name, float(r.created_at), int(r.run_count))
                for r in rows
            ]

    def create_experiment(self, name: str) -> Experiment:
        now = time.time()
        with self._connect(write=True) as conn:
            self._experiment_id(conn, name, now)
        return next(e for e in self.experiments() if e.name == name)

    def rename_experiment(self, old: str, new: str) -> Experiment:
        with self._connect(write=True) as conn:
            if conn.execute(
                sa.select(experiments.c.id).where(experiments.c.name == new)
            ).first():
                raise ConflictError(
                    f"an experiment named {new!r} already exists; pick another name"
                )
            result = conn.execute(
                experiments.update().where(experiments.c.name == old).values(name=new)
            )
            if result.rowcount == 0:
                raise NotFoundError(f"no experiment named {old!r}")
        return next(e for e in self.experiments() if e.name == new)

    def update_run(
        self,
        run_id: str,
        name: str | None = None,
        tags: list[str] | None = None,
        status: str | None = None,
    ) -> RunRecord:
        full = self.resolve_run_id(run_id)
        values: dict[str, Any] = {"updated_at": self._clock(time.time())}
        if name is not None:
            values["name"] = name
        if tags is not None:
            values["tags"] = tags
        if status is not None:
            values["status"] = status
            if status != "running":
                values["ended_at"] = sa.func.coalesce(runs.c.ended_at, time.time())
        with self._connect(write=True) as conn:
            conn.execute(runs.update().where(runs.c.id == full).values(**values))
            self._notify(conn, full)
        return self.get_run(full)

    def delete_run(self, run_id: str) -> None:
        full = self.resolve_run_id(run_id)
        with self._connect(write=True) as conn:
            ids = sa.select(series.c.id).where(series.c.run_id == full)
            conn.execute(points.delete().where(points.c.series_id.in_(ids)))
            rollup.delete(conn, ids)
            conn.execute(series.delete().where(series.c.run_id == full))
            conn.execute(step_fields.delete().where(step_fields.c.run_id == full))
            conn.execute(notes.delete().where(notes.c.run_id == full))
            deleted = sql_artifacts.delete_rows(conn, full, None)
            unused = sql_artifacts.unreferenced(conn, deleted, self._members)
            conn.execute(console.delete().where(console.c.run_id == full))
            conn.execute(batches.delete().where(batches.c.run_id == full))
            conn.execute(runs.delete().where(runs.c.id == full))
            self._notify(conn, full)
        self._delete_blobs(unused)

    # --------------------------------------------------------------- artifacts

    def list_artifacts(
        self, run_id: str, kind: str | None = None, name: str | None = None
    ) -> list[Artifact]:
        """A run's artifacts ordered by creation time, then id."""
        full = self.resolve_run_id(run_id)
        with self._connect() as conn:
            return sql_artifacts.list_artifacts(conn, full, kind, name)

    def open_blob(self, run_id: str, sha256: str) -> BinaryIO:
        """The bytes of one of a run's blobs: an artifact's, or a file of one of
        its folders. NotFoundError when the run has no such blob.
        """
        from .._artifacts import check_sha256

        check_sha256(sha256)
        full = self.resolve_run_id(run_id)
        if self.blobs is None or self._members is None:
            raise StoreError(
                f"store {_safe_url(self.url)} was opened without an artifact folder; "
                "open it with open_store(url, blobs=BlobStore(...))"
            )
        with self._connect() as conn:
            found = sql_artifacts.has_artifact_blob(conn, full, sha256)
            manifests = [] if found else sql_artifacts.folder_manifests(conn, full)
        if not found and not self._members.contains(manifests, sha256):
            raise NotFoundError(f"run {full[:8]} has no artifact with sha256 {sha256}")
        return self.blobs.open(sha256)

    def delete_artifacts(self, run_id: str, ids: list[int]) -> list[str]:
        """Delete some of a run's artifacts (by id); returns the sha256 of every
        blob no artifact refers to any more, for the caller to delete.
        """
        full = self.resolve_run_id(run_id)
        with self._connect(write=True) as conn:
            deleted = sql_artifacts.delete_rows(conn, full, [int(i) for i in ids])
            unused = sql_artifacts.unreferenced(conn, deleted, self._members)
            if deleted:
                conn.execute(
                    runs.update()
                    .where(runs.c.id == full)
                    .values(updated_at=self._clock(time.time()))
                )
                self._notify(conn, full)
        return unused

    def delete_unused_blobs(self, rows: list[tuple[str, str]]) -> list[str]:
        """Delete the blobs of ``(kind, sha256)`` artifact rows (and of their
        folders' files) that no artifact uses; returns their hashes.

        For bytes uploaded for a batch that was then refused: a client that
        still needs them is told they are missing and uploads them again.
        """
        with self._connect() as conn:
            unused = sql_artifacts.unreferenced(conn, rows, self._members)
        self._delete_blobs(unused)
        return unused

    def _delete_blobs(self, shas: list[str]) -> None:
        # A concurrent attach of the very same bytes may find a blob present just
        # before it is removed here; docs/artifacts.md describes that race.
        if self.blobs is None:
            return
        for sha in shas:
            try:
                self.blobs.delete(sha)
            except OSError as exc:
                logger.warning("could not delete blob %s: %s", sha, exc)

    def console(
        self,
        run_id: str,
        after: int | None = None,
        limit: int = 1000,
        search: str | None = None,
    ) -> list[ConsoleChunk]:
        """A run's console chunks after the chunk id ``after``, oldest first.

        search: only chunks containing this text (the case of A-Z ignored).
        """
        full = self.resolve_run_id(run_id)
        limit = max(0, min(int(limit), sql_artifacts.MAX_CONSOLE_LIMIT))
        with self._connect() as conn:
            return sql_artifacts.console_chunks(conn, full, after, limit, search)

    # ------------------------------------------------- reading for the server

    def schema_revision(self) -> str | None:
        """The schema revision (Alembic) the store is at."""
        if not self._ready:
            self.prepare()
        try:
            return migrate.current_revision(self.engine)
        except sa.exc.DBAPIError as exc:
            raise _translate(exc, self.url) from exc

    def runs_page(
        self,
        where: str | None = None,
        experiment: str | None = None,
        sort: str | None = None,
        descending: bool = True,
        limit: int = 100,
        offset: int = 0,
    ) -> tuple[list[RunRecord], int]:
        """A page of matching runs and how many match, read in one transaction.

        Runs without a value for ``sort`` come last in both directions, on both
        databases; ties are broken by start time, then id.
        """
        now = time.time()
        order: list[Any] = []
        if sort:
            from .._query import compile_sort

            order.append(
                compile_sort(
                    sort,
                    self.dialect,
                    descending=descending,
                    now=now,
                    crash_timeout=self.crash_timeout,
                )
            )
        order.append(runs.c.started_at.desc() if descending else runs.c.started_at)
        order.append(runs.c.id)
        # Sort and page the ids alone (counting the matches in the same scan), then
        # read the whole rows of the page: sorting narrow rows is much cheaper than
        # sorting rows with their JSON.
        joined = runs.join(experiments, runs.c.experiment_id == experiments.c.id)
        page = self._filtered(
            sa.select(runs.c.id, sa.func.count().over().label("total")).select_from(
                joined
            ),
            where,
            experiment,
        )
        page = page.order_by(*order).limit(limit).offset(offset)
        with self._connect() as conn:
            found_ids = conn.execute(page).all()
            if not found_ids:
                counted = self._filtered(
                    sa.select(sa.func.count()).select_from(joined), where, experiment
                )
                return [], int(conn.execute(counted).scalar_one())
            total = int(found_ids[0].total)
            ids = [row.id for row in found_ids]
            chosen = runs.c.id.in_(sa.bindparam("ids", expanding=True))
            found = {
                row.id: row
                for row in conn.execute(self._run_query().where(chosen), {"ids": ids})
            }
            summaries = self._summaries(conn, ids)
        return [
            _record(found[i], summaries.get(i, {})) for i in ids if i in found
        ], total

    def downsample(
        self,
        pairs: list[tuple[str, str]],
        buckets: int,
        start: int | None = None,
        stop: int | None = None,
    ) -> list[rollup.Downsampled | None]:
        """Each (full run id, key) series in ``[start, stop)`` in at most ``buckets``
        buckets (min, max and last point of each), or ``None`` if it has no series.
        """
        run_ids = sorted({run_id for run_id, _ in pairs})
        keys = sorted({key for _, key in pairs})
        with self._connect() as conn:
            found = {
                (row.run_id, row.key): int(row.id)
                for row in conn.execute(
                    sa.select(series.c.id, series.c.run_id, series.c.key).where(
                        series.c.run_id.in_(run_ids), series.c.key.in_(keys)
                    )
                )
            }
            return [
                None
                if pair not in found
                else rollup.downsample(
                    conn, self.dialect, found[pair], buckets, start, stop
                )
                for pair in pairs
            ]

    def points_after(
        self, run_id: str, key: str, after: int | None, limit: int
    ) -> tuple[list[int], list[float], list[float], bool] | None:
        """Up to ``limit`` raw points of one series after step ``after`` (exclusive),
        and whether more follow; ``None`` if the run has no such key.
        """
        with self._connect() as conn:
            series_id = conn.execute(
                sa.select(series.c.id).where(
                    series.c.run_id == run_id, series.c.key == key
                )
            ).scalar()
            if series_id is None:
                return None
            return rollup.points_after(conn, int(series_id), after, limit)


def _binary_copy_rows(ids: list[int], columns: list[Columns]) -> bytes:
    """Points as a PostgreSQL binary COPY stream, built column-wise by numpy."""
    total = sum(len(cols[0]) for cols in columns)
    rows = np.empty(total, dtype=_COPY_IN_ROW)
    rows["n"] = 4
    for length in ("l1", "l2", "l3", "l4"):
        rows[length] = 8
    at = 0
    for series_id, (steps, values, times) in zip(ids, columns, strict=True):
        end = at + len(steps)
        rows["series_id"][at:end] = series_id
        rows["step"][at:end] = np.asarray(steps, dtype=np.int64)
        rows["value"][at:end] = np.asarray(values, dtype=np.float64)
        rows["time"][at:end] = np.asarray(times, dtype=np.float64)
        at = end
    return _PGCOPY_HEADER + rows.tobytes() + _PGCOPY_TRAILER


def _as_array(code: str, values: Any) -> array[Any]:
    """A numpy column as a compact stdlib array of native-endian numbers."""
    out = array(code)
    out.frombytes(
        np.ascontiguousarray(values, dtype=np.dtype(code).newbyteorder("=")).tobytes()
    )
    return out


def _insert(dialect: str, table: sa.Table) -> Any:
    if dialect == "postgresql":
        return postgresql.insert(table)
    return sqlite_dialect.insert(table)


def _dedupe(
    steps: MutableSequence[int],
    values: MutableSequence[float],
    times: MutableSequence[float],
) -> Columns:
    """Sort by step; when a step repeats, the value logged last wins."""
    s = np.asarray(steps, dtype=np.int64)
    v = np.asarray(values, dtype=np.float64)
    t = np.asarray(times, dtype=np.float64)
    if len(s) < 2 or bool(np.all(s[1:] > s[:-1])):
        return s, v, t  # type: ignore[return-value]
    # The last occurrence of each step is the first one in reversed order.
    unique, first_in_reversed = np.unique(s[::-1], return_index=True)
    keep = len(s) - 1 - first_in_reversed
    return unique, v[keep], t[keep]  # type: ignore[return-value]


def _merge_summary(row: Any, cols: Columns) -> dict[str, Any]:
    steps, values, times = cols
    v = np.asarray(values, dtype=np.float64)
    finite = v[~np.isnan(v)]
    lo = row.min
    hi = row.max
    if finite.size:
        batch_min = float(finite.min())
        batch_max = float(finite.max())
        lo = batch_min if lo is None or _isnan(lo) else min(lo, batch_min)
        hi = batch_max if hi is None or _isnan(hi) else max(hi, batch_max)
    return {
        "count": int(row.count) + len(steps),
        "last": float(values[-1]),
        "last_step": int(steps[-1]),
        "last_time": float(times[-1]),
        "min": lo,
        "max": hi,
    }


def _isnan(value: float) -> bool:
    return value != value


def _nan(value: float | None) -> float:
    return math.nan if value is None else float(value)


def _record(row: Any, metrics: dict[str, Summary]) -> RunRecord:
    return RunRecord(
        id=row.id,
        experiment=row.experiment_name,
        name=row.name,
        status=row.effective_status,
        params=row.params,
        tags=list(row.tags),
        started_at=row.started_at,
        ended_at=row.ended_at,
        heartbeat_at=row.heartbeat_at,
        updated_at=row.updated_at,
        host=row.host,
        pid=row.pid,
        command=row.command,
        error=row.error,
        environment=row.environment,
        metrics=metrics,
    )


def _note(row: Any) -> Note:
    return Note(
        id=int(row.id),
        run_id=row.run_id,
        step=row.step,
        created_at=float(row.created_at),
        updated_at=float(row.updated_at),
        text=row.text,
    )
