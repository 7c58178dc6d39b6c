"""Health, version and the OpenAPI description."""

from __future__ import annotations

from typing import Any

from flask import Blueprint

from .. import __version__
from . import _openapi
from ._auth import public, read
from ._http import check_params, store

bp = Blueprint("meta", __name__)


@bp.get("/health")
@public
def health() -> dict[str, Any]:
    """Liveness: answers without a token and without touching the store."""
    check_params(())
    return {"status": "ok"}


@bp.get("/version")
@read
def version() -> dict[str, Any]:
    """The server's version and the schema revision of its store."""
    check_params(())
    return {"version": __version__, "schema": store().schema_revision()}


@bp.get("/openapi.json")
@read
def openapi() -> dict[str, Any]:
    """The OpenAPI 3.1 description of this API."""
    check_params(())
    return _openapi.document()
