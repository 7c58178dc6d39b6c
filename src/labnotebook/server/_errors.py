"""One JSON error shape for every error the server returns.

``{"error": {"status": 404, "code": "not_found", "message": "...", "detail": {}}}``:
raised on purpose as :class:`ApiError`, translated from the library's exceptions,
or from Werkzeug's own (unknown route, wrong method, body too large). An
unexpected exception becomes a logged 500 with a generic message.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from flask import Flask, Response, current_app, jsonify, request
from werkzeug.exceptions import HTTPException

from .._errors import (
    ConflictError,
    FilterError,
    NotFoundError,
    StoreUnavailableError,
    ValidationError,
)

logger = logging.getLogger(__name__)

#: Seconds a client should wait before retrying when the store is unavailable.
RETRY_AFTER = 5

_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    412: "precondition_failed",
    413: "body_too_large",
    415: "unsupported_media_type",
    422: "invalid_value",
    429: "too_many_requests",
    500: "internal_error",
    503: "store_unavailable",
}


class ApiError(Exception):
    """An error to send to the client as the JSON error shape.

    status: the HTTP status code.
    code: a stable snake_case code clients can branch on.
    message: text naming the bad value and how to fix it.
    detail: optional machine-readable facts, e.g. ``{"limit": 1000}``.
    """

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        detail: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.detail = detail or {}
        self.headers = headers or {}


def error_response(
    status: int,
    code: str,
    message: str,
    detail: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    """A response in the error shape."""
    body: dict[str, Any] = {"status": status, "code": code, "message": message}
    if detail:
        body["detail"] = detail
    response = jsonify({"error": body})
    response.status_code = status
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def register(app: Flask) -> None:
    """Install the handlers that turn every exception into the error shape."""
    app.register_error_handler(ApiError, _api_error)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(FilterError, _filter_error)
    app.register_error_handler(ValidationError, _validation_error)
    app.register_error_handler(NotFoundError, _not_found)
    app.register_error_handler(ConflictError, _conflict)
    app.register_error_handler(StoreUnavailableError, _unavailable)
    app.register_error_handler(Exception, _unexpected)


def _api_error(exc: ApiError) -> Response:
    return error_response(exc.status, exc.code, exc.message, exc.detail, exc.headers)


def _http_error(exc: HTTPException) -> Response:
    status = exc.code or 500
    if status >= 500:
        return _unexpected(exc)
    code = _CODES.get(status) or _snake(exc.name)
    detail: dict[str, Any] = {}
    headers: dict[str, str] = {}
    allowed: list[str] = sorted(getattr(exc, "valid_methods", None) or [])
    if status == 405 and is_api_path(request.path):
        # The dashboard's GET catch-all matches every path: only the API's own
        # routes say which methods an API path takes.
        allowed = api_methods(request.path)
        if not allowed:
            status, code = 404, "not_found"
    if status == 404:
        message = (
            f"no route {request.path!r}; the API is under /api/v1 "
            "(see /api/v1/openapi.json)"
        )
    elif status == 405:
        return _api_error(method_not_allowed(allowed))
    elif status == 413:
        limit = current_app.config.get("MAX_CONTENT_LENGTH")
        message = (
            f"the request body is larger than the limit of {limit} bytes "
            "(max_body_bytes); send smaller batches"
        )
        detail["limit"] = limit
    else:
        message = exc.description or exc.name
    return error_response(status, code, message, detail, headers)


def method_not_allowed(allowed: list[str]) -> ApiError:
    """The 405 of the request's method, listing the ``allowed`` ones."""
    return ApiError(
        405,
        "method_not_allowed",
        f"method {request.method} is not allowed on {request.path!r}; "
        f"use {', '.join(allowed) or 'another route'}",
        {"allowed": allowed},
        {"Allow": ", ".join(allowed)} if allowed else None,
    )


def is_api_path(path: str) -> bool:
    return path == "/api" or path.startswith("/api/")


_METHODS = ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT")


def api_methods(path: str) -> list[str]:
    """The methods the API's routes (not the dashboard's) take on ``path``."""
    adapter = current_app.url_map.bind("localhost")
    found = []
    for method in _METHODS:
        try:
            endpoint, _ = adapter.match(path, method=method)
        except HTTPException:
            continue
        if not str(endpoint).startswith("dashboard."):
            found.append(method)
    return found


def _filter_error(exc: FilterError) -> Response:
    detail: dict[str, Any] = {}
    if exc.column is not None:
        detail["column"] = exc.column
    return error_response(400, "invalid_filter", exc.message, detail)


def _validation_error(exc: ValidationError) -> Response:
    return error_response(422, "invalid_value", str(exc))


def _not_found(exc: NotFoundError) -> Response:
    return error_response(404, "not_found", str(exc))


def _conflict(exc: ConflictError) -> Response:
    return error_response(409, "conflict", str(exc))


def _unavailable(exc: StoreUnavailableError) -> Response:
    logger.warning("store unavailable: %s", exc)
    return error_response(
        503,
        "store_unavailable",
        "the store is unavailable right now; retry in a few seconds",
        {"retry_after": RETRY_AFTER},
        {"Retry-After": str(RETRY_AFTER)},
    )


def _unexpected(exc: Exception) -> Response:
    logger.error(
        "unexpected error on %s %s", request.method, request.path, exc_info=exc
    )
    return error_response(
        500,
        "internal_error",
        "the server failed to handle this request; the error is in the server log",
    )


def _snake(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_") or "error"
