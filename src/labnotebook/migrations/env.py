"""Alembic environment for labnotebook stores.

Migrations run through :func:`labnotebook._store.migrate.upgrade`, which hands a
connection in ``config.attributes["connection"]``; the ``alembic`` command line is
not needed.
"""

from __future__ import annotations

from alembic import context

from labnotebook._schema import metadata

VERSION_TABLE = "labnotebook_migrations"

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=metadata,
    version_table=VERSION_TABLE,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
