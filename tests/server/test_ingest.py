"""Ingest: batches from remote clients, checked field by field, applied once."""

from __future__ import annotations

import hashlib
import json
import math
import time
from typing import Any

import pytest
from flask.testing import FlaskClient
from servertools import error_of, make_app

from labnotebook import Notebook
from labnotebook._store.base import Batch, RunCreate


def _create(run_id: str = "a" * 32, **changes: Any) -> Batch:
    batch = Batch(
        run_id=run_id,
        create=RunCreate(
            experiment="remote",
            name="r",
            params={"lr": 0.1, "deep": {"x": [1, 2]}},
            tags=["t"],
            started_at=time.time(),
            host="h",
            pid=12,
            command="train.py",
            environment={"python": "3.11"},
        ),
    )
    for name, value in changes.items():
        setattr(batch, name, value)
    return batch


def _post(client: FlaskClient, body: str | dict[str, Any]) -> Any:
    data = body if isinstance(body, str) else json.dumps(body)
    return client.post("/api/v1/ingest", data=data, content_type="application/json")


def test_a_batch_is_applied_once_and_can_be_resent(client: FlaskClient) -> None:
    first = _create(
        points={"loss": ([0, 1, 2], [1.0, math.nan, -math.inf], [1.0, 2.0, 3.0])},
        notes=[(5.0, 1, "hello")],
        fields=[(1, 2.0, {"a": 1})],
    )
    response = _post(client, first.to_json())
    assert response.status_code == 200
    assert response.get_json() == {"applied": True}
    assert _post(client, first.to_json()).status_code == 200

    run = client.get(f"/api/v1/runs/{first.run_id}").get_json()
    assert run["metrics"]["loss"]["count"] == 3
    assert run["params"] == {"lr": 0.1, "deep": {"x": [1, 2]}}
    assert run["host"] == "h"
    points = client.get(f"/api/v1/runs/{first.run_id}/points?key=loss").get_json()
    assert points["y"] == [1.0, "NaN", "-Infinity"]

    later = Batch(
        run_id=first.run_id,
        points={"loss": ([3], [0.5], [4.0])},
        status="finished",
        ended_at=time.time(),
    )
    assert _post(client, later.to_json()).status_code == 200
    run = client.get(f"/api/v1/runs/{first.run_id}").get_json()
    assert run["status"] == "finished"
    assert run["metrics"]["loss"]["count"] == 4
    notes = client.get(f"/api/v1/runs/{first.run_id}/notes").get_json()["notes"]
    assert [n["text"] for n in notes] == ["hello"]


def test_points_as_plain_json_lists_are_accepted(client: FlaskClient) -> None:
    data = _valid()
    data["points"] = {"loss": [[0, 1, 2], [0.5, "NaN", "Infinity"], [1.0, 2.0, 3.0]]}
    assert _post(client, data).status_code == 200
    points = client.get(f"/api/v1/runs/{data['run_id']}/points?key=loss").get_json()
    assert points["y"] == [0.5, "NaN", "Infinity"]


def _packed(steps: list[int], values: list[float], times: list[float]) -> Any:
    return json.loads(
        Batch(run_id="x", points={"k": (steps, values, times)}).to_json()
    )["points"]["k"]


@pytest.mark.parametrize(
    "columns",
    [
        {"steps": "not base64!", "values": "", "times": ""},
        {"steps": "AAAA", "values": "AAAA", "times": "AAAA"},
        {"steps": 1, "values": "", "times": ""},
        {"steps": "", "values": ""},
        _packed([-1], [1.0], [1.0]),
        _packed([0, 1], [1.0], [1.0, 2.0]),
        _packed([0], [1.0], [math.inf]),
    ],
)
def test_bad_packed_columns_are_refused(
    client: FlaskClient, columns: dict[str, Any]
) -> None:
    error_of(
        _post(client, {**_valid(), "points": {"loss": columns}}), 422, "invalid_value"
    )


def test_a_batch_for_a_missing_run_is_404(client: FlaskClient) -> None:
    batch = Batch(run_id="b" * 32, points={"loss": ([0], [1.0], [1.0])})
    error_of(_post(client, batch.to_json()), 404, "not_found")


def _valid() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(_create().to_json())
    return data


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"run_id": "../etc"}, "invalid_value"),
        ({"run_id": 5}, "invalid_value"),
        ({"id": "x" * 40}, "invalid_value"),
        ({"extra": 1}, "unknown_field"),
        ({"status": "exploded"}, "invalid_value"),
        ({"resume": "yes"}, "invalid_value"),
        ({"heartbeat": "now"}, "invalid_value"),
        ({"points": {"loss": [[0], [1.0]]}}, "invalid_value"),
        ({"points": {"loss": [[0, 1], [1.0], [1.0, 2.0]]}}, "invalid_value"),
        ({"points": {"loss": [[-1], [1.0], [1.0]]}}, "invalid_value"),
        ({"points": {"loss": [[0.5], [1.0], [1.0]]}}, "invalid_value"),
        ({"points": {"loss": [[0], ["one"], [1.0]]}}, "invalid_value"),
        ({"points": {"loss": [[0], [1.0], ["t"]]}}, "invalid_value"),
        ({"points": {"": [[0], [1.0], [1.0]]}}, "invalid_value"),
        ({"points": {"k" * 251: [[0], [1.0], [1.0]]}}, "invalid_value"),
        ({"fields": [[0, 1.0, "x"]]}, "invalid_value"),
        ({"notes": [[1.0, None, 5]]}, "invalid_value"),
        ({"notes": [[1.0, None, "a\x00b"]]}, "invalid_value"),
        ({"notes": [[1.0, None, "a\ud800b"]]}, "invalid_value"),
        ({"error": "lone \udcff"}, "invalid_value"),
        ({"fields": [[0, 1.0, {"f": "\ud800"}]]}, "invalid_value"),
    ],
)
def test_bad_batches_are_refused_with_422(
    client: FlaskClient, change: dict[str, Any], code: str
) -> None:
    error_of(_post(client, {**_valid(), **change}), 422, code)


@pytest.mark.parametrize(
    "create_change",
    [
        {"name": ""},
        {"experiment": "x" * 201},
        {"params": [1]},
        {"tags": "t"},
        {"pid": "12"},
        {"started_at": None},
        {"params": {"s": "a\x00"}},
        {"params": {"s": "a\ud800"}},
        {"command": "python \udcff.py"},
        {"name": "run \udc80"},
        {"colour": "red"},
        {"environment": 3},
    ],
)
def test_bad_create_is_refused(
    client: FlaskClient, create_change: dict[str, Any]
) -> None:
    data = _valid()
    data["create"].update(create_change)
    error_of(_post(client, data), 422)


@pytest.mark.parametrize("when", [1e300, -1e15, -1.0, 7258118400.5])
@pytest.mark.parametrize(
    "place",
    [
        "started_at",
        "ended_at",
        "heartbeat",
        "notes",
        "fields",
        "console",
        "points",
        "packed points",
        "artifacts",
    ],
)
def test_a_time_outside_1970_to_2200_is_refused(
    client: FlaskClient, notebook: Notebook, place: str, when: float
) -> None:
    # Such a time cannot be shown: once stored, every listing of the runs (the
    # command line's ls, Notebook.runs) failed on it.
    data = _valid()
    if place == "started_at":
        data["create"]["started_at"] = when
    elif place in ("ended_at", "heartbeat"):
        data[place] = when
    elif place == "notes":
        data["notes"] = [[when, None, "n"]]
    elif place == "fields":
        data["fields"] = [[0, when, {"a": 1}]]
    elif place == "console":
        data["console"] = [[when, "stdout", "hi"]]
    elif place == "points":
        data["points"] = {"loss": [[0], [1.0], [when]]}
    elif place == "packed points":
        packed = Batch(run_id="x", points={"loss": ([0], [1.0], [when])})
        data["points"] = json.loads(packed.to_json())["points"]
    else:
        data["artifacts"] = [
            {
                "kind": "file",
                "name": "a.txt",
                "step": None,
                "size": 0,
                "sha256": hashlib.sha256(b"").hexdigest(),
                "media_type": "text/plain",
                "created_at": when,
                "meta": {},
            }
        ]
    error = error_of(_post(client, data), 422, "invalid_value")
    assert "7258118400" in error["message"]
    assert client.get("/api/v1/runs").get_json()["runs"] == []
    # The bounds themselves are fine.
    data = _valid()
    data["create"]["started_at"] = 0
    data["heartbeat"] = 7258118400
    assert _post(client, data).status_code == 200
    assert notebook.runs()["started_at"].iloc[0].year == 1970


def test_missing_create_fields(client: FlaskClient) -> None:
    data = _valid()
    del data["create"]["params"]
    error_of(_post(client, data), 422, "missing_field")


def test_limits(store_url: str) -> None:
    client = make_app(store_url, max_batch_points=10).test_client()
    batch = _create(
        points={
            "a": (list(range(6)), [1.0] * 6, [1.0] * 6),
            "b": (list(range(6)), [1.0] * 6, [1.0] * 6),
        }
    )
    error = error_of(_post(client, batch.to_json()), 413, "too_many_points")
    assert error["detail"]["limit"] == 10

    data = _valid()
    data["create"]["params"] = {"deep": json.loads("[" * 60 + "]" * 60)}
    error = error_of(_post(client, data), 422, "limit_exceeded")
    assert "levels" in error["message"]
    deeper = json.dumps(_valid())[:-1] + ', "x": ' + "[" * 100_000 + "]" * 100_000 + "}"
    error_of(_post(client, deeper), 422, "limit_exceeded")

    error_of(_post(client, '{"run_id": "a", "heartbeat": NaN}'), 400, "invalid_json")
    error_of(
        client.post(
            "/api/v1/ingest", data=b"\xff\xfe", content_type="application/json"
        ),
        400,
        "invalid_json",
    )
    error_of(client.post("/api/v1/ingest", data="{}", content_type="text/plain"), 415)
    error_of(_post(client, "[]"), 422, "invalid_value")
