"""Shared fixtures. Every store test runs on a SQLite file and on PostgreSQL.

PostgreSQL is found at ``LABNOTEBOOK_TEST_PG`` (default
``postgresql://postgres@127.0.0.1:5432/test``); each test session creates its own
databases there and drops them at the end.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
import sqlalchemy as sa

import labnotebook
from labnotebook import Notebook, Settings
from labnotebook._schema import metadata
from labnotebook._store.sql import SqlStore

PG_SERVER = os.environ.get(
    "LABNOTEBOOK_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test"
)
STORES = ["sqlite", "postgresql"]


def _admin_conn() -> psycopg.Connection:
    try:
        return psycopg.connect(PG_SERVER, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        pytest.fail(
            f"PostgreSQL is not reachable at {PG_SERVER} ({exc}). Start it (see "
            "DEVELOPERS.md) or point LABNOTEBOOK_TEST_PG at a server.",
            pytrace=False,
        )


@pytest.fixture(scope="session")
def make_pg_database() -> Iterator[Callable[[], str]]:
    """A factory of fresh, empty PostgreSQL databases; returns their URLs."""
    created: list[str] = []
    base = sa.engine.make_url(PG_SERVER)

    def make() -> str:
        name = f"lnb_test_{uuid.uuid4().hex[:12]}"
        with _admin_conn() as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        created.append(name)
        return base.set(database=name).render_as_string(hide_password=False)

    yield make

    with _admin_conn() as conn:
        for name in created:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def shared_pg_url(make_pg_database: Callable[[], str]) -> str:
    """One migrated PostgreSQL database per session, emptied before each test."""
    url = make_pg_database()
    SqlStore(url).prepare()
    return url


def _empty(url: str) -> None:
    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    names = ", ".join(t.name for t in metadata.sorted_tables)
    with engine.begin() as conn:
        conn.exec_driver_sql(f"TRUNCATE {names} RESTART IDENTITY CASCADE")
    engine.dispose()


@pytest.fixture(params=STORES)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of an empty store: a new SQLite file, or the emptied shared PG db."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'lab.db'}"
    url: str = request.getfixturevalue("shared_pg_url")
    _empty(url)
    return url


@pytest.fixture
def settings(store_url: str, tmp_path: Path) -> Settings:
    return Settings(
        url=store_url,
        home=str(tmp_path / "home"),
        flush_interval=0.05,
        heartbeat_interval=1.0,
        retry_interval=0.1,
        exit_timeout=20.0,
        # No sys/ metrics unless a test asks: their number depends on timing.
        system_metrics_interval=0,
    )


@pytest.fixture
def notebook(settings: Settings) -> Iterator[Notebook]:
    nb = Notebook(settings)
    yield nb
    nb.close()


@pytest.fixture
def lab(settings: Settings) -> Iterator[object]:
    """The labnotebook module, initialised on the test's store."""
    labnotebook.init(
        settings.url,
        home=settings.home,
        flush_interval=settings.flush_interval,
        heartbeat_interval=settings.heartbeat_interval,
        retry_interval=settings.retry_interval,
        system_metrics_interval=settings.system_metrics_interval,
    )
    yield labnotebook
    labnotebook.current().close()
