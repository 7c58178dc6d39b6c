"""The OpenAPI document is valid, complete, and true of the running app."""

from __future__ import annotations

import re
from typing import Any

import jsonschema
import pytest
import schemathesis
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openapi_spec_validator import validate
from referencing import Registry
from referencing.jsonschema import DRAFT202012
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from labnotebook import Notebook
from labnotebook.server._openapi import document

# Routes of the app that are not part of the API: the dashboard's files.
_NOT_API = {"/", "/<path:path>"}


def _openapi_path(rule: str) -> str:
    return re.sub(r"<(?:\w+(?:\([^)]*\))?:)?(\w+)>", r"{\1}", rule)


def test_the_document_is_valid_openapi_3_1() -> None:
    doc = document()
    assert doc["openapi"] == "3.1.0"
    validate(doc)


def test_the_document_is_served(client: FlaskClient) -> None:
    assert client.get("/api/v1/openapi.json").get_json() == document()


def test_every_route_is_described_and_every_description_is_a_route(app: Flask) -> None:
    routes: dict[str, set[str]] = {}
    for rule in app.url_map.iter_rules():
        if rule.rule in _NOT_API:
            continue
        methods = (rule.methods or set()) - {"OPTIONS"}
        if "GET" in methods:
            methods.discard("HEAD")  # Flask's own HEAD for every GET
        routes.setdefault(_openapi_path(rule.rule), set()).update(
            m.lower() for m in methods
        )
    described = {path: set(ops) for path, ops in document()["paths"].items()}
    assert routes == described


def _validator(pointer: str) -> jsonschema.Draft202012Validator:
    """A validator for the schema at ``pointer`` in the document, refs resolved."""
    resource = DRAFT202012.create_resource(document())
    registry: Registry[Any] = Registry().with_resource("urn:openapi", resource)
    return jsonschema.Draft202012Validator(
        {"$ref": f"urn:openapi#{pointer}"}, registry=registry
    )


def _check(doc: dict[str, Any], path: str, method: str, response: Any) -> None:
    operation = doc["paths"][path][method]
    status = str(response.status_code)
    assert status in operation["responses"], (path, method, status)
    content = operation["responses"][status].get("content")
    if content is None:
        assert not response.data
        return
    pointer = (
        "/paths/"
        + path.replace("~", "~0").replace("/", "~1")
        + f"/{method}/responses/{status}/content/application~1json/schema"
    )
    _validator(pointer).validate(response.get_json())


def test_responses_of_the_suite_validate_against_the_document(
    client: FlaskClient, notebook: Notebook
) -> None:
    with notebook.start("r", params={"lr": 0.1}) as run:
        for step in range(50):
            run.log(loss=1 / (step + 1), fields={"f": step} if step == 3 else None)
        run.note("hi")
    rid = run.id
    doc = document()
    note_id = client.get(f"/api/v1/runs/{rid}/notes").get_json()["notes"][0]["id"]
    requests = [
        ("/api/v1/health", "get", "/api/v1/health", None),
        ("/api/v1/version", "get", "/api/v1/version", None),
        ("/api/v1/experiments", "get", "/api/v1/experiments", None),
        ("/api/v1/experiments", "post", "/api/v1/experiments", {"name": "x"}),
        (
            "/api/v1/experiments/{experiment_id}",
            "patch",
            "/api/v1/experiments/1",
            {"name": "y"},
        ),
        (
            "/api/v1/experiments/{experiment_id}",
            "patch",
            "/api/v1/experiments/99",
            {"name": "z"},
        ),
        ("/api/v1/runs", "get", "/api/v1/runs?sort=metrics.loss.min", None),
        ("/api/v1/runs", "get", "/api/v1/runs?columns=params.lr", None),
        ("/api/v1/runs", "get", "/api/v1/runs?where=params.lr%3E", None),
        ("/api/v1/runs", "get", "/api/v1/runs?limit=5000", None),
        ("/api/v1/runs/{run_id}", "get", f"/api/v1/runs/{rid}", None),
        ("/api/v1/runs/{run_id}", "get", "/api/v1/runs/ffffffff", None),
        ("/api/v1/runs/{run_id}", "patch", f"/api/v1/runs/{rid}", {"name": "n"}),
        ("/api/v1/runs/{run_id}/metrics", "get", f"/api/v1/runs/{rid}/metrics", None),
        ("/api/v1/runs/{run_id}/params", "get", f"/api/v1/runs/{rid}/params", None),
        ("/api/v1/runs/{run_id}/fields", "get", f"/api/v1/runs/{rid}/fields", None),
        (
            "/api/v1/runs/{run_id}/points",
            "get",
            f"/api/v1/runs/{rid}/points?key=loss&limit=10",
            None,
        ),
        ("/api/v1/runs/{run_id}/notes", "get", f"/api/v1/runs/{rid}/notes", None),
        (
            "/api/v1/runs/{run_id}/notes",
            "post",
            f"/api/v1/runs/{rid}/notes",
            {"text": "t"},
        ),
        ("/api/v1/notes/{note_id}", "patch", f"/api/v1/notes/{note_id}", {"text": "u"}),
        ("/api/v1/series", "get", f"/api/v1/series?run={rid}&key=loss&buckets=5", None),
        ("/api/v1/ingest", "post", "/api/v1/ingest", {"run_id": "x", "nope": 1}),
        ("/api/v1/runs/{run_id}", "delete", f"/api/v1/runs/{rid}", None),
    ]
    for path, method, url, body in requests:
        response = client.open(url, method=method.upper(), json=body)
        _check(doc, path, method, response)


@pytest.mark.slow
def test_schemathesis_finds_no_server_error_and_no_undocumented_response(
    app: Flask, notebook: Notebook
) -> None:
    with notebook.start("seed", params={"lr": 0.1}) as run:
        run.log(loss=1.0)
        run.note("n")
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)
    checks = [
        not_a_server_error,
        status_code_conformance,
        content_type_conformance,
        response_schema_conformance,
    ]
    tested = []
    for result in schema.get_all_operations():
        operation = result.ok()
        if operation.path == "/api/v1/events":
            continue  # a stream that lasts; tests/server/test_events.py covers it

        @given(case=operation.as_strategy(), data=st.data())
        @settings(
            max_examples=12,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def run_case(case: Any, data: Any) -> None:
            case.call_and_validate(checks=checks)

        run_case()
        tested.append(operation.label)
    described = {
        f"{method.upper()} {path}"
        for path, ops in document()["paths"].items()
        for method in ops
    }
    # schemathesis leaves out the route that serves the document itself.
    assert described - set(tested) <= {"GET /api/v1/events", "GET /api/v1/openapi.json"}
    assert len(tested) >= len(described) - 2
