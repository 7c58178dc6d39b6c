"""Runs: the filtered, sorted, paged list; one run; its metrics, params and fields."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, request

from .._errors import FilterError
from .._query import MAX_FILTER_LENGTH, Field, parse_field
from .._schema import STATUSES
from .._store.base import RunRecord
from .._values import MAX_NAME_LENGTH, check_name, check_tags
from ._auth import read, write
from ._errors import ApiError
from ._http import (
    check_params,
    choice_param,
    config,
    empty,
    int_param,
    json_body,
    step_range,
    store,
    text_param,
)
from ._serialize import run_json, summary_json

bp = Blueprint("runs", __name__)

#: Most fields in one ``columns`` parameter.
MAX_COLUMNS = 100
#: Largest ``offset`` of a page of runs.
MAX_OFFSET = 10**12
#: Statuses a client may set; ``crashed`` is derived from a stale heartbeat.
SETTABLE_STATUSES = tuple(s for s in STATUSES if s != "crashed")
#: Longest run id (or id prefix) in a URL.
MAX_RUN_ID_LENGTH = 32


@bp.get("/runs")
@read
def list_runs() -> dict[str, Any]:
    """A page of runs matching a filter, sorted by any field."""
    check_params(("where", "experiment", "sort", "order", "limit", "offset", "columns"))
    where = text_param("where", MAX_FILTER_LENGTH, "MAX_FILTER_LENGTH")
    experiment = request.args.get("experiment") or None
    if experiment is not None and len(experiment) > MAX_NAME_LENGTH:
        raise ApiError(
            422,
            "limit_exceeded",
            f"query parameter experiment is {len(experiment)} characters long; "
            f"experiment names have at most {MAX_NAME_LENGTH}",
            {"parameter": "experiment", "limit": MAX_NAME_LENGTH},
        )
    sort = request.args.get("sort") or None
    if sort is not None:
        field = _field("sort", sort)
        if field.kind == "tags":
            raise ApiError(
                400,
                "invalid_field",
                "runs cannot be sorted by tags; sort by a column, a param or a "
                "metric, e.g. sort=metrics.loss.min",
                {"parameter": "sort"},
            )
    descending = choice_param("order", ("asc", "desc"), "desc") == "desc"
    limit = int_param(
        "limit",
        100,
        minimum=1,
        maximum=config().max_page_size,
        limit_name="max_page_size",
    )
    offset = int_param("offset", 0, minimum=0, maximum=MAX_OFFSET)
    columns = _columns(request.args.get("columns"))
    assert limit is not None
    assert offset is not None

    records, total = store().runs_page(
        where=where,
        experiment=experiment,
        sort=sort,
        descending=descending,
        limit=limit,
        offset=offset,
    )
    return {
        "runs": [run_json(r, columns) for r in records],
        "total": total,
        "limit": limit,
        "offset": offset,
    }


@bp.get("/runs/<run_id>")
@read
def get_run(run_id: str) -> dict[str, Any]:
    """One run, by id or unique id prefix (at least 4 characters)."""
    check_params(())
    return run_json(_run(run_id))


@bp.patch("/runs/<run_id>")
@write
def update_run(run_id: str) -> dict[str, Any]:
    """Rename a run, replace its tags, or set its status."""
    check_params(())
    body = json_body(("name", "tags", "status"))
    name = check_name(body["name"], "run name") if "name" in body else None
    tags = None
    if "tags" in body:
        if not isinstance(body["tags"], list):
            raise ApiError(
                422,
                "invalid_value",
                f"tags must be a list of strings, got {body['tags']!r:.60}",
                {"field": "tags"},
            )
        tags = check_tags(body["tags"])
    status = body.get("status")
    if status is not None and status not in SETTABLE_STATUSES:
        raise ApiError(
            422,
            "invalid_value",
            f"status {status!r:.60} is not one of {', '.join(SETTABLE_STATUSES)}",
            {"field": "status", "choices": list(SETTABLE_STATUSES)},
        )
    full = _run_id(run_id)
    return run_json(store().update_run(full, name=name, tags=tags, status=status))


@bp.delete("/runs/<run_id>")
@write
def delete_run(run_id: str) -> Response:
    """Delete a run and everything logged to it."""
    check_params(())
    store().delete_run(_run_id(run_id))
    return empty(204)


@bp.get("/runs/<run_id>/metrics")
@read
def run_metrics(run_id: str) -> dict[str, Any]:
    """Summaries of every metric of a run, by key."""
    check_params(())
    record = _run(run_id)
    return {
        "metrics": [
            {"key": key, **summary_json(summary)}
            for key, summary in sorted(record.metrics.items())
        ]
    }


@bp.get("/runs/<run_id>/params")
@read
def run_params(run_id: str) -> dict[str, Any]:
    """A run's params."""
    check_params(())
    return {"params": _run(run_id).params}


@bp.get("/runs/<run_id>/fields")
@read
def run_fields(run_id: str) -> dict[str, Any]:
    """Per-step fields of a run, in a step range ``[start, stop)``."""
    check_params(("start", "stop"))
    start, stop = step_range()
    rows = store().step_fields(_run_id(run_id), start=start, stop=stop)
    return {"fields": [{"step": s, "time": t, "fields": f} for s, t, f in rows]}


def _run(run_id: str) -> RunRecord:
    return store().get_run(_run_id(run_id))


def _run_id(run_id: str) -> str:
    """The full id of the run named in a URL (404 if none, 422 if ambiguous)."""
    if len(run_id) > MAX_RUN_ID_LENGTH:
        raise ApiError(
            404,
            "not_found",
            f"no run with id {run_id[:40]!r}...; run ids have at most "
            f"{MAX_RUN_ID_LENGTH} characters",
        )
    return store().resolve_run_id(run_id)


def _field(parameter: str, text: str) -> Field:
    try:
        return parse_field(text)
    except FilterError as exc:
        detail: dict[str, Any] = {"parameter": parameter}
        if exc.column is not None:
            detail["column"] = exc.column
        raise ApiError(
            400, "invalid_field", f"query parameter {parameter}: {exc.message}", detail
        ) from None


def _columns(raw: str | None) -> list[Field] | None:
    if raw is None:
        return None
    names = [part.strip() for part in raw.split(",") if part.strip()]
    if len(names) > MAX_COLUMNS:
        raise ApiError(
            422,
            "limit_exceeded",
            f"columns names {len(names)} fields; the limit is {MAX_COLUMNS}",
            {"parameter": "columns", "limit": MAX_COLUMNS},
        )
    return [_field("columns", name) for name in names]
