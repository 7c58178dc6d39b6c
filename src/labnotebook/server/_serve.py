"""Running the tracking server under gunicorn (never Flask's development server)."""

from __future__ import annotations

import errno
import ipaddress
import logging
import socket
from typing import Any

from gunicorn.app.base import BaseApplication

from .._errors import ValidationError
from ._config import ServerConfig

logger = logging.getLogger(__name__)

DEFAULT_PORT = 8788


def serve(
    store: str,
    host: str = "127.0.0.1",
    port: int = DEFAULT_PORT,
    workers: int = 2,
    token: str | None = None,
    read_token: str | None = None,
    threads: int = 32,
) -> None:
    """Run the tracking server until interrupted.

    store: the SQL store URL (``sqlite:///...`` or ``postgresql://...``); empty:
        ``LABNOTEBOOK_STORE``, else the default per-user SQLite store.
    host: the address to listen on; anything but a loopback address needs a token.
    port: the TCP port (8788 by default).
    workers: gunicorn worker processes.
    token: the write token (default ``LABNOTEBOOK_TOKEN``).
    read_token: a read-only token (default ``LABNOTEBOOK_READ_TOKEN``).
    threads: threads per worker (live streams each hold one while open).
    """
    config = ServerConfig.from_env(
        store=store or None, token=token or None, read_token=read_token or None
    )
    check_binding(host, config)
    for name, value in (("port", port), ("workers", workers), ("threads", threads)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValidationError(f"{name} must be a positive integer, got {value!r}")
    if port > 65535:
        raise ValidationError(f"port must be at most 65535, got {port}")
    check_address(host, port)

    from ._app import create_app

    app = create_app(config)
    sql_store = app.extensions["labnotebook"].store
    # Create or upgrade the schema once, before the workers start; then drop the
    # connections, which forked workers must not share.
    sql_store.prepare()
    sql_store.engine.dispose()
    if not logging.getLogger().handlers:
        # serve() is the program here: its log (one line per request) goes to stderr.
        logging.basicConfig(
            level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
        )
    url = f"http://{_display_host(host)}:{port}/"
    logger.info(
        "labnotebook server: open %s (store %s; Ctrl-C stops)", url, _safe(config.store)
    )
    _Gunicorn(
        app,
        {
            "bind": f"{_bind_host(host)}:{port}",
            "workers": workers,
            "threads": threads,
            "worker_class": "gthread",
            "timeout": 120,
            "graceful_timeout": 10,
            "keepalive": 5,
            "accesslog": None,
            "errorlog": "-",
            "loglevel": "info",
            "preload_app": False,
            "post_fork": _forget_connections(sql_store.engine),
        },
    ).run()


def _forget_connections(engine: Any) -> Any:
    def post_fork(_server: Any, _worker: Any) -> None:
        # A worker opens its own connections; those of the parent stay its own.
        engine.dispose(close=False)

    return post_fork


def check_binding(host: str, config: ServerConfig) -> None:
    """Refuse to listen beyond this machine without a token."""
    if config.token or is_loopback(host):
        return
    raise ValidationError(
        f"refusing to listen on {host!r} without a token: anyone who can reach it "
        "could read and change every run. Set a token with --token or the "
        "LABNOTEBOOK_TOKEN environment variable (and give it to clients as "
        "LABNOTEBOOK_TOKEN), or listen on 127.0.0.1"
    )


def check_address(host: str, port: int) -> None:
    """Fail now, in one line, when ``host:port`` cannot be listened on.

    gunicorn would retry for seconds and log each attempt; the socket is bound
    the way gunicorn binds it, then closed.
    """
    where = f"{_bind_host(host)}:{port}"
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host.strip("[]"), port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except OSError as exc:
        raise ValidationError(
            f"cannot listen on {where}: {exc.strerror or exc}; give --host an "
            "address of this machine, such as 127.0.0.1 or 0.0.0.0"
        ) from None
    with socket.socket(family, kind, proto) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(address)
        except OSError as exc:
            hint = (
                "another program (another labnotebook serve?) listens there; stop "
                "it, or choose another port with --port"
                if exc.errno == errno.EADDRINUSE
                else "choose another --host or --port"
            )
            raise ValidationError(
                f"cannot listen on {where}: {exc.strerror or exc}; {hint}"
            ) from None


def is_loopback(host: str) -> bool:
    """Whether ``host`` only accepts connections from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        pass
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(host, None)}
    except OSError:
        return False
    return bool(addresses) and all(
        ipaddress.ip_address(str(a).split("%")[0]).is_loopback for a in addresses
    )


def _bind_host(host: str) -> str:
    if ":" in host and not host.startswith("["):
        return f"[{host}]"
    return host


def _display_host(host: str) -> str:
    if host in ("0.0.0.0", "::", "[::]"):  # noqa: S104 - only for display
        return socket.gethostname()
    return _bind_host(host)


def _safe(url: str) -> str:
    import sqlalchemy as sa

    try:
        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return "<invalid URL>"


class _Gunicorn(BaseApplication):  # type: ignore[misc]
    """gunicorn running an application object built in this process."""

    def __init__(self, app: Any, options: dict[str, Any]):
        self.application = app
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        return self.application
