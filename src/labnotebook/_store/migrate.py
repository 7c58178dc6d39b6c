"""Create and upgrade a store's schema with its Alembic migrations.

A store is upgraded on first use; ``labnotebook db upgrade`` does it explicitly.
Concurrent processes opening a new store at once are serialised by a lock (an
advisory lock on PostgreSQL, a lock file beside the database on SQLite).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
from collections.abc import Iterator
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

logger = logging.getLogger(__name__)

_MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"
VERSION_TABLE = "labnotebook_migrations"
#: Execution option that makes a SQLite transaction start with BEGIN IMMEDIATE.
WRITE_OPTION = "labnotebook_write"
_PG_LOCK_KEY = 0x4C4E425F4D494752  # "LNB_MIGR"


def _config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(_MIGRATIONS))
    return cfg


def head_revision() -> str:
    """The newest migration known to this version of labnotebook."""
    head = ScriptDirectory.from_config(_config()).get_current_head()
    assert head is not None
    return head


def migrations() -> list[tuple[str, str]]:
    """All migrations as ``(revision, description)``, oldest first."""
    script = ScriptDirectory.from_config(_config())
    revs = list(script.walk_revisions())
    return [(r.revision, r.doc or "") for r in reversed(revs)]


def current_revision(engine: sa.Engine) -> str | None:
    """The revision a store is at, or ``None`` for an empty database."""
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE})
        return ctx.get_current_revision()


def upgrade(engine: sa.Engine, revision: str = "head") -> None:
    """Bring the store's schema up to ``revision`` (the newest by default)."""
    target = head_revision() if revision == "head" else revision
    if current_revision(engine) == target:
        return

    with _lock(engine), engine.connect() as conn:
        conn = conn.execution_options(**{WRITE_OPTION: True})
        if current_revision(engine) == target:
            return  # another process upgraded it while we waited for the lock
        cfg = _config()
        cfg.attributes["connection"] = conn
        logger.info("upgrading store schema to %s", target)
        command.upgrade(cfg, revision)
        conn.commit()


@contextlib.contextmanager
def _lock(engine: sa.Engine) -> Iterator[None]:
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT pg_advisory_lock(:k)"), {"k": _PG_LOCK_KEY})
            conn.commit()
            try:
                yield
            finally:
                conn.execute(
                    sa.text("SELECT pg_advisory_unlock(:k)"), {"k": _PG_LOCK_KEY}
                )
                conn.commit()
        return

    database = engine.url.database
    if not database or database == ":memory:":
        yield
        return
    fd = os.open(f"{database}.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
