"""Settings, declared once.

Every setting can come from an argument, from a ``LABNOTEBOOK_*`` environment
variable, or from its default, in that order. The environment is read once, when
:func:`labnotebook.init` (or the server's ``create_app``) builds a :class:`Settings`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import platformdirs

from ._errors import ValidationError

ENV_PREFIX = "LABNOTEBOOK_"
CONSOLE_MODES = ("auto", "on", "off")
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")
#: Longest interval or timeout, in seconds (a year): background threads wait this
#: long at most, and the platform's waits overflow at a few hundred years.
MAX_SECONDS = 365 * 24 * 3600


def default_home() -> Path:
    """The per-user folder that holds the default store, spool and artifacts."""
    return Path(platformdirs.user_data_dir("labnotebook", appauthor=False))


def default_artifacts(store_url: str, home: Path) -> Path:
    """The artifact store when the ``artifacts`` setting is empty: the folder
    ``artifacts`` next to a SQLite store's file, else ``<home>/artifacts``.

    Clients and the tracking server follow the same rule, so a server started on
    a SQLite file finds the bytes that scripts attached to runs in it.
    """
    if store_url.startswith("sqlite"):
        import sqlalchemy as sa

        try:
            database = sa.engine.make_url(store_url).database
        except sa.exc.ArgumentError:
            database = None
        if database and database != ":memory:" and not database.startswith("file:"):
            return Path(database).parent / "artifacts"
    return home / "artifacts"


@dataclass(frozen=True)
class Settings:
    """Client settings. Each field maps to ``LABNOTEBOOK_<FIELD NAME IN CAPITALS>``."""

    #: Store URL: ``sqlite:///path``, ``postgresql://...`` or ``http(s)://server``.
    url: str = ""
    #: Folder for the default SQLite store, the spool and artifacts.
    home: str = ""
    #: Token sent to a tracking server (``http(s)://`` stores only).
    token: str = ""
    #: Seconds between background flushes of logged values.
    flush_interval: float = 0.5
    #: Seconds between heartbeats of a running run.
    heartbeat_interval: float = 10.0
    #: A running run whose last heartbeat is older than this many seconds is crashed.
    crash_timeout: float = 60.0
    #: Seconds that finishing a run waits for its data to reach the store.
    exit_timeout: float = 30.0
    #: Most points held in memory before new batches are spilled to the spool file.
    buffer_limit: int = 1_000_000
    #: Seconds to wait between attempts to reach a failing store.
    retry_interval: float = 2.0
    #: Folder of the artifact store (files, images, checkpoints); default
    #: ``artifacts`` next to a SQLite store's file, else ``<home>/artifacts``. For a
    #: tracking server it is the local cache of uploads.
    artifacts: str = ""
    #: Largest file, in bytes, that may be attached to a run.
    max_artifact_size: int = 10 * 2**30
    #: Record the git commit, branch, remote, dirty flag and diff at start.
    capture_code: bool = True
    #: Record Python, platform, installed packages and hardware at start.
    capture_environment: bool = True
    #: Largest uncommitted diff, in bytes, recorded by ``capture_code``.
    max_diff_size: int = 1_000_000
    #: Copy stdout and stderr to the run: ``auto`` (scripts yes, notebooks no),
    #: ``on`` or ``off``.
    capture_console: str = "auto"
    #: Most bytes of console output kept per run and process.
    console_limit: int = 10_000_000
    #: Seconds between samples of CPU, memory, disk, network and GPU use; 0 is off.
    system_metrics_interval: float = 10.0
    #: Address of the dashboard that notebook summaries link runs to, e.g.
    #: ``http://lab-server:5000``; default: the tracking server of an ``http(s)``
    #: store URL, else no link.
    dashboard_url: str = ""

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            problem = _requirement(f.name, value)
            if problem is not None:
                raise ValidationError(f"setting {f.name}={value!r} {problem}")

    @property
    def home_path(self) -> Path:
        return Path(self.home) if self.home else default_home()

    @property
    def store_url(self) -> str:
        """The store URL, defaulting to a SQLite file in :attr:`home_path`."""
        if self.url:
            return self.url
        return f"sqlite:///{self.home_path / 'labnotebook.db'}"

    @property
    def spool_dir(self) -> Path:
        return self.home_path / "spool"

    @property
    def artifacts_path(self) -> Path:
        """The artifact store folder (see :func:`default_artifacts`)."""
        if self.artifacts:
            return Path(self.artifacts)
        return default_artifacts(self.store_url, self.home_path)

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, **overrides: Any
    ) -> Settings:
        """Build settings from ``LABNOTEBOOK_*`` variables, then ``overrides``."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = env.get(ENV_PREFIX + f.name.upper())
            if raw is None or raw == "" or overrides.get(f.name) is not None:
                continue
            values[f.name] = _parse(f.name, raw, f.type)
            problem = _requirement(f.name, values[f.name])
            if problem is not None:
                raise ValidationError(
                    f"environment variable {ENV_PREFIX}{f.name.upper()}={raw!r} "
                    f"{problem}"
                )
        values.update({k: v for k, v in overrides.items() if v is not None})
        unknown = set(values) - {f.name for f in fields(cls)}
        if unknown:
            raise ValidationError(
                f"unknown setting(s) {sorted(unknown)}; known settings are "
                f"{sorted(f.name for f in fields(cls))}"
            )
        return cls(**values)

    def replace(self, **changes: Any) -> Settings:
        return replace(self, **changes)


#: Settings waited for by background threads: finite, or the wait raises there.
_WAITED_FOR = ("flush_interval", "heartbeat_interval", "exit_timeout", "retry_interval")


def _requirement(name: str, value: Any) -> str | None:
    """What the setting ``name`` must be, when ``value`` is not valid; else None."""
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if name == "crash_timeout":
        if not isinstance(value, (int, float)) or not value > 0:
            return "must be a positive number of seconds"
    elif name in _WAITED_FOR:
        if not number or not 0 < value <= MAX_SECONDS:
            return (
                f"must be a positive number of seconds, at most {MAX_SECONDS} (a year)"
            )
    elif name == "buffer_limit":
        if not isinstance(value, int) or value < 1000:
            return "must be an integer >= 1000"
    elif name in ("max_artifact_size", "max_diff_size", "console_limit"):
        if type(value) is not int or value < 0:
            return "must be a whole number of bytes >= 0"
    elif name in ("capture_code", "capture_environment"):
        if not isinstance(value, bool):
            return "must be True or False"
    elif name == "capture_console":
        if value not in CONSOLE_MODES:
            return f"must be one of {', '.join(CONSOLE_MODES)}"
    elif name == "system_metrics_interval":
        if not number or not (value == 0 or 0.1 <= value <= MAX_SECONDS):
            return (
                f"must be 0 (off) or a number of seconds from 0.1 to {MAX_SECONDS} "
                "(a year)"
            )
    elif name == "dashboard_url":
        return _dashboard_url_requirement(value)
    return None


def _dashboard_url_requirement(url: object) -> str | None:
    if not isinstance(url, str):
        return "must be a string such as 'http://lab-server:5000'"
    if not url:
        return None
    try:
        parts = urlsplit(url)
        valid = parts.port is None or parts.port > 0
    except ValueError:
        valid = False
    if (
        not valid
        or parts.scheme not in ("http", "https")
        or not parts.netloc
        or parts.username is not None
        or parts.query
        or parts.fragment
        or any(c.isspace() or c in "\"'<>`" for c in url)
    ):
        return (
            "must be an http:// or https:// address without credentials, query or "
            "fragment, such as 'http://lab-server:5000'"
        )
    return None


def _parse(name: str, raw: str, type_: Any) -> Any:
    kind = str(type_)
    if kind == "bool":
        if raw.strip().lower() in _TRUE:
            return True
        if raw.strip().lower() in _FALSE:
            return False
        raise ValidationError(
            f"environment variable {ENV_PREFIX}{name.upper()}={raw!r} is not a "
            f"valid bool; use one of {', '.join(_TRUE + _FALSE)}"
        )
    try:
        if kind == "float":
            return float(raw)
        if kind == "int":
            return int(raw)
    except ValueError:
        raise ValidationError(
            f"environment variable {ENV_PREFIX}{name.upper()}={raw!r} is not a "
            f"valid {kind}"
        ) from None
    return raw
