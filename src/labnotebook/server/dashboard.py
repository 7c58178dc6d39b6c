"""The dashboard: the built Vue app in ``labnotebook/static``, with history fallback.

Files are served from an index of the build folder: a request path is looked up in
it and never turned into a filesystem path. The index is made again when the build's
``index.html`` changes, so rebuilding the dashboard under a running server works.
Paths under ``/api/`` that match no route answer a JSON 404 (whatever the method),
and a GET on an API route without one a JSON 405, never the dashboard page.
"""

from __future__ import annotations

import mimetypes
import threading
from pathlib import Path

from flask import Blueprint, Response, current_app

from ._auth import public
from ._errors import ApiError, api_methods, is_api_path, method_not_allowed

bp = Blueprint("dashboard", __name__)

STATIC = Path(__file__).resolve().parent.parent / "static"
#: Hashed build outputs (``assets/index-3f2a.js``) never change: cache for a year.
IMMUTABLE = "public, max-age=31536000, immutable"
NOT_BUILT = (
    "labnotebook: the dashboard is not built in this installation.\n"
    "Build it with `make run` (or scripts/build-frontend) in a source checkout;\n"
    "the HTTP API is available under /api/v1 (see /api/v1/openapi.json).\n"
)


#: Sent with the page: scripts only from the server, pictures also from ``blob:``
#: (artifacts fetched with the token) and ``data:``, no framing by other sites.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data: blob:; connect-src 'self'; object-src 'none'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
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


class _BuildIndex:
    """The index of ``STATIC``, made again when its ``index.html`` changes."""

    def __init__(self, folder: Path):
        self._folder = folder
        self._lock = threading.Lock()
        self._stamp: float | None = None
        self._files: dict[str, Path] = {}

    def files(self) -> dict[str, Path]:
        try:
            stamp = (self._folder / "index.html").stat().st_mtime
        except OSError:
            stamp = None
        with self._lock:
            if stamp != self._stamp or (stamp is None and self._files):
                self._files = _index(self._folder)
                self._stamp = stamp
            return self._files


_BUILD = _BuildIndex(STATIC)


def _files() -> dict[str, Path]:
    files = current_app.extensions.get("labnotebook_static")
    return _BUILD.files() if files is None else files


@bp.get("/")
@public
def index() -> Response:
    """The dashboard's page (or a note that it is not built)."""
    return _page()


@bp.get("/<path:path>")
@public
def asset(path: str) -> Response:
    """A file of the dashboard, or its page for the dashboard's own routes."""
    if is_api_path("/" + path):
        allowed = api_methods("/" + path)
        if allowed:
            raise method_not_allowed(allowed)
        raise ApiError(404, "not_found", unknown_api_message("/" + path))
    found = _files().get(path)
    if found is None:
        return _page()
    response = _file(found)
    if path.startswith("assets/"):
        response.headers["Cache-Control"] = IMMUTABLE
    return response


def _page() -> Response:
    page = _files().get("index.html")
    if page is None:
        return Response(NOT_BUILT, mimetype="text/plain")
    response = _file(page)
    response.headers["Cache-Control"] = "no-cache"
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    return response


def _file(path: Path) -> Response:
    kind = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    try:
        data = path.read_bytes()
    except OSError:
        # Removed by a rebuild between indexing and reading.
        raise ApiError(
            404, "not_found", "this dashboard file is gone; reload the page"
        ) from None
    return Response(data, mimetype=kind)
