"""The server's settings, declared once.

Each field of :class:`ServerConfig` can come from ``create_app(config)``, from a
``LABNOTEBOOK_<FIELD NAME IN CAPITALS>`` environment variable, or from its default,
in that order. The environment is read once, in :func:`create_app`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from .._config import ENV_PREFIX, Settings, default_artifacts, default_home
from .._errors import ValidationError

MIB = 1024 * 1024


@dataclass(frozen=True)
class ServerConfig:
    """Settings of the tracking server (documented in docs/server.md)."""

    #: SQL store URL (``sqlite:///...`` or ``postgresql://...``); default: the
    #: per-user SQLite store that ``labnotebook.init()`` uses.
    store: str = ""
    #: Write token: when set, every route but health needs it (or the read token).
    token: str = ""
    #: Read-only token: allows GET requests only. Needs a write token as well.
    read_token: str = ""
    #: Largest request body accepted, in bytes (413 beyond).
    max_body_bytes: int = 32 * MIB
    #: Most metric points in one ingested batch (413 beyond).
    max_batch_points: int = 1_000_000
    #: Largest ``limit`` of a page of runs.
    max_page_size: int = 1000
    #: Largest ``buckets`` of a series request.
    max_buckets: int = 10_000
    #: Most (run, key) pairs in one series request.
    max_series: int = 200
    #: Largest ``limit`` of a page of raw points.
    max_points_page: int = 100_000
    #: Browser origins allowed to call the API from other sites (CORS); empty: none.
    cors_origins: tuple[str, ...] = ()
    #: A running run whose last heartbeat is older than this many seconds is crashed.
    crash_timeout: float = 60.0
    #: Folder of the server's artifact store (uploaded files, images, checkpoints);
    #: default: ``artifacts`` next to a SQLite store's file, else
    #: ``<LABNOTEBOOK_HOME>/artifacts``. Servers sharing a database share it too.
    artifacts: str = ""
    #: Largest artifact file accepted in one upload, in bytes (413 beyond).
    max_artifact_size: int = 10 * 2**30

    def __post_init__(self) -> None:
        for name in ("store", "token", "read_token", "artifacts"):
            if not isinstance(getattr(self, name), str):
                raise ValidationError(
                    f"server setting {name} must be a string, got "
                    f"{type(getattr(self, name)).__name__}"
                )
        if self.read_token and not self.token:
            raise ValidationError(
                "a read token was given without a write token; set the write token "
                "too (--token or LABNOTEBOOK_TOKEN), or anyone could write"
            )
        if self.token and self.token == self.read_token:
            raise ValidationError(
                "the read token equals the write token; choose two different tokens"
            )
        for f in fields(self):
            problem = _requirement(f.name, getattr(self, f.name))
            if problem is not None:
                raise ValidationError(
                    f"server setting {f.name}={getattr(self, f.name)!r} {problem}"
                )
        if self.store.startswith(("http://", "https://")):
            raise ValidationError(
                f"the server needs a SQL store, got {self.store!r}; give "
                "sqlite:///path/to/file.db or postgresql://user@host/dbname"
            )

    @property
    def auth_enabled(self) -> bool:
        return bool(self.token)

    @property
    def artifacts_path(self) -> Path:
        """The artifact store folder (see :attr:`artifacts`)."""
        if self.artifacts:
            return Path(self.artifacts)
        return default_artifacts(self.store, default_home())

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, **overrides: Any
    ) -> ServerConfig:
        """Build a config from ``LABNOTEBOOK_*`` variables, then ``overrides``."""
        env = os.environ if environ is None else environ
        known = {f.name: f for f in fields(cls)}
        unknown = set(overrides) - set(known)
        if unknown:
            raise ValidationError(
                f"unknown server setting(s) {sorted(unknown)}; known settings are "
                f"{sorted(known)}"
            )

        values: dict[str, Any] = {}
        for name, f in known.items():
            raw = env.get(ENV_PREFIX + name.upper())
            if raw is None or raw == "" or overrides.get(name) is not None:
                continue
            values[name] = _parse(name, raw, str(f.type))
            problem = _requirement(name, values[name])
            if problem is not None:
                raise ValidationError(
                    f"environment variable {ENV_PREFIX}{name.upper()}={raw!r} {problem}"
                )
        values.update({k: v for k, v in overrides.items() if v is not None})
        if isinstance(values.get("cors_origins"), list):
            values["cors_origins"] = tuple(values["cors_origins"])

        # Only where the default store is, not the logging settings the server
        # does not use (a bad LABNOTEBOOK_FLUSH_INTERVAL must not stop it).
        where = {
            key: env[key]
            for key in (ENV_PREFIX + "URL", ENV_PREFIX + "HOME")
            if key in env
        }
        if not values.get("store"):
            default = Settings.from_env(where).store_url
            if default.startswith(("http://", "https://")):
                raise ValidationError(
                    f"no store given for the server, and {ENV_PREFIX}URL points at a "
                    f"tracking server ({default!r}); pass --store or set "
                    f"{ENV_PREFIX}STORE to a sqlite:/// or postgresql:// URL"
                )
            values["store"] = default
        if not values.get("artifacts"):
            home = Settings.from_env(where).home_path
            values["artifacts"] = str(default_artifacts(values["store"], home))
        return cls(**values)

    def replace(self, **changes: Any) -> ServerConfig:
        return replace(self, **changes)


_COUNTS = (
    "max_body_bytes",
    "max_batch_points",
    "max_page_size",
    "max_buckets",
    "max_series",
    "max_points_page",
    "max_artifact_size",
)


def _requirement(name: str, value: Any) -> str | None:
    """What the server setting ``name`` must be, when ``value`` is not valid."""
    count = isinstance(value, int) and not isinstance(value, bool)
    if name in _COUNTS and not (count and value >= 1):
        return "must be a positive integer"
    if name == "crash_timeout" and not (isinstance(value, int | float) and value > 0):
        return "must be a positive number of seconds"
    return None


def _parse(name: str, raw: str, kind: str) -> Any:
    variable = f"{ENV_PREFIX}{name.upper()}"
    if kind.startswith("tuple"):
        return tuple(part.strip() for part in raw.split(",") if part.strip())
    try:
        if kind == "int":
            return int(raw)
        if kind == "float":
            return float(raw)
    except ValueError:
        raise ValidationError(
            f"environment variable {variable}={raw!r} is not a valid {kind}"
        ) from None
    return raw
