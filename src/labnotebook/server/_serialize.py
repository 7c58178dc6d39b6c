"""Records as JSON: runs, metric summaries, notes, experiments, field values."""

from __future__ import annotations

import time
from typing import Any

from .._query import Field
from .._store.base import Experiment, Note, RunRecord, Summary
from ._http import finite


def summary_json(summary: Summary) -> dict[str, Any]:
    return {
        "count": summary.count,
        "last": finite(summary.last),
        "last_step": summary.last_step,
        "last_time": summary.last_time,
        "min": finite(summary.min),
        "max": finite(summary.max),
    }


def run_json(record: RunRecord, fields: list[Field] | None = None) -> dict[str, Any]:
    """A run as the API shows it; with ``fields``, their values replace the bulk."""
    out: dict[str, Any] = {
        "id": record.id,
        "experiment": record.experiment,
        "name": record.name,
        "status": record.status,
        "tags": list(record.tags),
        "started_at": record.started_at,
        "ended_at": record.ended_at,
        "heartbeat_at": record.heartbeat_at,
        "updated_at": record.updated_at,
        "host": record.host,
        "pid": record.pid,
        "command": record.command,
        "error": record.error,
    }
    if fields is not None:
        out["values"] = {f.text: field_value(record, f) for f in fields}
        return out
    out["params"] = record.params
    out["environment"] = record.environment
    out["metrics"] = {
        key: summary_json(summary) for key, summary in sorted(record.metrics.items())
    }
    return out


def field_value(record: RunRecord, field: Field) -> Any:
    """The value of a parsed field for one run (``None`` when the run has none)."""
    if field.kind == "tags":
        return list(record.tags)
    if field.kind == "column":
        name = str(field.path[0])
        if name == "duration":
            end = record.ended_at if record.ended_at is not None else time.time()
            return end - record.started_at
        value = getattr(record, name, None)
        return finite(value) if isinstance(value, float) else value
    if field.kind == "metric":
        summary = record.metrics.get(str(field.path[0]))
        if summary is None:
            return None
        value = getattr(summary, field.summary or "last")
        return finite(value) if isinstance(value, float) else value

    found: Any = record.params
    for segment in field.path:
        if isinstance(segment, int) and isinstance(found, list):
            if not -len(found) <= segment < len(found):
                return None
            found = found[segment]
        elif isinstance(found, dict) and str(segment) in found:
            found = found[str(segment)]
        else:
            return None
    return found


def note_json(note: Note) -> dict[str, Any]:
    return {
        "id": note.id,
        "run_id": note.run_id,
        "step": note.step,
        "created_at": note.created_at,
        "updated_at": note.updated_at,
        "text": note.text,
    }


def experiment_json(experiment: Experiment) -> dict[str, Any]:
    return {
        "id": experiment.id,
        "name": experiment.name,
        "created_at": experiment.created_at,
        "run_count": experiment.run_count,
    }
