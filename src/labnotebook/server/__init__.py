"""The tracking server: a Flask application over a SQL store.

    from labnotebook.server import create_app, serve

    app = create_app({"store": "postgresql://lab@db/lab", "token": "s3cret"})
    serve("postgresql://lab@db/lab", host="0.0.0.0", token="s3cret")

See docs/server.md (running it), docs/http-api.md (the routes) and
docs/security.md (tokens and limits).
"""

from __future__ import annotations

from ._app import create_app
from ._config import ServerConfig
from ._serve import DEFAULT_PORT, serve

__all__ = ["DEFAULT_PORT", "ServerConfig", "create_app", "serve"]
