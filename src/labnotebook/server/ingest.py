"""Ingest: batches written by remote clients, all-or-nothing and idempotent.

The body is a batch as ``labnotebook._store.base.Batch.to_json()`` writes it. The
server checks every field (types, names, limits) before the store sees it, since
the client may be anything that speaks HTTP. An artifact row is accepted only once
its bytes are in the server's artifact store (``PUT /api/v1/blobs/<sha256>``).
"""

from __future__ import annotations

import math
import re
from typing import Any

import numpy as np
from flask import Blueprint

from .._artifacts import BlobStore, check_artifact_name, parse_manifest
from .._environment import MAX_ENVIRONMENT_BYTES
from .._errors import NotFoundError, StoreError, ValidationError
from .._schema import ARTIFACT_KINDS, STATUSES
from .._store.base import ArtifactCreate, Batch, Columns, RunCreate, _unpack_columns
from .._values import (
    MAX_FIELDS_BYTES,
    MAX_NOTE_LENGTH,
    MAX_STEP,
    check_key,
    check_name,
    check_tags,
    dump_json,
    to_json,
)
from ._auth import write
from ._errors import ApiError
from ._http import check_params, config, json_body, store
from .artifacts import blobs

bp = Blueprint("ingest", __name__)

_BATCH_FIELDS = (
    "run_id",
    "id",
    "create",
    "resume",
    "points",
    "fields",
    "notes",
    "artifacts",
    "console",
    "status",
    "ended_at",
    "error",
    "heartbeat",
)
_CREATE_FIELDS = (
    "experiment",
    "name",
    "params",
    "tags",
    "started_at",
    "host",
    "pid",
    "command",
    "environment",
)
_ARTIFACT_FIELDS = (
    "kind",
    "name",
    "step",
    "size",
    "sha256",
    "media_type",
    "created_at",
    "meta",
)
_CONSOLE_STREAMS = ("stdout", "stderr")
# NUL (PostgreSQL text cannot hold it) and lone surrogates (not valid UTF-8).
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_MEDIA_TYPE = re.compile(
    r"[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}"
)
_ID = re.compile(r"[A-Za-z0-9_-]{1,32}")
_BATCH_ID = re.compile(r"[A-Za-z0-9_-]{1,36}")
_NON_FINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}
#: Longest host, command or error text in a batch.
#: Times are epoch seconds from 1970-01-01 to 2200-01-01 (UTC): tables and
#: charts cannot show times far outside, and no run happens there.
MIN_TIME = 0
MAX_TIME = 7_258_118_400
_TIME_RANGE = f"epoch seconds from {MIN_TIME} (1970) to {MAX_TIME} (2200)"

MAX_TEXT = {"host": 255, "command": 100_000, "error": 1_000_000}
#: Most per-step field rows or notes in one batch.
MAX_ROWS = 1_000_000


@bp.post("/ingest")
@write
def ingest() -> dict[str, Any]:
    """Apply one batch; a batch already applied is acknowledged again."""
    check_params(())
    body = json_body(_BATCH_FIELDS, required=("run_id",))
    batch = parse_batch(body, config().max_batch_points)
    try:
        store().write(batch)
    except NotFoundError:
        # The run was deleted: the bytes uploaded for this batch's artifacts
        # would stay on the server with no artifact using them.
        if batch.artifacts:
            store().delete_unused_blobs([(a.kind, a.sha256) for a in batch.artifacts])
        raise
    return {"applied": True}


def parse_batch(data: dict[str, Any], max_points: int) -> Batch:
    """Check a batch's JSON object field by field and build the :class:`Batch`."""
    run_id = _match(data["run_id"], _ID, "run_id", 32)
    batch = Batch(run_id=run_id)
    if "id" in data:
        batch.id = _match(data["id"], _BATCH_ID, "id", 36)
    if data.get("create") is not None:
        batch.create = _create(data["create"])
    batch.resume = _bool(data.get("resume", False), "resume")
    batch.points = _points(data.get("points") or {}, max_points)
    batch.fields = _fields(data.get("fields") or [])
    batch.notes = _notes(data.get("notes") or [])
    batch.artifacts = _artifacts(data.get("artifacts") or [])
    batch.console = _console(data.get("console") or [])
    status = data.get("status")
    if status is not None and status not in STATUSES:
        raise _invalid("status", f"status {status!r:.40} is not one of {STATUSES}")
    batch.status = status
    batch.ended_at = _time(data.get("ended_at"), "ended_at", optional=True)
    batch.error = _text(data.get("error"), "error", optional=True)
    batch.heartbeat = _time(data.get("heartbeat"), "heartbeat", optional=True)
    return batch


def _create(data: object) -> RunCreate:
    if not isinstance(data, dict):
        raise _invalid("create", "create must be an object")
    unknown = sorted(set(data) - set(_CREATE_FIELDS))
    if unknown:
        raise ApiError(
            422,
            "unknown_field",
            f"unknown field(s) {unknown} in create; known: {sorted(_CREATE_FIELDS)}",
            {"field": f"create.{unknown[0]}"},
        )
    for name in ("experiment", "name", "params", "tags", "started_at"):
        if name not in data:
            raise ApiError(
                422,
                "missing_field",
                f"create needs the field {name!r}",
                {"field": f"create.{name}"},
            )
    params = _json(data["params"], "create.params")
    if not isinstance(params, dict):
        raise _invalid("create.params", "create.params must be an object")
    environment = data.get("environment")
    if environment is not None:
        environment = _json(environment, "create.environment", MAX_ENVIRONMENT_BYTES)
        if not isinstance(environment, dict):
            raise _invalid("create.environment", "create.environment must be an object")
    pid = data.get("pid")
    if pid is not None and (type(pid) is not int or not 0 <= pid < 2**31):
        raise _invalid(
            "create.pid", f"create.pid must be a process id, got {pid!r:.40}"
        )
    if not isinstance(data["tags"], list):
        raise _invalid("create.tags", "create.tags must be a list of strings")
    return RunCreate(
        experiment=check_name(data["experiment"], "experiment name"),
        name=check_name(data["name"], "run name"),
        params=params,
        tags=check_tags(data["tags"]),
        started_at=_time(data["started_at"], "create.started_at"),
        host=_text(data.get("host", ""), "host") or "",
        pid=pid,
        command=_text(data.get("command", ""), "command") or "",
        environment=environment,
    )


def _points(data: object, max_points: int) -> dict[str, Columns]:
    if not isinstance(data, dict):
        raise _invalid(
            "points", "points must be an object of key: [steps, values, times]"
        )
    total = 0
    out: dict[str, Columns] = {}
    for key, columns in data.items():
        check_key(key)
        where = f"points[{key!r}]"
        if isinstance(columns, dict):
            packed = _packed(columns, where)
            total += len(packed[0])
            _check_total(total, max_points)
            if len(packed[0]):
                out[key] = packed
            continue
        if not (
            isinstance(columns, list)
            and len(columns) == 3
            and all(isinstance(c, list) for c in columns)
        ):
            raise _invalid(where, f"{where} must be [steps, values, times]")
        steps, values, times = columns
        if not len(steps) == len(values) == len(times):
            raise _invalid(
                where,
                f"{where} has {len(steps)} steps, {len(values)} values and "
                f"{len(times)} times; the three lists must have the same length",
            )
        if not steps:
            continue
        total += len(steps)
        _check_total(total, max_points)
        if (
            not all(type(s) is int for s in steps)
            or min(steps) < 0
            or max(steps) > MAX_STEP
        ):
            raise _invalid(
                where, f"{where} steps must be integers between 0 and {MAX_STEP}"
            )
        out[key] = (steps, _values(values, where), _times(times, where))
    return out


def _check_total(total: int, max_points: int) -> None:
    if total > max_points:
        raise ApiError(
            413,
            "too_many_points",
            f"the batch holds more than {max_points} points (max_batch_points); "
            "send it in smaller batches",
            {"limit": max_points},
        )


def _packed(columns: dict[str, Any], where: str) -> Columns:
    """Columns as ``Batch.to_json()`` packs them: base64 of int64 and float64."""
    if set(columns) != {"steps", "values", "times"} or not all(
        isinstance(v, str) for v in columns.values()
    ):
        raise _invalid(
            where,
            f"{where} must be [steps, values, times], or packed as "
            '{"steps", "values", "times"} by Batch.to_json()',
        )
    try:
        steps, values, times = _unpack_columns(columns)
    except ValueError:
        raise _invalid(
            where,
            f"{where} does not decode: packed columns are base64 of little-endian "
            "int64 steps and float64 values and times, of equal lengths",
        ) from None
    if len(steps) and np.asarray(steps, dtype=np.int64).min() < 0:
        raise _invalid(where, f"{where} steps must be between 0 and {MAX_STEP}")
    packed = np.asarray(times, dtype=np.float64)
    if not ((packed >= MIN_TIME) & (packed <= MAX_TIME)).all():
        raise _invalid(where, f"{where} times must be {_TIME_RANGE}")
    return steps, values, times


def _values(values: list[Any], where: str) -> list[float]:
    out: list[float] = []
    append = out.append
    for v in values:
        kind = type(v)
        if kind is float or kind is int:
            append(float(v))
        elif kind is str and v in _NON_FINITE:
            append(_NON_FINITE[v])
        else:
            raise _invalid(
                where,
                f"{where} has the value {v!r:.40}; values are numbers or the strings "
                '"NaN", "Infinity", "-Infinity"',
            )
    return out


def _times(times: list[Any], where: str) -> list[float]:
    if not all((type(t) is float or type(t) is int) for t in times):
        raise _invalid(where, f"{where} times must be numbers (epoch seconds)")
    out = [float(t) for t in times]
    if not all(MIN_TIME <= t <= MAX_TIME for t in out):
        raise _invalid(where, f"{where} times must be {_TIME_RANGE}")
    return out


def _fields(rows: object) -> list[tuple[int, float, dict[str, Any]]]:
    if not isinstance(rows, list) or len(rows) > MAX_ROWS:
        raise _invalid("fields", f"fields must be a list of at most {MAX_ROWS} rows")
    out = []
    for row in rows:
        if not (isinstance(row, list) and len(row) == 3 and isinstance(row[2], dict)):
            raise _invalid("fields", "each fields row must be [step, time, {...}]")
        value = _json(row[2], "fields", MAX_FIELDS_BYTES)
        out.append((_step(row[0], "fields"), _time(row[1], "fields"), value))
    return out


def _notes(rows: object) -> list[tuple[float, int | None, str]]:
    if not isinstance(rows, list) or len(rows) > MAX_ROWS:
        raise _invalid("notes", f"notes must be a list of at most {MAX_ROWS} rows")
    out = []
    for row in rows:
        if not (isinstance(row, list) and len(row) == 3):
            raise _invalid("notes", "each notes row must be [time, step or null, text]")
        text = _text(row[2], "note", limit=MAX_NOTE_LENGTH)
        step = None if row[1] is None else _step(row[1], "notes")
        out.append((_time(row[0], "notes"), step, text or ""))
    return out


def _artifacts(rows: object) -> list[ArtifactCreate]:
    if not isinstance(rows, list) or len(rows) > MAX_ROWS:
        raise _invalid(
            "artifacts", f"artifacts must be a list of at most {MAX_ROWS} rows"
        )
    out = [_artifact(row, f"artifacts[{i}]") for i, row in enumerate(rows)]
    for row in out:
        _check_uploaded(row)
    return out


def _artifact(row: object, where: str) -> ArtifactCreate:
    if not isinstance(row, dict):
        raise _invalid(where, f"{where} must be an object")
    unknown = sorted(set(row) - set(_ARTIFACT_FIELDS))
    if unknown:
        raise ApiError(
            422,
            "unknown_field",
            f"unknown field(s) {unknown} in {where}; known: {list(_ARTIFACT_FIELDS)}",
            {"field": f"{where}.{unknown[0]}"},
        )
    missing = [name for name in _ARTIFACT_FIELDS[:-1] if name not in row]
    if missing:
        raise ApiError(
            422,
            "missing_field",
            f"{where} needs the field(s) {missing}",
            {"field": f"{where}.{missing[0]}"},
        )
    kind = row["kind"]
    if kind not in ARTIFACT_KINDS:
        raise _invalid(
            f"{where}.kind",
            f"{where}.kind {kind!r:.40} is not one of {', '.join(ARTIFACT_KINDS)}",
        )
    try:
        name = check_artifact_name(row["name"])
    except ValidationError as exc:
        raise _invalid(f"{where}.name", f"{where}.name: {exc}") from None
    step = row["step"]
    size = row["size"]
    if type(size) is not int or not 0 <= size < 2**63:
        raise _invalid(
            f"{where}.size",
            f"{where}.size must be a number of bytes >= 0, got {size!r:.40}",
        )
    sha = row["sha256"]
    if not isinstance(sha, str) or not _SHA256.fullmatch(sha):
        raise _invalid(
            f"{where}.sha256",
            f"{where}.sha256 {sha!r:.80} must be 64 lowercase hexadecimal digits",
        )
    media_type = row["media_type"]
    if not isinstance(media_type, str) or not _MEDIA_TYPE.fullmatch(media_type):
        raise _invalid(
            f"{where}.media_type",
            f"{where}.media_type {media_type!r:.60} must be a media type such as "
            "image/png or application/octet-stream",
        )
    meta = row.get("meta")
    meta = {} if meta is None else _json(meta, f"{where}.meta", MAX_FIELDS_BYTES)
    if not isinstance(meta, dict):
        raise _invalid(f"{where}.meta", f"{where}.meta must be an object")
    return ArtifactCreate(
        kind=kind,
        name=name,
        step=None if step is None else _step(step, f"{where}.step"),
        size=size,
        sha256=sha,
        media_type=media_type,
        created_at=_time(row["created_at"], f"{where}.created_at"),
        meta=meta,
    )


def _check_uploaded(row: ArtifactCreate) -> None:
    """The row's bytes (and a folder's files) must be in the artifact store."""
    found = blobs()
    try:
        missing = _missing(found, row)
    except NotFoundError:  # deleted meanwhile
        missing = [row.sha256]
    if missing:
        raise ApiError(
            422,
            "blob_missing",
            f"the bytes of artifact {row.name!r} (sha256 {missing[0]}) are not on "
            f"the server; upload them first with PUT /api/v1/blobs/{missing[0]}, "
            "then send the batch again",
            {"field": "artifacts", "sha256": missing[0], "missing": len(missing)},
        )


def _missing(found: BlobStore, row: ArtifactCreate) -> list[str]:
    if not found.has(row.sha256):
        return [row.sha256]
    if row.kind != "folder":
        size = found.size(row.sha256)
        if size != row.size:
            raise _invalid(
                "artifacts",
                f"artifact {row.name!r} says it has {row.size} bytes but its blob "
                f"{row.sha256} has {size}",
            )
        return []
    try:
        entries = parse_manifest(found.read(row.sha256))
    except StoreError as exc:
        raise _invalid(
            "artifacts", f"the manifest of folder {row.name!r} is invalid: {exc}"
        ) from None
    return [e.sha256 for e in entries if not found.has(e.sha256)]


def _console(rows: object) -> list[tuple[float, str, str]]:
    if not isinstance(rows, list) or len(rows) > MAX_ROWS:
        raise _invalid("console", f"console must be a list of at most {MAX_ROWS} rows")
    out = []
    for row in rows:
        if not (isinstance(row, list) and len(row) == 3):
            raise _invalid("console", "each console row must be [time, stream, text]")
        stream, text = row[1], row[2]
        if stream not in _CONSOLE_STREAMS:
            raise _invalid(
                "console",
                f"console stream {stream!r:.40} is not one of "
                f"{', '.join(_CONSOLE_STREAMS)}",
            )
        if not isinstance(text, str):
            raise _invalid(
                "console", f"console text must be a string, got {type(text).__name__}"
            )
        out.append((_time(row[0], "console"), str(stream), _printable(text)))
    return out


def _printable(text: str) -> str:
    """Console text as the store can hold it: NUL and lone surrogates replaced.

    Output is kept as it was written rather than refused, so a stray byte never
    costs the rest of the batch.
    """
    return _UNSTORABLE.sub("\ufffd", text)


def _json(value: object, what: str, max_bytes: int | None = None) -> Any:
    converted = (
        to_json(value, what) if max_bytes is None else to_json(value, what, max_bytes)
    )
    if "\\u0000" in dump_json(converted):
        raise _invalid(what, f"{what} contains a NUL character; remove it")
    return converted


def _step(value: object, where: str) -> int:
    if type(value) is not int or not 0 <= value <= MAX_STEP:
        raise _invalid(
            where,
            f"{where} step {value!r:.40} must be an integer between 0 and {MAX_STEP}",
        )
    return value


def _time(value: object, where: str, optional: bool = False) -> Any:
    if value is None and optional:
        return None
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise _invalid(where, f"{where} must be {_TIME_RANGE}, got {value!r:.40}")
    if not MIN_TIME <= value <= MAX_TIME:
        raise _invalid(where, f"{where} must be {_TIME_RANGE}, got {value!r:.40}")
    return float(value)


def _text(
    value: object, where: str, optional: bool = False, limit: int | None = None
) -> str | None:
    if value is None and optional:
        return None
    if not isinstance(value, str):
        raise _invalid(where, f"{where} must be a string, got {type(value).__name__}")
    most = limit or MAX_TEXT.get(where, MAX_NOTE_LENGTH)
    if len(value) > most:
        raise ApiError(
            413,
            "too_long",
            f"{where} is {len(value)} characters long; the limit is {most}",
            {"field": where, "limit": most},
        )
    if "\x00" in value:
        raise _invalid(where, f"{where} contains a NUL character; remove it")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise _invalid(
            where, f"{where} contains a lone surrogate, which is not valid Unicode"
        ) from None
    return value


def _bool(value: object, where: str) -> bool:
    if not isinstance(value, bool):
        raise _invalid(where, f"{where} must be true or false, got {value!r:.40}")
    return value


def _match(value: object, pattern: re.Pattern[str], where: str, most: int) -> str:
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise _invalid(
            where,
            f"{where} {value!r:.50} must be 1 to {most} letters, digits, '-' or '_'",
        )
    return value


def _invalid(field: str, message: str) -> ApiError:
    return ApiError(422, "invalid_value", message, {"field": field})
