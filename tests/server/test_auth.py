"""Token policy of every route: walked over the whole URL map, so none slips by."""

from __future__ import annotations

import logging
import re
from typing import Any

import pytest
from flask import Flask
from servertools import READ_TOKEN, TOKEN, error_of, make_app

from labnotebook.server._auth import policy_of

# Values for path variables; the requests need not find anything.
_SAMPLES = {"int": "1", "default": "abcd1234", "path": "index.html"}
_HEADERS = {
    "none": {},
    "wrong": {"Authorization": "Bearer not-the-token"},
    "read": {"Authorization": f"Bearer {READ_TOKEN}"},
    "write": {"Authorization": f"Bearer {TOKEN}"},
}
# What each kind of caller gets from each policy: "ok" means neither 401 nor 403.
_EXPECTED = {
    "public": {"none": "ok", "wrong": "ok", "read": "ok", "write": "ok"},
    "read": {"none": 401, "wrong": 401, "read": "ok", "write": "ok"},
    "write": {"none": 401, "wrong": 401, "read": 403, "write": "ok"},
}


@pytest.fixture
def secured(store_url: str) -> Flask:
    return make_app(store_url, token=TOKEN, read_token=READ_TOKEN)


def _url(rule: Any) -> str:
    def sample(match: re.Match[str]) -> str:
        converter = match.group(1) or "default"
        return _SAMPLES.get(converter, "x")

    return re.sub(r"<(?:(\w+)(?:\([^)]*\))?:)?\w+>", sample, rule.rule)


def test_every_route_declares_a_policy_and_the_server_enforces_it(
    secured: Flask, caplog: pytest.LogCaptureFixture
) -> None:
    client = secured.test_client()
    undeclared = []
    checked = 0
    caplog.set_level(logging.DEBUG)
    for rule in secured.url_map.iter_rules():
        policy = policy_of(secured.view_functions[rule.endpoint])
        if policy is None:
            undeclared.append(rule.rule)
            continue
        if rule.endpoint == "events.events":
            continue  # a stream: its policy is checked below without reading it
        for method in sorted((rule.methods or set()) - {"OPTIONS"}):
            for caller, headers in _HEADERS.items():
                response = client.open(
                    _url(rule),
                    method=method,
                    headers=headers,
                    json={} if method in ("POST", "PATCH") else None,
                )
                expected = _EXPECTED[policy][caller]
                if expected == "ok":
                    assert response.status_code not in (401, 403), (
                        rule.rule,
                        method,
                        caller,
                        response.get_data(as_text=True),
                    )
                else:
                    assert response.status_code == expected, (rule.rule, method, caller)
                    if method != "HEAD":
                        error_of(response, expected)
                checked += 1
    assert not undeclared, (
        f"routes without a token policy: {undeclared}; decorate their views with "
        "labnotebook.server._auth.public, read or write"
    )
    assert checked > 60
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert TOKEN not in logged
    assert READ_TOKEN not in logged


def test_the_policies_that_matter(secured: Flask) -> None:
    policies = {
        rule.rule
        + " "
        + ",".join(sorted((rule.methods or set()) - {"HEAD", "OPTIONS"})): policy_of(
            secured.view_functions[rule.endpoint]
        )
        for rule in secured.url_map.iter_rules()
    }
    assert policies["/api/v1/health GET"] == "public"
    assert policies["/api/v1/ingest POST"] == "write"
    assert policies["/api/v1/runs/<run_id> DELETE"] == "write"
    assert policies["/api/v1/runs GET"] == "read"
    assert policies["/api/v1/events GET"] == "read"
    api = {k: v for k, v in policies.items() if k.startswith("/api/")}
    assert [k for k, v in api.items() if v == "public"] == ["/api/v1/health GET"]


def test_the_events_stream_needs_a_token(secured: Flask) -> None:
    client = secured.test_client()
    error_of(client.get("/api/v1/events"), 401)
    error_of(client.get("/api/v1/events", headers=_HEADERS["wrong"]), 401)


def test_no_token_configured_means_open(store_url: str) -> None:
    client = make_app(store_url).test_client()
    assert client.get("/api/v1/runs").status_code == 200
    assert client.post("/api/v1/experiments", json={"name": "e"}).status_code == 201


def test_cors_preflight_needs_no_token_and_is_off_by_default(store_url: str) -> None:
    origin = {"Origin": "https://dash.example"}
    closed = make_app(store_url, token=TOKEN).test_client()
    response = closed.options("/api/v1/runs", headers=origin)
    assert "Access-Control-Allow-Origin" not in response.headers

    open_ = make_app(
        store_url, token=TOKEN, cors_origins=("https://dash.example",)
    ).test_client()
    response = open_.options("/api/v1/runs", headers=origin)
    assert response.headers["Access-Control-Allow-Origin"] == "https://dash.example"
    assert "Authorization" in response.headers["Access-Control-Allow-Headers"]
    other = open_.get("/api/v1/health", headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in other.headers


def test_the_scheme_is_case_insensitive_and_the_token_exact(secured: Flask) -> None:
    client = secured.test_client()
    ok = client.get("/api/v1/runs", headers={"Authorization": f"bearer {TOKEN}"})
    assert ok.status_code == 200
    error_of(
        client.get("/api/v1/runs", headers={"Authorization": f"Bearer {TOKEN}x"}), 401
    )
    error_of(
        client.get("/api/v1/runs", headers={"Authorization": f"Basic {TOKEN}"}), 401
    )
