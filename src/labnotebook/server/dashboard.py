"""The dashboard: the built Vue app in ``labnotebook/static``, with history fallback.

Files are served from an index built when the app starts: a request path is looked
up in it and never turned into a filesystem path. Paths under ``/api/`` that match
no route answer a JSON 404 (whatever the method), never the dashboard page.
"""

from __future__ import annotations

import mimetypes
from pathlib import Path

from flask import Blueprint, Response, current_app

from ._auth import public
from ._errors import ApiError

bp = Blueprint("dashboard", __name__)

STATIC = Path(__file__).resolve().parent.parent / "static"
#: Hashed build outputs (``assets/index-3f2a.js``) never change: cache for a year.
IMMUTABLE = "public, max-age=31536000, immutable"
NOT_BUILT = (
    "labnotebook: the dashboard is not built in this installation.\n"
    "Build it with `make run` (or scripts/build-frontend) in a source checkout;\n"
    "the HTTP API is available under /api/v1 (see /api/v1/openapi.json).\n"
)


def unknown_api_message(path: str) -> str:
    return f"no route {path!r}; the API is under /api/v1 (see /api/v1/openapi.json)"


def _index(folder: Path) -> dict[str, Path]:
    if not folder.is_dir():
        return {}
    return {
        path.relative_to(folder).as_posix(): path
        for path in folder.rglob("*")
        if path.is_file()
    }


_FILES = _index(STATIC)


@bp.get("/")
@public
def index() -> Response:
    """The dashboard's page (or a note that it is not built)."""
    return _page()


@bp.get("/<path:path>")
@public
def asset(path: str) -> Response:
    """A file of the dashboard, or its page for the dashboard's own routes."""
    if path == "api" or path.startswith("api/"):
        raise ApiError(404, "not_found", unknown_api_message("/" + path))
    found = current_app.extensions.get("labnotebook_static", _FILES).get(path)
    if found is None:
        return _page()
    response = _file(found)
    if path.startswith("assets/"):
        response.headers["Cache-Control"] = IMMUTABLE
    return response


def _page() -> Response:
    files = current_app.extensions.get("labnotebook_static", _FILES)
    page = files.get("index.html")
    if page is None:
        return Response(NOT_BUILT, mimetype="text/plain")
    response = _file(page)
    response.headers["Cache-Control"] = "no-cache"
    return response


def _file(path: Path) -> Response:
    kind = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    return Response(path.read_bytes(), mimetype=kind)
