"""Artifact and console rows of the SQL store.

Helpers that :class:`~labnotebook._store.sql.SqlStore` calls inside its own
transactions; the bytes themselves are in the artifact store (a BlobStore).
"""

from __future__ import annotations

import string
import threading
from collections import OrderedDict
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from .._errors import NotFoundError, StoreError
from .._schema import artifacts, console
from .base import Artifact, ArtifactCreate, ConsoleChunk

if TYPE_CHECKING:
    from .._artifacts import BlobStore

#: Folder manifests whose member hashes are kept in memory.
MANIFEST_CACHE_SIZE = 64
MAX_CONSOLE_LIMIT = 10_000


def insert_artifacts(
    conn: sa.Connection, run_id: str, rows: list[ArtifactCreate]
) -> None:
    conn.execute(
        artifacts.insert(),
        [
            {
                "run_id": run_id,
                "kind": a.kind,
                "name": a.name,
                "step": a.step,
                "size": a.size,
                "sha256": a.sha256,
                "media_type": a.media_type,
                "created_at": a.created_at,
                "meta": a.meta,
            }
            for a in rows
        ],
    )


def insert_console(
    conn: sa.Connection, run_id: str, chunks: list[tuple[float, str, str]]
) -> None:
    conn.execute(
        console.insert(),
        [
            {"run_id": run_id, "time": t, "stream": stream, "text": text}
            for t, stream, text in chunks
        ],
    )


def list_artifacts(
    conn: sa.Connection, run_id: str, kind: str | None, name: str | None
) -> list[Artifact]:
    query = sa.select(artifacts).where(artifacts.c.run_id == run_id)
    if kind is not None:
        query = query.where(artifacts.c.kind == kind)
    if name is not None:
        query = query.where(artifacts.c.name == name)
    rows = conn.execute(query.order_by(artifacts.c.created_at, artifacts.c.id))
    return [_artifact(r) for r in rows]


def has_artifact_blob(conn: sa.Connection, run_id: str, sha256: str) -> bool:
    found = conn.execute(
        sa.select(artifacts.c.id)
        .where(artifacts.c.run_id == run_id, artifacts.c.sha256 == sha256)
        .limit(1)
    ).first()
    return found is not None


def folder_manifests(conn: sa.Connection, run_id: str | None = None) -> list[str]:
    """The manifest hashes of a run's folders (or of every folder)."""
    query = sa.select(artifacts.c.sha256).where(artifacts.c.kind == "folder")
    if run_id is not None:
        query = query.where(artifacts.c.run_id == run_id)
    return sorted(set(conn.execute(query.distinct()).scalars()))


def delete_rows(
    conn: sa.Connection, run_id: str, ids: list[int] | None
) -> list[tuple[str, str]]:
    """Delete a run's artifact rows (all when ``ids`` is None); (kind, sha256)."""
    where = artifacts.c.run_id == run_id
    if ids is not None:
        where = sa.and_(where, artifacts.c.id.in_(ids))
    deleted = conn.execute(
        sa.select(artifacts.c.kind, artifacts.c.sha256).where(where)
    ).all()
    conn.execute(artifacts.delete().where(where))
    return [(r.kind, r.sha256) for r in deleted]


def unreferenced(
    conn: sa.Connection,
    deleted: list[tuple[str, str]],
    members: ManifestMembers | None,
) -> list[str]:
    """Hashes of deleted rows (and of their folders' files) no artifact uses now.

    Run in the deleting transaction, after the rows are gone.
    """
    candidates = {sha for _kind, sha in deleted}
    if members is not None:
        for kind, sha in deleted:
            if kind == "folder":
                candidates |= members.get(sha)
    if not candidates:
        return []
    still = set(
        conn.execute(
            sa.select(artifacts.c.sha256)
            .where(artifacts.c.sha256.in_(sorted(candidates)))
            .distinct()
        ).scalars()
    )
    candidates -= still
    if candidates and members is not None:
        for manifest in folder_manifests(conn):
            candidates -= members.get(manifest)
            if not candidates:
                break
    return sorted(candidates)


_ASCII_LOWER = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)


def console_chunks(
    conn: sa.Connection,
    run_id: str,
    after: int | None,
    limit: int,
    search: str | None,
) -> list[ConsoleChunk]:
    query = sa.select(console).where(console.c.run_id == run_id)
    if after is not None:
        query = query.where(console.c.id > after)
    if search:
        # A-Z are folded and nothing else, on both databases (SQLite's LIKE
        # cannot fold other letters), as ilike in filters.
        folded = search.translate(_ASCII_LOWER)
        escaped = folded.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        text: sa.ColumnElement[str] = (
            sa.func.translate(
                console.c.text, string.ascii_uppercase, string.ascii_lowercase
            )
            if conn.dialect.name == "postgresql"
            else sa.func.lower(console.c.text)  # SQLite's lower() folds A-Z only
        )
        query = query.where(text.like(f"%{escaped}%", escape="\\"))
    rows = conn.execute(query.order_by(console.c.id).limit(limit))
    return [
        ConsoleChunk(
            id=int(r.id),
            run_id=r.run_id,
            stream=r.stream,
            time=float(r.time),
            text=r.text,
        )
        for r in rows
    ]


class ManifestMembers:
    """The blob hashes each folder manifest lists, read once and cached.

    Manifests are content-addressed, so a cached entry never goes stale.
    """

    def __init__(self, blobs: BlobStore, size: int = MANIFEST_CACHE_SIZE):
        self.blobs = blobs
        self._size = size
        self._cache: OrderedDict[str, frozenset[str]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, sha256: str) -> frozenset[str]:
        """The member hashes of a manifest (empty if the manifest is missing)."""
        with self._lock:
            found = self._cache.get(sha256)
            if found is not None:
                self._cache.move_to_end(sha256)
                return found
        from .._artifacts import parse_manifest

        try:
            data = self.blobs.read(sha256)
        except NotFoundError:
            return frozenset()
        try:
            members = frozenset(e.sha256 for e in parse_manifest(data))
        except StoreError:
            members = frozenset()
        with self._lock:
            self._cache[sha256] = members
            while len(self._cache) > self._size:
                self._cache.popitem(last=False)
        return members

    def contains(self, manifests: Iterable[str], sha256: str) -> bool:
        return any(sha256 in self.get(m) for m in manifests)


def _artifact(row: Any) -> Artifact:
    return Artifact(
        id=int(row.id),
        run_id=row.run_id,
        kind=row.kind,
        name=row.name,
        step=row.step,
        size=int(row.size),
        sha256=row.sha256,
        media_type=row.media_type,
        created_at=float(row.created_at),
        meta=dict(row.meta),
    )
