"""The OpenAPI 3.1 description of the HTTP API, written by hand.

``tests/server/test_openapi.py`` holds it true: every route of the app is described
and every described route exists, the document is valid OpenAPI, responses of the
test suite validate against it, and schemathesis finds no undocumented status or
server error. Limits are read from the code that enforces them.
"""

from __future__ import annotations

import copy
from typing import Any

from .. import __version__
from .._artifacts import MAX_ARTIFACT_NAME_LENGTH
from .._query import MAX_FILTER_LENGTH
from .._schema import ARTIFACT_KINDS, STATUSES
from .._values import MAX_KEY_LENGTH, MAX_NAME_LENGTH, MAX_NOTE_LENGTH, MAX_STEP
from ._config import ServerConfig
from .artifacts import INLINE_TYPES, MAX_CHECKED
from .console import MAX_CONSOLE_PAGE, MAX_SEARCH_LENGTH
from .ingest import MAX_TIME, MIN_TIME

_DEFAULTS = ServerConfig(store="sqlite:///unused.db")

J = dict[str, Any]


def _ref(name: str) -> J:
    return {"$ref": f"#/components/schemas/{name}"}


def _error(description: str) -> J:
    return {
        "description": description,
        "content": {"application/json": {"schema": _ref("Error")}},
    }


def _ok(schema: J, description: str = "OK") -> J:
    return {
        "description": description,
        "content": {"application/json": {"schema": schema}},
    }


def _body(schema: J) -> J:
    return {"required": True, "content": {"application/json": {"schema": schema}}}


def _query(name: str, schema: J, description: str, required: bool = False) -> J:
    return {
        "name": name,
        "in": "query",
        "required": required,
        "description": description,
        "schema": schema,
    }


_RUN_ID = {
    "name": "run_id",
    "in": "path",
    "required": True,
    "description": "A run id, or a unique prefix of at least 4 characters.",
    "schema": {"type": "string", "minLength": 1, "maxLength": 32},
}
_STEP = {"type": "integer", "minimum": 0, "maximum": MAX_STEP}
_ID = {"type": "integer", "minimum": 1, "maximum": 2**63 - 1}
_NUMBER = {
    "oneOf": [
        {"type": "number"},
        {"type": "string", "enum": ["NaN", "Infinity", "-Infinity"]},
    ],
    "description": 'A float; non-finite values as "NaN", "Infinity", "-Infinity".',
}
_NULLABLE_NUMBER = {"oneOf": [*_NUMBER["oneOf"], {"type": "null"}]}
_TIME = {"type": "number", "description": "Seconds since the Unix epoch (UTC)."}
#: A time a batch sends: 1970 to 2200 (422 outside).
_SENT_TIME = {"type": "number", "minimum": MIN_TIME, "maximum": MAX_TIME}
_NAME = {"type": "string", "minLength": 1, "maxLength": MAX_NAME_LENGTH}
_SHA256 = {"type": "string", "pattern": "^[0-9a-f]{64}$"}
_ARTIFACT_ID = {
    "name": "artifact_id",
    "in": "path",
    "required": True,
    "schema": _ID,
}
_BLOB_SHA256 = {
    "name": "sha256",
    "in": "path",
    "required": True,
    "description": "The SHA-256 of the bytes: 64 lowercase hexadecimal digits.",
    "schema": _SHA256,
}
_ARTIFACT_ROW = {
    "type": "object",
    "required": [
        "kind",
        "name",
        "step",
        "size",
        "sha256",
        "media_type",
        "created_at",
    ],
    "additionalProperties": False,
    "properties": {
        "kind": {"type": "string", "enum": list(ARTIFACT_KINDS)},
        "name": {
            "type": "string",
            "minLength": 1,
            "maxLength": MAX_ARTIFACT_NAME_LENGTH,
        },
        "step": {"type": ["integer", "null"], "minimum": 0, "maximum": MAX_STEP},
        "size": {"type": "integer", "minimum": 0},
        "sha256": _SHA256,
        "media_type": {"type": "string", "maxLength": 255},
        "created_at": _SENT_TIME,
        "meta": {"type": "object"},
    },
}

_SCHEMAS: J = {
    "Error": {
        "type": "object",
        "required": ["error"],
        "additionalProperties": False,
        "properties": {
            "error": {
                "type": "object",
                "required": ["status", "code", "message"],
                "additionalProperties": False,
                "properties": {
                    "status": {"type": "integer"},
                    "code": {"type": "string", "pattern": "^[a-z][a-z0-9_]*$"},
                    "message": {"type": "string"},
                    "detail": {
                        "type": "object",
                        "description": "Facts about the error, e.g. column (filter "
                        "errors, 1-based), limit, parameter, field.",
                    },
                },
            }
        },
    },
    "Experiment": {
        "type": "object",
        "required": ["id", "name", "created_at", "run_count"],
        "properties": {
            "id": {"type": "integer"},
            "name": {"type": "string"},
            "created_at": _TIME,
            "run_count": {"type": "integer", "minimum": 0},
        },
    },
    "Summary": {
        "type": "object",
        "required": ["count", "last", "last_step", "last_time", "min", "max"],
        "properties": {
            "count": {"type": "integer"},
            "last": _NUMBER,
            "last_step": {"type": ["integer", "null"]},
            "last_time": {"type": ["number", "null"]},
            "min": _NUMBER,
            "max": _NUMBER,
        },
    },
    "Run": {
        "type": "object",
        "required": [
            "id",
            "experiment",
            "name",
            "status",
            "tags",
            "started_at",
            "ended_at",
            "heartbeat_at",
            "updated_at",
            "host",
            "pid",
            "command",
            "error",
        ],
        "properties": {
            "id": {"type": "string"},
            "experiment": {"type": "string"},
            "name": {"type": "string"},
            "status": {"type": "string", "enum": list(STATUSES)},
            "params": {"type": "object"},
            "tags": {"type": "array", "items": {"type": "string"}},
            "started_at": _TIME,
            "ended_at": {"type": ["number", "null"]},
            "heartbeat_at": _TIME,
            "updated_at": _TIME,
            "host": {"type": "string"},
            "pid": {"type": ["integer", "null"]},
            "command": {"type": "string"},
            "error": {"type": ["string", "null"]},
            "environment": {
                "type": ["object", "null"],
                "description": "code and environment captured at start: code, "
                "python, platform, packages, host (docs/environment.md)",
            },
            "metrics": {
                "type": "object",
                "additionalProperties": _ref("Summary"),
            },
            "values": {
                "type": "object",
                "description": "With columns=: the value of each requested field.",
            },
        },
    },
    "Note": {
        "type": "object",
        "required": ["id", "run_id", "step", "created_at", "updated_at", "text"],
        "properties": {
            "id": {"type": "integer"},
            "run_id": {"type": "string"},
            "step": {"type": ["integer", "null"]},
            "created_at": _TIME,
            "updated_at": _TIME,
            "text": {"type": "string"},
        },
    },
    "Artifact": {
        "type": "object",
        "required": [
            "id",
            "run_id",
            "kind",
            "name",
            "step",
            "size",
            "sha256",
            "media_type",
            "created_at",
            "meta",
        ],
        "properties": {
            "id": {"type": "integer"},
            "run_id": {"type": "string"},
            "kind": {"type": "string", "enum": list(ARTIFACT_KINDS)},
            "name": {"type": "string"},
            "step": {"type": ["integer", "null"]},
            "size": {"type": "integer", "minimum": 0},
            "sha256": _SHA256,
            "media_type": {"type": "string"},
            "created_at": _TIME,
            "meta": {"type": "object"},
        },
    },
    "ConsoleChunk": {
        "type": "object",
        "required": ["id", "stream", "time", "text"],
        "properties": {
            "id": {"type": "integer"},
            "stream": {"type": "string", "enum": ["stdout", "stderr"]},
            "time": _TIME,
            "text": {"type": "string"},
        },
    },
    "Blob": {
        "type": "object",
        "required": ["sha256", "size"],
        "properties": {"sha256": _SHA256, "size": {"type": "integer", "minimum": 0}},
    },
    "Series": {
        "type": "object",
        "required": ["run", "key", "x", "y", "downsampled", "count"],
        "properties": {
            "run": {"type": "string"},
            "key": {"type": "string"},
            "x": {"type": "array", "items": {"type": "number"}},
            "y": {"type": "array", "items": _NUMBER},
            "downsampled": {"type": "boolean"},
            "count": {"type": "integer", "minimum": 0},
        },
    },
    "Batch": {
        "type": "object",
        "required": ["run_id"],
        "additionalProperties": False,
        "description": "A batch as labnotebook._store.base.Batch.to_json() writes it.",
        "properties": {
            "run_id": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,32}$"},
            "id": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,36}$"},
            "create": {
                "type": ["object", "null"],
                "required": ["experiment", "name", "params", "tags", "started_at"],
                "properties": {
                    "experiment": _NAME,
                    "name": _NAME,
                    "params": {"type": "object"},
                    "tags": {"type": "array", "items": {"type": "string"}},
                    "started_at": _SENT_TIME,
                    "host": {"type": "string"},
                    "pid": {"type": ["integer", "null"]},
                    "command": {"type": "string"},
                    "environment": {
                        "type": ["object", "null"],
                        "description": "at most 2,000,000 bytes as JSON",
                    },
                },
            },
            "resume": {"type": "boolean"},
            "points": {
                "type": "object",
                "description": "key: columns packed by Batch.to_json() (base64 of "
                "little-endian int64 steps, float64 values and times), or "
                "[steps, values, times] as JSON lists",
                "additionalProperties": {
                    "oneOf": [
                        {
                            "type": "object",
                            "required": ["steps", "values", "times"],
                            "additionalProperties": False,
                            "properties": {
                                "steps": {
                                    "type": "string",
                                    "contentEncoding": "base64",
                                },
                                "values": {
                                    "type": "string",
                                    "contentEncoding": "base64",
                                },
                                "times": {
                                    "type": "string",
                                    "contentEncoding": "base64",
                                },
                            },
                        },
                        {
                            "type": "array",
                            "minItems": 3,
                            "maxItems": 3,
                            "prefixItems": [
                                {"type": "array", "items": _STEP},
                                {"type": "array", "items": _NUMBER},
                                {"type": "array", "items": {"type": "number"}},
                            ],
                        },
                    ]
                },
            },
            "fields": {"type": "array", "description": "[[step, time, {...}], ...]"},
            "notes": {
                "type": "array",
                "description": "[[time, step or null, text], ...]",
            },
            "artifacts": {
                "type": "array",
                "description": "Artifact rows; each blob (and each file of a "
                "folder's manifest) must be uploaded first with PUT "
                "/api/v1/blobs/{sha256}.",
                "items": _ARTIFACT_ROW,
            },
            "console": {
                "type": "array",
                "description": '[[time, "stdout" or "stderr", text], ...]',
            },
            "status": {"type": ["string", "null"], "enum": [*STATUSES, None]},
            "ended_at": {**_SENT_TIME, "type": ["number", "null"]},
            "error": {"type": ["string", "null"]},
            "heartbeat": {**_SENT_TIME, "type": ["number", "null"]},
        },
    },
}

_AUTH_ERRORS = {
    "401": _error("No token, or a wrong one (when the server has a token)."),
}
_WRITE_ERRORS = {
    **_AUTH_ERRORS,
    "403": _error("The read-only token cannot change anything."),
    "413": _error("The body is larger than max_body_bytes, or a value over a limit."),
    "415": _error("The body is not sent as application/json."),
    "422": _error("A field of the body is invalid, unknown or missing."),
}
_COMMON = {
    "400": _error("A query parameter is malformed or unknown."),
    "500": _error("The server failed; the cause is in its log."),
    "503": _error("The store is unavailable; retry after Retry-After seconds."),
}


def _op(
    summary: str,
    responses: J,
    *,
    params: list[J] | None = None,
    body: J | None = None,
    writes: bool = False,
    public: bool = False,
    tag: str,
) -> J:
    out: J = {"summary": summary, "tags": [tag], "responses": dict(responses)}
    if params:
        out["parameters"] = params
    if body is not None:
        out["requestBody"] = _body(body)
    errors = _WRITE_ERRORS if writes else ({} if public else _AUTH_ERRORS)
    out["responses"].update(errors)
    out["responses"].update(_COMMON)
    if public:
        out["security"] = []
    return out


def _download(summary: str, params: list[J], not_found: str) -> J:
    binary = {"schema": {"type": "string", "format": "binary"}}
    content = {"application/octet-stream": binary}
    content.update({media: binary for media in sorted(INLINE_TYPES)})
    headers = {
        "Content-Disposition": {
            "description": "attachment (inline for PNG, JPEG, GIF and WebP) with "
            "filename and filename* (RFC 5987).",
            "schema": {"type": "string"},
        },
        "X-Content-Type-Options": {"schema": {"const": "nosniff"}},
    }
    operation = _op(
        summary,
        {
            "200": {"description": "The bytes", "content": content, "headers": headers},
            "206": {
                "description": "The requested range of the bytes",
                "content": content,
                "headers": headers,
            },
            "304": {"description": "Not modified (If-None-Match matched the ETag)"},
            "412": _error("If-Match names another ETag than the sha256."),
            "404": _error(not_found),
            "416": _error(
                "The Range starts past the end; Content-Range is bytes */<size> "
                "and detail.size the size."
            ),
            "422": _error("The prefix matches several runs."),
        },
        params=[
            *params,
            {
                "name": "Range",
                "in": "header",
                "required": False,
                "description": (
                    "bytes=<first>-[<last>] or bytes=-<count>, to resume a "
                    "download; several ranges, another unit or a malformed value "
                    "are ignored (the whole file, 200)."
                ),
                "schema": {"type": "string", "maxLength": 200},
            },
        ],
        tag="artifacts",
    )
    return operation


def _paths() -> J:
    limits = _DEFAULTS
    run_fields = {"type": "string", "maxLength": MAX_FILTER_LENGTH}
    page_size = {
        "type": "integer",
        "minimum": 1,
        "maximum": limits.max_page_size,
        "default": 100,
    }
    not_found = {"404": _error("No such run.")}
    name_body = {
        "type": "object",
        "required": ["name"],
        "additionalProperties": False,
        "properties": {"name": _NAME},
    }
    return {
        "/api/v1/health": {
            "get": _op(
                "Liveness (no token needed)",
                {
                    "200": _ok(
                        {
                            "type": "object",
                            "required": ["status"],
                            "properties": {"status": {"const": "ok"}},
                        }
                    ),
                },
                public=True,
                tag="meta",
            ),
        },
        "/api/v1/version": {
            "get": _op(
                "Server version and store schema revision",
                {
                    "200": _ok(
                        {
                            "type": "object",
                            "required": ["version", "schema"],
                            "properties": {
                                "version": {"type": "string"},
                                "schema": {"type": ["string", "null"]},
                            },
                        }
                    ),
                },
                tag="meta",
            ),
        },
        "/api/v1/openapi.json": {
            "get": _op("This document", {"200": _ok({"type": "object"})}, tag="meta"),
        },
        "/api/v1/experiments": {
            "get": _op(
                "All experiments with their run counts",
                {
                    "200": _ok(
                        {
                            "type": "object",
                            "required": ["experiments"],
                            "properties": {
                                "experiments": {
                                    "type": "array",
                                    "items": _ref("Experiment"),
                                }
                            },
                        }
                    ),
                },
                tag="experiments",
            ),
            "post": _op(
                "Create an experiment (an existing one is returned)",
                {
                    "201": _ok(_ref("Experiment"), "Created"),
                },
                body=name_body,
                writes=True,
                tag="experiments",
            ),
        },
        "/api/v1/experiments/{experiment_id}": {
            "patch": _op(
                "Rename an experiment",
                {
                    "200": _ok(_ref("Experiment")),
                    "404": _error("No such experiment."),
                    "409": _error("Another experiment has that name."),
                },
                params=[
                    {
                        "name": "experiment_id",
                        "in": "path",
                        "required": True,
                        "schema": _ID,
                    }
                ],
                body=name_body,
                writes=True,
                tag="experiments",
            ),
        },
        "/api/v1/runs": {
            "get": _op(
                "Runs matching a filter, sorted and paged",
                {
                    "200": _ok(
                        {
                            "type": "object",
                            "required": ["runs", "total", "limit", "offset"],
                            "properties": {
                                "runs": {"type": "array", "items": _ref("Run")},
                                "total": {"type": "integer"},
                                "limit": {"type": "integer"},
                                "offset": {"type": "integer"},
                            },
                        }
                    ),
                    "422": _error("limit or where over its limit."),
                },
                params=[
                    _query(
                        "where",
                        run_fields,
                        "A filter (docs/filter-language.md); "
                        f"at most {MAX_FILTER_LENGTH} characters.",
                    ),
                    _query(
                        "experiment",
                        {"type": "string", "maxLength": MAX_NAME_LENGTH},
                        "Only runs of this experiment.",
                    ),
                    _query(
                        "sort",
                        run_fields,
                        "A field to sort by, e.g. "
                        "metrics.loss.min; runs without a value come last.",
                    ),
                    _query(
                        "order",
                        {"type": "string", "enum": ["asc", "desc"], "default": "desc"},
                        "Sort direction.",
                    ),
                    _query(
                        "limit",
                        page_size,
                        f"Page size, at most {limits.max_page_size} (max_page_size).",
                    ),
                    _query(
                        "offset",
                        {
                            "type": "integer",
                            "minimum": 0,
                            "maximum": 10**12,
                            "default": 0,
                        },
                        "Runs to skip.",
                    ),
                    _query(
                        "columns",
                        {"type": "string"},
                        "Comma-separated fields; each "
                        "run then carries values and omits params and metrics.",
                    ),
                ],
                tag="runs",
            ),
        },
        "/api/v1/runs/{run_id}": {
            "get": _op(
                "One run",
                {
                    "200": _ok(_ref("Run")),
                    **not_found,
                    "422": _error("The prefix matches several runs."),
                },
                params=[_RUN_ID],
                tag="runs",
            ),
            "patch": _op(
                "Rename a run, replace its tags or set its status",
                {
                    "200": _ok(_ref("Run")),
                    **not_found,
                },
                params=[_RUN_ID],
                body={
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "name": _NAME,
                        "tags": {"type": "array", "items": {"type": "string"}},
                        "status": {
                            "type": "string",
                            "enum": [s for s in STATUSES if s != "crashed"],
                        },
                    },
                },
                writes=True,
                tag="runs",
            ),
            "delete": _op(
                "Delete a run and everything logged to it",
                {
                    "204": {"description": "Deleted"},
                    **not_found,
                    "422": _error("The prefix matches several runs."),
                },
                params=[_RUN_ID],
                writes=True,
                tag="runs",
            ),
        },
        "/api/v1/runs/{run_id}/metrics": {
            "get": _op(
                "Summaries of a run's metrics",
                {
                    "200": _ok(
                        {
                            "type": "object",
                            "required": ["metrics"],
                            "properties": {
                                "metrics": {
                                    "type": "array",
                                    "items": {
                                        "allOf": [
                                            _ref("Summary"),
                                            {
                                                "type": "object",
                                                "required": ["key"],
                                                "properties": {
                                                    "key": {"type": "string"}
                                                },
                                            },
                                        ]
                                    },
                                }
                            },
                        }
                    ),
                    **not_found,
                    "422": _error("The prefix matches several runs."),
                },
                params=[_RUN_ID],
                tag="runs",
            ),
        },
        "/api/v1/runs/{run_id}/params": {
            "get": _op(
                "A run's params",
                {
                    "200": _ok(
                        {
                            "type": "object",
                            "required": ["params"],
                            "properties": {"params": {"type": "object"}},
                        }
                    ),
                    **not_found,
                    "422": _error("The prefix matches several runs."),
                },
                params=[_RUN_ID],
                tag="runs",
            ),
        },
        "/api/v1/runs/{run_id}/fields": {
            "get": _op(
                "Per-step fields of a run in [start, stop)",
                {
                    "200": _ok(
                        {
                            "type": "object",
                            "required": ["fields"],
                            "properties": {
                                "fields": {
                                    "type": "array",
                                    "items": {
                                        "type": "object",
                                        "required": ["step", "time", "fields"],
                                        "properties": {
                                            "step": {"type": "integer"},
                                            "time": _TIME,
                                            "fields": {"type": "object"},
                                        },
                                    },
                                }
                            },
                        }
                    ),
                    **not_found,
                    "422": _error("The prefix matches several runs."),
                },
                params=[
                    _RUN_ID,
                    _query("start", _STEP, "First step (inclusive)."),
                    _query("stop", _STEP, "Last step (exclusive)."),
                ],
                tag="runs",
            ),
        },
        "/api/v1/runs/{run_id}/points": {
            "get": _op(
                "Raw points of one metric after a step (live charts)",
                {
                    "200": _ok(
                        {
                            "type": "object",
                            "required": ["key", "x", "y", "t", "next"],
                            "properties": {
                                "key": {"type": "string"},
                                "x": {"type": "array", "items": {"type": "integer"}},
                                "y": {"type": "array", "items": _NUMBER},
                                "t": {"type": "array", "items": {"type": "number"}},
                                "next": {"type": ["integer", "null"]},
                            },
                        }
                    ),
                    **not_found,
                    "422": _error(
                        "limit over max_points_page, or an ambiguous prefix."
                    ),
                },
                params=[
                    _RUN_ID,
                    _query(
                        "key",
                        {"type": "string", "minLength": 1, "maxLength": MAX_KEY_LENGTH},
                        "The metric key.",
                        required=True,
                    ),
                    _query("after", _STEP, "Only points after this step."),
                    _query(
                        "limit",
                        {
                            "type": "integer",
                            "minimum": 1,
                            "maximum": limits.max_points_page,
                            "default": 10000,
                        },
                        "Most points to return.",
                    ),
                ],
                tag="series",
            ),
        },
        "/api/v1/runs/{run_id}/notes": {
            "get": _op(
                "A run's notes, oldest first",
                {
                    "200": _ok(
                        {
                            "type": "object",
                            "required": ["notes"],
                            "properties": {
                                "notes": {"type": "array", "items": _ref("Note")}
                            },
                        }
                    ),
                    **not_found,
                    "422": _error("The prefix matches several runs."),
                },
                params=[_RUN_ID],
                tag="notes",
            ),
            "post": _op(
                "Add a note",
                {
                    "201": _ok(_ref("Note"), "Created"),
                    **not_found,
                },
                params=[_RUN_ID],
                body={
                    "type": "object",
                    "required": ["text"],
                    "additionalProperties": False,
                    "properties": {
                        "text": {
                            "type": "string",
                            "minLength": 1,
                            "maxLength": MAX_NOTE_LENGTH,
                        },
                        "step": {"oneOf": [_STEP, {"type": "null"}]},
                    },
                },
                writes=True,
                tag="notes",
            ),
        },
        "/api/v1/notes/{note_id}": {
            "patch": _op(
                "Replace the text of a note",
                {
                    "200": _ok(_ref("Note")),
                    "404": _error("No such note."),
                },
                params=[
                    {"name": "note_id", "in": "path", "required": True, "schema": _ID}
                ],
                body={
                    "type": "object",
                    "required": ["text"],
                    "additionalProperties": False,
                    "properties": {
                        "text": {
                            "type": "string",
                            "minLength": 1,
                            "maxLength": MAX_NOTE_LENGTH,
                        }
                    },
                },
                writes=True,
                tag="notes",
            ),
        },
        "/api/v1/blobs/missing": {
            "post": _op(
                "Which of the given blobs the server does not hold",
                {
                    "200": _ok(
                        {
                            "type": "object",
                            "required": ["missing"],
                            "properties": {
                                "missing": {"type": "array", "items": _SHA256}
                            },
                        }
                    ),
                    "413": _error("The body is larger than max_body_bytes."),
                    "415": _error("The body is not sent as application/json."),
                    "422": _error(
                        f"More than {MAX_CHECKED} hashes, or one is not a sha256."
                    ),
                },
                body={
                    "type": "object",
                    "required": ["sha256"],
                    "additionalProperties": False,
                    "properties": {
                        "sha256": {
                            "type": "array",
                            "maxItems": MAX_CHECKED,
                            "items": _SHA256,
                        }
                    },
                },
                tag="artifacts",
            ),
        },
        "/api/v1/blobs/{sha256}": {
            "head": _op(
                "Whether the server holds these bytes (no body either way)",
                {
                    "200": {
                        "description": "Stored",
                        "headers": {
                            "X-Blob-Size": {
                                "description": "The blob's size in bytes.",
                                "schema": {"type": "integer", "minimum": 0},
                            }
                        },
                    },
                    "404": {"description": "Not stored, or not a sha256"},
                },
                params=[_BLOB_SHA256],
                tag="artifacts",
            ),
            "put": {
                **_op(
                    "Upload bytes by their SHA-256 (streamed, checked while written)",
                    {
                        "200": _ok(_ref("Blob"), "Already stored"),
                        "201": _ok(_ref("Blob"), "Stored"),
                        "400": _error("The chunked body is malformed or cut short."),
                        "413": _error(
                            "The bytes are larger than max_artifact_size "
                            f"({limits.max_artifact_size} bytes by default)."
                        ),
                        "422": _error(
                            "The path is not a sha256, or the bytes have another hash."
                        ),
                        "507": _error("The server's artifact store is full."),
                    },
                    params=[_BLOB_SHA256],
                    writes=True,
                    tag="artifacts",
                ),
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/octet-stream": {
                            "schema": {"type": "string", "format": "binary"}
                        }
                    },
                },
            },
        },
        "/api/v1/runs/{run_id}/artifacts": {
            "get": _op(
                "A run's artifacts, oldest first",
                {
                    "200": _ok(
                        {
                            "type": "object",
                            "required": ["artifacts"],
                            "properties": {
                                "artifacts": {
                                    "type": "array",
                                    "items": _ref("Artifact"),
                                }
                            },
                        }
                    ),
                    **not_found,
                    "422": _error("The prefix matches several runs, or name is long."),
                },
                params=[
                    _RUN_ID,
                    _query(
                        "kind",
                        {"type": "string", "enum": list(ARTIFACT_KINDS)},
                        "Only artifacts of this kind.",
                    ),
                    _query(
                        "name",
                        {"type": "string", "maxLength": MAX_ARTIFACT_NAME_LENGTH},
                        "Only artifacts with this name.",
                    ),
                ],
                tag="artifacts",
            ),
        },
        "/api/v1/runs/{run_id}/artifacts/{artifact_id}": {
            "delete": _op(
                "Delete an artifact; bytes no other artifact uses are removed",
                {
                    "204": {"description": "Deleted"},
                    "404": _error("No such run, or no such artifact in it."),
                    "422": _error("The prefix matches several runs."),
                },
                params=[_RUN_ID, _ARTIFACT_ID],
                writes=True,
                tag="artifacts",
            ),
        },
        "/api/v1/runs/{run_id}/artifacts/{artifact_id}/content": {
            "get": _download(
                "The bytes of an artifact (a folder's JSON manifest), with Range",
                [_RUN_ID, _ARTIFACT_ID],
                "No such run or artifact, or its bytes are missing.",
            ),
        },
        "/api/v1/runs/{run_id}/artifacts/{artifact_id}/archive": {
            "get": _op(
                "A folder artifact as one uncompressed tar file (members "
                "<name>/<path>, with their permission bits), streamed",
                {
                    "200": {
                        "description": "The tar file; Content-Length is exact",
                        "content": {
                            "application/x-tar": {
                                "schema": {"type": "string", "format": "binary"}
                            }
                        },
                        "headers": {
                            "Content-Disposition": {
                                "description": "attachment; filename=<name>.tar",
                                "schema": {"type": "string"},
                            },
                            "X-Content-Type-Options": {"schema": {"const": "nosniff"}},
                        },
                    },
                    "404": _error(
                        "No such run or artifact, or the folder's bytes are missing."
                    ),
                    "422": _error(
                        "The artifact is not a folder, or the prefix matches "
                        "several runs."
                    ),
                },
                params=[_RUN_ID, _ARTIFACT_ID],
                tag="artifacts",
            ),
        },
        "/api/v1/runs/{run_id}/blobs/{sha256}": {
            "get": _download(
                "One of a run's blobs (an artifact or a file of a folder), with "
                "Range; notes show images with it",
                [_RUN_ID, _BLOB_SHA256],
                "The run has no artifact with this sha256.",
            ),
        },
        "/api/v1/runs/{run_id}/console": {
            "get": _op(
                "A run's console output after a cursor, oldest first",
                {
                    "200": _ok(
                        {
                            "type": "object",
                            "required": ["chunks", "next"],
                            "properties": {
                                "chunks": {
                                    "type": "array",
                                    "items": _ref("ConsoleChunk"),
                                },
                                "next": {
                                    "type": ["integer", "null"],
                                    "description": "Pass as after for the next "
                                    "page; unchanged while nothing new was written.",
                                },
                            },
                        }
                    ),
                    **not_found,
                    "422": _error("limit or q over its limit, or an ambiguous prefix."),
                },
                params=[
                    _RUN_ID,
                    _query("after", _ID, "Only chunks after this chunk id."),
                    _query(
                        "limit",
                        {
                            "type": "integer",
                            "minimum": 1,
                            "maximum": MAX_CONSOLE_PAGE,
                            "default": 1000,
                        },
                        f"Most chunks to return (at most {MAX_CONSOLE_PAGE}).",
                    ),
                    _query(
                        "q",
                        {"type": "string", "maxLength": MAX_SEARCH_LENGTH},
                        "Only chunks containing this text (a plain substring, "
                        "ignoring the case of A-Z).",
                    ),
                ],
                tag="console",
            ),
        },
        "/api/v1/series": {
            "get": _op(
                "Series downsampled in the database",
                {
                    "200": _ok(
                        {
                            "type": "object",
                            "required": ["series"],
                            "properties": {
                                "series": {"type": "array", "items": _ref("Series")}
                            },
                        }
                    ),
                    "404": _error("No such run."),
                    "422": _error("buckets or the number of series over its limit."),
                },
                params=[
                    {
                        **_query(
                            "run",
                            {
                                "type": "array",
                                "minItems": 1,
                                "items": {
                                    "type": "string",
                                    "minLength": 1,
                                    "maxLength": 32,
                                },
                            },
                            "Run ids (repeat the parameter).",
                            required=True,
                        ),
                        "style": "form",
                        "explode": True,
                    },
                    {
                        **_query(
                            "key",
                            {
                                "type": "array",
                                "minItems": 1,
                                "items": {
                                    "type": "string",
                                    "minLength": 1,
                                    "maxLength": MAX_KEY_LENGTH,
                                },
                            },
                            "Metric keys (repeat the parameter).",
                            required=True,
                        ),
                        "style": "form",
                        "explode": True,
                    },
                    _query(
                        "buckets",
                        {
                            "type": "integer",
                            "minimum": 1,
                            "maximum": limits.max_buckets,
                            "default": 1000,
                        },
                        f"Most buckets per series (max_buckets: {limits.max_buckets}).",
                    ),
                    _query("start", _STEP, "First step (inclusive)."),
                    _query("stop", _STEP, "Last step (exclusive)."),
                    _query(
                        "x",
                        {"type": "string", "enum": ["step", "time"], "default": "step"},
                        "What x holds.",
                    ),
                ],
                tag="series",
            ),
        },
        "/api/v1/events": {
            "get": _op(
                "Live stream of runs that changed (server-sent events)",
                {
                    "200": {
                        "description": "A text/event-stream of `runs` events; "
                        "the `id:` line is the cursor to resume from "
                        "(Last-Event-ID). The stream ends by itself after a "
                        "bounded time; clients reconnect.",
                        "content": {
                            "text/event-stream": {"schema": {"type": "string"}}
                        },
                    },
                },
                params=[
                    _query(
                        "cursor",
                        {"type": "string", "maxLength": 1000},
                        "Opaque cursor of a previous event.",
                    ),
                    _query(
                        "experiment",
                        {"type": "string", "maxLength": MAX_NAME_LENGTH},
                        "Only runs of this experiment.",
                    ),
                ],
                tag="events",
            ),
        },
        "/api/v1/ingest": {
            "post": _op(
                "Apply one batch (all-or-nothing, idempotent by id)",
                {
                    "200": _ok(
                        {
                            "type": "object",
                            "required": ["applied"],
                            "properties": {"applied": {"const": True}},
                        }
                    ),
                    "404": _error("The batch is for a run that does not exist."),
                },
                body=_ref("Batch"),
                writes=True,
                tag="ingest",
            ),
        },
    }


def document() -> dict[str, Any]:
    """The OpenAPI document (a fresh copy each call)."""
    return copy.deepcopy(_DOCUMENT)


_DOCUMENT: J = {
    "openapi": "3.1.0",
    "info": {
        "title": "labnotebook tracking server",
        "version": __version__,
        "description": (
            "Runs, metrics and notes of a labnotebook store. Errors always have the "
            "shape of the Error schema. Non-finite floats are the strings NaN, "
            "Infinity and -Infinity. Limits: request body "
            f"{_DEFAULTS.max_body_bytes} bytes (max_body_bytes), "
            f"{_DEFAULTS.max_batch_points} points per batch (max_batch_points), "
            f"page size {_DEFAULTS.max_page_size}, {_DEFAULTS.max_buckets} buckets, "
            f"{_DEFAULTS.max_series} series per request, names {MAX_NAME_LENGTH} "
            f"and metric keys {MAX_KEY_LENGTH} characters, filters "
            f"{MAX_FILTER_LENGTH} characters (defaults; see docs/security.md)."
        ),
    },
    "servers": [{"url": "/"}],
    "security": [{"bearer": []}],
    "paths": _paths(),
    "components": {
        "schemas": _SCHEMAS,
        "securitySchemes": {
            "bearer": {
                "type": "http",
                "scheme": "bearer",
                "description": "The write token, or the read token for GET. Needed "
                "only when the server was started with a token.",
            }
        },
    },
}
