"""The application factory of the tracking server."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

from flask import Flask, Response, g, request

from .._artifacts import BlobStore
from .._errors import ValidationError
from .._store.sql import SqlStore
from . import (
    _auth,
    _errors,
    artifacts,
    console,
    dashboard,
    events,
    experiments,
    ingest,
    meta,
    notes,
    runs,
    series,
)
from ._config import ServerConfig
from ._http import State, install_json, refuse_nul, state

access_log = logging.getLogger("labnotebook.server.access")


def create_app(config: ServerConfig | Mapping[str, Any] | None = None) -> Flask:
    """Build the tracking server's Flask application.

    config: a :class:`ServerConfig`, or a mapping of its field names to values;
        fields not given come from ``LABNOTEBOOK_*`` environment variables, then
        defaults. The environment is read here, once.
    """
    config = _config(config)
    app = Flask(__name__, static_folder=None)
    app.config["MAX_CONTENT_LENGTH"] = config.max_body_bytes
    install_json(app)

    blobs = BlobStore(config.artifacts_path, config.max_artifact_size)
    blobs.remove_stale_temp_files()
    store = SqlStore(config.store, crash_timeout=config.crash_timeout, blobs=blobs)
    app.extensions["labnotebook"] = State(config, store)
    app.extensions[artifacts.EXTENSION] = blobs

    _errors.register(app)
    app.before_request(_start_timer)
    app.before_request(_auth.check_request)
    app.before_request(refuse_nul)
    app.after_request(_cors)
    app.after_request(_log_request)

    for module in (
        meta,
        experiments,
        runs,
        series,
        notes,
        artifacts,
        console,
        ingest,
        events,
    ):
        app.register_blueprint(module.bp, url_prefix="/api/v1")
    app.register_blueprint(dashboard.bp)
    return app


def _config(config: ServerConfig | Mapping[str, Any] | None) -> ServerConfig:
    if config is None:
        return ServerConfig.from_env()
    if isinstance(config, ServerConfig):
        return config
    if isinstance(config, Mapping):
        return ServerConfig.from_env(**dict(config))
    raise ValidationError(
        f"create_app() takes a ServerConfig or a mapping, got {type(config).__name__}"
    )


def _start_timer() -> None:
    g.labnotebook_started = time.perf_counter()


def _cors(response: Response) -> Response:
    origins = state().config.cors_origins
    origin = request.headers.get("Origin")
    if not origin or origin not in origins:
        return response
    response.headers["Access-Control-Allow-Origin"] = origin
    response.headers["Vary"] = "Origin"
    if request.method == "OPTIONS":
        response.headers["Access-Control-Allow-Headers"] = "Authorization, Content-Type"
        response.headers["Access-Control-Allow-Methods"] = (
            "GET, HEAD, POST, PUT, PATCH, DELETE"
        )
        response.headers["Access-Control-Max-Age"] = "600"
    return response


def _log_request(response: Response) -> Response:
    started = g.get("labnotebook_started")
    elapsed = (time.perf_counter() - started) * 1000 if started else 0.0
    # The path only: query strings may carry filters with private values, and no
    # token travels outside the Authorization header, which is never logged.
    access_log.info(
        "%s %s %s %d %.1fms",
        request.remote_addr or "-",
        request.method,
        request.path,
        response.status_code,
        elapsed,
    )
    return response
