"""GET /api/v1/runs/<id>/console: pages after a cursor, bounded, searched safely."""

from __future__ import annotations

import signal
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from servertools import READ_TOKEN, TOKEN, error_of, make_app
from test_remote import ServerProcess

from labnotebook._store.base import Batch, RunCreate
from labnotebook._store.http import HttpStore
from labnotebook.server.console import MAX_CONSOLE_PAGE

LINES = [
    ("stdout", "epoch 1 loss 0.9\n"),
    ("stderr", "warning: 100% of GPU memory used\n"),
    ("stdout", "epoch 2 loss_total 0.5\n"),
    ("stdout", "Done\n"),
    ("stderr", "a\\b\n"),
]


def write_console(client: FlaskClient, run_id: str = "run1") -> None:
    body: dict[str, Any] = {
        "run_id": run_id,
        "create": {
            "experiment": "e",
            "name": "r",
            "params": {},
            "tags": [],
            "started_at": time.time(),
        },
        "console": [[1000.0 + i, s, t] for i, (s, t) in enumerate(LINES)],
    }
    response = client.post("/api/v1/ingest", json=body)
    assert response.status_code == 200, response.get_data(as_text=True)


def texts(body: dict[str, Any]) -> list[str]:
    return [c["text"] for c in body["chunks"]]


def test_chunks_come_in_order_with_their_stream_and_time(client: FlaskClient) -> None:
    write_console(client)
    body = client.get("/api/v1/runs/run1/console").get_json()
    assert [(c["stream"], c["text"]) for c in body["chunks"]] == LINES
    assert [c["time"] for c in body["chunks"]] == [1000.0 + i for i in range(5)]
    assert set(body["chunks"][0]) == {"id", "stream", "time", "text"}
    assert body["next"] == body["chunks"][-1]["id"]


def test_the_after_cursor_pages_and_stays_put_when_nothing_is_new(
    client: FlaskClient,
) -> None:
    write_console(client)
    first = client.get("/api/v1/runs/run1/console?limit=2").get_json()
    assert texts(first) == [t for _, t in LINES[:2]]
    second = client.get(
        f"/api/v1/runs/run1/console?limit=2&after={first['next']}"
    ).get_json()
    assert texts(second) == [t for _, t in LINES[2:4]]
    third = client.get(f"/api/v1/runs/run1/console?after={second['next']}").get_json()
    assert texts(third) == [LINES[4][1]]
    idle = client.get(f"/api/v1/runs/run1/console?after={third['next']}").get_json()
    assert idle == {"chunks": [], "next": third["next"]}
    assert (
        client.get("/api/v1/runs/run1/console?limit=1").get_json()["next"]
        == (first["chunks"][0]["id"])
    )


def test_an_empty_console_has_no_cursor(client: FlaskClient) -> None:
    write_console(client)
    client.post(
        "/api/v1/ingest",
        json={
            "run_id": "quiet",
            "create": {
                "experiment": "e",
                "name": "q",
                "params": {},
                "tags": [],
                "started_at": 1.0,
            },
        },
    )
    assert client.get("/api/v1/runs/quiet/console").get_json() == {
        "chunks": [],
        "next": None,
    }


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("loss", [0, 2]),
        ("LOSS", [0, 2]),
        ("100%", [1]),
        ("%", [1]),
        ("_", [2]),
        ("loss_", [2]),
        ("a\\b", [4]),
        ("' OR 1=1 --", []),
        ("nothing like it", []),
    ],
)
def test_q_is_a_plain_substring_never_a_pattern(
    client: FlaskClient, query: str, expected: list[int]
) -> None:
    write_console(client)
    body = client.get("/api/v1/runs/run1/console", query_string={"q": query})
    assert texts(body.get_json()) == [LINES[i][1] for i in expected]


def test_parameters_are_bounded(client: FlaskClient) -> None:
    write_console(client)
    url = "/api/v1/runs/run1/console"
    error_of(client.get(f"{url}?limit=0"), 400, "invalid_parameter")
    error_of(client.get(f"{url}?limit={MAX_CONSOLE_PAGE + 1}"), 422, "limit_exceeded")
    assert client.get(f"{url}?limit={MAX_CONSOLE_PAGE}").status_code == 200
    error_of(client.get(f"{url}?after=-1"), 400, "invalid_parameter")
    error_of(client.get(f"{url}?after=abc"), 400, "invalid_parameter")
    error_of(client.get(f"{url}?after={2**64}"), 400, "invalid_parameter")
    error_of(client.get(url, query_string={"q": "x" * 1001}), 422, "limit_exceeded")
    error_of(client.get(f"{url}?search=x"), 400, "unknown_parameter")
    error_of(client.get("/api/v1/runs/nope/console"), 404)


def test_the_console_needs_a_token(store_url: str) -> None:
    app = make_app(store_url, token=TOKEN, read_token=READ_TOKEN)
    client = app.test_client()
    error_of(client.get("/api/v1/runs/run1/console"), 401)
    response = client.get(
        "/api/v1/runs/run1/console", headers={"Authorization": f"Bearer {READ_TOKEN}"}
    )
    error_of(response, 404)  # allowed, but there is no such run
    app.extensions["labnotebook"].store.close()


def test_console_output_through_a_real_server(store_url: str, tmp_path: Path) -> None:
    server = ServerProcess(store_url, tmp_path / "servers", token=TOKEN).start()
    store = HttpStore(server.url, token=TOKEN)
    try:
        run_id = uuid.uuid4().hex
        chunks = [(1000.0 + i, "stdout", f"line {i}\n") for i in range(25)]
        chunks.append((2000.0, "stderr", "Traceback: 50% done\n"))
        store.write(
            Batch(
                run_id=run_id,
                create=RunCreate(
                    experiment="e", name="c", params={}, tags=[], started_at=1.0
                ),
                console=chunks,
            )
        )
        every = store.console(run_id, limit=100)
        assert [(c.time, c.stream, c.text) for c in every] == chunks
        assert all(c.run_id == run_id for c in every)
        later = store.console(run_id, after=every[19].id, limit=3)
        assert [c.text for c in later] == ["line 20\n", "line 21\n", "line 22\n"]
        found = store.console(run_id, search="50%")
        assert [c.stream for c in found] == ["stderr"]
        assert store.console(run_id, search="%%") == []
    finally:
        store.close()
        server.stop(signal.SIGKILL)
