"""Stores: where runs are kept. :func:`open_store` picks one from a URL."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._errors import ValidationError
from .base import Batch, Experiment, Note, RunCreate, RunRecord, Store, Summary

__all__ = [
    "Batch",
    "Experiment",
    "Note",
    "RunCreate",
    "RunRecord",
    "Store",
    "Summary",
    "open_store",
]

if TYPE_CHECKING:
    from .._artifacts import BlobStore


def open_store(
    url: str,
    *,
    token: str = "",
    crash_timeout: float = 60.0,
    blobs: BlobStore | None = None,
) -> Store:
    """Open the store at ``url``: a SQLite file, PostgreSQL, or a tracking server.

    blobs: the artifact store that holds the bytes of a SQL store's artifacts;
        for a tracking server, the local one that attached files are uploaded from.
    """
    if not isinstance(url, str) or not url.strip():
        raise ValidationError(
            f"store URL must be a non-empty string, got {url!r}; for example "
            "sqlite:///runs.db or postgresql://user@host/dbname"
        )
    if url.startswith(("http://", "https://")):
        from .http import HttpStore

        return HttpStore(url, token=token, blobs=blobs)
    from .sql import SqlStore

    return SqlStore(url, crash_timeout=crash_timeout, blobs=blobs)
