"""Helpers of the server tests: building an app, checking the error shape."""

from __future__ import annotations

from typing import Any

from flask import Flask

from labnotebook.server import ServerConfig, create_app

TOKEN = "write-token-0123456789"
READ_TOKEN = "read-token-9876543210"


def make_app(store_url: str, **config: Any) -> Flask:
    app = create_app(ServerConfig(store=store_url, **config))
    app.config["TESTING"] = True
    return app


def error_of(response: Any, status: int, code: str | None = None) -> dict[str, Any]:
    """Assert the response is the JSON error shape with this status (and code)."""
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert set(body) == {"error"}
    error = body["error"]
    assert set(error) <= {"status", "code", "message", "detail"}
    assert error["status"] == status
    assert isinstance(error["message"], str)
    assert error["message"]
    if code is not None:
        assert error["code"] == code, error
    return error
