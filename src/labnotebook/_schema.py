"""Tables of a labnotebook store (documented for SQL users in docs/schema.md).

Times are seconds since the Unix epoch (UTC) in double-precision columns, so the
same queries work on SQLite and PostgreSQL. JSON columns are JSONB on PostgreSQL.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

metadata = sa.MetaData()

Json = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

experiments = sa.Table(
    "experiments",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(200), nullable=False, unique=True),
    sa.Column("created_at", sa.Double, nullable=False),
)

runs = sa.Table(
    "runs",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column(
        "experiment_id",
        BigId,
        sa.ForeignKey("experiments.id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("params", Json, nullable=False),
    sa.Column("tags", Json, nullable=False),
    sa.Column("started_at", sa.Double, nullable=False),
    sa.Column("ended_at", sa.Double),
    sa.Column("heartbeat_at", sa.Double, nullable=False),
    sa.Column("updated_at", sa.Double, nullable=False),
    sa.Column("host", sa.String(255), nullable=False, server_default=""),
    sa.Column("pid", sa.Integer),
    sa.Column("command", sa.Text, nullable=False, server_default=""),
    sa.Column("error", sa.Text),
    sa.Column("environment", Json),
    sa.Index("ix_runs_experiment_started", "experiment_id", "started_at"),
    sa.Index("ix_runs_updated_at", "updated_at"),
)

series = sa.Table(
    "series",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column(
        "run_id",
        sa.String(32),
        sa.ForeignKey("runs.id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("key", sa.String(250), nullable=False),
    sa.Column("count", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("last", sa.Double),
    sa.Column("last_step", sa.BigInteger),
    sa.Column("last_time", sa.Double),
    sa.Column("min", sa.Double),
    sa.Column("max", sa.Double),
    sa.UniqueConstraint("run_id", "key", name="uq_series_run_key"),
    sa.Index("ix_series_key", "key"),
)

# One row per logged value. No foreign key (it would slow bulk inserts); rows are
# removed together with their series by the store. On SQLite a NaN value is stored
# as NULL, since SQLite has no NaN.
points = sa.Table(
    "points",
    metadata,
    sa.Column("series_id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("step", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("value", sa.Double),
    sa.Column("time", sa.Double, nullable=False),
    sqlite_with_rowid=False,
)

step_fields = sa.Table(
    "step_fields",
    metadata,
    sa.Column(
        "run_id",
        sa.String(32),
        sa.ForeignKey("runs.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("step", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("time", sa.Double, nullable=False),
    sa.Column("fields", Json, nullable=False),
)

notes = sa.Table(
    "notes",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column(
        "run_id",
        sa.String(32),
        sa.ForeignKey("runs.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    sa.Column("step", sa.BigInteger),
    sa.Column("created_at", sa.Double, nullable=False),
    sa.Column("updated_at", sa.Double, nullable=False),
    sa.Column("text", sa.Text, nullable=False),
)

# Files, folders, images and checkpoints of a run. The bytes live in the artifact
# store under their sha256 (content-addressed, so equal files are stored once);
# ``name`` is a label only and never becomes a path. A folder's row points to a
# JSON manifest blob listing its files. A row is written only after its blob is
# complete, so a listed artifact can always be read.
artifacts = sa.Table(
    "artifacts",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column(
        "run_id",
        sa.String(32),
        sa.ForeignKey("runs.id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("step", sa.BigInteger),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("media_type", sa.String(255), nullable=False),
    sa.Column("created_at", sa.Double, nullable=False),
    sa.Column("meta", Json, nullable=False),
    sa.Index("ix_artifacts_run_kind_name", "run_id", "kind", "name", "step"),
    sa.Index("ix_artifacts_sha256", "sha256"),
)

ARTIFACT_KINDS = ("file", "folder", "image", "checkpoint")

# Console output (stdout and stderr) of a run, in chunks in the order written.
console = sa.Table(
    "console",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column(
        "run_id",
        sa.String(32),
        sa.ForeignKey("runs.id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("stream", sa.String(8), nullable=False),
    sa.Column("time", sa.Double, nullable=False),
    sa.Column("text", sa.Text, nullable=False),
    sa.Index("ix_console_run_id", "run_id", "id"),
)

# Ids of applied batches, so that a batch sent twice is applied once.
batches = sa.Table(
    "batches",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("run_id", sa.String(32), nullable=False),
    sa.Column("applied_at", sa.Double, nullable=False),
)

STATUSES = ("running", "finished", "failed", "killed", "crashed")


def effective_status(now: float, crash_timeout: float) -> sa.ColumnElement[str]:
    """The status as users see it: a running run without heartbeat is crashed."""
    return sa.case(
        (
            sa.and_(
                runs.c.status == "running",
                runs.c.heartbeat_at < sa.literal(now - crash_timeout, sa.Double),
            ),
            sa.literal("crashed"),
        ),
        else_=runs.c.status,
    )


# Per series and level L, the count and the min, max and last point of every
# non-empty bucket of 2**L steps (bucket = step >> L), kept up to date at write
# time so that charts of long series never scan their points. Min and max skip
# NaN (NULL when a bucket holds only NaN). See labnotebook._store.rollup.
point_rollups = sa.Table(
    "point_rollups",
    metadata,
    sa.Column("series_id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("level", sa.SmallInteger, primary_key=True, autoincrement=False),
    sa.Column("bucket", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("count", sa.BigInteger, nullable=False),
    sa.Column("min", sa.Double),
    sa.Column("min_step", sa.BigInteger),
    sa.Column("min_time", sa.Double),
    sa.Column("max", sa.Double),
    sa.Column("max_step", sa.BigInteger),
    sa.Column("max_time", sa.Double),
    sa.Column("last", sa.Double),
    sa.Column("last_step", sa.BigInteger, nullable=False),
    sa.Column("last_time", sa.Double, nullable=False),
    sqlite_with_rowid=False,
)
