"""Rollups: per-bucket summaries of metric series, so charts never scan every point.

A chart of a long series needs, for each of at most ``N`` step buckets, the lowest,
the highest and the last point (so that no spike is lost). Grouping a million
points at read time takes too long, so the store keeps the table ``point_rollups``
up to date at write time: for every series and every level ``L`` in
:data:`LEVELS`, one row per non-empty bucket of ``2**L`` consecutive steps
(``bucket = step >> L``) holding the bucket's point count and its min, max and last
point (value, step and time). Min and max ignore NaN; ``last`` may be NaN.

Writing (:func:`record`) recomputes the buckets a batch touched, level by level,
each level from the one below: level ``LEVELS[0]`` from the raw points, level
``L + 2`` from the rows of level ``L``. A batch appended after the last step only
reads the few stored rows that share a bucket with its first point; a batch that
rewrites old steps reads the raw points of the range it covers.

Reading (:func:`downsample`) picks the bucket width ``2**L`` that gives at most
``N`` buckets over the requested step range, reads the stored level closest below
``L`` and merges its rows into output buckets with one SQL query (window
functions). Partial buckets at the ends of a zoomed range are computed from the
raw points they hold. The cost is bounded by ``2 * N`` rows plus the raw points of
two buckets, whatever the length of the series.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import sqlalchemy as sa

from .._schema import point_rollups, points
from .base import Columns

#: Levels kept: buckets of 2**4, 2**6, ... 2**30 steps.
LEVELS: tuple[int, ...] = tuple(range(6, 31, 2))

_COLUMNS = (
    "count",
    "min",
    "min_step",
    "min_time",
    "max",
    "max_step",
    "max_time",
    "last",
    "last_step",
    "last_time",
)

Ints = npt.NDArray[np.int64]
Floats = npt.NDArray[np.float64]


@dataclass
class _Rows:
    """Bucket summaries as columns, sorted by bucket."""

    bucket: Ints
    count: Ints
    min: Floats
    min_step: Ints
    min_time: Floats
    max: Floats
    max_step: Ints
    max_time: Floats
    last: Floats
    last_step: Ints
    last_time: Floats

    def __len__(self) -> int:
        return len(self.bucket)

    @classmethod
    def from_points(cls, steps: Any, values: Any, times: Any) -> _Rows:
        step = np.asarray(steps, dtype=np.int64)
        value = np.asarray(values, dtype=np.float64)
        time = np.asarray(times, dtype=np.float64)
        return cls(
            bucket=step,
            count=np.ones(len(step), dtype=np.int64),
            min=value,
            min_step=step,
            min_time=time,
            max=value,
            max_step=step,
            max_time=time,
            last=value,
            last_step=step,
            last_time=time,
        )

    @classmethod
    def from_db(cls, rows: Sequence[Any]) -> _Rows:
        def ints(i: int) -> Ints:
            return np.array([r[i] for r in rows], dtype=np.int64)

        def floats(i: int) -> Floats:
            return np.array(
                [math.nan if r[i] is None else r[i] for r in rows], dtype=np.float64
            )

        return cls(
            bucket=ints(0),
            count=ints(1),
            min=floats(2),
            min_step=_steps(rows, 3),
            min_time=floats(4),
            max=floats(5),
            max_step=_steps(rows, 6),
            max_time=floats(7),
            last=floats(8),
            last_step=ints(9),
            last_time=floats(10),
        )

    def concat(self, other: _Rows) -> _Rows:
        if not len(self):
            return other
        if not len(other):
            return self
        return _Rows(
            **{
                name: np.concatenate((getattr(self, name), getattr(other, name)))
                for name in ("bucket", *_COLUMNS)
            }
        )

    def select(self, keep: npt.NDArray[np.bool_]) -> _Rows:
        return _Rows(
            **{name: getattr(self, name)[keep] for name in ("bucket", *_COLUMNS)}
        )


def _steps(rows: Sequence[Any], i: int) -> Ints:
    return np.array([-1 if r[i] is None else r[i] for r in rows], dtype=np.int64)


def _aggregate(rows: _Rows, shift: int) -> _Rows:
    """Merge rows into buckets ``shift`` bits wider (rows sorted by bucket)."""
    parent = rows.bucket >> shift
    n = len(parent)
    starts = np.flatnonzero(np.concatenate(([True], parent[1:] != parent[:-1])))
    ends = np.append(starts[1:], n) - 1
    lengths = ends - starts + 1
    index = np.arange(n, dtype=np.int64)

    def pick(best: Floats, values: Floats) -> Ints:
        # Index of the first row holding the bucket's best value; n if none (NaN).
        hit = values == np.repeat(best, lengths)
        return np.minimum.reduceat(np.where(hit, index, n), starts)

    low = np.fmin.reduceat(rows.min, starts)
    high = np.fmax.reduceat(rows.max, starts)
    at_low = pick(low, rows.min)
    at_high = pick(high, rows.max)
    safe_low = np.minimum(at_low, n - 1)
    safe_high = np.minimum(at_high, n - 1)
    return _Rows(
        bucket=parent[starts],
        count=np.add.reduceat(rows.count, starts),
        min=low,
        min_step=np.where(at_low < n, rows.min_step[safe_low], -1),
        min_time=np.where(at_low < n, rows.min_time[safe_low], math.nan),
        max=high,
        max_step=np.where(at_high < n, rows.max_step[safe_high], -1),
        max_time=np.where(at_high < n, rows.max_time[safe_high], math.nan),
        last=rows.last[ends],
        last_step=rows.last_step[ends],
        last_time=rows.last_time[ends],
    )


# ------------------------------------------------------------------ writing


def record(
    conn: sa.Connection,
    dialect: str,
    touched: list[tuple[int, Columns, int | None]],
) -> None:
    """Bring the rollups of series up to date after their points were written.

    touched: per series, its id, the points just written (sorted by step, one per
        step) and the series' last step before this write (``None`` if empty).
    """
    appended = []
    upserts: list[tuple[Any, ...]] = []
    for series_id, cols, previous in touched:
        if len(cols[0]) == 0:
            continue
        if previous is None or int(cols[0][0]) > previous:
            appended.append((series_id, cols, previous))
        else:
            upserts.extend(_rewritten(conn, series_id, cols))

    # Points appended after the last step: each level's rows are computed from the
    # batch alone; only a level's first bucket can also hold stored points (those
    # of the bucket of the previous last step), and that row is merged with the
    # stored one.
    tails = _tails(conn, [(sid, prev) for sid, _, prev in appended if prev is not None])
    inserts: list[tuple[Any, ...]] = []
    for series_id, cols, previous in appended:
        for row in _batch_rows(series_id, cols):
            stored = tails.get(row[:3])
            if stored is not None:
                upserts.append(_merge(stored, row))
            elif previous is not None and row[2] == previous >> row[1]:
                upserts.append(row)  # a missing row: write it whole
            else:
                inserts.append(row)

    if dialect == "postgresql" and inserts:
        raw = conn.connection.driver_connection
        assert raw is not None
        names = ", ".join(("series_id", "level", "bucket", *_COLUMNS))
        with (
            raw.cursor() as cur,
            cur.copy(f"COPY point_rollups ({names}) FROM STDIN") as copy,
        ):
            for row in inserts:
                copy.write_row(row)
    elif inserts:
        upserts.extend(inserts)
    if upserts:
        conn.exec_driver_sql(_UPSERT[dialect], upserts)  # type: ignore[arg-type]


def _upsert(dialect: str) -> str:
    """The driver-level statement that writes a row whole, replacing a stored one."""
    names = ("series_id", "level", "bucket", *_COLUMNS)
    mark = "%s" if dialect == "postgresql" else "?"
    updates = ", ".join(f"{name} = excluded.{name}" for name in _COLUMNS)
    return (
        f"INSERT INTO point_rollups ({', '.join(names)}) "  # noqa: S608 - fixed names
        f"VALUES ({', '.join([mark] * len(names))}) "
        f"ON CONFLICT (series_id, level, bucket) DO UPDATE SET {updates}"
    )


def _batch_rows(series_id: int, cols: Columns) -> list[tuple[Any, ...]]:
    """Rows of every level for the points of one batch alone."""
    out: list[tuple[Any, ...]] = []
    rows = _Rows.from_points(*cols)
    child_level = 0
    for level in LEVELS:
        if len(rows) == 1 and child_level:
            # One bucket holds the whole batch: the levels above only rename it.
            (single,) = _tuples(series_id, child_level, rows)
            for upper in LEVELS[LEVELS.index(level) :]:
                out.append((series_id, upper, single[11] >> upper, *single[3:]))
            return out
        rows = _aggregate(rows, level - child_level)
        out.extend(_tuples(series_id, level, rows))
        child_level = level
    return out


def _merge(stored: tuple[Any, ...], new: tuple[Any, ...]) -> tuple[Any, ...]:
    """A stored row and a row of later points of the same bucket, as one row."""
    low = (
        stored[4:7]
        if new[4] is None or (stored[4] is not None and stored[4] <= new[4])
        else new[4:7]
    )
    high = (
        stored[7:10]
        if new[7] is None or (stored[7] is not None and stored[7] >= new[7])
        else new[7:10]
    )
    return (*new[:3], stored[3] + new[3], *low, *high, *new[10:])


def _tails(
    conn: sa.Connection, series: list[tuple[int, int]]
) -> dict[tuple[int, int, int], tuple[Any, ...]]:
    """Stored rows of the buckets holding each series' last step, at every level."""
    if not series:
        return {}
    wanted = {
        (series_id, level, previous >> level)
        for series_id, previous in series
        for level in LEVELS
    }
    found = conn.execute(
        _TAILS,
        {
            "sids": sorted({w[0] for w in wanted}),
            "levels": list(LEVELS),
            "buckets": sorted({w[2] for w in wanted}),
        },
    )
    return {key: tuple(row) for row in found if (key := tuple(row[:3])) in wanted}


def _rewritten(
    conn: sa.Connection, series_id: int, cols: Columns
) -> list[tuple[Any, ...]]:
    """Rows of the buckets a batch that rewrote stored steps touched, recomputed
    from the stored points (the batch's are written already), level by level.
    """
    steps = cols[0]
    lo, hi = int(steps[0]), int(steps[-1])
    first = LEVELS[0]
    source = _raw(conn, series_id, (lo >> first) << first, ((hi >> first) + 1) << first)
    stored = _neighbours(conn, series_id, lo, hi)

    out: list[tuple[Any, ...]] = []
    child_level = 0
    for level in LEVELS:
        rows = _aggregate(source, level - child_level)
        out.extend(_tuples(series_id, level, rows))
        # The next level's buckets also hold stored rows beside the touched range.
        left, right = stored.get(level, ([], []))
        source = _Rows.from_db(left).concat(rows).concat(_Rows.from_db(right))
        child_level = level
    return out


def _neighbours(
    conn: sa.Connection, series_id: int, lo: int, hi: int
) -> dict[int, tuple[list[Any], list[Any]]]:
    """Stored rows that share a parent bucket with the touched range, per level."""
    r = point_rollups.c
    ranges = []
    for level in LEVELS[:-1]:
        ranges.append(
            sa.and_(
                r.level == level,
                r.bucket >= (lo >> (level + 2)) << 2,
                r.bucket < lo >> level,
            )
        )
        ranges.append(
            sa.and_(
                r.level == level,
                r.bucket > hi >> level,
                r.bucket < ((hi >> (level + 2)) + 1) << 2,
            )
        )
    query = (
        sa.select(r.level, r.bucket, *(r[name] for name in _COLUMNS))
        .where(r.series_id == series_id, sa.or_(*ranges))
        .order_by(r.level, r.bucket)
    )
    out: dict[int, tuple[list[Any], list[Any]]] = {}
    for row in conn.execute(query):
        left, right = out.setdefault(row[0], ([], []))
        (left if row[1] < lo >> row[0] else right).append(tuple(row)[1:])
    return out


def _raw(conn: sa.Connection, series_id: int, start: int, stop: int) -> _Rows:
    if stop <= start:
        return _Rows.from_points([], [], [])
    rows = conn.execute(
        sa.select(points.c.step, points.c.value, points.c.time)
        .where(
            points.c.series_id == series_id,
            points.c.step >= start,
            points.c.step < stop,
        )
        .order_by(points.c.step)
    ).all()
    return _Rows.from_points(
        [r[0] for r in rows],
        [math.nan if r[1] is None else r[1] for r in rows],
        [r[2] for r in rows],
    )


def _tuples(series_id: int, level: int, rows: _Rows) -> list[tuple[Any, ...]]:
    """Rows as tuples in table column order, NaN min/max and -1 steps as NULL."""

    def nullable(values: Floats) -> list[float | None]:
        return [None if v != v else v for v in values.tolist()]

    def steps(values: Ints) -> list[int | None]:
        return [None if v < 0 else v for v in values.tolist()]

    n = len(rows)
    return list(
        zip(
            [series_id] * n,
            [level] * n,
            rows.bucket.tolist(),
            rows.count.tolist(),
            nullable(rows.min),
            steps(rows.min_step),
            nullable(rows.min_time),
            nullable(rows.max),
            steps(rows.max_step),
            nullable(rows.max_time),
            rows.last.tolist(),
            rows.last_step.tolist(),
            rows.last_time.tolist(),
            strict=True,
        )
    )


_UPSERT = {dialect: _upsert(dialect) for dialect in ("sqlite", "postgresql")}
_TAILS = sa.select(
    point_rollups.c.series_id,
    point_rollups.c.level,
    point_rollups.c.bucket,
    *(point_rollups.c[name] for name in _COLUMNS),
).where(
    point_rollups.c.series_id.in_(sa.bindparam("sids", expanding=True)),
    point_rollups.c.level.in_(sa.bindparam("levels", expanding=True)),
    point_rollups.c.bucket.in_(sa.bindparam("buckets", expanding=True)),
)


def delete(conn: sa.Connection, series_ids: sa.Select[Any]) -> None:
    """Remove the rollups of the series selected by ``series_ids``."""
    conn.execute(
        point_rollups.delete().where(point_rollups.c.series_id.in_(series_ids))
    )


# ------------------------------------------------------------------ reading


@dataclass
class Downsampled:
    """Points of one series in a step range, at most ``3 * buckets`` of them."""

    steps: list[int]
    values: list[float]
    times: list[float]
    #: Points in the range.
    count: int
    #: True when points were left out (each bucket kept its min, max and last).
    downsampled: bool


def downsample(
    conn: sa.Connection,
    dialect: str,
    series_id: int,
    buckets: int,
    start: int | None = None,
    stop: int | None = None,
) -> Downsampled:
    """At most ``buckets`` buckets of a series in ``[start, stop)``, in SQL.

    Each bucket keeps its lowest, highest and last point. A range of at most
    ``buckets`` points is returned whole.
    """
    first, last = _bounds(conn, series_id, start, stop)
    if first is None or last is None:
        return Downsampled([], [], [], 0, False)

    level = 0
    while (last >> level) - (first >> level) + 1 > buckets:
        level += 1
    if level == 0:
        return _whole(conn, series_id, first, last)

    rows = conn.execute(
        *_bucket_query(
            dialect, series_id, level, first, last, start is not None, stop is not None
        )
    ).all()
    count = sum(int(r.n) for r in rows)
    if count <= buckets:
        return _whole(conn, series_id, first, last)

    kept: dict[int, tuple[float, float]] = {}
    for r in rows:
        for step, value, time in (
            (r.min_step, r.min, r.min_time),
            (r.max_step, r.max, r.max_time),
            (r.last_step, r.last, r.last_time),
        ):
            if step is not None and time is not None:
                kept[int(step)] = (math.nan if value is None else float(value), time)
    steps = sorted(kept)
    return Downsampled(
        steps,
        [kept[s][0] for s in steps],
        [kept[s][1] for s in steps],
        count,
        count > len(steps),
    )


def _bounds(
    conn: sa.Connection, series_id: int, start: int | None, stop: int | None
) -> tuple[int | None, int | None]:
    p = points.c
    lo = sa.select(sa.func.min(p.step)).where(p.series_id == series_id)
    hi = sa.select(sa.func.max(p.step)).where(p.series_id == series_id)
    if start is not None:
        lo = lo.where(p.step >= start)
        hi = hi.where(p.step >= start)
    if stop is not None:
        lo = lo.where(p.step < stop)
        hi = hi.where(p.step < stop)
    row = conn.execute(sa.select(lo.scalar_subquery(), hi.scalar_subquery())).one()
    return row[0], row[1]


def _whole(conn: sa.Connection, series_id: int, first: int, last: int) -> Downsampled:
    rows = conn.execute(
        sa.select(points.c.step, points.c.value, points.c.time)
        .where(
            points.c.series_id == series_id,
            points.c.step >= first,
            points.c.step <= last,
        )
        .order_by(points.c.step)
    ).all()
    return Downsampled(
        [int(r[0]) for r in rows],
        [math.nan if r[1] is None else float(r[1]) for r in rows],
        [float(r[2]) for r in rows],
        len(rows),
        False,
    )


def _bucket_query(
    dialect: str,
    series_id: int,
    level: int,
    first: int,
    last: int,
    zoomed_start: bool,
    zoomed_stop: bool,
) -> tuple[sa.TextClause, dict[str, Any]]:
    """SQL that merges stored rows (and raw points at the edges) into buckets."""
    source = max((lv for lv in LEVELS if lv <= level), default=0)
    nan_free = (
        "NULLIF(value, CAST('NaN' AS DOUBLE PRECISION))"
        if dialect == "postgresql"
        else "value"
    )
    raw = (
        f"SELECT step >> :level AS b, 1 AS n, {nan_free} AS mn, step AS mn_step, "  # noqa: S608
        f"time AS mn_time, {nan_free} AS mx, step AS mx_step, time AS mx_time, "
        "value AS ls, step AS ls_step, time AS ls_time FROM points "
        "WHERE series_id = :sid AND step >= {lo} AND step <= {hi}"
    )
    params: dict[str, Any] = {"sid": series_id, "level": level}
    parts: list[str] = []
    if source == 0:
        parts.append(raw.format(lo=":first", hi=":last"))
    else:
        # Whole stored buckets inside [first, last]; the partial buckets at a
        # zoomed range's ends come from raw points.
        lo_bucket = first >> source
        hi_bucket = last >> source
        if zoomed_start and (lo_bucket << source) < first:
            parts.append(raw.format(lo=":first", hi=":left_end"))
            params["left_end"] = min(last, ((lo_bucket + 1) << source) - 1)
            lo_bucket += 1
        if (
            zoomed_stop
            and hi_bucket >= lo_bucket
            and ((hi_bucket + 1) << source) - 1 > last
        ):
            parts.append(raw.format(lo=":right_start", hi=":last"))
            params["right_start"] = hi_bucket << source
            hi_bucket -= 1
        if lo_bucket <= hi_bucket:
            parts.append(
                "SELECT bucket >> :shift AS b, count AS n, min AS mn, "
                "min_step AS mn_step, min_time AS mn_time, max AS mx, "
                "max_step AS mx_step, max_time AS mx_time, last AS ls, "
                "last_step AS ls_step, last_time AS ls_time FROM point_rollups "
                "WHERE series_id = :sid AND level = :source "
                "AND bucket >= :lo_bucket AND bucket <= :hi_bucket"
            )
            params.update(
                shift=level - source,
                source=source,
                lo_bucket=lo_bucket,
                hi_bucket=hi_bucket,
            )
    params.update(first=first, last=last)
    if parts == [parts[-1]] and params.get("shift") == 0:
        # The stored level is the output level: its rows are the buckets.
        plain = (
            "SELECT bucket AS b, count AS n, min, min_step, min_time, max, max_step, "
            "max_time, last, last_step, last_time FROM point_rollups "
            "WHERE series_id = :sid AND level = :source "
            "AND bucket >= :lo_bucket AND bucket <= :hi_bucket ORDER BY bucket"
        )
        return sa.text(plain), params

    sql = f"""
        WITH src AS ({" UNION ALL ".join(parts)}),
        ranked AS (
            SELECT src.*,
                row_number() OVER (PARTITION BY b ORDER BY mn ASC NULLS LAST,
                                   mn_step) AS r_mn,
                row_number() OVER (PARTITION BY b ORDER BY mx DESC NULLS LAST,
                                   mx_step) AS r_mx,
                row_number() OVER (PARTITION BY b ORDER BY ls_step DESC) AS r_ls,
                sum(n) OVER (PARTITION BY b) AS total
            FROM src
        )
        SELECT b, max(total) AS n,
            max(CASE WHEN r_mn = 1 AND mn IS NOT NULL THEN mn END) AS min,
            max(CASE WHEN r_mn = 1 AND mn IS NOT NULL THEN mn_step END) AS min_step,
            max(CASE WHEN r_mn = 1 AND mn IS NOT NULL THEN mn_time END) AS min_time,
            max(CASE WHEN r_mx = 1 AND mx IS NOT NULL THEN mx END) AS max,
            max(CASE WHEN r_mx = 1 AND mx IS NOT NULL THEN mx_step END) AS max_step,
            max(CASE WHEN r_mx = 1 AND mx IS NOT NULL THEN mx_time END) AS max_time,
            max(CASE WHEN r_ls = 1 THEN ls END) AS last,
            max(CASE WHEN r_ls = 1 THEN ls_step END) AS last_step,
            max(CASE WHEN r_ls = 1 THEN ls_time END) AS last_time
        FROM ranked
        WHERE r_mn = 1 OR r_mx = 1 OR r_ls = 1
        GROUP BY b
        ORDER BY b
    """  # noqa: S608 - only fixed fragments are formatted in; values are bound
    return sa.text(sql), params


def points_after(
    conn: sa.Connection, series_id: int, after: int | None, limit: int
) -> tuple[list[int], list[float], list[float], bool]:
    """Up to ``limit`` raw points after step ``after``; the flag says more follow."""
    query = sa.select(points.c.step, points.c.value, points.c.time).where(
        points.c.series_id == series_id
    )
    if after is not None:
        query = query.where(points.c.step > after)
    rows = conn.execute(query.order_by(points.c.step).limit(limit + 1)).all()
    more = len(rows) > limit
    rows = rows[:limit]
    return (
        [int(r[0]) for r in rows],
        [math.nan if r[1] is None else float(r[1]) for r in rows],
        [float(r[2]) for r in rows],
        more,
    )
