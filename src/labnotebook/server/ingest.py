"""Ingest: batches written by remote clients, all-or-nothing and idempotent.

The body is a batch as ``labnotebook._store.base.Batch.to_json()`` writes it. The
server checks every field (types, names, limits) before the store sees it, since
the client may be anything that speaks HTTP.
"""

from __future__ import annotations

import math
import re
from typing import Any

import numpy as np
from flask import Blueprint

from .._schema import STATUSES
from .._store.base import Batch, Columns, RunCreate, _unpack_columns
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

bp = Blueprint("ingest", __name__)

_BATCH_FIELDS = (
    "run_id",
    "id",
    "create",
    "resume",
    "points",
    "fields",
    "notes",
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
_ID = re.compile(r"[A-Za-z0-9_-]{1,32}")
_BATCH_ID = re.compile(r"[A-Za-z0-9_-]{1,36}")
_NON_FINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}
#: Longest host, command or error text in a batch.
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
    store().write(batch)
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
        environment = _json(environment, "create.environment")
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
    if not np.isfinite(np.asarray(times, dtype=np.float64)).all():
        raise _invalid(where, f"{where} times must be finite")
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
    if not all(math.isfinite(t) for t in out):
        raise _invalid(where, f"{where} times must be finite")
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
    if type(value) not in (int, float) or not math.isfinite(value):  # type: ignore[arg-type]
        raise _invalid(
            where,
            f"{where} must be a finite number of epoch seconds, got {value!r:.40}",
        )
    return float(value)  # type: ignore[arg-type]


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
