"""HttpStore against a scripted HTTP server: retries, error mapping, paging, decoding.

These tests pin the client's side of the HTTP contract without a database; the
tests in test_remote.py run it against the real tracking server.
"""

from __future__ import annotations

import json
import logging
import math
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from labnotebook import (
    ConflictError,
    FilterError,
    NotFoundError,
    StoreError,
    StoreUnavailableError,
    ValidationError,
)
from labnotebook._store import http as http_store
from labnotebook._store.base import Batch, RunCreate
from labnotebook._store.http import HttpStore

TOKEN = "s3cret-token-value"


@dataclass
class Reply:
    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    raw: bytes | None = None


@dataclass
class Seen:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes


class Scripted:
    """An HTTP server answering from a script: a list of replies, or a function."""

    def __init__(self) -> None:
        self.replies: list[Reply] = []
        self.route: Callable[[Seen], Reply] | None = None
        self.seen: list[Seen] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                parts = urlsplit(self.path)
                seen = Seen(
                    self.command,
                    parts.path,
                    parse_qs(parts.query),
                    dict(self.headers),
                    self.rfile.read(length),
                )
                owner.seen.append(seen)
                if owner.route is not None:
                    reply = owner.route(seen)
                elif owner.replies:
                    reply = owner.replies.pop(0)
                else:
                    reply = Reply(200, {"applied": True})
                data = reply.raw
                if data is None:
                    data = (
                        b"" if reply.body is None else json.dumps(reply.body).encode()
                    )
                self.send_response(reply.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                try:
                    self.end_headers()
                    self.wfile.write(data)
                except ConnectionError:
                    pass  # the client gave up waiting, as some tests make it

            do_GET = do_POST = do_PATCH = do_DELETE = do_PUT = _answer

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(
            target=self.server.serve_forever, args=(0.05,), daemon=True
        ).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def fake() -> Iterator[Scripted]:
    server = Scripted()
    yield server
    server.close()


@pytest.fixture
def client(fake: Scripted) -> Iterator[HttpStore]:
    store = HttpStore(fake.url, token=TOKEN, retry_time=3.0)
    yield store
    store.close()


def error(status: int, code: str, message: str, **detail: Any) -> Reply:
    body: dict[str, Any] = {"status": status, "code": code, "message": message}
    if detail:
        body["detail"] = detail
    return Reply(status, {"error": body})


def run_body(run_id: str = "a" * 32, **changes: Any) -> dict[str, Any]:
    body = {
        "id": run_id,
        "experiment": "default",
        "name": "r",
        "status": "running",
        "params": {"lr": 0.1},
        "tags": ["x"],
        "started_at": 1.0,
        "ended_at": None,
        "heartbeat_at": 2.0,
        "updated_at": 3.0,
        "host": "h",
        "pid": 7,
        "command": "python t.py",
        "error": None,
        "environment": None,
        "metrics": {
            "loss": {
                "count": 3,
                "last": "NaN",
                "last_step": 2,
                "last_time": 4.0,
                "min": "-Infinity",
                "max": "Infinity",
            },
        },
    }
    body.update(changes)
    return body


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# ----------------------------------------------------------------- the wire


def test_write_posts_the_batch_with_the_token(fake: Scripted, client: HttpStore):
    batch = Batch(run_id="a" * 32, points={"loss": ([0, 1], [math.nan, 1.0], [1, 2])})

    client.write(batch)

    (seen,) = fake.seen
    assert (seen.method, seen.path) == ("POST", "/api/v1/ingest")
    assert seen.headers["Authorization"] == f"Bearer {TOKEN}"
    assert seen.headers["Content-Type"] == "application/json"
    assert seen.body == batch.to_json().encode()
    sent = Batch.from_json(seen.body).points["loss"][1]
    assert math.isnan(sent[0])
    assert sent[1] == 1.0


@pytest.mark.parametrize("base", ["{url}", "{url}/", "{url}/api/v1", "{url}/api/v1/"])
def test_base_url_forms(fake: Scripted, base: str):
    with HttpStore(base.format(url=fake.url)) as store:
        store.write(Batch(run_id="a" * 32))
    assert fake.seen[0].path == "/api/v1/ingest"
    assert "Authorization" not in fake.seen[0].headers


@pytest.mark.parametrize(
    "url", ["ftp://host", "http://", "http://host/?token=x", "not a url"]
)
def test_bad_urls_are_refused(url: str):
    with pytest.raises(ValidationError, match="tracking server URL"):
        HttpStore(url)


def test_token_stays_out_of_repr_errors_and_logs(
    fake: Scripted, caplog: pytest.LogCaptureFixture
):
    caplog.set_level(logging.DEBUG)
    store = HttpStore(fake.url, token=TOKEN, retry_time=0.5)
    fake.replies = [error(401, "invalid_token", "the token is not valid")]

    with pytest.raises(StoreError) as refused:
        store.get_run("a" * 32)

    fake.replies = [Reply(503, error(503, "x", "busy").body)] * 10
    with pytest.raises(StoreUnavailableError) as unavailable:
        store.write(Batch(run_id="a" * 32))

    assert "token" in str(refused.value)
    for text in (repr(store), str(refused.value), str(unavailable.value), caplog.text):
        assert TOKEN not in text
    store.close()


def test_credentials_in_the_url_stay_out_of_messages(fake: Scripted):
    host = fake.url.removeprefix("http://")
    store = HttpStore(f"http://user:pw-secret@{host}", retry_time=0.2)
    fake.replies = [Reply(503)] * 10
    with pytest.raises(StoreUnavailableError) as caught:
        store.write(Batch(run_id="a" * 32))
    assert "pw-secret" not in str(caught.value)
    assert "pw-secret" not in repr(store)


# ------------------------------------------------------------------ retries


def test_retry_after_is_honoured_on_503_and_429(fake: Scripted, client: HttpStore):
    fake.replies = [
        Reply(503, headers={"Retry-After": "1"}),
        Reply(429, headers={"Retry-After": "1"}),
        Reply(200, {"applied": True}),
    ]
    started = time.monotonic()

    client.write(Batch(run_id="a" * 32))

    assert len(fake.seen) == 3
    assert time.monotonic() - started >= 1.9


def test_retry_after_beyond_the_budget_gives_up_at_once(
    fake: Scripted, client: HttpStore
):
    fake.replies = [Reply(429, headers={"Retry-After": "120"})]
    started = time.monotonic()

    with pytest.raises(StoreUnavailableError, match="429"):
        client.write(Batch(run_id="a" * 32))

    assert time.monotonic() - started < 1.0
    assert len(fake.seen) == 1


def test_server_errors_are_retried_with_backoff(fake: Scripted, client: HttpStore):
    fake.replies = [Reply(500), Reply(502), Reply(504), Reply(200, run_body())]

    record = client.get_run("a" * 32)

    assert record.id == "a" * 32
    assert len(fake.seen) == 4


def test_persistent_failure_ends_within_the_retry_time(fake: Scripted):
    fake.route = lambda seen: Reply(500, error(500, "internal_error", "boom").body)
    store = HttpStore(fake.url, retry_time=1.5)
    started = time.monotonic()

    with pytest.raises(StoreUnavailableError, match="HTTP 500"):
        store.write(Batch(run_id="a" * 32))

    elapsed = time.monotonic() - started
    assert 0.3 < elapsed < 2.0
    assert len(fake.seen) >= 3


def test_refused_connection_is_unavailable_within_the_retry_time():
    store = HttpStore(f"http://127.0.0.1:{free_port()}", retry_time=1.0)
    started = time.monotonic()

    with pytest.raises(StoreUnavailableError, match="connection failed"):
        store.write(Batch(run_id="a" * 32))

    assert time.monotonic() - started < 1.5
    assert isinstance(StoreUnavailableError("x"), StoreError)


def test_no_answer_in_time_is_unavailable(fake: Scripted):
    fake.route = lambda seen: (time.sleep(1.0), Reply(200, {"applied": True}))[1]
    store = HttpStore(fake.url, read_timeout=0.2, retry_time=0.5)

    with pytest.raises(StoreUnavailableError, match="no answer in time"):
        store.write(Batch(run_id="a" * 32))


# ----------------------------------------------------------- error mapping


@pytest.mark.parametrize(
    ("reply", "expected", "text"),
    [
        (error(404, "not_found", "no run with id 'abcd'"), NotFoundError, "abcd"),
        (error(409, "conflict", "name taken"), ConflictError, "name taken"),
        (error(413, "body_too_large", "too big"), ValidationError, "too big"),
        (error(422, "invalid_value", "bad step"), ValidationError, "bad step"),
        (error(400, "invalid_parameter", "bad limit"), ValidationError, "bad limit"),
        (error(401, "unauthorized", "needs a token"), StoreError, "LABNOTEBOOK_TOKEN"),
        (error(403, "forbidden", "read-only"), StoreError, "write token"),
        (Reply(418, raw=b"<html>teapot</html>"), StoreError, "418"),
        (Reply(302, headers={"Location": "https://x/"}), StoreError, "redirected"),
    ],
)
def test_refusals_map_to_library_errors(
    fake: Scripted,
    client: HttpStore,
    reply: Reply,
    expected: type[Exception],
    text: str,
):
    fake.replies = [reply]

    with pytest.raises(expected, match=text) as caught:
        client.get_run("abcd")

    assert not isinstance(caught.value, StoreUnavailableError)
    assert len(fake.seen) == 1


def test_filter_errors_keep_the_column(fake: Scripted, client: HttpStore):
    fake.replies = [
        error(400, "invalid_filter", "unknown field 'parms'", column=1),
    ]

    with pytest.raises(FilterError) as caught:
        client.list_runs(where="parms.lr < 1")

    assert caught.value.column == 1
    assert caught.value.expression == "parms.lr < 1"
    assert fake.seen[0].query["where"] == ["parms.lr < 1"]


def test_a_body_that_is_not_json_is_an_error(fake: Scripted, client: HttpStore):
    fake.replies = [Reply(200, raw=b"<html>login page</html>")]
    with pytest.raises(StoreError, match="not JSON"):
        client.experiments()


# ------------------------------------------------------------------ reading


def test_run_json_is_decoded_with_non_finite_numbers(fake: Scripted, client: HttpStore):
    fake.replies = [Reply(200, run_body())]

    record = client.get_run("aaaa")

    loss = record.metrics["loss"]
    assert math.isnan(loss.last)
    assert (loss.min, loss.max) == (-math.inf, math.inf)
    assert (loss.count, loss.last_step) == (3, 2)
    assert record.params == {"lr": 0.1}
    assert fake.seen[0].path == "/api/v1/runs/aaaa"


def test_run_ids_are_quoted_into_one_path_segment(fake: Scripted, client: HttpStore):
    fake.replies = [error(404, "not_found", "no run")]
    with pytest.raises(NotFoundError):
        client.get_run("../../ingest")
    assert fake.seen[0].path == "/api/v1/runs/..%2F..%2Fingest"


def test_list_runs_pages_through_everything(
    fake: Scripted, client: HttpStore, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(http_store, "RUNS_PAGE", 2)
    ids = [f"{i:032x}" for i in range(5)]

    def route(seen: Seen) -> Reply:
        offset = int(seen.query["offset"][0])
        limit = int(seen.query["limit"][0])
        rows = [run_body(i) for i in ids[offset : offset + limit]]
        return Reply(
            200, {"runs": rows, "total": len(ids), "limit": limit, "offset": offset}
        )

    fake.route = route

    found = client.list_runs(where="params.lr > 0", order_by="name", descending=False)
    assert [r.id for r in found] == ids
    assert fake.seen[0].query["sort"] == ["name"]
    assert fake.seen[0].query["order"] == ["asc"]

    fake.seen.clear()
    assert [r.id for r in client.list_runs(limit=3)] == ids[:3]
    assert [s.query["limit"] for s in fake.seen] == [["2"], ["1"]]


def test_count_runs_reads_the_total(fake: Scripted, client: HttpStore):
    fake.replies = [
        Reply(200, {"runs": [run_body()], "total": 42, "limit": 1, "offset": 0})
    ]
    assert client.count_runs(where="status = 'running'", experiment="e") == 42
    assert fake.seen[0].query["experiment"] == ["e"]


def test_history_follows_the_pages_of_raw_points(
    fake: Scripted, client: HttpStore, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(http_store, "POINTS_PAGE", 3)
    steps = list(range(0, 20, 2))

    def route(seen: Seen) -> Reply:
        if seen.path.endswith("/metrics"):
            return Reply(
                200, {"metrics": [{"key": "loss", **run_body()["metrics"]["loss"]}]}
            )
        after = int(seen.query.get("after", ["-1"])[0])
        limit = int(seen.query["limit"][0])
        page = [s for s in steps if s > after][:limit]
        more = bool(page) and page[-1] != steps[-1]
        return Reply(
            200,
            {
                "key": "loss",
                "x": page,
                "y": ["NaN" if s == 4 else s / 10 for s in page],
                "t": [1000.0 + s for s in page],
                "next": page[-1] if more else None,
            },
        )

    fake.route = route

    data = client.history("aaaa")
    got_steps, values, times = data["loss"]
    assert got_steps == steps
    assert math.isnan(values[2])
    assert values[3] == 0.6
    assert times[0] == 1000.0

    fake.seen.clear()
    window = client.history("aaaa", ["loss", "missing"], start=5, stop=13)
    assert list(window) == ["loss"]
    assert window["loss"][0] == [6, 8, 10, 12]
    assert fake.seen[1].query["after"] == ["4"]


def test_experiments_create_and_rename(fake: Scripted, client: HttpStore):
    exp = {"id": 3, "name": "a", "created_at": 1.0, "run_count": 0}

    def route(seen: Seen) -> Reply:
        if seen.method == "POST":
            return Reply(201, exp)
        if seen.method == "PATCH":
            return Reply(200, {**exp, "name": json.loads(seen.body)["name"]})
        return Reply(200, {"experiments": [exp]})

    fake.route = route

    assert client.create_experiment("a").id == 3
    assert client.rename_experiment("a", "b").name == "b"
    assert fake.seen[-1].path == "/api/v1/experiments/3"
    with pytest.raises(NotFoundError, match="'zzz'"):
        client.rename_experiment("zzz", "b")


def test_update_run_sends_only_what_changes(fake: Scripted, client: HttpStore):
    fake.replies = [Reply(200, run_body(name="new"))]

    assert client.update_run("aaaa", name="new").name == "new"

    assert fake.seen[0].method == "PATCH"
    assert json.loads(fake.seen[0].body) == {"name": "new"}


def test_delete_run_and_notes(fake: Scripted, client: HttpStore):
    note = {
        "id": 1,
        "run_id": "a" * 32,
        "step": None,
        "created_at": 1.0,
        "updated_at": 2.0,
        "text": "hi",
    }
    fake.replies = [Reply(204), Reply(200, {"notes": [note]}), Reply(200, note)]

    client.delete_run("aaaa")
    assert client.notes("aaaa")[0].text == "hi"
    assert client.edit_note(1, "hi").id == 1

    assert [(s.method, s.path) for s in fake.seen] == [
        ("DELETE", "/api/v1/runs/aaaa"),
        ("GET", "/api/v1/runs/aaaa/notes"),
        ("PATCH", "/api/v1/notes/1"),
    ]


# ----------------------------------------------------------- large batches


def test_large_batches_are_cut_the_same_way_every_time(
    fake: Scripted, client: HttpStore, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(http_store, "MAX_REQUEST_BYTES", 20_000)
    monkeypatch.setattr(http_store, "PIECE_POINTS", 200)
    n = 3000
    batch = Batch(
        run_id="a" * 32,
        create=RunCreate("e", "r", {}, [], 1.0),
        points={
            "a": (list(range(n)), [float(i) for i in range(n)], [1.0] * n),
            "b": (list(range(n)), [math.inf] * n, [1.0] * n),
        },
        notes=[(1.0, None, "note")],
        status="finished",
        ended_at=2.0,
    )

    client.write(batch)
    first = [Batch.from_json(s.body) for s in fake.seen]
    fake.seen.clear()
    client.write(batch)
    second = [Batch.from_json(s.body) for s in fake.seen]

    assert len(first) > 2
    assert [p.id for p in first] == [p.id for p in second]
    assert len({p.id for p in first}) == len(first)
    assert all(len(s.body) <= 20_000 for s in fake.seen)
    assert first[0].create is not None
    assert all(p.create is None for p in first[1:])
    assert first[-1].status == "finished"
    assert all(p.status is None for p in first[:-1])
    for key in ("a", "b"):
        steps = [s for p in first for s in p.points.get(key, ([], [], []))[0]]
        assert steps == list(range(n))
    assert sum(len(p.notes) for p in first) == 1


def test_bytes_that_vanish_again_before_the_batch_are_uploaded_again(
    fake: Scripted, tmp_path: Any
) -> None:
    # Another machine may keep attaching the same bytes to a deleted run; each
    # of its refused batches removes them from the server again.
    from labnotebook._artifacts import BlobStore
    from labnotebook._store.base import ArtifactCreate

    local = BlobStore(tmp_path / "local", 2**20)
    digest, size = local.put_bytes(b"config")
    refusals = 3

    def route(seen: Seen) -> Reply:
        nonlocal refusals
        if seen.path.endswith("/blobs/missing"):
            return Reply(200, {"missing": [digest]})
        if seen.method == "PUT":
            return Reply(201, {"sha256": digest, "size": size})
        if refusals:
            refusals -= 1
            return Reply(
                422,
                {"error": {"status": 422, "code": "blob_missing", "message": "gone"}},
            )
        return Reply(200, {"applied": True})

    fake.route = route
    store = HttpStore(fake.url, token=TOKEN, blobs=local)
    row = ArtifactCreate(
        kind="file",
        name="config.yaml",
        step=None,
        size=size,
        sha256=digest,
        media_type="application/octet-stream",
        created_at=1.0,
    )
    store.write(Batch(run_id="r" * 32, artifacts=[row]))
    assert [s.method for s in fake.seen if s.path.endswith("/ingest")] == ["POST"] * 4
    assert sum(s.method == "PUT" for s in fake.seen) == 4
    assert all(s.body == b"config" for s in fake.seen if s.method == "PUT")
