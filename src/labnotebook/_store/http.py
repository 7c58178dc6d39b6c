"""The HTTP store: the same :class:`~labnotebook._store.base.Store` through a server.

``labnotebook.init("http://server:8788", token=...)`` opens an :class:`HttpStore`,
so training scripts on many machines log through one tracking server instead of
holding database connections. Every call is one or a few requests to the server's
HTTP API (docs/http-api.md), over one keep-alive session.

Failures are sorted the way the background writer needs them:

* the server cannot be reached, times out, answers 5xx, or asks to slow down (429,
  503): retried with exponential backoff (honouring ``Retry-After``) for at most
  ``retry_time`` seconds, then :class:`StoreUnavailableError`, and the writer keeps
  the batch in its spool file and sends it later;
* the server refuses the request (4xx): mapped to the library's errors
  (:class:`FilterError`, :class:`NotFoundError`, :class:`ConflictError`,
  :class:`ValidationError`; a refused token is a :class:`StoreError`).

Writes are safe to resend: the server applies each batch id once. A batch too large
for one request is cut into parts with ids derived from the batch id, so a resent
batch is cut the same way and each part is still applied once. Before a batch with
artifacts is sent, every blob it names (and every file of a folder) that the server
does not hold yet (one request asks which) is uploaded from the local artifact store,
streamed, with the same retries; downloads resume with a Range request when the
connection drops.

The token travels only in the ``Authorization`` header; it is never part of a URL,
a log line, a repr or an error message.
"""

from __future__ import annotations

import dataclasses
import email.utils
import hashlib
import io
import logging
import math
import os
import random
import re
import time
import uuid
import weakref
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from types import TracebackType
from typing import IO, TYPE_CHECKING, Any, BinaryIO
from urllib.parse import quote, urlsplit, urlunsplit

import requests
import urllib3
from requests.adapters import HTTPAdapter

from .._errors import (
    ConflictError,
    FilterError,
    NotFoundError,
    StoreError,
    StoreUnavailableError,
    ValidationError,
)
from .._threads import block_process_signals
from .base import (
    Artifact,
    ArtifactCreate,
    Batch,
    Columns,
    ConsoleChunk,
    Experiment,
    Note,
    RunRecord,
    Summary,
)
from .rollup import Downsampled

if TYPE_CHECKING:
    from .._artifacts import BlobStore

logger = logging.getLogger(__name__)

API_PREFIX = "/api/v1"
#: Seconds to wait for a connection, and for an answer, per attempt.
CONNECT_TIMEOUT = 5.0
READ_TIMEOUT = 30.0
#: Longest time one call spends retrying a server that is down or busy.
RETRY_TIME = 10.0
#: First backoff delay, doubled after each failed attempt, and its ceiling.
BACKOFF_START = 0.2
BACKOFF_MAX = 2.0
#: Batches whose JSON is longer than this are sent as several requests.
MAX_REQUEST_BYTES = 8 * 1024 * 1024
#: Most points of one metric in one piece of a batch that is cut up.
PIECE_POINTS = 10_000
#: Runs per page when listing (the server's maximum).
RUNS_PAGE = 1000
#: Points per page when reading a run's history.
POINTS_PAGE = 50_000
#: Series asked for in one ``GET /series`` (the server's max_series is 200).
SERIES_PER_REQUEST = 100
#: Console chunks per page (the server's maximum).
CONSOLE_PAGE = 10_000
#: Bytes read from a download at a time.
DOWNLOAD_CHUNK = 1 << 20
#: Most blob hashes remembered as already on the server.
KNOWN_BLOBS = 100_000
#: Hashes per request when asking the server which blobs it lacks (its maximum).
MISSING_PAGE = 10_000
#: Times a batch's bytes are uploaded again when the server lost them before
#: the batch arrived (another machine's delete, or a refused batch, removed them).
BLOB_RETRIES = 3
#: Blobs uploaded at the same time.
UPLOAD_THREADS = 4

_RETRY_STATUSES = frozenset({429, 502, 503, 504})
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_NON_FINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}
# Namespace of the ids given to the parts of a batch that is cut up.
_PART_NAMESPACE = uuid.UUID("6f1c7a52-4d0e-4a8e-9a49-0c6b5b1f3e2d")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_URLLIB3_ERRORS = (
    urllib3.exceptions.ProtocolError,
    urllib3.exceptions.ReadTimeoutError,
)


#: This process's stores, whose connections a forked child must not share.
_stores: weakref.WeakSet[HttpStore] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for store in list(_stores):
        store._forget_connections()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


class _TokenRefused(StoreError):
    """The server refused the token: waiting will not help, a new token will."""

    #: Read by the writer, which then stops waiting for the store at exit.
    permanent = True


class _BlobMissing(ValidationError):
    """The server refused a batch because a blob it names is not uploaded."""


class HttpStore:
    """A store behind a labnotebook tracking server.

    url: the server's base URL, e.g. ``http://tracking.lab:8788`` (a trailing
        ``/api/v1`` is accepted).
    token: a read or write token, sent as ``Authorization: Bearer``; empty for a
        server without tokens.
    connect_timeout, read_timeout: seconds per attempt.
    retry_time: longest time one call keeps retrying a server that is down, busy
        or failing, before raising :class:`StoreUnavailableError`.
    blobs: the local artifact store that attached files are uploaded from.
    """

    def __init__(
        self,
        url: str,
        *,
        token: str = "",
        connect_timeout: float = CONNECT_TIMEOUT,
        read_timeout: float = READ_TIMEOUT,
        retry_time: float = RETRY_TIME,
        blobs: BlobStore | None = None,
    ):
        self.url = url
        self.blobs = blobs
        # Blobs the server is known to hold, so each is checked once.
        self._on_server: set[str] = set()
        self._base = _api_base(url)
        self._shown = _without_credentials(url)
        self._timeout = (connect_timeout, read_timeout)
        self.retry_time = retry_time

        self._headers = {
            "Accept": "application/json",
            "User-Agent": "labnotebook-python/0.1.0",
        }
        if token:
            if not isinstance(token, str) or any(c in token for c in "\r\n"):
                raise ValidationError(
                    "the tracking server token must be a single-line string; check "
                    "LABNOTEBOOK_TOKEN or the token= argument"
                )
            self._headers["Authorization"] = f"Bearer {token}"
        self._session = self._new_session()
        _stores.add(self)

    def _new_session(self) -> requests.Session:
        session = requests.Session()
        adapter = HTTPAdapter(pool_connections=1, pool_maxsize=32, max_retries=0)
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        session.headers.update(self._headers)
        return session

    def _forget_connections(self) -> None:
        """In a forked child: open new connections instead of the parent's.

        The old session is dropped without closing it: closing only releases the
        child's copies of the sockets, while a shutdown would end the parent's.
        """
        self._session = self._new_session()

    def __repr__(self) -> str:
        return f"<HttpStore {self._shown}>"

    def __enter__(self) -> HttpStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the session's connections."""
        self._session.close()

    # ----------------------------------------------------------------- writing

    def write(self, batch: Batch) -> None:
        """Send ``batch`` to the server; it applies each batch (or part) once.

        The bytes of its artifacts are uploaded first; should the server have lost
        one meanwhile (deleted with the last artifact that used it), they are
        checked and uploaded again, up to ``BLOB_RETRIES`` times.
        """
        if not batch.artifacts:
            self._write(batch)
            return
        batch = self._upload(batch)
        for attempt in range(BLOB_RETRIES + 1):
            try:
                self._write(batch)
                return
            except _BlobMissing:
                if attempt == BLOB_RETRIES:
                    raise
                self._on_server.clear()
                batch = self._upload(batch)

    def _write(self, batch: Batch) -> None:
        body = batch.to_json()
        if len(body) <= MAX_REQUEST_BYTES:
            self._send_batch(body)
            return
        parts = _cut(batch)
        logger.debug("batch %s is sent in %d parts", batch.id, len(parts))
        for part in parts:
            self._send_batch(part.to_json())

    def _send_batch(self, body: str) -> None:
        self._call(
            "POST",
            "/ingest",
            data=body.encode(),
            headers={"Content-Type": "application/json"},
        )

    def _upload(self, batch: Batch) -> Batch:
        """Upload the blobs of ``batch`` the server lacks; the batch to send.

        One request asks which of the hashes are missing (pages of
        ``MISSING_PAGE``); only those are uploaded. An artifact whose bytes are
        neither on the server nor in the local artifact store, or that the server
        refuses (over its size limit), cannot be sent: its row is left out with a
        warning, and the rest of the batch goes on.
        """
        needs: list[tuple[ArtifactCreate, list[str]]] = []
        failed: dict[str, Exception] = {}
        for row in batch.artifacts:
            try:
                needs.append((row, self._blobs_of(row)))
            except (NotFoundError, StoreError) as exc:
                failed[row.sha256] = exc
                needs.append((row, [row.sha256]))

        wanted = [
            sha
            for _, shas in needs
            for sha in dict.fromkeys(shas)
            if sha not in self._on_server and sha not in failed
        ]
        unique = list(dict.fromkeys(wanted))
        missing = self._missing(unique)
        failed.update(self._put_blobs([sha for sha in unique if sha in missing]))
        for sha in unique:
            if sha not in failed:
                self._remember(sha)

        kept: list[ArtifactCreate] = []
        for row, shas in needs:
            problem = next((failed[sha] for sha in shas if sha in failed), None)
            if problem is not None:
                logger.warning(
                    "run %s: artifact %r is not sent: %s",
                    batch.run_id,
                    row.name,
                    problem,
                )
                continue
            kept.append(row)
        if len(kept) == len(batch.artifacts):
            return batch
        return dataclasses.replace(batch, artifacts=kept)

    def _blobs_of(self, row: ArtifactCreate) -> list[str]:
        """The hashes an artifact row needs on the server: a folder's files first."""
        if row.kind != "folder" or row.sha256 in self._on_server:
            return [row.sha256]
        from .._artifacts import parse_manifest

        manifest = self._local_blobs().read(row.sha256)
        return [*dict.fromkeys(e.sha256 for e in parse_manifest(manifest)), row.sha256]

    def _missing(self, hashes: list[str]) -> set[str]:
        """Which of ``hashes`` the server does not hold."""
        missing: set[str] = set()
        for i in range(0, len(hashes), MISSING_PAGE):
            page = hashes[i : i + MISSING_PAGE]
            data = self._call("POST", "/blobs/missing", json={"sha256": page})
            missing.update(str(sha) for sha in data.get("missing", []))
        return missing

    def _put_blobs(self, hashes: list[str]) -> dict[str, Exception]:
        """Upload blobs, several at once; the refused ones with their errors.

        A refusal (NotFoundError: no local copy; ValidationError: over the
        server's size limit, say) concerns one artifact and is returned; a server
        that stays unreachable raises StoreUnavailableError, as for any call.
        """
        failed: dict[str, Exception] = {}
        if len(hashes) <= 1:
            errors = [_attempt(self._put_blob, sha) for sha in hashes]
        else:
            with ThreadPoolExecutor(
                min(UPLOAD_THREADS, len(hashes)), initializer=block_process_signals
            ) as pool:
                errors = list(pool.map(lambda h: _attempt(self._put_blob, h), hashes))
        for sha, error in zip(hashes, errors, strict=True):
            if isinstance(error, NotFoundError | ValidationError):
                failed[sha] = error
            elif error is not None:
                raise error
        return failed

    def _put_blob(self, sha: str) -> None:
        local = self._local_blobs()
        if not local.has(sha):
            raise NotFoundError(
                f"blob {sha} is neither on the server nor in the local artifact "
                f"store {str(local.root)!r}"
            )
        self._call(
            "PUT",
            f"/blobs/{sha}",
            upload=lambda: local.open(sha),
            headers={"Content-Type": "application/octet-stream"},
        )

    def _remember(self, sha: str) -> None:
        if len(self._on_server) >= KNOWN_BLOBS:
            self._on_server.clear()
        self._on_server.add(sha)

    def _local_blobs(self) -> BlobStore:
        if self.blobs is None:
            raise NotFoundError(
                "this HttpStore has no local artifact store to upload from; open it "
                "with labnotebook.init(url) or HttpStore(url, blobs=BlobStore(...))"
            )
        return self.blobs

    # ----------------------------------------------------------------- reading

    def get_run(self, run_id: str) -> RunRecord:
        """The run with this id or unique id prefix."""
        return _run(self._call("GET", _run_path(run_id)))

    def list_runs(
        self,
        where: str | None = None,
        experiment: str | None = None,
        order_by: str | None = None,
        descending: bool = True,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[RunRecord]:
        """Runs matching a filter, fetched page by page."""
        out: list[RunRecord] = []
        seen: set[str] = set()
        position = offset
        while limit is None or len(out) < limit:
            page = RUNS_PAGE if limit is None else min(RUNS_PAGE, limit - len(out))
            params = _run_query(where, experiment)
            params.update(
                limit=page, offset=position, order="desc" if descending else "asc"
            )
            if order_by:
                params["sort"] = order_by
            data = self._call("GET", "/runs", params=params, where=where)
            rows = data.get("runs", [])
            for row in rows:
                record = _run(row)
                if record.id not in seen:
                    seen.add(record.id)
                    out.append(record)
            position += len(rows)
            if len(rows) < page or position >= int(data.get("total", 0)):
                break
        return out

    def count_runs(
        self, where: str | None = None, experiment: str | None = None
    ) -> int:
        """How many runs match a filter."""
        params = _run_query(where, experiment)
        params["limit"] = 1
        data = self._call("GET", "/runs", params=params, where=where)
        return int(data["total"])

    def history(
        self,
        run_id: str,
        keys: list[str] | None = None,
        start: int | None = None,
        stop: int | None = None,
    ) -> dict[str, Columns]:
        """Every raw point of the run's metrics (no downsampling), by key."""
        present = self.metric_keys(run_id)
        wanted = present if keys is None else [k for k in keys if k in set(present)]
        return {key: self._points(run_id, key, start, stop) for key in wanted}

    def downsample(
        self,
        pairs: list[tuple[str, str]],
        buckets: int,
        start: int | None = None,
        stop: int | None = None,
    ) -> list[Downsampled | None]:
        """Each (run id, key) series in ``[start, stop)`` in at most ``buckets``
        buckets (min, max and last point of each), or ``None`` if it has no
        series, read with the server's ``/series`` (the dashboard's charts).

        The server sends steps and values only: ``times`` is empty.
        """
        by_run: dict[str, list[str]] = {}
        for run_id, key in pairs:
            by_run.setdefault(run_id, [])
            if key not in by_run[run_id]:
                by_run[run_id].append(key)
        found: dict[tuple[str, str], Downsampled] = {}
        for run_id, keys in by_run.items():
            for first in range(0, len(keys), SERIES_PER_REQUEST):
                params: dict[str, Any] = {
                    "run": run_id,
                    "key": keys[first : first + SERIES_PER_REQUEST],
                    "buckets": buckets,
                }
                if start is not None:
                    params["start"] = start
                if stop is not None:
                    params["stop"] = stop
                data = self._call("GET", "/series", params=params)
                for entry in data.get("series", []):
                    if not entry.get("count") and not entry.get("x"):
                        continue
                    found[run_id, str(entry["key"])] = Downsampled(
                        steps=[int(x) for x in entry["x"]],
                        values=[_float(y) for y in entry["y"]],
                        times=[],
                        count=int(entry["count"]),
                        downsampled=bool(entry["downsampled"]),
                    )
        return [found.get(pair) for pair in pairs]

    def _points(
        self, run_id: str, key: str, start: int | None, stop: int | None
    ) -> Columns:
        steps: list[int] = []
        values: list[float] = []
        times: list[float] = []
        after = start - 1 if start else None
        while True:
            params: dict[str, Any] = {"key": key, "limit": POINTS_PAGE}
            if after is not None:
                params["after"] = after
            data = self._call("GET", _run_path(run_id, "points"), params=params)
            xs = [int(x) for x in data.get("x", [])]
            for step, value, t in zip(
                xs, data.get("y", []), data.get("t", []), strict=True
            ):
                if stop is not None and step >= stop:
                    return steps, values, times
                steps.append(step)
                values.append(_float(value))
                times.append(float(t))
            following = data.get("next")
            if following is None or not xs or int(following) == after:
                return steps, values, times
            after = int(following)

    def metric_keys(self, run_id: str) -> list[str]:
        """Names of the run's metrics, sorted."""
        data = self._call("GET", _run_path(run_id, "metrics"))
        return sorted(str(m["key"]) for m in data.get("metrics", []))

    def step_fields(
        self, run_id: str, start: int | None = None, stop: int | None = None
    ) -> list[tuple[int, float, dict[str, Any]]]:
        """The run's per-step fields in ``[start, stop)``, by step."""
        params = {k: v for k, v in (("start", start), ("stop", stop)) if v is not None}
        data = self._call("GET", _run_path(run_id, "fields"), params=params)
        return [
            (int(row["step"]), float(row["time"]), dict(row["fields"]))
            for row in data.get("fields", [])
        ]

    def notes(self, run_id: str) -> list[Note]:
        """The run's notes, oldest first."""
        data = self._call("GET", _run_path(run_id, "notes"))
        return [_note(row) for row in data.get("notes", [])]

    def edit_note(self, note_id: int, text: str) -> Note:
        """Replace the text of a note."""
        if isinstance(note_id, bool) or not isinstance(note_id, int):
            raise ValidationError(f"note id must be an integer, got {note_id!r}")
        return _note(self._call("PATCH", f"/notes/{note_id}", json={"text": text}))

    def experiments(self) -> list[Experiment]:
        """All experiments, by name."""
        data = self._call("GET", "/experiments")
        return [_experiment(row) for row in data.get("experiments", [])]

    def create_experiment(self, name: str) -> Experiment:
        """Create an experiment, or return the one that already has this name."""
        try:
            return _experiment(self._call("POST", "/experiments", json={"name": name}))
        except ConflictError:
            return self._experiment_named(name)

    def rename_experiment(self, old: str, new: str) -> Experiment:
        """Rename an experiment (ConflictError if ``new`` is taken)."""
        found = self._experiment_named(old)
        return _experiment(
            self._call("PATCH", f"/experiments/{found.id}", json={"name": new})
        )

    def _experiment_named(self, name: str) -> Experiment:
        for found in self.experiments():
            if found.name == name:
                return found
        raise NotFoundError(f"no experiment named {name!r}")

    def update_run(
        self,
        run_id: str,
        name: str | None = None,
        tags: list[str] | None = None,
        status: str | None = None,
    ) -> RunRecord:
        """Change a run's name, tags or status."""
        changes = {
            k: v
            for k, v in (("name", name), ("tags", tags), ("status", status))
            if v is not None
        }
        return _run(self._call("PATCH", _run_path(run_id), json=changes))

    def delete_run(self, run_id: str) -> None:
        """Delete a run and everything logged to it."""
        self._call("DELETE", _run_path(run_id))

    # -------------------------------------------------------------- artifacts

    def list_artifacts(
        self, run_id: str, kind: str | None = None, name: str | None = None
    ) -> list[Artifact]:
        """The run's artifacts, oldest first, optionally of one kind or name."""
        params = {k: v for k, v in (("kind", kind), ("name", name)) if v is not None}
        data = self._call("GET", _run_path(run_id, "artifacts"), params=params)
        return [_artifact(row) for row in data.get("artifacts", [])]

    def open_blob(self, run_id: str, sha256: str) -> BinaryIO:
        """The bytes of one of the run's blobs, streamed from the server.

        A dropped connection is resumed where it stopped (a Range request), with
        the same retries as other calls; the bytes are checked against the hash
        at the end (StoreError if they differ).
        """
        if not isinstance(sha256, str) or not _SHA256.fullmatch(sha256):
            raise ValidationError(
                f"sha256 must be 64 lowercase hexadecimal digits, got {sha256!r:.80}"
            )
        path = _run_path(run_id, "blobs", sha256)
        return io.BufferedReader(_Download(self, path, sha256), DOWNLOAD_CHUNK)

    def delete_artifacts(self, run_id: str, ids: list[int]) -> list[str]:
        """Delete artifacts of the run by id.

        The server removes the bytes no other artifact uses from its own store, so
        this returns no hashes: local copies of uploaded blobs are left in place
        (batches still waiting to be sent may need them).
        """
        for artifact_id in ids:
            if isinstance(artifact_id, bool) or not isinstance(artifact_id, int):
                raise ValidationError(
                    f"artifact id must be an integer, got {artifact_id!r}"
                )
        for artifact_id in ids:
            try:
                self._call("DELETE", _run_path(run_id, "artifacts", str(artifact_id)))
            except NotFoundError:
                continue  # already deleted
        return []

    def console(
        self,
        run_id: str,
        after: int | None = None,
        limit: int = 1000,
        search: str | None = None,
    ) -> list[ConsoleChunk]:
        """Chunks of the run's console output after the id ``after``, oldest first.

        search: keep the chunks that contain this text (a plain substring).
        """
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ValidationError(f"limit must be a positive integer, got {limit!r}")
        out: list[ConsoleChunk] = []
        cursor = after
        while len(out) < limit:
            page = min(CONSOLE_PAGE, limit - len(out))
            params: dict[str, Any] = {"limit": page}
            if cursor is not None:
                params["after"] = cursor
            if search:
                params["q"] = search
            data = self._call("GET", _run_path(run_id, "console"), params=params)
            rows = [_chunk(row, run_id) for row in data.get("chunks", [])]
            out.extend(rows)
            if len(rows) < page:
                break
            cursor = rows[-1].id
        return out

    # ------------------------------------------------------------------ wire

    def _call(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        json: Any = None,
        data: bytes | None = None,
        headers: dict[str, str] | None = None,
        where: str | None = None,
        upload: Callable[[], IO[bytes]] | None = None,
    ) -> Any:
        """One API call with retries; returns the decoded JSON body (or None).

        upload: opens the body to stream, afresh for each attempt.
        """
        response = self._request(
            method,
            path,
            params=params,
            json=json,
            data=data,
            headers=headers,
            where=where,
            upload=upload,
        )
        return _body(response, method, path, self._shown)

    def _request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        json: Any = None,
        data: bytes | None = None,
        headers: dict[str, str] | None = None,
        where: str | None = None,
        upload: Callable[[], IO[bytes]] | None = None,
        stream: bool = False,
    ) -> requests.Response:
        """One request with retries; the response of the first success."""
        url = self._base + path
        deadline = time.monotonic() + self.retry_time
        attempt = 0
        while True:
            wait: float | None = None
            body = upload() if upload is not None else None
            try:
                response = self._session.request(
                    method,
                    url,
                    params=params,
                    json=json,
                    data=body if body is not None else data,
                    headers=headers,
                    timeout=self._timeout,
                    allow_redirects=False,
                    stream=stream,
                )
            except requests.RequestException as exc:
                problem = _describe_failure(exc)
                answered = False
            else:
                status = response.status_code
                if status < 400 and status not in _REDIRECTS:
                    return response
                if status < 500 and status not in _RETRY_STATUSES:
                    raise self._refusal(response, method, path, where)
                problem = _status_text(response)
                message = _error_body(response).get("message")
                if isinstance(message, str) and message:
                    problem = f"{problem}: {message}"
                answered = True
                wait = _retry_after(response)
                response.close()
            finally:
                if body is not None:
                    body.close()

            attempt += 1
            delay = wait if wait is not None else _backoff(attempt)
            if time.monotonic() + delay > deadline:
                hint = (
                    "it answers, but cannot serve the request: see its log"
                    if answered
                    else "check that it is running and reachable"
                )
                raise StoreUnavailableError(
                    f"tracking server {self._shown} is unavailable ({problem}) after "
                    f"{attempt} attempt(s) over {self.retry_time:g} s; {hint}"
                )
            logger.info(
                "%s %s failed (%s); retrying in %.1f s", method, path, problem, delay
            )
            time.sleep(delay)

    def _refusal(
        self, response: requests.Response, method: str, path: str, where: str | None
    ) -> Exception:
        status = response.status_code
        error = _error_body(response)
        code = str(error.get("code", ""))
        message = str(error.get("message") or _status_text(response))
        detail = error.get("detail") if isinstance(error.get("detail"), dict) else {}
        if status in _REDIRECTS:
            return StoreError(
                f"tracking server {self._shown} redirected {method} {path} to "
                f"{response.headers.get('Location', '?')!r}; use that address as the "
                "store URL"
            )
        if code == "blob_missing" and status == 422:
            # A batch naming bytes the server does not hold: upload them again.
            # Reading bytes the server lost is a 404, NotFoundError as below.
            return _BlobMissing(message)
        if code == "invalid_filter":
            column = detail.get("column") if isinstance(detail, dict) else None
            return FilterError(
                message, where or "", column if isinstance(column, int) else None
            )
        if status == 401:
            return _TokenRefused(
                f"tracking server {self._shown} did not accept the token ({message}); "
                "pass a valid token with labnotebook.init(url, token=...) or set "
                "LABNOTEBOOK_TOKEN"
            )
        if status == 403:
            return _TokenRefused(
                f"tracking server {self._shown} refused {method} {path} with this "
                f"token ({message}); writing needs a write token, not a read token"
            )
        if status == 404:
            return NotFoundError(message)
        if status == 409:
            return ConflictError(message)
        if status in (400, 413, 422):
            return ValidationError(message)
        return StoreError(
            f"tracking server {self._shown} refused {method} {path}: {message}"
        )


def _attempt(action: Callable[[str], None], value: str) -> Exception | None:
    """Run ``action(value)``; the exception it raised, or None."""
    try:
        action(value)
    except Exception as exc:  # handed back to the caller, which re-raises it
        return exc
    return None


# ----------------------------------------------------------------- downloads


class _Download(io.RawIOBase):
    """A blob read from the server as a stream, resumed after a dropped connection.

    Reconnections use ``Range: bytes=<position>-`` with ``If-Range`` on the hash
    (the blob's ETag) and the store's retries; each one starts a new retry window.
    At the end the bytes' SHA-256 must equal the blob's hash.
    """

    def __init__(self, store: HttpStore, path: str, sha256: str):
        super().__init__()
        self._store = store
        self._path = path
        self._sha = sha256
        self._digest = hashlib.sha256()
        self._position = 0
        self._response = self._connect()
        self._size = _content_length(self._response)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        if not len(view):
            return 0
        reconnects = 0
        while True:
            try:
                data = self._response.raw.read(len(view))
            except (requests.RequestException, OSError, *_URLLIB3_ERRORS) as exc:
                problem = type(exc).__name__
            else:
                if data or self._size is None or self._position >= self._size:
                    break
                problem = "the connection closed early"
            reconnects += 1
            logger.info(
                "download of %s broke at byte %d (%s); resuming",
                self._sha,
                self._position,
                problem,
            )
            self._response.close()
            if reconnects > 1:
                time.sleep(_backoff(reconnects - 1))
            if reconnects > 8:
                raise StoreUnavailableError(
                    f"the download of blob {self._sha} from {self._store._shown} kept "
                    f"breaking ({problem}); try again later"
                )
            self._response = self._connect()
        if not data:
            self._finish()
            return 0
        view[: len(data)] = data
        self._digest.update(data)
        self._position += len(data)
        return len(data)

    def close(self) -> None:
        if not self.closed:
            self._response.close()
        super().close()

    def _connect(self) -> requests.Response:
        headers = {"Accept": "*/*", "Accept-Encoding": "identity"}
        if self._position:
            headers["Range"] = f"bytes={self._position}-"
            headers["If-Range"] = f'"{self._sha}"'
        response = self._store._request("GET", self._path, headers=headers, stream=True)
        if self._position and response.status_code != 206:
            response.close()
            raise StoreError(
                f"the server did not resume the download of blob {self._sha} "
                f"(HTTP {response.status_code}); download it again"
            )
        return response

    def _finish(self) -> None:
        if self._size is not None and self._position != self._size:
            raise StoreError(
                f"the download of blob {self._sha} ended after {self._position} of "
                f"{self._size} bytes; download it again"
            )
        if self._digest.hexdigest() != self._sha:
            raise StoreError(
                f"the bytes downloaded for blob {self._sha} have another hash; the "
                "server's copy may be damaged"
            )


def _content_length(response: requests.Response) -> int | None:
    value = response.headers.get("Content-Length")
    return int(value) if value and value.isdigit() else None


# ------------------------------------------------------------------- helpers


def _api_base(url: str) -> str:
    if not isinstance(url, str):
        raise ValidationError(f"tracking server URL must be a string, got {url!r}")
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValidationError(
            f"tracking server URL {url!r} is not valid; use http://host:port or "
            "https://host"
        )
    if parts.query or parts.fragment:
        raise ValidationError(
            f"tracking server URL {url!r} has a query or fragment; give only the "
            "address (the token goes in token= or LABNOTEBOOK_TOKEN)"
        )
    path = parts.path.rstrip("/")
    if not path.endswith(API_PREFIX):
        path += API_PREFIX
    return urlunsplit((parts.scheme, parts.netloc, path, "", ""))


def _without_credentials(url: str) -> str:
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = host if parts.port is None else f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))


def _run_path(run_id: str, *rest: str) -> str:
    if not isinstance(run_id, str) or not run_id:
        raise ValidationError(f"run id must be a non-empty string, got {run_id!r}")
    return "/".join(["/runs", quote(run_id, safe=""), *rest])


def _run_query(where: str | None, experiment: str | None) -> dict[str, Any]:
    params: dict[str, Any] = {}
    if where:
        params["where"] = where
    if experiment is not None:
        params["experiment"] = experiment
    return params


def _backoff(attempt: int) -> float:
    delay: float = min(BACKOFF_MAX, BACKOFF_START * 2.0 ** (attempt - 1))
    return delay * random.uniform(0.75, 1.0)


def _retry_after(response: requests.Response) -> float | None:
    """Seconds asked for by a ``Retry-After`` header (seconds or an HTTP date)."""
    value = response.headers.get("Retry-After")
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _describe_failure(exc: requests.RequestException) -> str:
    if isinstance(exc, requests.ConnectTimeout):
        return "connection timed out"
    if isinstance(exc, requests.ReadTimeout):
        return "no answer in time"
    if isinstance(exc, requests.ConnectionError):
        return "connection failed"
    return type(exc).__name__


def _status_text(response: requests.Response) -> str:
    return f"HTTP {response.status_code} {response.reason or ''}".rstrip()


def _error_body(response: requests.Response) -> dict[str, Any]:
    try:
        data = response.json()
    except (ValueError, requests.RequestException):
        return {}
    error = data.get("error") if isinstance(data, dict) else None
    return error if isinstance(error, dict) else {}


def _body(response: requests.Response, method: str, path: str, shown: str) -> Any:
    if response.status_code == 204 or not response.content:
        return None
    try:
        return response.json()
    except ValueError:
        raise StoreError(
            f"tracking server {shown} answered {method} {path} with something that "
            "is not JSON; check that the URL points at a labnotebook server"
        ) from None


def _float(value: Any) -> float:
    """A number from the wire: the strings "NaN", "Infinity", "-Infinity" decoded."""
    if value is None:
        return math.nan
    if isinstance(value, str):
        try:
            return float(_NON_FINITE[value])
        except KeyError:
            raise StoreError(
                f"the server sent {value!r} where a number was expected"
            ) from None
    return float(value)


def _optional_float(value: Any) -> float | None:
    return None if value is None else _float(value)


def _summary(data: dict[str, Any]) -> Summary:
    last_step = data.get("last_step")
    return Summary(
        count=int(data.get("count", 0)),
        last=_float(data.get("last")),
        last_step=None if last_step is None else int(last_step),
        last_time=_optional_float(data.get("last_time")),
        min=_float(data.get("min")),
        max=_float(data.get("max")),
    )


def _run(data: dict[str, Any]) -> RunRecord:
    return RunRecord(
        id=str(data["id"]),
        experiment=str(data["experiment"]),
        name=str(data["name"]),
        status=str(data["status"]),
        params=data.get("params") or {},
        tags=list(data.get("tags") or []),
        started_at=float(data["started_at"]),
        ended_at=_optional_float(data.get("ended_at")),
        heartbeat_at=float(data["heartbeat_at"]),
        updated_at=float(data["updated_at"]),
        host=str(data.get("host") or ""),
        pid=data.get("pid"),
        command=str(data.get("command") or ""),
        error=data.get("error"),
        environment=data.get("environment"),
        metrics={
            str(key): _summary(value)
            for key, value in (data.get("metrics") or {}).items()
        },
    )


def _note(data: dict[str, Any]) -> Note:
    step = data.get("step")
    return Note(
        id=int(data["id"]),
        run_id=str(data["run_id"]),
        step=None if step is None else int(step),
        created_at=float(data["created_at"]),
        updated_at=float(data["updated_at"]),
        text=str(data["text"]),
    )


def _artifact(data: dict[str, Any]) -> Artifact:
    step = data.get("step")
    return Artifact(
        id=int(data["id"]),
        run_id=str(data["run_id"]),
        kind=str(data["kind"]),
        name=str(data["name"]),
        step=None if step is None else int(step),
        size=int(data["size"]),
        sha256=str(data["sha256"]),
        media_type=str(data["media_type"]),
        created_at=float(data["created_at"]),
        meta=dict(data.get("meta") or {}),
    )


def _chunk(data: dict[str, Any], run_id: str) -> ConsoleChunk:
    return ConsoleChunk(
        id=int(data["id"]),
        run_id=run_id,
        stream=str(data["stream"]),
        time=float(data["time"]),
        text=str(data["text"]),
    )


def _experiment(data: dict[str, Any]) -> Experiment:
    return Experiment(
        id=int(data["id"]),
        name=str(data["name"]),
        created_at=float(data["created_at"]),
        run_count=int(data.get("run_count", 0)),
    )


# ------------------------------------------------------------ cutting batches


def _cut(batch: Batch) -> list[Batch]:
    """Cut a batch into parts that each fit in one request, in sending order.

    The cut depends only on the batch, so a batch resent from the spool gives the
    same parts with the same ids, and the server skips those it already applied.
    The run's creation goes in the first part, its status in the last.
    """
    pieces = list(_pieces(batch))
    parts = _halve(batch, pieces, "")
    first, last = parts[0], parts[-1]
    first.create = batch.create
    first.resume = batch.resume
    last.status = batch.status
    last.ended_at = batch.ended_at
    last.error = batch.error
    last.heartbeat = batch.heartbeat
    return parts


# A piece: ("points", key, (steps, values, times)), or ("field" | "note" |
# "artifact" | "console", None, row).
_Piece = tuple[str, Any, Any]


def _pieces(batch: Batch) -> Iterator[_Piece]:
    for key, (steps, values, times) in batch.points.items():
        for i in range(0, len(steps), PIECE_POINTS):
            j = i + PIECE_POINTS
            yield "points", key, (steps[i:j], values[i:j], times[i:j])
    for row in batch.fields:
        yield "field", None, row
    for note in batch.notes:
        yield "note", None, note
    for artifact in batch.artifacts:
        yield "artifact", None, artifact
    for chunk in batch.console:
        yield "console", None, chunk


def _halve(batch: Batch, pieces: list[_Piece], path: str) -> list[Batch]:
    part = _assemble(batch, pieces, path)
    if len(pieces) <= 1 or len(part.to_json()) <= MAX_REQUEST_BYTES:
        return [part]
    middle = len(pieces) // 2
    return _halve(batch, pieces[:middle], path + "0") + _halve(
        batch, pieces[middle:], path + "1"
    )


def _assemble(batch: Batch, pieces: list[_Piece], path: str) -> Batch:
    part = Batch(
        run_id=batch.run_id, id=uuid.uuid5(_PART_NAMESPACE, f"{batch.id}/{path}").hex
    )
    for kind, key, payload in pieces:
        if kind == "points":
            steps, values, times = part.points.setdefault(key, ([], [], []))
            steps.extend(payload[0])
            values.extend(payload[1])
            times.extend(payload[2])
        elif kind == "field":
            part.fields.append(payload)
        elif kind == "artifact":
            part.artifacts.append(payload)
        elif kind == "console":
            part.console.append(payload)
        else:
            part.notes.append(payload)
    return part
