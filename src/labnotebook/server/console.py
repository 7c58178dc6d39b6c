"""Console output of runs: pages of chunks after a cursor, optionally searched."""

from __future__ import annotations

from typing import Any

from flask import Blueprint

from .._store.base import ConsoleChunk
from ._auth import read
from ._http import MAX_ID, check_params, int_param, store, text_param
from .runs import _run_id

bp = Blueprint("console", __name__)

#: Largest ``limit`` of a page of console chunks.
MAX_CONSOLE_PAGE = 10_000
#: Longest ``q`` search text.
MAX_SEARCH_LENGTH = 1000


@bp.get("/runs/<run_id>/console")
@read
def run_console(run_id: str) -> dict[str, Any]:
    """Chunks of a run's console output after a cursor, oldest first.

    ``q`` keeps the chunks that contain the text (a plain substring, not a pattern).
    ``next`` is the cursor to pass as ``after`` for the following page; it stays
    the same while nothing new was written.
    """
    check_params(("after", "limit", "q"))
    after = int_param("after", None, minimum=0, maximum=MAX_ID)
    limit = int_param(
        "limit",
        1000,
        minimum=1,
        maximum=MAX_CONSOLE_PAGE,
        limit_name="MAX_CONSOLE_PAGE",
    )
    search = text_param("q", MAX_SEARCH_LENGTH, "MAX_SEARCH_LENGTH")
    assert limit is not None
    chunks = store().console(_run_id(run_id), after=after, limit=limit, search=search)
    return {
        "chunks": [chunk_json(c) for c in chunks],
        "next": chunks[-1].id if chunks else after,
    }


def chunk_json(chunk: ConsoleChunk) -> dict[str, Any]:
    return {
        "id": chunk.id,
        "stream": chunk.stream,
        "time": chunk.time,
        "text": chunk.text,
    }
