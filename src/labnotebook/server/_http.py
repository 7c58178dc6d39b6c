"""Reading requests and writing JSON: query parameters, bodies, non-finite floats.

JSON has no NaN or infinity, so the server writes them as the strings ``"NaN"``,
``"Infinity"`` and ``"-Infinity"`` (the clients decode them back).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable
from typing import Any

from flask import Flask, Response, current_app, request
from flask.json.provider import DefaultJSONProvider

from .._store.sql import SqlStore
from .._values import MAX_JSON_DEPTH, MAX_STEP
from ._config import ServerConfig
from ._errors import ApiError

#: Largest integer id in a URL (database ids are signed 64-bit integers).
MAX_ID = 2**63 - 1


class State:
    """What the app holds between requests: its config and its store."""

    def __init__(self, config: ServerConfig, store: SqlStore):
        self.config = config
        self.store = store


def state() -> State:
    found: State = current_app.extensions["labnotebook"]
    return found


def store() -> SqlStore:
    return state().store


def config() -> ServerConfig:
    return state().config


# ------------------------------------------------------------------ JSON out


def finite(value: float | None) -> float | str | None:
    """A float as JSON can hold it: non-finite values become strings."""
    if value is None or math.isfinite(value):
        return value
    if math.isnan(value):
        return "NaN"
    return "Infinity" if value > 0 else "-Infinity"


def finite_list(values: Iterable[float | None]) -> list[float | str | None]:
    return [v if v is None or math.isfinite(v) else finite(v) for v in values]


def _sanitise(value: Any) -> Any:
    if isinstance(value, float):
        return finite(value)
    if isinstance(value, dict):
        return {k: _sanitise(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_sanitise(v) for v in value]
    return value


class JSONProvider(DefaultJSONProvider):
    """Flask's JSON provider, writing non-finite floats as strings."""

    sort_keys = False
    compact = True

    def dumps(self, obj: Any, **kwargs: Any) -> str:
        kwargs.setdefault("allow_nan", False)
        try:
            return super().dumps(obj, **kwargs)
        except ValueError:
            return super().dumps(_sanitise(obj), **kwargs)


def install_json(app: Flask) -> None:
    app.json_provider_class = JSONProvider
    app.json = JSONProvider(app)


# ------------------------------------------------------------------ query string


def refuse_nul() -> None:
    """``before_request`` hook: no NUL character in the path or the query string.

    No name, key or id can hold one, and PostgreSQL cannot compare text with one.
    """
    if "\x00" in request.path:
        raise ApiError(
            404, "not_found", "the path contains a NUL character; no route has one"
        )
    for name, value in request.args.items(multi=True):
        if "\x00" in name or "\x00" in value:
            raise ApiError(
                400,
                "invalid_parameter",
                f"query parameter {name[:40]!r} contains a NUL character; remove it",
                {"parameter": name},
            )


def check_params(allowed: Iterable[str]) -> None:
    """Refuse query parameters the route does not know (typos are not ignored)."""
    known = set(allowed)
    unknown = sorted(set(request.args) - known)
    if unknown:
        raise ApiError(
            400,
            "unknown_parameter",
            f"unknown query parameter(s) {', '.join(map(repr, unknown))} on "
            f"{request.path}; known: {', '.join(sorted(known)) or 'none'}",
            {"parameter": unknown[0], "allowed": sorted(known)},
        )
    for name in known:
        if len(request.args.getlist(name)) > 1 and name not in _REPEATABLE:
            raise ApiError(
                400,
                "invalid_parameter",
                f"query parameter {name!r} is given more than once; give it once",
                {"parameter": name},
            )


_REPEATABLE = frozenset({"run", "key"})
_INTEGER = re.compile(r"[+-]?[0-9]+")


def int_param(
    name: str,
    default: int | None,
    *,
    minimum: int | None = None,
    maximum: int | None = None,
    limit_name: str | None = None,
) -> int | None:
    """An integer query parameter: 400 if malformed, 422 beyond a documented limit."""
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    if not _INTEGER.fullmatch(raw):
        # int() would also take "1_0", spaces and non-ASCII digits.
        raise ApiError(
            400,
            "invalid_parameter",
            f"query parameter {name}={_short(raw)} is not an integer; give a whole "
            "number such as 100",
            {"parameter": name},
        )
    value = int(raw, 10)
    if minimum is not None and value < minimum:
        raise ApiError(
            400,
            "invalid_parameter",
            f"query parameter {name}={value} is below the minimum {minimum}",
            {"parameter": name, "minimum": minimum},
        )
    if maximum is not None and value > maximum:
        if limit_name is None:
            raise ApiError(
                400,
                "invalid_parameter",
                f"query parameter {name}={value} is above the maximum {maximum}",
                {"parameter": name, "maximum": maximum},
            )
        raise ApiError(
            422,
            "limit_exceeded",
            f"query parameter {name}={value} is above the limit of {maximum} "
            f"({limit_name}); ask for {maximum} or fewer and page through the rest",
            {"parameter": name, "limit": maximum},
        )
    return value


def choice_param(name: str, choices: tuple[str, ...], default: str) -> str:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    if raw not in choices:
        raise ApiError(
            400,
            "invalid_parameter",
            f"query parameter {name}={_short(raw)} is not one of {', '.join(choices)}",
            {"parameter": name, "choices": list(choices)},
        )
    return raw


def text_param(name: str, max_length: int, limit_name: str) -> str | None:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return None
    if len(raw) > max_length:
        raise ApiError(
            422,
            "limit_exceeded",
            f"query parameter {name} is {len(raw)} characters long; the limit "
            f"({limit_name}) is {max_length}",
            {"parameter": name, "limit": max_length},
        )
    return raw


# ------------------------------------------------------------------ JSON in


def json_body(allowed: Iterable[str], required: Iterable[str] = ()) -> dict[str, Any]:
    """The request's JSON object, with only the ``allowed`` fields."""
    data = parse_json()
    if not isinstance(data, dict):
        raise ApiError(
            422,
            "invalid_value",
            f"the request body must be a JSON object, got {_kind(data)}",
        )
    known = set(allowed)
    unknown = sorted(set(data) - known)
    if unknown:
        raise ApiError(
            422,
            "unknown_field",
            f"unknown field(s) {', '.join(map(repr, unknown))} in the request body; "
            f"known: {', '.join(sorted(known))}",
            {"field": unknown[0], "allowed": sorted(known)},
        )
    missing = [name for name in required if name not in data]
    if missing:
        raise ApiError(
            422,
            "missing_field",
            f"the request body needs the field(s) {', '.join(map(repr, missing))}",
            {"field": missing[0]},
        )
    return data


def parse_json() -> Any:
    """Parse the body as JSON: 415 if not JSON, 400 if malformed, 422 if too deep."""
    mimetype = request.mimetype
    if mimetype != "application/json" and not mimetype.endswith("+json"):
        raise ApiError(
            415,
            "unsupported_media_type",
            f"the request body must be JSON; send it with 'Content-Type: "
            f"application/json' (got {mimetype or 'no content type'!r})",
        )
    raw = request.get_data(cache=True)
    try:
        data = json.loads(raw, parse_constant=_refuse_constant)
    except RecursionError:
        raise _too_deep() from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(
            400, "invalid_json", f"the request body is not valid JSON: {exc}"
        ) from None
    if _depth(data) > MAX_JSON_DEPTH + 8:
        raise _too_deep()
    return data


def _too_deep() -> ApiError:
    limit = MAX_JSON_DEPTH + 8
    return ApiError(
        422,
        "limit_exceeded",
        f"the request body is nested more than {limit} levels deep; flatten it",
        {"limit": limit},
    )


def _refuse_constant(name: str) -> float:
    raise ValueError(
        f"bare {name} is not JSON; send non-finite numbers as the strings "
        '"NaN", "Infinity" or "-Infinity"'
    )


def _depth(value: Any) -> int:
    """Nesting depth of parsed JSON, without recursion."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > deepest:
            deepest = depth
        if isinstance(item, dict):
            stack.extend(
                (v, depth + 1) for v in item.values() if isinstance(v, dict | list)
            )
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item if isinstance(v, dict | list))
    return deepest


def _kind(value: Any) -> str:
    return {
        dict: "an object",
        list: "an array",
        str: "a string",
        bool: "a boolean",
        int: "a number",
        float: "a number",
        type(None): "null",
    }.get(type(value), type(value).__name__)


def _short(value: str, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def step_range() -> tuple[int | None, int | None]:
    """The ``start`` and ``stop`` query parameters: steps ``[start, stop)``."""
    start = int_param("start", None, minimum=0, maximum=MAX_STEP)
    stop = int_param("stop", None, minimum=0, maximum=MAX_STEP)
    if start is not None and stop is not None and stop <= start:
        raise ApiError(
            400,
            "invalid_parameter",
            f"stop={stop} must be greater than start={start}: the range is "
            "[start, stop)",
            {"parameter": "stop"},
        )
    return start, stop


def empty(status: int) -> Response:
    """A response without a body, and so without a Content-Type."""
    response = Response(status=status)
    del response.headers["Content-Type"]
    return response
