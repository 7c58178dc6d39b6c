"""Artifacts: blob uploads, the list of a run's artifacts, downloads, deletion.

Bytes are uploaded once, by their sha256, with ``PUT /blobs/<sha256>``; a batch then
names them in its ``artifacts`` rows (see ingest). Downloads stream from the server's
artifact store with Range support. Every download is sent as an attachment with
``X-Content-Type-Options: nosniff`` and a sandboxing Content-Security-Policy; only
PNG, JPEG, GIF and WebP images keep their media type (and are shown inline), since a
browser cannot run anything in them. Names are labels, never paths: only a checked
sha256 is joined to the store's folder.
"""

from __future__ import annotations

import logging
import re
import tarfile
import unicodedata
from collections.abc import Iterator
from typing import IO, Any, cast
from urllib.parse import quote

from flask import Blueprint, Response, current_app, request
from gunicorn.http.errors import ParseException
from werkzeug.exceptions import RequestedRangeNotSatisfiable
from werkzeug.http import parse_etags
from werkzeug.wsgi import FileWrapper

from .._artifacts import (
    MAX_ARTIFACT_NAME_LENGTH,
    BlobStore,
    ManifestEntry,
    parse_manifest,
)
from .._errors import NotFoundError, StoreError, ValidationError
from .._schema import ARTIFACT_KINDS
from .._store.base import Artifact
from ._auth import read, write
from ._errors import ApiError
from ._http import (
    MAX_ID,
    check_params,
    choice_param,
    config,
    empty,
    json_body,
    store,
)
from .runs import _run_id

bp = Blueprint("artifacts", __name__)
logger = logging.getLogger(__name__)

#: Key of the server's BlobStore in ``app.extensions``.
EXTENSION = "labnotebook.blobs"
#: Media types served as themselves (inline); everything else is octet-stream.
INLINE_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})
#: Bytes read from the request or the blob file at a time.
CHUNK_SIZE = 1 << 20
#: Most hashes in one ``POST /blobs/missing``.
MAX_CHECKED = 10_000
#: Sent with every download: nothing in it may run, even if opened directly.
DOWNLOAD_CSP = "default-src 'none'; sandbox"

_SHA256 = re.compile(r"[0-9a-f]{64}")
_ASCII_SAFE = re.compile(r"[^A-Za-z0-9._ -]")


def blobs() -> BlobStore:
    """The server's artifact store."""
    found: BlobStore = current_app.extensions[EXTENSION]
    return found


# ------------------------------------------------------------------ uploads


@bp.route("/blobs/<sha256>", methods=["HEAD"])
@read
def has_blob(sha256: str) -> Response:
    """200 when the server holds the blob, else 404 (no body either way)."""
    check_params(())
    if not _SHA256.fullmatch(sha256) or not blobs().has(sha256):
        return empty(404)
    response = empty(200)
    response.headers["X-Blob-Size"] = str(blobs().size(sha256))
    return response


@bp.post("/blobs/missing")
@read
def missing_blobs() -> dict[str, Any]:
    """Which of the given blobs the server does not hold (one request for many)."""
    check_params(())
    body = json_body(("sha256",), required=("sha256",))
    hashes = body["sha256"]
    if not isinstance(hashes, list) or len(hashes) > MAX_CHECKED:
        raise ApiError(
            422,
            "invalid_value",
            f"sha256 must be a list of at most {MAX_CHECKED} hashes; ask in pages",
            {"field": "sha256", "limit": MAX_CHECKED},
        )
    for value in hashes:
        if not isinstance(value, str) or not _SHA256.fullmatch(value):
            raise ApiError(
                422,
                "invalid_sha256",
                f"{str(value)[:80]!r} is not a sha256; give 64 lowercase "
                "hexadecimal digits",
                {"field": "sha256"},
            )
    found = blobs()
    return {"missing": [h for h in dict.fromkeys(hashes) if not found.has(h)]}


@bp.put("/blobs/<sha256>")
@write
def put_blob(sha256: str) -> tuple[dict[str, Any], int]:
    """Store the request body as the blob with this sha256 (checked while written)."""
    check_params(())
    sha = _sha(sha256, status=422)
    limit = config().max_artifact_size
    declared = request.content_length
    if declared is not None and declared > limit:
        raise _too_large(limit)
    found = blobs()
    if found.has(sha):
        return {"sha256": sha, "size": found.size(sha)}, 200

    # The body limit of JSON requests does not apply; the size cap is counted here
    # (one byte over is left to the reader, so the cap's own 413 answers).
    request.max_content_length = limit + 1
    try:
        _, size = found.put_stream(
            cast(IO[bytes], _Capped(request.stream, limit)),
            sha,
            source_name="the upload",
        )
    except ValidationError as exc:
        raise ApiError(422, "hash_mismatch", str(exc), {"sha256": sha}) from None
    except StoreError as exc:
        # The cause names the server's folders: it goes to the log, not the client.
        logger.error("upload of blob %s failed: %s", sha, exc)
        raise ApiError(
            507,
            "insufficient_storage",
            "the server's artifact store cannot take the upload (full, or not "
            "writable); retry later, and see the server log",
        ) from None
    return {"sha256": sha, "size": size}, 201


class _Capped:
    """A request stream that refuses to read past the artifact size cap."""

    def __init__(self, stream: IO[bytes], limit: int):
        self._stream = stream
        self._limit = limit
        self._read = 0

    def read(self, size: int = -1) -> bytes:
        try:
            chunk = self._stream.read(CHUNK_SIZE if size < 0 else size)
        except ParseException as exc:
            # gunicorn's reader of a chunked body that does not follow HTTP/1.1.
            raise ApiError(
                400,
                "invalid_body",
                f"the request body is not valid chunked encoding ({exc}); send the "
                "bytes again, with Content-Length or well-formed chunks",
            ) from None
        self._read += len(chunk)
        if self._read > self._limit:
            raise _too_large(self._limit)
        return chunk


def _too_large(limit: int) -> ApiError:
    return ApiError(
        413,
        "artifact_too_large",
        f"the upload is larger than the server's artifact size limit of {limit} "
        "bytes (max_artifact_size); raise it on the server or attach a smaller file",
        {"limit": limit},
    )


# ------------------------------------------------------------------ listing


@bp.get("/runs/<run_id>/artifacts")
@read
def list_artifacts(run_id: str) -> dict[str, Any]:
    """A run's artifacts, oldest first, optionally of one kind or name."""
    check_params(("kind", "name"))
    kind = choice_param("kind", ARTIFACT_KINDS, "") or None
    name = request.args.get("name") or None
    if name is not None and len(name) > MAX_ARTIFACT_NAME_LENGTH:
        raise ApiError(
            422,
            "limit_exceeded",
            f"query parameter name is {len(name)} characters long; artifact names "
            f"have at most {MAX_ARTIFACT_NAME_LENGTH}",
            {"parameter": "name", "limit": MAX_ARTIFACT_NAME_LENGTH},
        )
    found = store().list_artifacts(_run_id(run_id), kind=kind, name=name)
    return {"artifacts": [artifact_json(a) for a in found]}


@bp.delete("/runs/<run_id>/artifacts/<int:artifact_id>")
@write
def delete_artifact(run_id: str, artifact_id: int) -> Response:
    """Delete one artifact; bytes no other artifact uses leave the store."""
    check_params(())
    full = _run_id(run_id)
    artifact = _artifact(full, artifact_id)
    unused = store().delete_artifacts(full, [artifact.id])
    for sha in unused:
        blobs().delete(sha)
    return empty(204)


# ------------------------------------------------------------------ downloads


@bp.get("/runs/<run_id>/artifacts/<int:artifact_id>/content")
@read
def artifact_content(run_id: str, artifact_id: int) -> Response:
    """The bytes of an artifact (a folder's are its JSON manifest)."""
    check_params(())
    artifact = _artifact(_run_id(run_id), artifact_id)
    name = artifact.name
    if artifact.kind == "folder":
        name += ".manifest.json"
    return _send(artifact.sha256, artifact.media_type, name)


@bp.get("/runs/<run_id>/artifacts/<int:artifact_id>/archive")
@read
def artifact_archive(run_id: str, artifact_id: int) -> Response:
    """A folder artifact as one uncompressed tar file, streamed.

    Members are ``<name>/<relative path>`` with their permission bits; the
    length is known in advance, so the download shows its progress.
    """
    check_params(())
    artifact = _artifact(_run_id(run_id), artifact_id)
    if artifact.kind != "folder":
        raise ApiError(
            422,
            "not_a_folder",
            f"artifact {artifact.name!r} is a {artifact.kind}, not a folder; "
            "download its bytes from .../content",
        )
    found = blobs()
    try:
        entries = parse_manifest(found.read(artifact.sha256))
        sizes = {entry.sha256: found.size(entry.sha256) for entry in entries}
    except (NotFoundError, StoreError) as exc:
        # The cause names the server's folders: it goes to the log, not the client.
        logger.error("folder artifact %s cannot be read: %s", artifact.id, exc)
        raise ApiError(
            404,
            "blob_missing",
            f"the folder {artifact.name!r} or some of its files are missing from "
            "the server's artifact store; attach it again",
        ) from None
    damaged = [e.path for e in entries if sizes[e.sha256] != e.size]
    if damaged:
        raise ApiError(
            404,
            "blob_missing",
            f"{len(damaged)} files of the folder {artifact.name!r} do not have "
            f"their recorded size in the server's artifact store (the first: "
            f"{damaged[0]!r}); attach the folder again",
        )
    headers = [_tar_header(artifact, entry) for entry in entries]
    length = sum(
        len(h) + _padded(e.size) for h, e in zip(headers, entries, strict=True)
    )
    response = Response(
        _tar_stream(found, entries, headers),
        mimetype="application/x-tar",
        direct_passthrough=True,
    )
    response.content_length = length + _TAR_END
    response.headers["Content-Disposition"] = content_disposition(
        artifact.name + ".tar"
    )
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Content-Security-Policy"] = DOWNLOAD_CSP
    return response


#: Two zero blocks end a tar file.
_TAR_END = 2 * tarfile.BLOCKSIZE


def _padded(size: int) -> int:
    return -(-size // tarfile.BLOCKSIZE) * tarfile.BLOCKSIZE


def _tar_header(artifact: Artifact, entry: ManifestEntry) -> bytes:
    info = tarfile.TarInfo(f"{artifact.name}/{entry.path}")
    info.size = entry.size
    info.mode = entry.mode & 0o7777
    info.mtime = int(artifact.created_at)
    # PAX headers carry any name length and any Unicode.
    return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")


def _tar_stream(
    found: BlobStore, entries: list[ManifestEntry], headers: list[bytes]
) -> Iterator[bytes]:
    for header, entry in zip(headers, entries, strict=True):
        yield header
        sent = 0
        with found.open(entry.sha256) as f:
            while sent < entry.size and (chunk := f.read(CHUNK_SIZE)):
                chunk = chunk[: entry.size - sent]
                sent += len(chunk)
                yield chunk
        if sent != entry.size:
            # The blob changed after the sizes were checked: end the response
            # short, so the client sees an incomplete download, not a wrong file.
            raise StoreError(f"the bytes of {entry.path!r} changed while sent")
        yield bytes(_padded(entry.size) - entry.size)
    yield bytes(_TAR_END)


@bp.get("/runs/<run_id>/blobs/<sha256>")
@read
def run_blob(run_id: str, sha256: str) -> Response:
    """One of a run's blobs: an artifact's bytes or a file of one of its folders."""
    check_params(())
    sha = _sha(sha256, status=404)
    full = _run_id(run_id)
    named = [a for a in store().list_artifacts(full) if a.sha256 == sha]
    if named:
        return _send(sha, named[-1].media_type, named[-1].name)
    try:
        # Not an artifact's own bytes: a file of one of the run's folders?
        store().open_blob(full, sha).close()
    except NotFoundError:
        raise ApiError(
            404,
            "not_found",
            f"run {full} has no artifact with sha256 {sha}, or its bytes are missing "
            "from the server's artifact store",
        ) from None
    return _send(sha, "application/octet-stream", sha)


def _send(sha: str, media_type: str, name: str) -> Response:
    """Stream a blob with Range support and download-safe headers."""
    found = blobs()
    try:
        fileobj = found.open(sha)
    except NotFoundError:
        raise ApiError(
            404,
            "blob_missing",
            f"the bytes of {name!r} (sha256 {sha}) are missing from the server's "
            "artifact store; start the server with the artifact folder the runs "
            "were logged with (LABNOTEBOOK_ARTIFACTS), or attach the artifact again",
        ) from None
    try:
        size = found.size(sha)
        environ = _served_range(_check_if_match(sha, name), size)
        inline = media_type in INLINE_TYPES
        response = Response(
            FileWrapper(fileobj, CHUNK_SIZE),
            mimetype=media_type if inline else "application/octet-stream",
            direct_passthrough=True,
        )
        response.content_length = size
        response.set_etag(sha)
        response.headers["Content-Disposition"] = content_disposition(
            name, inline=inline
        )
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Content-Security-Policy"] = DOWNLOAD_CSP
        response.headers["Cache-Control"] = "private, max-age=86400"
        try:
            response.make_conditional(environ, accept_ranges=True, complete_length=size)
        except RequestedRangeNotSatisfiable:
            raise ApiError(
                416,
                "requested_range_not_satisfiable",
                f"Range {_short(request.headers.get('Range', ''))} asks for bytes "
                f"past the end of {name!r}, which has {size} bytes; ask for a "
                f"range that starts below {size} (bytes=<first>-[<last>]), or "
                "send no Range for the whole file",
                {"size": size},
                {"Content-Range": f"bytes */{size}", "Accept-Ranges": "bytes"},
            ) from None
        return response
    except BaseException:
        fileobj.close()
        raise


#: The one form of Range served: a single byte range (RFC 9110, 14.1.2).
_BYTE_RANGE = re.compile(r"bytes[ \t]*=[ \t]*([0-9]*)[ \t]*-[ \t]*([0-9]*)[ \t]*")


def _check_if_match(sha: str, name: str) -> dict[str, Any]:
    """The request's WSGI environ, once its If-Match (if any) is satisfied.

    Werkzeug would send a failed If-Match as 412 with the bytes as its body, and
    refuse ``If-Match: *``; here ``*`` or the ETag (the sha256) passes, anything
    else is 412 in the error shape.
    """
    environ = request.environ
    header = environ.get("HTTP_IF_MATCH")
    if header is None:
        return environ
    etags = parse_etags(header)
    if not (etags.star_tag or etags.contains(sha)):
        raise ApiError(
            412,
            "precondition_failed",
            f"If-Match {_short(header)} does not match the ETag of {name!r}, "
            f'"{sha}" (its sha256); send that ETag, or no If-Match',
            {"etag": sha},
        )
    return {k: v for k, v in environ.items() if k != "HTTP_IF_MATCH"}


def _served_range(environ: dict[str, Any], size: int) -> dict[str, Any]:
    """The WSGI environ, with a Range this route does not serve dropped.

    A Range in another unit, malformed, or asking for several ranges is ignored
    and the whole file is sent (RFC 9110, 14.2); a suffix longer than the file
    asks for all of it. What is left past the end is 416 (see ``_send``).
    """
    header = environ.get("HTTP_RANGE")
    if header is None:
        return environ
    match = _BYTE_RANGE.fullmatch(header.strip())
    first, last = match.groups() if match else ("", "")
    if not match or not (first or last) or (first and last and int(last) < int(first)):
        return {k: v for k, v in environ.items() if k != "HTTP_RANGE"}
    if not first and int(last) > size:
        return {**environ, "HTTP_RANGE": "bytes=0-"}
    return environ


def _short(value: str, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def content_disposition(name: str, *, inline: bool = False) -> str:
    """A Content-Disposition header naming the file safely (RFC 6266, RFC 5987).

    The plain ``filename`` keeps ASCII letters, digits, ``.``, ``_``, ``-`` and
    spaces (others become ``_``); ``filename*`` carries the full name, UTF-8 and
    percent-encoded. Leading dots are dropped so no hidden file is suggested.
    """
    cleaned = "".join(
        " " if unicodedata.category(c).startswith(("C", "Z")) else c for c in name
    ).strip()
    cleaned = cleaned.replace("/", "_").replace("\\", "_").lstrip(".") or "download"
    ascii_name = _ASCII_SAFE.sub("_", cleaned)
    encoded = quote(cleaned, safe="")
    kind = "inline" if inline else "attachment"
    return f"{kind}; filename=\"{ascii_name}\"; filename*=UTF-8''{encoded}"


# ------------------------------------------------------------------ helpers


def artifact_json(artifact: Artifact) -> dict[str, Any]:
    return {
        "id": artifact.id,
        "run_id": artifact.run_id,
        "kind": artifact.kind,
        "name": artifact.name,
        "step": artifact.step,
        "size": artifact.size,
        "sha256": artifact.sha256,
        "media_type": artifact.media_type,
        "created_at": artifact.created_at,
        "meta": artifact.meta,
    }


def _artifact(run_id: str, artifact_id: int) -> Artifact:
    if artifact_id <= MAX_ID:
        for artifact in store().list_artifacts(run_id):
            if artifact.id == artifact_id:
                return artifact
    raise ApiError(
        404, "not_found", f"run {run_id} has no artifact with id {artifact_id}"
    )


def _sha(value: str, *, status: int) -> str:
    if not _SHA256.fullmatch(value):
        raise ApiError(
            status,
            "invalid_sha256" if status == 422 else "not_found",
            f"{value[:80]!r} is not a sha256; give the 64 lowercase hexadecimal "
            "digits of the bytes' SHA-256 hash",
            {"parameter": "sha256"},
        )
    return value
