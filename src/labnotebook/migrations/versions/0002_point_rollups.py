"""Point rollups: per-bucket min, max and last of every series, for charts

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

# The levels of labnotebook._store.rollup.LEVELS when this revision was written.
LEVELS = tuple(range(6, 31, 2))

_SUMMARY = """
    SELECT series_id, {level}, b, max(total),
        max(CASE WHEN r_mn = 1 AND mn IS NOT NULL THEN mn END),
        max(CASE WHEN r_mn = 1 AND mn IS NOT NULL THEN mn_step END),
        max(CASE WHEN r_mn = 1 AND mn IS NOT NULL THEN mn_time END),
        max(CASE WHEN r_mx = 1 AND mx IS NOT NULL THEN mx END),
        max(CASE WHEN r_mx = 1 AND mx IS NOT NULL THEN mx_step END),
        max(CASE WHEN r_mx = 1 AND mx IS NOT NULL THEN mx_time END),
        max(CASE WHEN r_ls = 1 THEN ls END),
        max(CASE WHEN r_ls = 1 THEN ls_step END),
        max(CASE WHEN r_ls = 1 THEN ls_time END)
    FROM (
        SELECT src.*,
            row_number() OVER (PARTITION BY series_id, b
                               ORDER BY mn ASC NULLS LAST, mn_step) AS r_mn,
            row_number() OVER (PARTITION BY series_id, b
                               ORDER BY mx DESC NULLS LAST, mx_step) AS r_mx,
            row_number() OVER (PARTITION BY series_id, b
                               ORDER BY ls_step DESC) AS r_ls,
            sum(n) OVER (PARTITION BY series_id, b) AS total
        FROM ({source}) AS src
    ) AS ranked
    WHERE r_mn = 1 OR r_mx = 1 OR r_ls = 1
    GROUP BY series_id, b
"""

_COLUMNS = (
    "series_id, level, bucket, count, min, min_step, min_time, max, max_step, "
    "max_time, last, last_step, last_time"
)


def upgrade() -> None:
    op.create_table(
        "point_rollups",
        sa.Column("series_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("level", sa.SmallInteger(), autoincrement=False, nullable=False),
        sa.Column("bucket", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.Column("min", sa.Double(), nullable=True),
        sa.Column("min_step", sa.BigInteger(), nullable=True),
        sa.Column("min_time", sa.Double(), nullable=True),
        sa.Column("max", sa.Double(), nullable=True),
        sa.Column("max_step", sa.BigInteger(), nullable=True),
        sa.Column("max_time", sa.Double(), nullable=True),
        sa.Column("last", sa.Double(), nullable=True),
        sa.Column("last_step", sa.BigInteger(), nullable=False),
        sa.Column("last_time", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("series_id", "level", "bucket"),
        sqlite_with_rowid=False,
    )
    _backfill()


def _backfill() -> None:
    """Build the rollups of points stored before this revision, level by level."""
    postgres = op.get_bind().dialect.name == "postgresql"
    value = "NULLIF(value, CAST('NaN' AS DOUBLE PRECISION))" if postgres else "value"
    below = None
    for level in LEVELS:
        if below is None:
            source = (
                f"SELECT series_id, step >> {level} AS b, 1 AS n, {value} AS mn, "  # noqa: S608
                f"step AS mn_step, time AS mn_time, {value} AS mx, step AS mx_step, "
                "time AS mx_time, value AS ls, step AS ls_step, time AS ls_time "
                "FROM points"
            )
        else:
            source = (
                f"SELECT series_id, bucket >> {level - below} AS b, count AS n, "  # noqa: S608
                "min AS mn, min_step AS mn_step, min_time AS mn_time, max AS mx, "
                "max_step AS mx_step, max_time AS mx_time, last AS ls, "
                "last_step AS ls_step, last_time AS ls_time FROM point_rollups "
                f"WHERE level = {below}"
            )
        summary = _SUMMARY.format(level=level, source=source)
        op.execute(f"INSERT INTO point_rollups ({_COLUMNS}) {summary}")
        below = level


def downgrade() -> None:
    op.drop_table("point_rollups")
