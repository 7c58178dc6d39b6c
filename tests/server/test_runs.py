"""Runs, experiments and notes through the HTTP API, seeded through a Notebook."""

from __future__ import annotations

import math
from typing import Any

import pytest
from flask.testing import FlaskClient
from servertools import error_of

from labnotebook import Notebook


@pytest.fixture
def seeded(notebook: Notebook) -> list[str]:
    """Three finished runs in two experiments, with params, metrics and a note."""
    ids = []
    for i, lr in enumerate([0.1, 0.01, 0.001]):
        with notebook.start(
            f"run-{i}",
            experiment="mnist" if i < 2 else "cifar",
            params={"optim": {"lr": lr, "name": "adam"}, "layers": i + 1},
            tags=["baseline"] if i == 0 else [],
        ) as run:
            for step in range(20):
                run.log(loss=1.0 / (step + 1 + i), acc=step * 0.01 * (i + 1))
            run.log({"val/loss": math.nan}, step=20, fields={"lr_now": lr})
            run.note(f"note on run {i}")
            ids.append(run.id)
    return ids


def _runs(client: FlaskClient, **query: Any) -> dict[str, Any]:
    response = client.get("/api/v1/runs", query_string=query)
    assert response.status_code == 200, response.get_data(as_text=True)
    body: dict[str, Any] = response.get_json()
    return body


def test_list_filter_sort_and_page(client: FlaskClient, seeded: list[str]) -> None:
    body = _runs(client)
    assert body["total"] == 3
    assert body["limit"] == 100
    assert body["offset"] == 0
    run = body["runs"][0]
    assert run["metrics"]["loss"]["count"] == 20
    assert run["metrics"]["val/loss"]["last"] == "NaN"
    assert run["status"] == "finished"

    body = _runs(
        client, where="params.optim.lr < 0.05", sort="params.optim.lr", order="asc"
    )
    assert [r["name"] for r in body["runs"]] == ["run-2", "run-1"]
    assert body["total"] == 2

    body = _runs(client, sort="metrics.loss.min", order="desc", limit=1, offset=1)
    assert [r["name"] for r in body["runs"]] == ["run-1"]
    assert body["total"] == 3

    body = _runs(client, experiment="cifar")
    assert [r["name"] for r in body["runs"]] == ["run-2"]
    body = _runs(client, where='tags has "baseline"')
    assert [r["id"] for r in body["runs"]] == [seeded[0]]


def test_runs_without_the_sort_value_come_last(
    client: FlaskClient, seeded: list[str], notebook: Notebook
) -> None:
    with notebook.start("bare"):
        pass
    for order in ("asc", "desc"):
        names = [
            r["name"]
            for r in _runs(client, sort="metrics.acc.max", order=order)["runs"]
        ]
        assert names[-1] == "bare"


def test_columns_give_values_and_drop_the_bulk(
    client: FlaskClient, seeded: list[str]
) -> None:
    body = _runs(
        client,
        columns="params.optim.lr, metrics.loss.min,duration,tags,params.missing",
        sort="name",
        order="asc",
    )
    run = body["runs"][0]
    assert "params" not in run
    assert "metrics" not in run
    values = run["values"]
    assert values["params.optim.lr"] == 0.1
    assert values["metrics.loss.min"] == pytest.approx(1 / 20)
    assert values["duration"] >= 0
    assert values["tags"] == ["baseline"]
    assert values["params.missing"] is None


@pytest.mark.parametrize(
    ("query", "status", "code"),
    [
        ({"limit": "0"}, 400, "invalid_parameter"),
        ({"limit": "1001"}, 422, "limit_exceeded"),
        ({"offset": "-1"}, 400, "invalid_parameter"),
        ({"order": "up"}, 400, "invalid_parameter"),
        ({"sort": "params."}, 400, "invalid_field"),
        ({"sort": "tags"}, 400, "invalid_field"),
        ({"sort": "nonsense"}, 400, "invalid_field"),
        ({"columns": "metrics.loss.median"}, 400, "invalid_field"),
        ({"columns": ",".join(["name"] * 101)}, 422, "limit_exceeded"),
        ({"where": "x" * 5000}, 422, "limit_exceeded"),
        ({"where": "params.lr <<< 1"}, 400, "invalid_filter"),
        ({"experiment": "e" * 300}, 422, "limit_exceeded"),
    ],
)
def test_list_rejects_bad_parameters(
    client: FlaskClient, query: dict[str, str], status: int, code: str
) -> None:
    error = error_of(client.get("/api/v1/runs", query_string=query), status, code)
    if status == 422 and code == "limit_exceeded":
        assert isinstance(error["detail"]["limit"], int)
        assert str(error["detail"]["limit"]) in error["message"]


def test_limit_twice_is_refused(client: FlaskClient) -> None:
    error_of(client.get("/api/v1/runs?limit=1&limit=2"), 400, "invalid_parameter")


def test_one_run_by_id_or_prefix(client: FlaskClient, seeded: list[str]) -> None:
    full = client.get(f"/api/v1/runs/{seeded[0]}").get_json()
    assert full["id"] == seeded[0]
    assert full["params"]["optim"]["lr"] == 0.1
    assert full["experiment"] == "mnist"
    assert full["tags"] == ["baseline"]
    assert full["heartbeat_at"] > 0
    by_prefix = client.get(f"/api/v1/runs/{seeded[0][:8]}").get_json()
    assert by_prefix["id"] == seeded[0]
    error_of(client.get("/api/v1/runs/abc"), 404, "not_found")
    error_of(client.get("/api/v1/runs/" + "f" * 40), 404, "not_found")


def test_metrics_params_and_fields(client: FlaskClient, seeded: list[str]) -> None:
    metrics = client.get(f"/api/v1/runs/{seeded[1]}/metrics").get_json()["metrics"]
    assert [m["key"] for m in metrics] == ["acc", "loss", "val/loss"]
    assert metrics[1]["count"] == 20
    assert metrics[1]["max"] == pytest.approx(0.5)
    assert metrics[2]["min"] == "NaN"

    params = client.get(f"/api/v1/runs/{seeded[1]}/params").get_json()
    assert params == {"params": {"optim": {"lr": 0.01, "name": "adam"}, "layers": 2}}

    fields = client.get(f"/api/v1/runs/{seeded[1]}/fields?start=10").get_json()
    assert fields["fields"][0]["step"] == 20
    assert fields["fields"][0]["fields"] == {"lr_now": 0.01}
    assert client.get(f"/api/v1/runs/{seeded[1]}/fields?stop=20").get_json() == {
        "fields": []
    }
    error_of(client.get(f"/api/v1/runs/{seeded[1]}/fields?start=x"), 400)
    inverted = error_of(
        client.get(f"/api/v1/runs/{seeded[1]}/fields?start=20&stop=10"), 400
    )
    assert "stop=10 must be greater than start=20" in inverted["message"]


def test_patch_and_delete_a_run(client: FlaskClient, seeded: list[str]) -> None:
    url = f"/api/v1/runs/{seeded[2]}"
    changed = client.patch(
        url, json={"name": "renamed", "tags": ["a", "b", "a"], "status": "killed"}
    ).get_json()
    assert changed["name"] == "renamed"
    assert changed["tags"] == ["a", "b"]
    assert changed["status"] == "killed"

    error_of(client.patch(url, json={"status": "crashed"}), 422, "invalid_value")
    error_of(client.patch(url, json={"tags": "a"}), 422, "invalid_value")
    error_of(client.patch(url, json={"name": "x\n"}), 422)
    error_of(client.patch(url, json={"owner": "me"}), 422, "unknown_field")

    response = client.delete(url)
    assert response.status_code == 204
    assert response.data == b""
    assert "Content-Type" not in response.headers
    error_of(client.get(url), 404)
    error_of(client.delete(url), 404)
    assert _runs(client)["total"] == 2


def test_experiments(client: FlaskClient, seeded: list[str]) -> None:
    listed = client.get("/api/v1/experiments").get_json()["experiments"]
    assert [(e["name"], e["run_count"]) for e in listed] == [("cifar", 1), ("mnist", 2)]

    created = client.post("/api/v1/experiments", json={"name": "new"})
    assert created.status_code == 201
    body = created.get_json()
    assert body["name"] == "new"
    assert body["run_count"] == 0
    again = client.post("/api/v1/experiments", json={"name": "new"}).get_json()
    assert again["id"] == body["id"]

    renamed = client.patch(
        f"/api/v1/experiments/{body['id']}", json={"name": "newer"}
    ).get_json()
    assert renamed == {**body, "name": "newer"}
    same = client.patch(f"/api/v1/experiments/{body['id']}", json={"name": "newer"})
    assert same.status_code == 200
    error_of(
        client.patch(f"/api/v1/experiments/{body['id']}", json={"name": "mnist"}),
        409,
        "conflict",
    )


def test_notes(client: FlaskClient, seeded: list[str]) -> None:
    url = f"/api/v1/runs/{seeded[0]}/notes"
    notes = client.get(url).get_json()["notes"]
    assert [n["text"] for n in notes] == ["note on run 0"]

    created = client.post(url, json={"text": "**bold** idea", "step": 7})
    assert created.status_code == 201
    note = created.get_json()
    assert note["step"] == 7
    assert note["run_id"] == seeded[0]
    assert note["text"] == "**bold** idea"

    edited = client.patch(f"/api/v1/notes/{note['id']}", json={"text": "edited"})
    assert edited.get_json()["text"] == "edited"
    assert edited.get_json()["updated_at"] >= note["updated_at"]
    assert [n["text"] for n in client.get(url).get_json()["notes"]] == [
        "note on run 0",
        "edited",
    ]

    error_of(client.post(url, json={"text": ""}), 422, "invalid_value")
    error_of(client.post(url, json={"text": "a\x00b"}), 422, "invalid_value")
    error_of(client.post(url, json={"text": "x", "step": -1}), 422)
    error_of(client.post(url, json={"text": "x" * 1_000_001}), 413, "note_too_long")
    error_of(client.post("/api/v1/runs/0000aaaa/notes", json={"text": "x"}), 404)


def test_a_note_with_a_lone_surrogate_is_refused_not_a_server_error(
    client: FlaskClient, seeded: list[str]
) -> None:
    # A JSON body may escape half of a surrogate pair ("\ud800"), which no
    # database can store as text.
    url = f"/api/v1/runs/{seeded[0]}/notes"
    body = '{"text": "broken \\ud800 pair"}'
    error = error_of(
        client.post(url, data=body, content_type="application/json"),
        422,
        "invalid_value",
    )
    assert "surrogate" in error["message"]
    assert error["detail"] == {"field": "text"}
    note = client.post(url, json={"text": "fine"}).get_json()
    error_of(
        client.patch(
            f"/api/v1/notes/{note['id']}", data=body, content_type="application/json"
        ),
        422,
        "invalid_value",
    )
    assert [n["text"] for n in client.get(url).get_json()["notes"]][-1] == "fine"


def test_health_and_version(client: FlaskClient) -> None:
    assert client.get("/api/v1/health").get_json() == {"status": "ok"}
    version = client.get("/api/v1/version").get_json()
    assert version["version"] == "0.1.0"
    assert version["schema"] >= "0002"
