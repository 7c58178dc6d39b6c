"""The live stream GET /api/v1/events, on SQLite and on PostgreSQL.

Changes are made the way users make them: by a plain :class:`labnotebook.Notebook`
writing straight into the database, so the stream is shown to watch the database
rather than its own server's requests.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import requests
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from test_remote import (
    READ_TOKEN,
    TOKEN,
    ServerProcess,
    read_events,
    start_server,
    wait_for,
)

from labnotebook import Notebook
from labnotebook._store.sql import make_engine
from labnotebook.server import create_app, events

__all__ = ["start_server"]


class Stream:
    """An open event stream of the test client, read by a background thread."""

    def __init__(
        self,
        client: FlaskClient,
        query: str = "",
        headers: dict[str, str] | None = None,
    ):
        self.started = time.monotonic()
        self.response = client.get(
            "/api/v1/events" + query, headers=headers or {}, buffered=False
        )
        self.events: list[tuple[str, str, dict[str, Any]]] = []
        self.comments = 0
        self.ended_after: float | None = None
        self.done = threading.Event()
        if self.response.status_code == 200:
            threading.Thread(target=self._read, daemon=True).start()
        else:
            self.done.set()

    def _read(self) -> None:
        text = ""
        try:
            for chunk in self.response.response:
                text += chunk.decode() if isinstance(chunk, bytes) else chunk
                while "\n\n" in text:
                    block, text = text.split("\n\n", 1)
                    self._parse(block)
        finally:
            self.response.close()
            self.ended_after = time.monotonic() - self.started
            self.done.set()

    def _parse(self, block: str) -> None:
        kind, ident, data = "message", "", ""
        for line in block.splitlines():
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "":
                self.comments += 1
            elif name == "event":
                kind = value
            elif name == "id":
                ident = value
            elif name == "data":
                data += value
        if data:
            self.events.append((kind, ident, json.loads(data)))

    @property
    def runs(self) -> list[dict[str, Any]]:
        return [
            r for kind, _, d in list(self.events) if kind == "runs" for r in d["runs"]
        ]

    def saw(self, test: Callable[[dict[str, Any]], bool], timeout: float = 10) -> bool:
        return wait_for(lambda: any(test(r) for r in self.runs), timeout)

    def cursor(self) -> str:
        return self.events[-1][1]


@pytest.fixture
def short_streams(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(events, "STREAM_SECONDS", 6.0)


@pytest.fixture
def app(store_url: str, tmp_path: Path) -> Iterator[Flask]:
    app = create_app({"store": store_url})
    yield app
    store = app.extensions["labnotebook"].store
    events.feed_for(store).stop()
    store.close()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


# ----------------------------------------------------------------- changes


def test_the_stream_reports_every_kind_of_change(
    short_streams: None, client: FlaskClient, notebook: Notebook
):
    stream = Stream(client)
    assert stream.response.mimetype == "text/event-stream"
    assert stream.response.headers["Cache-Control"] == "no-cache"
    assert wait_for(lambda: len(stream.events) == 1, 5)
    kind, ident, first = stream.events[0]
    assert (kind, first["runs"]) == ("runs", [])
    assert ident == first["cursor"]

    run = notebook.start("watched", experiment="live")
    assert stream.saw(lambda r: r["id"] == run.id and r["status"] == "running")
    assert stream.runs[-1]["experiment"] == "live"
    created = max(r["updated_at"] for r in stream.runs if r["id"] == run.id)

    run.log(loss=0.5)
    run.flush()
    assert stream.saw(lambda r: r["id"] == run.id and r["updated_at"] > created)
    logged = max(r["updated_at"] for r in stream.runs if r["id"] == run.id)

    run.note("a note")
    run.flush()
    assert stream.saw(lambda r: r["id"] == run.id and r["updated_at"] > logged)

    run.finish()
    assert stream.saw(lambda r: r["id"] == run.id and r["status"] == "finished")
    finished = max(r["updated_at"] for r in stream.runs if r["id"] == run.id)

    notebook.store.update_run(run.id, name="renamed")
    assert stream.saw(lambda r: r["id"] == run.id and r["updated_at"] > finished)

    notebook.delete_run(run.id)
    assert stream.saw(lambda r: r["id"] == run.id and r.get("deleted") is True)

    assert stream.done.wait(15)
    kind, ident, end = stream.events[-1]
    assert kind == "end"
    assert ident == end["cursor"]
    pairs = [(r["id"], r["updated_at"]) for r in stream.runs if not r.get("deleted")]
    assert len(pairs) == len(set(pairs)), "a change was sent twice"


def test_a_resumed_stream_gets_what_it_missed_and_nothing_twice(
    monkeypatch: pytest.MonkeyPatch, client: FlaskClient, notebook: Notebook
):
    monkeypatch.setattr(events, "STREAM_SECONDS", 1.5)
    kept = notebook.start("kept")
    doomed = notebook.start("doomed")
    first = Stream(client)
    assert first.done.wait(10)
    kept.finish()
    doomed.finish()
    time.sleep(0.5)

    second = Stream(client, headers={"Last-Event-ID": first.cursor()})
    assert second.done.wait(10)
    assert {(r["id"], r["status"]) for r in second.runs} == {
        (kept.id, "finished"),
        (doomed.id, "finished"),
    }

    fresh = notebook.start("fresh")
    fresh.finish()
    notebook.delete_run(doomed.id)
    time.sleep(0.5)
    third = Stream(client, query=f"?cursor={second.cursor()}")
    assert third.done.wait(10)
    assert {r["id"] for r in third.runs if not r.get("deleted")} == {fresh.id}
    assert [r["id"] for r in third.runs if r.get("deleted")] == [doomed.id]
    assert all("reset" not in data for _, _, data in third.events)


def test_a_cursor_older_than_the_feed_asks_for_a_reload(
    monkeypatch: pytest.MonkeyPatch, client: FlaskClient
):
    monkeypatch.setattr(events, "STREAM_SECONDS", 0.5)
    stream = Stream(client, query="?cursor=1000.000000")
    assert stream.done.wait(10)
    kind, _, first = stream.events[0]
    assert kind == "runs"
    assert first["reset"] is True


def test_a_write_that_commits_late_is_still_reported(
    short_streams: None, client: FlaskClient, notebook: Notebook, store_url: str
):
    early = notebook.start("stamped-early")
    early.finish()
    stream = Stream(client)
    assert wait_for(lambda: len(stream.events) == 1, 5)

    # A transaction stamps the run two seconds back and, on PostgreSQL, commits
    # only after a later write was reported (SQLite allows one writer at a time).
    engine = make_engine(store_url)
    with engine.connect() as conn:
        transaction = conn.begin()
        stamp = time.time() - 2.0
        conn.execute(
            sa.text("UPDATE runs SET updated_at = :t, name = 'late' WHERE id = :id"),
            {"t": stamp, "id": early.id},
        )
        if engine.dialect.name == "sqlite":
            transaction.commit()
        later = notebook.start("committed-first")
        assert stream.saw(lambda r: r["id"] == later.id)
        if transaction.is_active:
            transaction.commit()
    engine.dispose()

    assert stream.saw(lambda r: r["id"] == early.id and r["updated_at"] == stamp)
    later.finish()


def test_the_stream_polls_when_it_cannot_listen(
    short_streams: None,
    monkeypatch: pytest.MonkeyPatch,
    client: FlaskClient,
    notebook: Notebook,
):
    monkeypatch.setattr(events._Listener, "open", lambda self: None)
    stream = Stream(client)
    run = notebook.start("polled")
    run.finish()
    assert stream.saw(lambda r: r["id"] == run.id and r["status"] == "finished")
    notebook.delete_run(run.id)
    assert stream.saw(lambda r: r["id"] == run.id and r.get("deleted") is True)


def test_one_experiment_only(
    short_streams: None, client: FlaskClient, notebook: Notebook
):
    stream = Stream(client, query="?experiment=wanted")
    other = notebook.start("other", experiment="elsewhere")
    wanted = notebook.start("wanted", experiment="wanted")
    assert stream.saw(lambda r: r["id"] == wanted.id)
    other.finish()
    wanted.finish()
    assert stream.saw(lambda r: r["id"] == wanted.id and r["status"] == "finished")
    assert other.id not in {r["id"] for r in stream.runs}


# ------------------------------------------------------------ the stream


def test_streams_end_by_themselves_and_keep_proxies_awake(
    monkeypatch: pytest.MonkeyPatch, client: FlaskClient
):
    monkeypatch.setattr(events, "STREAM_SECONDS", 1.5)
    monkeypatch.setattr(events, "HEARTBEAT_SECONDS", 0.3)
    stream = Stream(client)
    assert stream.done.wait(10)
    assert stream.ended_after is not None
    assert stream.ended_after < 3.0
    assert stream.comments >= 3
    assert stream.events[-1][0] == "end"
    assert stream.events[-1][2]["reconnect_ms"] == events.RECONNECT_MS


@pytest.mark.parametrize(
    ("query", "headers", "code"),
    [
        ("?cursor=not-a-cursor", {}, "invalid_cursor"),
        ("", {"Last-Event-ID": "1.0~xyz"}, "invalid_cursor"),
        ("?cursor=nan", {}, "invalid_cursor"),
        ("?since=1", {}, "unknown_parameter"),
    ],
)
def test_bad_requests_get_the_json_error_shape(
    client: FlaskClient, query: str, headers: dict[str, str], code: str
):
    response = client.get("/api/v1/events" + query, headers=headers)
    assert response.status_code == 400
    error = response.get_json()["error"]
    assert error["code"] == code
    assert error["status"] == 400
    assert error["message"]


def test_the_read_token_may_stream(monkeypatch: pytest.MonkeyPatch, store_url: str):
    monkeypatch.setattr(events, "STREAM_SECONDS", 0.2)
    app = create_app({"store": store_url, "token": TOKEN, "read_token": READ_TOKEN})
    client = app.test_client()

    assert client.get("/api/v1/events").status_code == 401
    stream = Stream(client, headers={"Authorization": f"Bearer {READ_TOKEN}"})
    assert stream.response.status_code == 200
    assert stream.done.wait(10)
    events.feed_for(app.extensions["labnotebook"].store).stop()


def test_cursors_round_trip():
    cursor = events.Cursor(1712345678.25, frozenset({"0123abcd", "ffffffff"}))
    assert events.Cursor.decode(cursor.encode()) == cursor
    assert events.Cursor.decode("5.5") == events.Cursor(5.5)


# ------------------------------------------------- many dashboards at once


def test_many_open_streams_share_one_feed_per_process(
    store_url: str,
    start_server: Callable[..., ServerProcess],
    notebook: Notebook,
    tmp_path: Path,
):
    server = start_server(store_url, workers=2, threads=40)
    streams = 40
    found: list[list[dict[str, Any]]] = [[] for _ in range(streams)]
    stop = threading.Event()
    threads = [
        threading.Thread(
            target=read_events,
            args=(server.url, READ_TOKEN, found[i], stop),
            daemon=True,
        )
        for i in range(streams)
    ]
    for thread in threads:
        thread.start()
    time.sleep(2.0)

    # While the streams are open, remote logging still goes through at once.
    started = time.monotonic()
    response = requests.post(
        f"{server.url}/api/v1/experiments",
        json={"name": "while-streaming"},
        headers={"Authorization": f"Bearer {TOKEN}"},
        timeout=10,
    )
    assert response.status_code == 201
    assert time.monotonic() - started < 1.0

    run = notebook.start("seen-by-all")
    run.finish()
    assert wait_for(
        lambda: all(any(r["id"] == run.id for r in rows) for rows in found), 15
    )

    if store_url.startswith("postgresql"):
        database = sa.engine.make_url(store_url).database
        with psycopg.connect(store_url, autocommit=True) as conn:
            listening = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = %s "
                "AND query ILIKE 'LISTEN%%'",
                (database,),
            ).fetchone()
        assert listening is not None
        assert listening[0] <= 2, "one listening connection per worker process"
    stop.set()
