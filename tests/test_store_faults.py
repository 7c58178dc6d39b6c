"""A store that is down, slow or refusing: logging never blocks and nothing is lost."""

from __future__ import annotations

import sqlite3
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from labnotebook import Notebook, Settings
from labnotebook._spool import spool_files
from proxy import Proxy


@pytest.fixture
def proxied_pg(
    make_pg_database: Callable[[], str], tmp_path: Path
) -> Iterator[tuple[Proxy, Settings]]:
    """A PostgreSQL store reached through a proxy the test can cut."""
    url = sa.engine.make_url(make_pg_database())
    proxy = Proxy(url.port or 5432)
    proxy.start()
    settings = Settings(
        url=url.set(port=proxy.port).render_as_string(hide_password=False),
        home=str(tmp_path / "home"),
        flush_interval=0.05,
        retry_interval=0.1,
        exit_timeout=20.0,
    )
    yield proxy, settings
    proxy.stop()


def test_store_outage_is_spooled_and_replayed_exactly_once(
    proxied_pg: tuple[Proxy, Settings],
) -> None:
    proxy, settings = proxied_pg
    notebook = Notebook(settings)
    run = notebook.start("outage")
    for i in range(1000):
        run.log(x=float(i))
    assert run.flush() is True

    proxy.stop()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        slowest = 0.0
        for i in range(1000, 5000):
            t0 = time.perf_counter()
            run.log(x=float(i))
            slowest = max(slowest, time.perf_counter() - t0)
            if i % 500 == 0:
                run.note(f"during outage {i}")
                time.sleep(0.05)
        assert run.flush() is False  # went to the spool
    assert any("spool" in str(w.message) for w in caught)
    # Far below the outage: log() never waits for the store (the margin is for
    # a loaded machine; a blocked call would take seconds).
    assert slowest < 0.5, "log() must not wait for the store"
    assert list(spool_files(Path(settings.home) / "spool"))

    proxy.start()
    for i in range(5000, 6000):
        run.log(x=float(i))
    assert run.finish() is True

    frame = notebook.history(run.id, "x")
    assert list(frame.index) == list(range(6000))
    assert list(frame["x"]) == [float(i) for i in range(6000)]
    stored = notebook.get_run(run.id)
    assert stored.status == "finished"
    assert stored.summary["x"].count == 6000
    assert len(stored.notes()) == 8
    assert not spool_files(Path(settings.home) / "spool")
    notebook.close()


def test_run_started_while_store_is_down_arrives_later(
    proxied_pg: tuple[Proxy, Settings],
) -> None:
    proxy, settings = proxied_pg
    Notebook(settings).runs()  # creates the schema while the store is up
    proxy.stop()
    notebook = Notebook(settings.replace(exit_timeout=1.0))
    t0 = time.monotonic()
    with pytest.warns(RuntimeWarning, match="unavailable"):
        run = notebook.start("offline", params={"lr": 0.1})
    for i in range(100):
        run.log(x=float(i))
    assert run.finish() is False
    assert time.monotonic() - t0 < 30, "exit time must stay bounded"

    # The writer keeps retrying in the background while the process lives.
    proxy.start()
    deadline = time.monotonic() + 20
    while True:
        try:
            if notebook.get_run(run.id).status == "finished":
                break
        except KeyError:
            pass
        assert time.monotonic() < deadline
        time.sleep(0.1)
    stored = notebook.get_run(run.id)
    assert stored.status == "finished"
    assert stored.params == {"lr": 0.1}
    assert len(notebook.history(run.id)) == 100
    assert notebook.sync() == 0


def test_slow_sqlite_store_never_blocks_log(tmp_path: Path) -> None:
    settings = Settings(
        url=f"sqlite:///{tmp_path / 'lab.db'}",
        home=str(tmp_path / "home"),
        flush_interval=0.05,
    )
    notebook = Notebook(settings)
    run = notebook.start()
    run.log(x=0.0)
    run.flush()

    # Another process-like connection holds the write lock for a while.
    blocker = sqlite3.connect(
        tmp_path / "lab.db", isolation_level=None, check_same_thread=False
    )
    blocker.execute("BEGIN IMMEDIATE")
    release = threading.Timer(1.5, blocker.rollback)
    release.start()

    slowest = 0.0
    t_end = time.monotonic() + 1.0
    i = 1
    while time.monotonic() < t_end:
        t0 = time.perf_counter()
        run.log(x=float(i))
        slowest = max(slowest, time.perf_counter() - t0)
        i += 1
    assert slowest < 0.5, "log() must not wait for the locked store"
    release.join()
    assert run.finish() is True
    assert len(notebook.history(run.id, "x")) == i
    blocker.close()


def test_memory_stays_bounded_while_store_is_down(
    proxied_pg: tuple[Proxy, Settings],
) -> None:
    proxy, settings = proxied_pg
    notebook = Notebook(settings.replace(buffer_limit=10_000))
    run = notebook.start()
    proxy.stop()
    for i in range(50_000):
        run.log(a=float(i), b=float(i))
    writer = run._writer
    assert writer is not None
    time.sleep(0.3)
    assert writer._outbox_points <= 10_000
    proxy.start()
    assert run.finish() is True
    assert len(notebook.history(run.id)) == 50_000


def test_store_refusal_keeps_the_batch(notebook: Notebook, settings: Settings) -> None:
    run = notebook.start()
    run.log(x=1.0)
    run.flush()
    notebook.delete_run(run.id)  # the store now refuses this run's batches
    run.log(x=2.0)
    with pytest.warns(RuntimeWarning, match="refused"):
        run.finish()
    kept = list((Path(settings.home) / "spool").glob("*.rejected"))
    assert kept and '"x"' in kept[0].read_text()
