"""The OpenAPI description (built in a later step)."""

from __future__ import annotations

from typing import Any


def document() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {"title": "labnotebook", "version": "0.1.0"},
        "paths": {},
    }
