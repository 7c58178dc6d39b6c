"""One JSON error shape for every status the server returns, Werkzeug's included."""

from __future__ import annotations

import logging

import pytest
from flask import Flask, abort
from flask.testing import FlaskClient
from servertools import READ_TOKEN, TOKEN, error_of, make_app

from labnotebook._errors import StoreUnavailableError
from labnotebook.server._auth import public


def test_400_malformed_query_parameter(client: FlaskClient) -> None:
    error = error_of(client.get("/api/v1/runs?limit=ten"), 400, "invalid_parameter")
    assert "limit" in error["message"]
    assert error["detail"]["parameter"] == "limit"


@pytest.mark.parametrize("value", ["1_0", " 5", "5 ", "\u0663", "0x10", "1e3", "+"])
def test_an_integer_parameter_is_plain_ascii_digits(
    client: FlaskClient, value: str
) -> None:
    # Python's int() would read "1_0" as 10, " 5" as 5 and an Arabic-Indic
    # three as 3: the API takes only what it documents, a whole number.
    for url in ("/api/v1/runs", "/api/v1/runs/abcd1234/console"):
        error = error_of(
            client.get(url, query_string={"limit": value}), 400, "invalid_parameter"
        )
        assert error["detail"]["parameter"] == "limit"
    assert client.get("/api/v1/runs?limit=%2B5").status_code == 200


def test_400_unknown_query_parameter_lists_the_known_ones(client: FlaskClient) -> None:
    error = error_of(client.get("/api/v1/runs?limt=10"), 400, "unknown_parameter")
    assert "'limt'" in error["message"]
    assert "limit" in error["detail"]["allowed"]


def test_400_invalid_filter_names_the_column(client: FlaskClient) -> None:
    error = error_of(
        client.get("/api/v1/runs", query_string={"where": "params.lr <"}),
        400,
        "invalid_filter",
    )
    assert isinstance(error["detail"]["column"], int)
    assert error["detail"]["column"] >= 1


def test_400_malformed_json(client: FlaskClient) -> None:
    response = client.post(
        "/api/v1/experiments", data="{nope", content_type="application/json"
    )
    error_of(response, 400, "invalid_json")


def test_401_and_403(store_url: str) -> None:
    client = make_app(store_url, token=TOKEN, read_token=READ_TOKEN).test_client()
    response = client.get("/api/v1/runs")
    error_of(response, 401, "unauthorized")
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    error_of(
        client.get("/api/v1/runs", headers={"Authorization": "Bearer wrong"}),
        401,
        "invalid_token",
    )
    error_of(
        client.post(
            "/api/v1/experiments",
            json={"name": "x"},
            headers={"Authorization": f"Bearer {READ_TOKEN}"},
        ),
        403,
        "forbidden",
    )


@pytest.mark.parametrize(
    "path", ["/api/v1/nope", "/api/v2/runs", "/api", "/api/v1/runs/abcd1234/nope"]
)
@pytest.mark.parametrize("method", ["GET", "POST", "DELETE", "PATCH"])
def test_404_for_unknown_api_paths_whatever_the_method(
    client: FlaskClient, path: str, method: str
) -> None:
    error_of(client.open(path, method=method), 404, "not_found")


def test_404_for_missing_objects(client: FlaskClient) -> None:
    error_of(client.get("/api/v1/runs/0123456789abcdef"), 404, "not_found")
    error_of(client.patch("/api/v1/notes/12345", json={"text": "x"}), 404)
    error_of(client.patch("/api/v1/experiments/999", json={"name": "x"}), 404)
    error_of(client.patch(f"/api/v1/notes/{2**70}", json={"text": "x"}), 404)


def test_405_lists_the_allowed_methods(client: FlaskClient) -> None:
    response = client.put("/api/v1/runs")
    error = error_of(response, 405, "method_not_allowed")
    assert "GET" in error["detail"]["allowed"]
    assert "GET" in response.headers["Allow"]


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("GET", f"/api/v1/blobs/{'a' * 64}", {"HEAD", "PUT"}),
        ("POST", f"/api/v1/blobs/{'a' * 64}", {"HEAD", "PUT"}),
        ("DELETE", f"/api/v1/blobs/{'a' * 64}", {"HEAD", "PUT"}),
        ("GET", "/api/v1/blobs/missing", {"HEAD", "POST", "PUT"}),
        ("GET", "/api/v1/ingest", {"POST"}),
        ("GET", "/api/v1/runs/abcd1234/artifacts/3", {"DELETE"}),
        ("GET", "/api/v1/notes/1", {"PATCH"}),
        ("PUT", "/api/v1/notes/1", {"PATCH"}),
    ],
)
def test_405_on_api_routes_without_get(
    client: FlaskClient, method: str, path: str, allowed: set[str]
) -> None:
    # The dashboard answers GET on every other path: a route of the API that has
    # no GET must still say which methods it takes, not that it does not exist.
    response = client.open(path, method=method)
    error = error_of(response, 405, "method_not_allowed")
    listed = set(error["detail"]["allowed"]) - {"OPTIONS"}
    assert listed == allowed
    assert set(response.headers["Allow"].split(", ")) - {"OPTIONS"} == allowed
    for name in allowed:
        assert name in error["message"]


def test_409_duplicate_experiment_name(client: FlaskClient) -> None:
    client.post("/api/v1/experiments", json={"name": "a"})
    b = client.post("/api/v1/experiments", json={"name": "b"}).get_json()
    error = error_of(
        client.patch(f"/api/v1/experiments/{b['id']}", json={"name": "a"}), 409
    )
    assert "'a'" in error["message"]


def test_413_body_too_large(store_url: str) -> None:
    client = make_app(store_url, max_body_bytes=1000).test_client()
    response = client.post(
        "/api/v1/ingest", data="x" * 5000, content_type="application/json"
    )
    error = error_of(response, 413, "body_too_large")
    assert error["detail"]["limit"] == 1000


def test_415_body_not_json(client: FlaskClient) -> None:
    response = client.post("/api/v1/experiments", data="name=x")
    error_of(response, 415, "unsupported_media_type")


def test_422_invalid_value(client: FlaskClient) -> None:
    error = error_of(client.post("/api/v1/experiments", json={"name": ""}), 422)
    assert "empty" in error["message"]
    error_of(
        client.post("/api/v1/experiments", json={"name": "x", "colour": 1}),
        422,
        "unknown_field",
    )
    error_of(client.post("/api/v1/experiments", json={}), 422, "missing_field")
    error_of(client.post("/api/v1/experiments", json=[1]), 422, "invalid_value")


def _with_route(app: Flask, status_or_exc: int | Exception) -> FlaskClient:
    @public
    def boom() -> str:
        if isinstance(status_or_exc, Exception):
            raise status_or_exc
        abort(status_or_exc)

    app.add_url_rule("/api/v1/test-boom", "boom", boom)
    return app.test_client()


def test_429_from_werkzeug_has_the_shape(app: Flask) -> None:
    error_of(_with_route(app, 429).get("/api/v1/test-boom"), 429, "too_many_requests")


def test_500_is_generic_and_logged(
    app: Flask, caplog: pytest.LogCaptureFixture
) -> None:
    app.config["TESTING"] = False
    app.config["PROPAGATE_EXCEPTIONS"] = False
    client = _with_route(app, RuntimeError("secret internals"))
    with caplog.at_level(logging.ERROR, "labnotebook.server"):
        error = error_of(client.get("/api/v1/test-boom"), 500, "internal_error")
    assert "secret internals" not in error["message"]
    assert any("unexpected error" in r.getMessage() for r in caplog.records)


def test_503_when_the_store_is_unreachable(tmp_path: object) -> None:
    app = make_app("postgresql://postgres@127.0.0.1:1/nowhere")
    response = app.test_client().get("/api/v1/runs")
    error = error_of(response, 503, "store_unavailable")
    assert response.headers["Retry-After"] == str(error["detail"]["retry_after"])
    assert "127.0.0.1:1" not in error["message"]


def test_503_from_a_store_error_raised_in_a_view(app: Flask) -> None:
    client = _with_route(app, StoreUnavailableError("down"))
    error_of(client.get("/api/v1/test-boom"), 503, "store_unavailable")


@pytest.mark.parametrize(
    ("url", "status"),
    [
        ("/api/v1/runs?experiment=a%00b", 400),
        ("/api/v1/runs?where=name%20%3D%20%22%00%22", 400),
        ("/api/v1/runs/abcd%00", 404),
        ("/api/v1/series?run=abcd&key=a%00", 400),
    ],
)
def test_nul_characters_are_refused_before_the_database(
    client: FlaskClient, url: str, status: int
) -> None:
    error_of(client.get(url), status)
