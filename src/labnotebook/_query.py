"""The run filter language: parsing filter text and compiling it to SQL.

One small language selects runs everywhere: ``lab.runs(where=...)``, ``labnotebook ls
--where ...`` and the dashboard's filter bar (docs/filter-language.md is the user
reference). Text is parsed by an LALR grammar, checked (known fields, values of the
right type, limits) and compiled to a SQLAlchemy Core expression over ``runs``.

Every value, JSON path and metric key that comes from the user is a bound parameter;
no user text is ever formatted into SQL. A filter selects the same runs on SQLite and
on PostgreSQL:

* a param is compared only with a value of the same JSON type (a number with numbers,
  a string with strings, a boolean with booleans), so no cast can fail;
* a missing value, or a NaN metric summary, matches no comparison, not even ``!=``;
  ``not`` is the plain complement, so ``not params.lr > 0.1`` matches runs without lr;
* text compares byte-wise (the "C" collation on PostgreSQL, as SQLite does).
"""

from __future__ import annotations

import datetime as dt
import decimal
import difflib
import functools
import json
import math
import operator
import re
import string
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import lark
import sqlalchemy as sa
from lark.exceptions import UnexpectedCharacters, UnexpectedInput, UnexpectedToken
from sqlalchemy.dialects import postgresql

from ._errors import FilterError, ValidationError
from ._schema import STATUSES, effective_status, experiments, runs, series

__all__ = [
    "COLUMN_FIELDS",
    "MAX_FILTER_LENGTH",
    "MAX_FILTER_TERMS",
    "SUMMARIES",
    "Field",
    "compile_filter",
    "compile_sort",
    "compile_sort_key",
    "parse_field",
]

#: Longest filter text accepted, in characters (docs/filter-language.md, "Limits").
MAX_FILTER_LENGTH = 4096
#: Most terms in one filter: each comparison is a term, each value of a list is one.
MAX_FILTER_TERMS = 100
# Deepest nesting of parentheses and `not`; keeps compilation far from recursion limits.
_MAX_DEPTH = 64

FieldKind = Literal["column", "param", "metric", "tags"]
ValueType = Literal["text", "time", "number", "json", "tags"]

#: Run attributes that filters and sorts can name, with the type of their values.
COLUMN_FIELDS: dict[str, ValueType] = {
    "id": "text",
    "name": "text",
    "status": "text",
    "experiment": "text",
    "host": "text",
    "command": "text",
    "error": "text",
    "started_at": "time",
    "ended_at": "time",
    "updated_at": "time",
    "heartbeat_at": "time",
    "duration": "number",
}

#: Summaries of a metric series; ``last`` is used when none is named.
SUMMARIES = ("last", "min", "max", "count", "last_step", "last_time")

_FIELD_HELP = (
    ", ".join(COLUMN_FIELDS)
    + ", tags, params.<key>, metrics.<key>[."
    + "|.".join(SUMMARIES)
    + "]"
)

_GRAMMAR = r"""
filter: or_test
field_only: field

?or_test: and_test (_OR and_test)*
?and_test: not_test (_AND not_test)*
?not_test: NOT not_test                -> negation
         | atom
?atom: predicate
     | "(" or_test ")"

predicate: field COMPARE value         -> compare
         | value COMPARE field         -> compare_reversed
         | field IN list               -> in_list
         | field NOT IN list           -> not_in_list
         | value IN field              -> contains
         | value NOT IN field          -> not_contains
         | field HAS value             -> has
         | field IS NULL               -> is_null
         | field IS NOT NULL           -> is_not_null
         | field LIKE value            -> like
         | field NOT LIKE value        -> not_like
         | field ILIKE value           -> ilike
         | field NOT ILIKE value       -> not_ilike

list: LSQB [value ("," value)* [","]] "]"
    | LPAR [value ("," value)* [","]] ")"

?value: NUMBER | STRING | TRUE | FALSE | NULL

field: NAME ("." _segment)*
_segment: NAME | INDEX | STRING | BACKTICK

_OR.2: /or(?![A-Za-z0-9_\/-])/i
_AND.2: /and(?![A-Za-z0-9_\/-])/i
NOT.2: /not(?![A-Za-z0-9_\/-])/i
IN.2: /in(?![A-Za-z0-9_\/-])/i
IS.2: /is(?![A-Za-z0-9_\/-])/i
HAS.2: /has(?![A-Za-z0-9_\/-])/i
LIKE.2: /like(?![A-Za-z0-9_\/-])/i
ILIKE.2: /ilike(?![A-Za-z0-9_\/-])/i
NULL.2: /null(?![A-Za-z0-9_\/-])/i
TRUE.2: /true(?![A-Za-z0-9_\/-])/i
FALSE.2: /false(?![A-Za-z0-9_\/-])/i
COMPARE: /==|!=|<>|<=|>=|<|>|=/
LSQB: "["
LPAR: "("
NAME: /[A-Za-z_][A-Za-z0-9_\/-]*/
INDEX: /[0-9]+/
NUMBER: /[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?/
STRING: /"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'/s
BACKTICK: /`[^`]*`/

%ignore /\s+/
"""


@functools.cache
def _parser() -> lark.Lark:
    """The LALR parser, built on first use (building it takes a fifth of a second)."""
    return lark.Lark(
        _GRAMMAR,
        parser="lalr",
        lexer="contextual",
        start=["filter", "field_only"],
        propagate_positions=True,
        maybe_placeholders=False,
    )


_VALUE_TOKENS = frozenset({"NUMBER", "STRING", "TRUE", "FALSE", "NULL"})
_SEGMENT_TOKENS = frozenset({"NAME", "INDEX", "STRING", "BACKTICK"})
_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_/-]*")
_KEYWORDS = frozenset(
    {"and", "or", "not", "in", "is", "has", "like", "ilike", "null", "true", "false"}
)
_ESCAPES = {
    '"': '"',
    "'": "'",
    "\\": "\\",
    "/": "/",
    "b": "\b",
    "f": "\f",
    "n": "\n",
    "r": "\r",
    "t": "\t",
}
_FLIPPED = {"<": ">", "<=": ">=", ">": "<", ">=": "<="}
_INT64 = 2**63
_ASCII_LOWER = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)


@dataclass(frozen=True)
class Field:
    """A field of a run, as named in a filter or a sort.

    ``kind`` is ``"column"`` (a run attribute such as ``name`` or ``duration``),
    ``"param"``, ``"metric"`` or ``"tags"``. ``path`` is ``(column name,)`` for a
    column, the JSON path for a param (``("optim", "lr")``, ``("layers", 0)``),
    ``(metric key,)`` for a metric and ``()`` for tags. ``summary`` is the metric
    summary (one of :data:`SUMMARIES`), else ``None``. ``value_type`` is ``"text"``,
    ``"time"``, ``"number"``, ``"json"`` (params) or ``"tags"``. ``text`` is the
    canonical spelling, which parses back to the same field.
    """

    kind: FieldKind
    path: tuple[str | int, ...]
    summary: str | None
    value_type: ValueType
    text: str


@dataclass(frozen=True)
class _Value:
    """A literal of the filter text, with its token for error positions."""

    value: str | int | float | bool | None
    token: lark.Token
    # Exact decimal of a number literal, compared with params on PostgreSQL.
    decimal: decimal.Decimal | None = None

    @property
    def kind(self) -> str:
        if self.value is None:
            return "null"
        if isinstance(self.value, bool):
            return "boolean"
        if isinstance(self.value, str):
            return "string"
        return "number"


def compile_filter(
    text: str, dialect: str, *, now: float, crash_timeout: float
) -> sa.ColumnElement[bool]:
    """Compile a filter to a boolean expression over ``runs``.

    Use it as ``select(runs).where(compile_filter(...))``; it may hold correlated
    subqueries on ``series`` and ``experiments``. Empty text selects every run.

    :param text: the filter, e.g. ``'status = "finished" and params.lr < 0.01'``.
    :param dialect: ``"sqlite"`` or ``"postgresql"``.
    :param now: the current time (epoch seconds), for ``status`` and ``duration``.
    :param crash_timeout: seconds without heartbeat after which a running run is
        shown as crashed.
    :raises FilterError: the text does not parse, names an unknown field, compares
        a field with a value of the wrong type, or exceeds a limit.
    """
    _check_dialect(dialect)
    _check_length(text, "filter")
    if not text.strip():
        return sa.true()

    tree = _parse(text, "filter")
    compiler = _Compiler(text, dialect, now, crash_timeout)
    expression: sa.ColumnElement[bool] = compiler.boolean(tree.children[0], 0)
    return expression


def compile_sort_key(
    field: str, dialect: str, *, now: float, crash_timeout: float
) -> sa.ColumnElement[Any]:
    """Compile a field to an expression to sort runs by.

    Numbers sort numerically and text byte-wise on both databases. A param sorts
    numbers first, then strings, then booleans; a missing param, a JSON null, a list
    or an object, and a NaN metric summary sort as NULL. Databases place NULL
    differently, so order with ``.asc().nulls_last()`` or ``.desc().nulls_last()``,
    or use :func:`compile_sort`.

    :param field: a field in filter syntax, e.g. ``"started_at"``, ``"params.lr"``,
        ``"metrics.val/acc.max"``.
    :param dialect: ``"sqlite"`` or ``"postgresql"``.
    :param now: the current time (epoch seconds), for ``status`` and ``duration``.
    :param crash_timeout: seconds without heartbeat after which a running run is
        shown as crashed.
    :raises FilterError: the field does not parse, is unknown, or is ``tags``.
    """
    _check_dialect(dialect)
    parsed = parse_field(field)
    compiler = _Compiler(field, dialect, now, crash_timeout)
    return compiler.sort_key(parsed)


def compile_sort(
    field: str,
    dialect: str,
    *,
    descending: bool = False,
    now: float,
    crash_timeout: float,
) -> sa.UnaryExpression[Any]:
    """Compile a field to an ORDER BY clause that puts runs without a value last.

    :param field: a field in filter syntax, as for :func:`compile_sort_key`.
    :param dialect: ``"sqlite"`` or ``"postgresql"``.
    :param descending: sort from the largest value to the smallest.
    :param now: the current time (epoch seconds).
    :param crash_timeout: seconds without heartbeat before a run counts as crashed.
    :raises FilterError: the field does not parse, is unknown, or is ``tags``.
    """
    key = compile_sort_key(field, dialect, now=now, crash_timeout=crash_timeout)
    ordered = key.desc() if descending else key.asc()
    return ordered.nulls_last()


def parse_field(field: str) -> Field:
    """Parse a field name such as ``"params.optim.lr"`` or ``"metrics.loss.min"``.

    :param field: the field, in the syntax used by filters.
    :raises FilterError: the text is not a field, or names an unknown one.
    """
    _check_length(field, "field")
    if not field.strip():
        raise FilterError(f"no field given; fields are {_FIELD_HELP}", field, None)
    tree = _parse(field, "field_only")
    node = tree.children[0]
    assert isinstance(node, lark.Tree)
    return _resolve_field(node, field)


# Parsing


def _check_dialect(dialect: str) -> None:
    if dialect not in ("sqlite", "postgresql"):
        raise ValidationError(
            f"dialect must be 'sqlite' or 'postgresql', got {dialect!r}"
        )


def _check_length(text: str, what: str) -> None:
    if not isinstance(text, str):
        raise FilterError(
            f"a {what} must be a string, got {type(text).__name__}", "", None
        )
    if len(text) > MAX_FILTER_LENGTH:
        raise FilterError(
            f"the {what} is {len(text)} characters long; the limit "
            f"(MAX_FILTER_LENGTH) is {MAX_FILTER_LENGTH}. Shorten it, for example "
            "by selecting an experiment first",
            "",
            None,
        )


def _parse(text: str, start: str) -> lark.Tree[lark.Token]:
    """Parse ``text`` from the rule ``start``, turning errors into FilterError."""
    interactive = _parser().parse_interactive(text, start=start)
    tokens: list[lark.Token] = []
    try:
        for token in interactive.iter_parse():
            tokens.append(token)
        last = tokens[-1] if tokens else None
        tree = interactive.feed_eof(last)  # type: ignore[no-untyped-call]
    except UnexpectedInput as exc:
        # LALR merges states, so the error's own list of expected tokens can be
        # too wide; asking the parser state what it accepts gives the exact set.
        expected = set(interactive.accepts())  # type: ignore[no-untyped-call]
        raise _syntax_error(text, exc, tokens, expected) from None
    assert isinstance(tree, lark.Tree)
    return tree


def _syntax_error(
    text: str, exc: UnexpectedInput, tokens: list[lark.Token], expected: set[str]
) -> FilterError:
    """A FilterError saying what was expected where the parse failed."""
    if isinstance(exc, UnexpectedToken) and tokens and tokens[-1] is exc.token:
        tokens = tokens[:-1]  # yielded by the lexer, refused by the parser

    # The lexer reads a keyword as a name where no keyword fits ("and and").
    for i, token in enumerate(tokens):
        after_dot = i > 0 and tokens[i - 1].type == "DOT"
        if token.type == "NAME" and not after_dot and token.lower() in _KEYWORDS:
            return FilterError(
                f"expected a field or a value{_describe_previous(text, tokens[:i])}, "
                f"found the keyword {str(token)!r}",
                text,
                (token.start_pos or 0) + 1,
            )

    hint = ""
    if isinstance(exc, UnexpectedToken):
        found = exc.token
        if found.type == "$END":
            column = len(text.rstrip()) + 1
            found_text = "but the filter ends there"
        else:
            column = (found.start_pos or 0) + 1
            found_text = f"found {_quote_snippet(str(found))}"
            if found.type == "RPAR" and "RPAR" not in expected:
                hint = "; this ')' has no matching '('"
            elif found.type == "NAME" and "LSQB" in expected:
                hint = (
                    '; to test a tag or a list param put the value first: "x" in tags'
                )
    elif isinstance(exc, UnexpectedCharacters):
        position = exc.pos_in_stream or 0
        column = position + 1
        char = text[position]
        if char in "\"'`":
            return FilterError(
                f"unterminated quoted text: add the closing {char}", text, column
            )
        found_text = f"found {_quote_snippet(text[position:])}"
        hint = _symbol_hint(text[position:]) or _key_hint(text, tokens, position)
    else:  # pragma: no cover - lark raises only the two kinds above for LALR
        return FilterError(f"cannot parse the filter: {exc}", text, None)

    after = _describe_previous(text, tokens)
    wanted = _describe_expected(expected, tokens)
    return FilterError(f"expected {wanted}{after}, {found_text}{hint}", text, column)


def _quote_snippet(text: str) -> str:
    word = re.match(r"\w+|\S", text)
    return repr(word.group(0) if word else text[:1])


def _symbol_hint(text: str) -> str:
    for symbol, word in (("&&", "and"), ("||", "or"), ("&", "and"), ("|", "or")):
        if text.startswith(symbol):
            return f"; write '{word}' instead of '{symbol}'"
    if text.startswith("!"):
        return "; write 'not' or '!=' instead of '!'"
    return ""


def _key_hint(text: str, tokens: list[lark.Token], position: int) -> str:
    """Suggest quoting a key that holds characters a bare key cannot."""
    after_dot = len(tokens) >= 2 and tokens[-2].type == "DOT"
    if not after_dot or tokens[-1].type not in ("NAME", "INDEX"):
        return ""
    if tokens[-1].end_pos != position or text[position] in "=!<>()[],":
        return ""
    rest = re.match(r"[^\s=!<>()\[\],]*", text[position:])
    key = str(tokens[-1]) + (rest.group(0) if rest else "")
    head = text[_field_start(tokens) : tokens[-1].start_pos]
    quoted = head + json.dumps(key, ensure_ascii=False)
    return f"; quote a key that holds other characters: {quoted}"


def _describe_previous(text: str, tokens: list[lark.Token]) -> str:
    if not tokens:
        return " at the start"
    last = tokens[-1]
    end = last.end_pos or 0
    start = last.start_pos or 0
    # A field spelled over several tokens (params.optim.lr) is shown whole.
    if last.type in _SEGMENT_TOKENS:
        start = _field_start(tokens)
    return f" after {text[start:end]!r}"


def _field_start(tokens: list[lark.Token]) -> int:
    """Where the field that ends with the last token starts in the text."""
    i = len(tokens) - 1
    while i >= 2 and tokens[i - 1].type == "DOT":
        i -= 2
    return tokens[i].start_pos or 0


def _describe_expected(expected: set[str], tokens: list[lark.Token]) -> str:
    if tokens and tokens[-1].type == "DOT":
        return "a key (a name, a list index or a quoted key)"
    if expected == {"NOT", "NULL"}:
        return "'null' or 'not null'"
    if expected == {"NULL"}:
        return "'null'"

    words: list[str] = []
    if "NAME" in expected:
        words.append("a field (such as name, params.lr or metrics.loss)")
    if expected & _VALUE_TOKENS:
        words.append("a value (a number, a quoted string, true, false or null)")
    if "COMPARE" in expected:
        words.append(
            "an operator (=, !=, <, <=, >, >=, in, not in, has, like, ilike, "
            "is null, is not null)"
        )
    elif "IN" in expected:
        words.extend(["'in'", "'like'", "'ilike'"])
    if expected & {"LSQB", "LPAR"} and "NAME" not in expected:
        words.append('a list such as [1, 2] or ("a", "b")')
    if "DOT" in expected and "COMPARE" not in expected:
        words.append("'.'")
    if "COMMA" in expected:
        words.append("','")
    if "RSQB" in expected:
        words.append("']'")
    if "RPAR" in expected:
        words.append("')'")
    if expected & {"_AND", "_OR"}:
        words.extend(["'and'", "'or'"])
    if "$END" in expected:
        words.append("the end")
    if not words:  # pragma: no cover - every parser state is described above
        words.append(", ".join(sorted(expected)))
    if len(words) == 1:
        return words[0]
    return ", ".join(words[:-1]) + " or " + words[-1]


# Fields


def _resolve_field(node: lark.Tree[lark.Token], text: str) -> Field:
    """Check the tokens of a field and describe it as a :class:`Field`."""
    head, *rest = node.children
    assert isinstance(head, lark.Token)
    name = str(head)
    tokens = [token for token in rest if isinstance(token, lark.Token)]
    segments = [_segment(token, text) for token in tokens]
    column = (head.start_pos or 0) + 1

    if name in COLUMN_FIELDS:
        if segments:
            raise FilterError(
                f"{name} has no parts; remove '.{_spell(segments[0][0])}'",
                text,
                column,
            )
        return Field("column", (name,), None, COLUMN_FIELDS[name], name)

    if name == "tags":
        if segments:
            raise FilterError(
                'tags has no parts; test a tag with tags has "x"', text, column
            )
        return Field("tags", (), None, "tags", "tags")

    if name == "params":
        if not segments:
            raise FilterError(
                "params needs a key, for example params.lr or params.optim.lr",
                text,
                column,
            )
        path = tuple(value for value, _ in segments)
        spelled = "params." + ".".join(_spell(value) for value in path)
        return Field("param", path, None, "json", spelled)

    if name == "metrics":
        return _metric_field(tokens, segments, text, column)

    raise FilterError(_unknown_field_message(name), text, column)


def _segment(token: lark.Token, text: str) -> tuple[str | int, bool]:
    """The value of a path segment, and whether it was quoted."""
    if token.type == "INDEX":
        return int(token), False
    if token.type == "BACKTICK":
        return _check_text(str(token)[1:-1], token, text), True
    if token.type == "STRING":
        return _unescape(token, text), True
    return str(token), False


def _metric_field(
    tokens: list[lark.Token],
    segments: list[tuple[str | int, bool]],
    text: str,
    column: int,
) -> Field:
    if not segments:
        raise FilterError(
            "metrics needs a key, for example metrics.loss or metrics.loss.min",
            text,
            column,
        )
    # Keys as written: "007" stays "007"; quoted keys as they read.
    parts = [
        str(value) if quoted else str(token)
        for token, (value, quoted) in zip(tokens, segments, strict=True)
    ]
    if len(segments) > 2:
        key = json.dumps(".".join(parts), ensure_ascii=False)
        raise FilterError(
            f"a metric field is metrics.<key> or metrics.<key>.<summary>; quote a "
            f"key that holds dots: metrics.{key}",
            text,
            column,
        )
    key = parts[0]
    summary = "last"
    if len(segments) == 2:
        value, quoted = segments[1]
        if quoted or value not in SUMMARIES:
            raise FilterError(
                f"unknown metric summary {str(value)!r}; summaries are "
                f"{', '.join(SUMMARIES)} (quote a key that holds dots: "
                f"metrics.{json.dumps('.'.join(parts), ensure_ascii=False)})",
                text,
                column,
            )
        summary = str(value)
    spelled = "metrics." + _spell(key)
    if summary != "last":
        spelled += "." + summary
    value_type: ValueType = "time" if summary == "last_time" else "number"
    return Field("metric", (key,), summary, value_type, spelled)


def _unknown_field_message(name: str) -> str:
    if name.lower() in _KEYWORDS:
        return (
            f"{name!r} is a keyword, not a field; a comparison starts with a field "
            f"such as name or params.lr. Fields are {_FIELD_HELP}"
        )
    singular = {"param": "params", "metric": "metrics", "tag": "tags"}
    if name in singular:
        return (
            f"unknown field {name!r}; write {singular[name]} (plural), for example "
            f"{singular[name]}{'' if name == 'tag' else '.lr'}"
        )
    candidates = [*COLUMN_FIELDS, "tags", "params", "metrics"]
    close = difflib.get_close_matches(name, candidates, n=1)
    if close:
        hint = f"did you mean {close[0]}?"
    else:
        hint = f"did you mean params.{name} or metrics.{name}?"
    return f"unknown field {name!r}; {hint} Fields are {_FIELD_HELP}"


def _spell(segment: str | int) -> str:
    """A path segment as written in a field: bare if it can be, else quoted."""
    if isinstance(segment, int):
        return str(segment)
    if _KEY.fullmatch(segment) and segment.lower() not in _KEYWORDS:
        return segment
    return json.dumps(segment, ensure_ascii=False)


# Literals


def _unescape(token: lark.Token, text: str) -> str:
    """The text of a quoted string token, with backslash escapes resolved."""
    body = str(token)[1:-1]
    out: list[str] = []
    i = 0
    while i < len(body):
        char = body[i]
        if char != "\\":
            out.append(char)
            i += 1
            continue
        code = body[i + 1]
        if code in _ESCAPES:
            out.append(_ESCAPES[code])
            i += 2
        elif code in "%_":
            # Kept as written, so that like patterns can escape their wildcards.
            out.append("\\" + code)
            i += 2
        elif code == "u" and re.fullmatch(r"[0-9A-Fa-f]{4}", body[i + 2 : i + 6]):
            out.append(chr(int(body[i + 2 : i + 6], 16)))
            i += 6
            # A surrogate pair (\ud83d\ude00) spells one character, as in JSON.
            if len(out) >= 2 and _is_pair(out[-2], out[-1]):
                pair = (out[-2] + out[-1]).encode("utf-16", "surrogatepass")
                out[-2:] = [pair.decode("utf-16")]
        else:
            column = (token.start_pos or 0) + 2 + i
            raise FilterError(
                f"unknown escape '\\{code}' in a string; write '\\\\' for a "
                "backslash (escapes: \\\" \\' \\\\ \\n \\t \\r \\uXXXX, and \\% \\_ "
                "in like patterns)",
                text,
                column,
            )
    return _check_text("".join(out), token, text)


def _is_pair(high: str, low: str) -> bool:
    return "\ud800" <= high <= "\udbff" and "\udc00" <= low <= "\udfff"


def _check_text(value: str, token: lark.Token, text: str) -> str:
    """Refuse characters that neither database can store in text."""
    if "\x00" in value:
        raise FilterError(
            "quoted text cannot hold the NUL character (\\u0000); remove it",
            text,
            (token.start_pos or 0) + 1,
        )
    if any("\ud800" <= char <= "\udfff" for char in value):
        raise FilterError(
            "quoted text holds a lone surrogate (\\ud800-\\udfff); write the "
            "character itself, or a full surrogate pair",
            text,
            (token.start_pos or 0) + 1,
        )
    return value


def _literal(token: lark.Token, text: str) -> _Value:
    kind = token.type
    if kind == "NULL":
        return _Value(None, token)
    if kind in ("TRUE", "FALSE"):
        return _Value(kind == "TRUE", token)
    if kind == "STRING":
        return _Value(_unescape(token, text), token)

    spelled = str(token)
    number = float(spelled)
    exact = decimal.Decimal(spelled)
    if not math.isfinite(number) or (number == 0 and exact != 0):
        raise FilterError(
            f"the number {spelled} is out of range; numbers must fit in a double "
            "(from about 5e-324 to 1.8e308 in size, or 0)",
            text,
            (token.start_pos or 0) + 1,
        )
    integral = re.fullmatch(r"[+-]?[0-9]+", spelled) is not None
    if integral and -_INT64 <= int(spelled) < _INT64:
        return _Value(int(spelled), token, exact)
    return _Value(number, token, exact)


def _epoch(value: _Value) -> float | None:
    """A time value: epoch seconds, or an ISO date or date-time (UTC if naive)."""
    if isinstance(value.value, (int, float)) and not isinstance(value.value, bool):
        return float(value.value)
    if not isinstance(value.value, str):
        return None
    spelled = value.value.strip()
    if spelled[-1:] in ("Z", "z"):
        spelled = spelled[:-1] + "+00:00"
    try:
        moment = dt.datetime.fromisoformat(spelled)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.timezone.utc)
    return moment.timestamp()


# Compiling

_Predicate = Callable[[sa.ColumnElement[Any]], sa.ColumnElement[bool]]


class _Compiler:
    """Compiles one parsed filter or sort field for one database."""

    def __init__(
        self, text: str, dialect: str, now: float, crash_timeout: float
    ) -> None:
        self.text = text
        self.postgres = dialect == "postgresql"
        self.now = now
        self.crash_timeout = crash_timeout
        self.terms = 0

    def error(self, message: str, token: lark.Token | None) -> FilterError:
        column = None if token is None else (token.start_pos or 0) + 1
        return FilterError(message, self.text, column)

    # Boolean structure

    def boolean(self, node: lark.Tree[lark.Token] | lark.Token, depth: int) -> Any:
        assert isinstance(node, lark.Tree)
        if depth > _MAX_DEPTH:
            raise self.error(
                f"the filter nests more than {_MAX_DEPTH} levels of parentheses or "
                "'not'; simplify it",
                _first_token(node),
            )
        rule = node.data
        if rule == "or_test":
            return sa.or_(*(self.boolean(child, depth + 1) for child in node.children))
        if rule == "and_test":
            return sa.and_(*(self.boolean(child, depth + 1) for child in node.children))
        if rule == "negation":
            return sa.not_(self.boolean(node.children[1], depth + 1))
        return self.predicate(node)

    def predicate(self, node: lark.Tree[lark.Token]) -> sa.ColumnElement[bool]:
        rule = str(node.data)
        children = node.children
        first = children[0]
        self.count_terms(1, _first_token(node))

        if rule == "compare":
            field_node, op_token, value = children
            return self.compare(field_node, op_token, value)
        if rule == "compare_reversed":
            value, op_token, field_node = children
            assert isinstance(op_token, lark.Token)
            flipped = op_token.update(value=_FLIPPED.get(str(op_token), str(op_token)))
            return self.compare(field_node, flipped, value)
        if rule in ("in_list", "not_in_list"):
            items = children[-1]
            assert isinstance(items, lark.Tree)
            return self.in_list(first, items, negated=rule == "not_in_list")
        if rule in ("contains", "not_contains"):
            return self.has(children[-1], first, negated=rule == "not_contains")
        if rule == "has":
            return self.has(first, children[2], negated=False)
        if rule in ("is_null", "is_not_null"):
            subject = self.subject(first)
            if rule == "is_null":
                return subject.is_null()
            return sa.not_(subject.is_null())
        if rule in ("like", "not_like", "ilike", "not_ilike"):
            negated = rule.startswith("not_")
            ilike = rule.endswith("ilike")
            return self.like(first, children[-1], ilike=ilike, negated=negated)
        raise AssertionError(rule)  # pragma: no cover - the grammar has no other

    def count_terms(self, count: int, token: lark.Token | None) -> None:
        self.terms += count
        if self.terms > MAX_FILTER_TERMS:
            raise self.error(
                f"the filter has more than {MAX_FILTER_TERMS} terms (the limit "
                "MAX_FILTER_TERMS; each comparison and each list value is a term); "
                "split it or select an experiment first",
                token,
            )

    # Predicates

    def compare(
        self, field_node: Any, op_token: Any, value_token: Any
    ) -> sa.ColumnElement[bool]:
        subject = self.subject(field_node)
        value = _literal(value_token, self.text)
        op = str(op_token)
        op = {"==": "=", "<>": "!="}.get(op, op)

        if value.value is None:
            if op == "=":
                return subject.is_null()
            if op == "!=":
                return sa.not_(subject.is_null())
            raise self.error(
                f"null cannot be compared with {op}; use {subject.field.text} is "
                f"null or {subject.field.text} is not null",
                value.token,
            )
        if value.kind == "boolean" and op not in ("=", "!="):
            raise self.error(
                f"{value.token} can only be compared with = or !=", op_token
            )

        kind, bound = self.bind(subject, value)
        ordered = op in ("<", "<=", ">", ">=")

        def predicate(expr: sa.ColumnElement[Any]) -> sa.ColumnElement[bool]:
            if ordered and kind == "string" and self.postgres:
                expr = sa.collate(expr, "C")
            return _apply(op, expr, bound)

        return subject.where(kind, predicate)

    def in_list(
        self, field_node: Any, items: lark.Tree[lark.Token], *, negated: bool
    ) -> sa.ColumnElement[bool]:
        subject = self.subject(field_node)
        values = [
            _literal(token, self.text)
            for token in items.children
            if isinstance(token, lark.Token) and token.type in _VALUE_TOKENS
        ]
        self.count_terms(max(len(values) - 1, 0), _first_token(items))

        groups: dict[str, list[Any]] = {}
        has_null = False
        for value in values:
            if value.value is None:
                has_null = True
                continue
            kind, bound = self.bind(subject, value)
            groups.setdefault(kind, []).append(bound)

        def member(bounds: list[Any]) -> _Predicate:
            if negated:
                return lambda expr: expr.not_in(bounds)
            return lambda expr: expr.in_(bounds)

        clauses = [
            subject.where(kind, member(bounds)) for kind, bounds in groups.items()
        ]
        if negated:
            # Present values of a listed type that are not listed; null is excluded
            # by being present.
            if not clauses:
                return sa.not_(subject.is_null())
            return sa.or_(*clauses)
        if has_null:
            clauses.append(subject.is_null())
        return sa.or_(*clauses) if clauses else sa.false()

    def has(
        self, field_node: Any, value_token: Any, *, negated: bool
    ) -> sa.ColumnElement[bool]:
        subject = self.subject(field_node)
        value = _literal(value_token, self.text)
        return subject.has(value, negated=negated)

    def like(
        self, field_node: Any, value_token: Any, *, ilike: bool, negated: bool
    ) -> sa.ColumnElement[bool]:
        subject = self.subject(field_node)
        value = _literal(value_token, self.text)
        word = "ilike" if ilike else "like"
        if not isinstance(value.value, str):
            raise self.error(
                f"{word} needs a quoted pattern, for example {subject.field.text} "
                f'{word} "resnet%"',
                value.token,
            )
        if subject.field.value_type not in ("text", "json"):
            raise self.error(
                f"{word} works on text fields and string params; "
                f"{subject.field.text} holds {_describe_type(subject.field)}",
                value.token,
            )
        pattern = value.value.translate(_ASCII_LOWER) if ilike else value.value
        chars = _like_chars(pattern)

        def predicate(expr: sa.ColumnElement[Any]) -> sa.ColumnElement[bool]:
            if ilike:
                expr = self.ascii_lower(expr)
            if self.postgres:
                match = expr.like(sa.literal(_like_pattern(chars)), escape="\\")
            else:
                glob = sa.literal(_glob_pattern(chars))
                match = expr.op("GLOB", is_comparison=True)(glob)
            # Negated inside, so that only strings that do not match are selected.
            return sa.not_(match) if negated else match

        return subject.where("string", predicate)

    def ascii_lower(self, expr: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
        """Lower-case A-Z only, as SQLite's lower() does, on both databases."""
        if self.postgres:
            upper = string.ascii_uppercase
            return sa.func.translate(expr, upper, string.ascii_lowercase)
        return sa.func.lower(expr)

    def bind(self, subject: _Subject, value: _Value) -> tuple[str, Any]:
        """The type group and bound parameter of ``value`` compared with ``subject``."""
        field = subject.field
        kind = value.kind
        if field.value_type == "tags":
            raise self.error(_tags_hint(), value.token)
        if field.value_type == "time":
            moment = _epoch(value)
            if moment is None:
                raise self.error(
                    f"{field.text} is a time; compare it with epoch seconds or an "
                    f'ISO date such as "2024-05-01" or "2024-05-01T12:30:00Z", got '
                    f"{value.token}",
                    value.token,
                )
            return "number", sa.literal(moment, sa.Double)
        if field.value_type == "number":
            if kind != "number":
                raise self.error(
                    f"{field.text} is a number; compare it with a number, for "
                    f"example {field.text} {_example(field)}, got {value.token}",
                    value.token,
                )
            assert isinstance(value.value, (int, float))
            return "number", sa.literal(float(value.value), sa.Double)
        if field.value_type == "text":
            if kind != "string":
                raise self.error(
                    f'{field.text} is text; quote the value: {field.text} = "'
                    f'{value.token}"',
                    value.token,
                )
            assert isinstance(value.value, str)
            if field.path == ("status",):
                _check_status(self, value)
            return "string", sa.literal(value.value, sa.String)

        # A param: compare within the value's JSON type.
        if kind == "number":
            if self.postgres:
                return kind, sa.literal(value.decimal, sa.Numeric)
            return kind, sa.literal(value.value)
        if kind == "boolean":
            return kind, sa.literal("true" if value.value else "false", sa.String)
        return kind, sa.literal(value.value, sa.String)

    # Fields

    def subject(self, node: Any) -> _Subject:
        field = _resolve_field(node, self.text)
        token = _first_token(node)
        if field.kind == "param":
            return _ParamSubject(self, field, token)
        if field.kind == "metric":
            return _MetricSubject(self, field, token)
        if field.kind == "tags":
            return _TagsSubject(self, field, token)
        name = field.path[0]
        if name == "experiment":
            return _ExperimentSubject(self, field, token)
        return _ColumnSubject(self, field, token, self.column(str(name)))

    def column(self, name: str) -> sa.ColumnElement[Any]:
        if name == "status":
            return effective_status(self.now, self.crash_timeout)
        if name == "duration":
            stopped = sa.case(
                (
                    effective_status(self.now, self.crash_timeout) == "running",
                    sa.literal(self.now, sa.Double),
                ),
                else_=runs.c.heartbeat_at,
            )
            return sa.func.coalesce(runs.c.ended_at, stopped) - runs.c.started_at
        return runs.c[name]

    def sort_key(self, field: Field) -> sa.ColumnElement[Any]:
        if field.kind == "tags":
            raise FilterError(
                "runs cannot be sorted by tags; sort by a column, a param or a metric",
                self.text,
                1,
            )
        if field.kind == "param":
            return _ParamSubject(self, field, None).sort_key()
        if field.kind == "metric":
            return _MetricSubject(self, field, None).sort_key()
        name = str(field.path[0])
        if name == "experiment":
            key: sa.ColumnElement[Any] = (
                sa.select(experiments.c.name)
                .where(experiments.c.id == runs.c.experiment_id)
                .correlate_except(experiments)
                .scalar_subquery()
            )
        else:
            key = self.column(name)
        if field.value_type == "text" and self.postgres:
            key = sa.collate(key, "C")
        return key


class _Subject:
    """What a comparison is about: a field, compiled for one database."""

    def __init__(
        self, compiler: _Compiler, field: Field, token: lark.Token | None
    ) -> None:
        self.compiler = compiler
        self.field = field
        self.token = token

    def where(self, kind: str, predicate: _Predicate) -> sa.ColumnElement[bool]:
        """Runs whose value, of type ``kind``, satisfies ``predicate``."""
        raise NotImplementedError

    def is_null(self) -> sa.ColumnElement[bool]:
        """Runs without a value."""
        raise NotImplementedError

    def has(self, value: _Value, *, negated: bool) -> sa.ColumnElement[bool]:
        """Runs whose list value holds ``value`` (or, negated, does not)."""
        raise self.compiler.error(
            f"'has' and 'in <field>' work on tags and on list params; "
            f"{self.field.text} holds {_describe_type(self.field)}"
            + (
                f'; to find text inside it use {self.field.text} like "%{value.value}%"'
                if self.field.value_type == "text" and isinstance(value.value, str)
                else ""
            ),
            self.token,
        )


class _ColumnSubject(_Subject):
    def __init__(
        self,
        compiler: _Compiler,
        field: Field,
        token: lark.Token | None,
        expr: sa.ColumnElement[Any],
    ) -> None:
        super().__init__(compiler, field, token)
        self.expr = expr
        self.nullable = field.path[0] in ("ended_at", "error")

    def where(self, kind: str, predicate: _Predicate) -> sa.ColumnElement[bool]:
        clause = predicate(self.expr)
        if self.nullable:
            return sa.and_(self.expr.is_not(None), clause)
        return clause

    def is_null(self) -> sa.ColumnElement[bool]:
        return self.expr.is_(None)


class _ExperimentSubject(_Subject):
    def where(self, kind: str, predicate: _Predicate) -> sa.ColumnElement[bool]:
        matching = sa.select(experiments.c.id).where(predicate(experiments.c.name))
        return runs.c.experiment_id.in_(matching.correlate(None))

    def is_null(self) -> sa.ColumnElement[bool]:
        return sa.false()


class _MetricSubject(_Subject):
    def value(self) -> sa.ColumnElement[Any]:
        summary = self.field.summary or "last"
        column: sa.ColumnElement[Any] = series.c[summary]
        if self.compiler.postgres and summary in ("last", "min", "max"):
            # PostgreSQL keeps NaN (and sorts it above every number); SQLite stores
            # it as NULL. Reading NaN as NULL makes both behave alike.
            column = sa.func.nullif(column, sa.literal(math.nan, sa.Double))
        return column

    def matching(self, *clauses: sa.ColumnElement[bool]) -> sa.ColumnElement[bool]:
        key = str(self.field.path[0])
        rows = sa.select(series.c.run_id).where(
            series.c.key == sa.literal(key, sa.String), *clauses
        )
        return runs.c.id.in_(rows.correlate(None))

    def where(self, kind: str, predicate: _Predicate) -> sa.ColumnElement[bool]:
        return self.matching(predicate(self.value()))

    def is_null(self) -> sa.ColumnElement[bool]:
        return sa.not_(self.matching(self.value().is_not(None)))

    def sort_key(self) -> sa.ColumnElement[Any]:
        key = str(self.field.path[0])
        return (
            sa.select(self.value())
            .where(series.c.run_id == runs.c.id)
            .where(series.c.key == sa.literal(key, sa.String))
            .correlate_except(series)
            .scalar_subquery()
        )


class _TagsSubject(_Subject):
    def where(self, kind: str, predicate: _Predicate) -> sa.ColumnElement[bool]:
        raise self.compiler.error(_tags_hint(), self.token)

    def is_null(self) -> sa.ColumnElement[bool]:
        raise self.compiler.error(
            'tags is a list and is never null; test a tag with tags has "x"',
            self.token,
        )

    def has(self, value: _Value, *, negated: bool) -> sa.ColumnElement[bool]:
        if not isinstance(value.value, str):
            raise self.compiler.error(
                f'tags are strings; quote the tag: tags has "{value.token}"',
                value.token,
            )
        if self.compiler.postgres:
            wanted = sa.literal(json.dumps([value.value]), sa.Text)
            found: sa.ColumnElement[bool] = runs.c.tags.op("@>", is_comparison=True)(
                sa.cast(wanted, postgresql.JSONB)
            )
        else:
            each = sa.func.json_each(runs.c.tags).table_valued("value", "type")
            found = (
                sa.select(sa.literal(1))
                .select_from(each)
                .where(each.c.type == "text", each.c.value == sa.literal(value.value))
                .correlate_except(each)
                .exists()
            )
        return sa.not_(found) if negated else found


class _ParamSubject(_Subject):
    """A value inside the ``params`` JSON, looked up by a bound path."""

    def where(self, kind: str, predicate: _Predicate) -> sa.ColumnElement[bool]:
        guard, value = self.typed(kind)
        return sa.case((guard, predicate(value)), else_=sa.false())

    def is_null(self) -> sa.ColumnElement[bool]:
        json_type = self.json_type()
        misread = [sa.not_(guard) for guard in self.pg_guards()]
        return sa.or_(json_type.is_(None), json_type == "null", *misread)

    def has(self, value: _Value, *, negated: bool) -> sa.ColumnElement[bool]:
        is_list = self.json_type() == "array"
        if self.compiler.postgres:
            element = (
                json.dumps(value.value) if value.decimal is None else str(value.decimal)
            )
            wanted = sa.cast(sa.literal(f"[{element}]", sa.Text), postgresql.JSONB)
            found: sa.ColumnElement[bool] = self.pg_json().op("@>", is_comparison=True)(
                wanted
            )
        else:
            each = sa.func.json_each(self.sqlite_lookup()[1]).table_valued(
                "value", "type"
            )
            found = (
                sa.select(sa.literal(1))
                .select_from(each)
                .where(_sqlite_element_matches(each, value))
                .correlate_except(each)
                .exists()
            )
        if negated:
            found = sa.not_(found)
        return sa.case((sa.and_(is_list, *self.pg_guards()), found), else_=sa.false())

    def typed(self, kind: str) -> tuple[sa.ColumnElement[bool], Any]:
        """A guard that the value has JSON type ``kind``, and the value as SQL."""
        json_type = self.json_type()
        guards = self.pg_guards()
        if self.compiler.postgres:
            text = self.pg_text()
            if kind == "number":
                return sa.and_(json_type == "number", *guards), sa.cast(
                    text, sa.Numeric
                )
            if kind == "boolean":
                return sa.and_(json_type == "boolean", *guards), text
            return sa.and_(json_type == "string", *guards), text

        value = self.sqlite_lookup()[1]
        if kind == "number":
            return json_type.in_(["integer", "real"]), value
        if kind == "boolean":
            return json_type.in_(["true", "false"]), json_type
        return json_type == "text", value

    def json_type(self) -> sa.ColumnElement[Any]:
        if self.compiler.postgres:
            return sa.func.jsonb_typeof(self.pg_json())
        return self.sqlite_lookup()[0]

    # PostgreSQL: params #> path and params #>> path, the path a bound text[].

    def pg_path(self, path: Sequence[str | int]) -> sa.ColumnElement[Any]:
        return sa.literal([str(part) for part in path], postgresql.ARRAY(sa.Text))

    def pg_json(self, path: Sequence[str | int] | None = None) -> Any:
        full = self.field.path if path is None else path
        return runs.c.params.op("#>", return_type=postgresql.JSONB)(self.pg_path(full))

    def pg_text(self) -> sa.ColumnElement[Any]:
        return runs.c.params.op("#>>", return_type=sa.Text)(
            self.pg_path(self.field.path)
        )

    def pg_guards(self) -> list[sa.ColumnElement[bool]]:
        """Keep #> from reading a key as a list index, or the other way round.

        PostgreSQL reads a path element as an index when the value is a list and as
        a key when it is an object; SQLite's path syntax tells them apart. Guarding
        the parent's type where it matters gives both the SQLite meaning.
        """
        if not self.compiler.postgres:
            return []
        guards: list[sa.ColumnElement[bool]] = []
        path = self.field.path
        for i, part in enumerate(path):
            if isinstance(part, int):
                wanted = "array"
            elif re.fullmatch(r"\s*[+-]?[0-9]+", part):
                wanted = "object"
            else:
                continue
            parent = sa.func.jsonb_typeof(self.pg_json(path[:i]))
            guards.append(parent == wanted)
        return guards

    # SQLite: json_type and json_extract with a bound path string.

    def sqlite_lookup(self) -> tuple[sa.ColumnElement[Any], sa.ColumnElement[Any]]:
        return _sqlite_lookup(runs.c.params, self.field.path)

    def sort_key(self) -> sa.ColumnElement[Any]:
        json_type = self.json_type()
        if self.compiler.postgres:
            text = self.pg_text()
            rank = sa.case(
                (json_type == "number", 0), (json_type == "string", 1), else_=2
            )
            number = sa.case((json_type == "number", sa.cast(text, sa.Numeric)))
            words = sa.collate(sa.case((json_type != "number", text)), "C")
            scalar = sa.and_(
                json_type.in_(["number", "string", "boolean"]), *self.pg_guards()
            )
            return sa.case((scalar, sa.tuple_(rank, number, words)))

        # SQLite orders numbers before text before blobs, which puts booleans
        # (as blobs) last, as the ranks above do on PostgreSQL.
        value = self.sqlite_lookup()[1]
        return sa.case(
            (json_type.in_(["integer", "real", "text"]), value),
            (json_type == "false", sa.literal(b"\x00", sa.LargeBinary)),
            (json_type == "true", sa.literal(b"\x01", sa.LargeBinary)),
        )


def _sqlite_lookup(
    document: sa.ColumnElement[Any], path: Sequence[str | int]
) -> tuple[sa.ColumnElement[Any], sa.ColumnElement[Any]]:
    """The JSON type and the SQL value at ``path`` in ``document``, on SQLite.

    A path string quotes each key ($."a.b"), but SQLite compares a quoted key with
    the key as written in the stored JSON, escapes included, and cannot quote a key
    holding a double quote. Keys that are not plain printable ASCII are looked up
    with json_each instead, which compares decoded keys.
    """
    plain = [isinstance(part, int) or _sqlite_plain(part) for part in path]
    if all(plain):
        where = sa.literal(_sqlite_path(path), sa.String)
        return sa.func.json_type(document, where), sa.func.json_extract(document, where)

    i = plain.index(False)

    parent = sa.literal(_sqlite_path(path[:i]), sa.String)
    each = sa.func.json_each(document, parent).table_valued("key", "value", "type")
    key = sa.literal(path[i], sa.String)
    rest = path[i + 1 :]
    if not rest:
        json_type = sa.select(each.c.type).where(each.c.key == key)
        value = sa.select(each.c.value).where(each.c.key == key)
        return (
            json_type.correlate_except(each).scalar_subquery(),
            value.correlate_except(each).scalar_subquery(),
        )
    child = (
        sa.select(each.c.value)
        .where(each.c.key == key, each.c.type.in_(["object", "array"]))
        .correlate_except(each)
        .scalar_subquery()
    )
    return _sqlite_lookup(child, rest)


def _sqlite_plain(key: str) -> bool:
    return all(" " <= char <= "~" and char not in '"\\' for char in key)


def _sqlite_path(path: Sequence[str | int]) -> str:
    parts = ["$"]
    for part in path:
        parts.append(f"[{part}]" if isinstance(part, int) else f'."{part}"')
    return "".join(parts)


def _sqlite_element_matches(
    each: sa.TableValuedAlias, value: _Value
) -> sa.ColumnElement[bool]:
    """Whether a json_each row holds ``value``, with its JSON type."""
    kind = value.kind
    if kind in ("null", "boolean"):
        json_type = "null" if value.value is None else str(value.value).lower()
        return each.c.type == json_type
    if kind == "number":
        return sa.and_(
            each.c.type.in_(["integer", "real"]),
            each.c.value == sa.literal(value.value),
        )
    return sa.and_(each.c.type == "text", each.c.value == sa.literal(value.value))


# Helpers


def _apply(
    op: str, expr: sa.ColumnElement[Any], bound: sa.ColumnElement[Any]
) -> sa.ColumnElement[bool]:
    operators: dict[str, Callable[[Any, Any], sa.ColumnElement[bool]]] = {
        "=": operator.eq,
        "!=": operator.ne,
        "<": operator.lt,
        "<=": operator.le,
        ">": operator.gt,
        ">=": operator.ge,
    }
    return operators[op](expr, bound)


def _like_chars(pattern: str) -> list[tuple[str, bool]]:
    """The characters of a like pattern, each with whether it is a wildcard."""
    chars: list[tuple[str, bool]] = []
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if char == "\\" and i + 1 < len(pattern):
            chars.append((pattern[i + 1], False))
            i += 2
            continue
        chars.append((char, char in "%_"))
        i += 1
    return chars


def _like_pattern(chars: list[tuple[str, bool]]) -> str:
    """A SQL LIKE pattern (escape character backslash)."""
    out = []
    for char, wild in chars:
        if not wild and char in "%_\\":
            out.append("\\" + char)
        else:
            out.append(char)
    return "".join(out)


def _glob_pattern(chars: list[tuple[str, bool]]) -> str:
    """A SQLite GLOB pattern: case-sensitive, as LIKE is on PostgreSQL."""
    out = []
    for char, wild in chars:
        if wild:
            out.append("*" if char == "%" else "?")
        elif char in "*?[":
            out.append(f"[{char}]")
        else:
            out.append(char)
    return "".join(out)


def _first_token(node: Any) -> lark.Token | None:
    while isinstance(node, lark.Tree):
        if not node.children:
            return None
        node = node.children[0]
    return node if isinstance(node, lark.Token) else None


def _describe_type(field: Field) -> str:
    return {
        "text": "text",
        "time": "a time",
        "number": "a number",
        "json": "JSON values",
        "tags": "a list of strings",
    }[field.value_type]


def _example(field: Field) -> str:
    return "> 3600" if field.path == ("duration",) else "< 0.5"


def _tags_hint() -> str:
    return 'tags is a list of strings; use tags has "x", "x" in tags or "x" not in tags'


def _check_status(compiler: _Compiler, value: _Value) -> None:
    if value.value not in STATUSES:
        raise compiler.error(
            f"unknown status {value.value!r}; statuses are {', '.join(STATUSES)}",
            value.token,
        )
