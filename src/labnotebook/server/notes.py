"""Notes on runs: list, add, edit."""

from __future__ import annotations

import time
from typing import Any

from flask import Blueprint

from .._store.base import Batch
from .._values import MAX_NOTE_LENGTH, check_step
from ._auth import read, write
from ._errors import ApiError
from ._http import MAX_ID, check_params, json_body, store
from ._serialize import note_json
from .runs import _run_id

bp = Blueprint("notes", __name__)


@bp.get("/runs/<run_id>/notes")
@read
def list_notes(run_id: str) -> dict[str, Any]:
    """A run's notes, oldest first."""
    check_params(())
    return {"notes": [note_json(n) for n in store().notes(_run_id(run_id))]}


@bp.post("/runs/<run_id>/notes")
@write
def add_note(run_id: str) -> tuple[dict[str, Any], int]:
    """Add a Markdown note to a run, optionally at a step."""
    check_params(())
    body = json_body(("text", "step"), required=("text",))
    text = _text(body["text"])
    step = body.get("step")
    if step is not None:
        step = check_step(step)
    full = _run_id(run_id)

    now = time.time()
    found = store()
    found.write(Batch(run_id=full, notes=[(now, step, text)]))
    created = [n for n in found.notes(full) if n.created_at == now and n.text == text]
    return note_json(max(created, key=lambda n: n.id)), 201


@bp.patch("/notes/<int:note_id>")
@write
def edit_note(note_id: int) -> dict[str, Any]:
    """Replace the text of a note."""
    check_params(())
    body = json_body(("text",), required=("text",))
    text = _text(body["text"])
    if note_id > MAX_ID:
        raise ApiError(404, "not_found", f"no note with id {note_id}")
    return note_json(store().edit_note(note_id, text))


def _text(value: object) -> str:
    if not isinstance(value, str):
        raise ApiError(
            422,
            "invalid_value",
            f"note text must be a string, got {type(value).__name__}",
            {"field": "text"},
        )
    if not value.strip():
        raise ApiError(
            422,
            "invalid_value",
            "note text is empty; write something",
            {"field": "text"},
        )
    if "\x00" in value:
        raise ApiError(
            422,
            "invalid_value",
            "note text contains a NUL character; remove it",
            {"field": "text"},
        )
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ApiError(
            422,
            "invalid_value",
            f"note text contains a lone surrogate ({value[exc.start]!r} at position "
            f"{exc.start}), which is not valid Unicode and cannot be stored; "
            "remove it or send the whole surrogate pair",
            {"field": "text"},
        ) from None
    if len(value) > MAX_NOTE_LENGTH:
        raise ApiError(
            413,
            "note_too_long",
            f"note text is {len(value)} characters long; the limit is "
            f"{MAX_NOTE_LENGTH}",
            {"field": "text", "limit": MAX_NOTE_LENGTH},
        )
    return value
