"""Validation and conversion of what users hand to labnotebook.

Metric values become floats without importing numpy or torch: anything with
``__float__`` (numpy scalars, 0-d tensors, Decimal) is accepted. Params and fields
become plain JSON, with numpy scalars and arrays, tuples, sets, paths, dates, enums,
dataclasses and mappings converted.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import json
import math
import operator
import pathlib
import re
from collections.abc import Iterable, Mapping
from typing import Any

from ._errors import ValidationError

#: Documented limits (docs/limits.md).
MAX_NAME_LENGTH = 200
MAX_KEY_LENGTH = 250
MAX_TAG_LENGTH = 100
MAX_TAGS = 100
MAX_JSON_DEPTH = 32
MAX_PARAMS_BYTES = 1_000_000
MAX_FIELDS_BYTES = 65_536
MAX_NOTE_LENGTH = 1_000_000
MAX_STEP = 2**63 - 1

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

JSON = Any


def check_name(value: object, what: str, limit: int = MAX_NAME_LENGTH) -> str:
    """Return ``value`` if it is a usable name, else raise :class:`ValidationError`."""
    if not isinstance(value, str):
        raise ValidationError(
            f"{what} must be a string, got {type(value).__name__} {_short(value)}"
        )
    if not value or not value.strip():
        raise ValidationError(f"{what} must not be empty; give a short readable name")
    if len(value) > limit:
        raise ValidationError(
            f"{what} is {len(value)} characters long; the limit is {limit}: "
            f"shorten {_short(value)}"
        )
    if value != value.strip():
        raise ValidationError(
            f"{what} {value!r} starts or ends with whitespace; strip it"
        )
    if _CONTROL.search(value):
        raise ValidationError(
            f"{what} {_short(value)} contains a control character (newline, tab, NUL "
            "...); use printable characters only"
        )
    _check_encodable(value, what)
    return value


def check_key(value: object) -> str:
    """Validate a metric key."""
    return check_name(value, "metric key", MAX_KEY_LENGTH)


def check_tags(tags: object) -> list[str]:
    """Validate a collection of tags; returns them de-duplicated, in order."""
    if tags is None:
        return []
    if isinstance(tags, str):
        tags = [tags]
    if not isinstance(tags, Iterable) or isinstance(tags, (bytes, Mapping)):
        raise ValidationError(
            f"tags must be a list of strings, got {type(tags).__name__}"
        )
    out: list[str] = []
    for tag in tags:
        check_name(tag, "tag", MAX_TAG_LENGTH)
        if tag not in out:
            out.append(tag)
    if len(out) > MAX_TAGS:
        raise ValidationError(f"a run has at most {MAX_TAGS} tags, got {len(out)}")
    return out


def check_step(step: object) -> int:
    """Validate a step: a non-negative integer (numpy integers accepted)."""
    if isinstance(step, (bool, float)):
        raise ValidationError(
            f"step must be a non-negative integer, got {type(step).__name__} {step!r}"
        )
    try:
        value = operator.index(step)  # type: ignore[arg-type]
    except TypeError:
        raise ValidationError(
            f"step must be a non-negative integer, got {type(step).__name__} "
            f"{_short(step)}"
        ) from None
    if value < 0 or value > MAX_STEP:
        raise ValidationError(f"step must be between 0 and {MAX_STEP}, got {value}")
    return value


def to_float(key: str, value: object) -> float:
    """Convert one metric value to a float, or raise a :class:`ValidationError`."""
    if isinstance(value, (str, bytes)) or value is None:
        raise ValidationError(
            f"metric {key!r} must be a number, got {type(value).__name__} "
            f"{_short(value)}; log text with run.note() or put it in fields="
        )
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError) as exc:
        raise ValidationError(
            f"metric {key!r} must be a single number, got {type(value).__name__} "
            f"{_short(value)} ({exc}); reduce arrays to a scalar first, e.g. .mean()"
        ) from None
    except OverflowError:
        raise ValidationError(
            f"metric {key!r} value {_short(value)} is too large for a float"
        ) from None


def to_json(value: object, what: str, max_bytes: int = MAX_PARAMS_BYTES) -> JSON:
    """Convert ``value`` to plain JSON data, checked against size and depth limits."""
    converted = _convert(value, what, 0)
    size = len(dump_json(converted))
    if size > max_bytes:
        raise ValidationError(
            f"{what} is {size} bytes as JSON; the limit is {max_bytes}. Store large "
            "objects as files instead"
        )
    return converted


def dump_json(value: JSON) -> str:
    """Serialise plain JSON compactly (no NaN: converted values never hold one)."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def _convert(value: object, path: str, depth: int) -> JSON:
    if depth > MAX_JSON_DEPTH:
        raise ValidationError(
            f"{path} is nested more than {MAX_JSON_DEPTH} levels deep; flatten it"
        )
    if isinstance(value, str):
        return _check_text(value, path)
    if value is None or isinstance(value, (bool, int)):
        return value
    if isinstance(value, float):
        if math.isfinite(value):
            # Written as an exact integer: PostgreSQL's JSONB would turn the
            # exponent notation of such floats into a rounded integer.
            return int(value) if abs(value) >= 1e16 else value
        return (
            "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
        )
    if isinstance(value, Mapping):
        out: dict[str, JSON] = {}
        for key, item in value.items():
            if isinstance(key, bool) or not isinstance(key, (str, int)):
                raise ValidationError(
                    f"{path} has a key {key!r} of type {type(key).__name__}; "
                    "JSON keys must be strings"
                )
            name = _check_text(str(key), f"{path} key {key!r}")
            out[name] = _convert(item, f"{path}[{name!r}]", depth + 1)
        return out
    if isinstance(value, (list, tuple)):
        return [
            _convert(item, f"{path}[{i}]", depth + 1) for i, item in enumerate(value)
        ]
    if isinstance(value, (set, frozenset)):
        items = [_convert(item, f"{path} item", depth + 1) for item in value]
        return sorted(items, key=dump_json)
    if isinstance(value, enum.Enum):
        return _convert(value.value, path, depth)
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, pathlib.PurePath):
        return str(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _convert(dataclasses.asdict(value), path, depth)
    if hasattr(value, "model_dump"):  # pydantic models
        return _convert(value.model_dump(), path, depth)
    if type(value).__name__ == "Namespace" and hasattr(value, "__dict__"):
        return _convert(vars(value), path, depth)
    if hasattr(value, "tolist"):  # numpy scalars and arrays, tensors
        return _convert(value.tolist(), path, depth)
    if hasattr(value, "item"):
        return _convert(value.item(), path, depth)
    raise ValidationError(
        f"{path} is a {type(value).__name__} ({_short(value)}), which is not JSON; "
        "pass numbers, strings, booleans, None, lists or dicts (or convert it with "
        "str())"
    )


def _check_text(value: str, what: str) -> str:
    if "\x00" in value:
        raise ValidationError(
            f"{what} contains a NUL character (\\x00), which databases cannot store "
            "in text; remove it or encode the value (e.g. base64)"
        )
    _check_encodable(value, what)
    return value


def _check_encodable(value: str, what: str) -> None:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValidationError(
            f"{what} {_short(value)} contains a lone surrogate "
            f"({value[exc.start]!r} at position {exc.start}), which is not valid "
            "Unicode and cannot be stored; decode bytes with errors='replace' or "
            "remove it"
        ) from None


def check_text(value: object, what: str, limit: int) -> str:
    """Validate free text such as a note: a string without NUL, within ``limit``."""
    if not isinstance(value, str):
        raise ValidationError(f"{what} must be a string, got {type(value).__name__}")
    if not value.strip():
        raise ValidationError(f"{what} must not be empty")
    if len(value) > limit:
        raise ValidationError(
            f"{what} is {len(value)} characters long; the limit is {limit}"
        )
    return _check_text(value, what)


def _short(value: object, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
