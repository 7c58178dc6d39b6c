"""The ``labnotebook`` command line: a thin shell over the library.

Every command that reads or writes runs opens the store named by ``--store`` (or
``LABNOTEBOOK_URL``, or the default SQLite file in ``LABNOTEBOOK_HOME``) through a
:class:`~labnotebook.Notebook`, opened only when the command needs it. Library errors
become one ``Error: ...`` line and exit status 1; filter errors show the filter with
a caret under the bad column and exit with status 2, like other usage errors.

The user reference is docs/cli.md.
"""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import io
import json
import math
import numbers
import os
import shutil
import sys
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any, TypeVar
from urllib.parse import quote

import click
import pandas as pd
import sqlalchemy as sa

from . import __version__
from ._artifacts import (
    check_artifact_name,
    copy_verified,
    create_temp_file,
    is_special_file,
)
from ._config import Settings
from ._errors import FilterError, LabnotebookError, StoreError, ValidationError
from ._frames import RUN_COLUMNS, runs_frame
from ._notebook import Notebook
from ._query import Field, parse_field
from ._schema import ARTIFACT_KINDS
from ._spool import read_spool_file, spool_files
from ._store import migrate
from ._store.base import Artifact, Columns, RunRecord
from ._store.sql import SqlStore, _safe_url, _translate
from ._values import check_name

F = TypeVar("F", bound=Callable[..., Any])

#: Columns of every ``ls`` listing, before those chosen with ``--columns``.
LS_COLUMNS = ("id", "name", "experiment", "status", "started_at", "duration", "tags")
DEFAULT_LIMIT = 50
DEFAULT_PORT = 8788  # the tracking server's (labnotebook.server.DEFAULT_PORT)
#: Runs listed by name in a confirmation prompt before "... and N more".
CONFIRM_LISTED = 10
#: Narrowest a shrinkable table column gets when the table is fitted to the terminal.
MIN_SHRUNK_WIDTH = 6
EXPORT_FORMATS = ("csv", "jsonl", "parquet")
_SUFFIX_FORMATS = {
    ".csv": "csv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".parquet": "parquet",
    ".pq": "parquet",
}
_STATUS_COLOURS = {
    "running": "cyan",
    "finished": "green",
    "failed": "red",
    "killed": "yellow",
    "crashed": "magenta",
}


# ---------------------------------------------------------------- plumbing


class CliError(click.ClickException):
    """A failure shown as ``Error: <message>``; exit status 1."""


class FilterUsageError(CliError):
    """A filter, sort field or column that does not parse; exit status 2."""

    exit_code = 2


class _State:
    """The store URL chosen on the command line, and the notebook opened on it."""

    def __init__(self) -> None:
        self.url: str | None = None
        self._notebook: Notebook | None = None

    def settings(self) -> Settings:
        return Settings.from_env(url=self.url)

    @property
    def notebook(self) -> Notebook:
        if self._notebook is None:
            self._notebook = Notebook(self.settings())
        return self._notebook

    def close(self) -> None:
        if self._notebook is not None:
            notebook, self._notebook = self._notebook, None
            notebook.close()


class _Group(click.Group):
    """The root group: turns library errors into clean messages."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except FilterError as exc:
            raise FilterUsageError(_redact(str(exc), ctx)) from None
        except LabnotebookError as exc:
            message = " ".join(str(exc).split())
            raise CliError(_redact(message, ctx)) from None


def _redact(message: str, ctx: click.Context) -> str:
    """Hide the store password, should a message quote the URL it was given in."""
    state = ctx.find_object(_State)
    url = state.url if state is not None else None
    if not url:
        return message
    try:
        password = sa.engine.make_url(url).password
    except (sa.exc.ArgumentError, ValueError):
        return message
    if not password:
        return message
    for form in {str(password), quote(str(password), safe="")}:
        message = message.replace(form, "***")
    return message


def _state() -> _State:
    return click.get_current_context().find_object(_State) or _State()


def _notebook() -> Notebook:
    return _state().notebook


def _remember_store(ctx: click.Context, _param: click.Parameter, value: Any) -> Any:
    if value:
        state = ctx.find_object(_State)
        if state is not None:
            state.url = value
    return value


def store_option(command: F) -> F:
    """Accept ``--store`` after the command name too (``labnotebook ls --store X``)."""
    return click.option(
        "--store",
        metavar="URL",
        expose_value=False,
        callback=_remember_store,
        help="Store URL; the same as the global --store.",
    )(command)


def _err(message: str) -> None:
    click.secho(message, err=True, fg="yellow")


# ------------------------------------------------------------ the command group


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--store",
    metavar="URL",
    envvar="LABNOTEBOOK_URL",
    help="Store URL: sqlite:///path.db, postgresql://user@host/db or "
    "http://server:port. Default: LABNOTEBOOK_URL, else the SQLite file in the "
    "labnotebook home folder.",
)
@click.version_option(__version__, "--version", prog_name="labnotebook")
@click.pass_context
def main(ctx: click.Context, store: str | None) -> None:
    """labnotebook: list, inspect, export and serve your machine-learning runs."""
    state = ctx.ensure_object(_State)
    if store:
        state.url = store
    if os.environ.get("NO_COLOR"):
        ctx.color = False
    ctx.call_on_close(state.close)


# ---------------------------------------------------------------------- ls


@main.command("ls")
@click.option("--where", metavar="FILTER", help="Only runs matching this filter.")
@click.option("--experiment", metavar="NAME", help="Only runs of this experiment.")
@click.option(
    "--sort", metavar="FIELD", help="Sort by this field (default: started_at)."
)
@click.option("--asc", is_flag=True, help="Sort ascending (default: descending).")
@click.option(
    "--limit",
    metavar="N",
    type=click.IntRange(min=0),
    default=DEFAULT_LIMIT,
    show_default=True,
    help="Show at most N runs; 0 shows all.",
)
@click.option(
    "--columns",
    metavar="FIELD,FIELD",
    help="Extra columns, e.g. params.lr,metrics.loss.min.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "csv", "json"]),
    default="table",
    show_default=True,
    help="Output format.",
)
@store_option
def ls_command(
    where: str | None,
    experiment: str | None,
    sort: str | None,
    asc: bool,
    limit: int,
    columns: str | None,
    fmt: str,
) -> None:
    """List runs, newest first."""
    extra = _extra_columns(columns)
    notebook = _notebook()
    frame = notebook.runs(
        where,
        experiment=experiment,
        order_by=sort,
        descending=not asc,
        limit=limit or None,
    )

    if fmt == "table":
        if frame.empty:
            _err("no runs match")
        else:
            for line in _runs_table(frame, extra, _terminal_width()):
                click.echo(line)
    else:
        chosen = list(LS_COLUMNS)
        chosen += [column for _, column in extra if column not in chosen]
        selected = frame.reindex(columns=chosen)
        if fmt == "csv":
            _echo_csv(selected)
        else:
            _echo_json(list(_records(selected)))

    if limit and len(frame) == limit:
        total = notebook.store.count_runs(where, experiment)
        if total > limit:
            _err(f"showing {limit} of {total} runs; use --limit 0 to see all")


def _extra_columns(spec: str | None) -> list[tuple[str, str]]:
    """``--columns`` as ``(header, runs-table column)`` pairs, checked."""
    if not spec:
        return []
    out: list[tuple[str, str]] = []
    for text in (part.strip() for part in spec.split(",")):
        if not text:
            continue
        try:
            field = parse_field(text)
        except FilterError as exc:
            raise FilterError(
                f"--columns: {exc.message}", exc.expression, exc.column
            ) from None
        column = _frame_column(field)
        if (text, column) not in out:
            out.append((text, column))
    return out


def _frame_column(field: Field) -> str:
    """The column of ``Notebook.runs()`` that holds a field."""
    if field.kind == "tags":
        return "tags"
    if field.kind == "column" and str(field.path[0]) in RUN_COLUMNS:
        return str(field.path[0])
    if field.kind == "param" and all(isinstance(p, str) for p in field.path):
        return "params." + ".".join(str(p) for p in field.path)
    if field.kind == "metric" and field.summary in ("last", "min", "max"):
        return f"metrics.{field.path[0]}.{field.summary}"
    raise click.BadParameter(
        f"{field.text!r} cannot be shown as a column; columns are "
        f"{', '.join(c for c in RUN_COLUMNS if c != 'pid')}, params.<key> (not "
        "list items) and metrics.<key>[.last|.min|.max]",
        param_hint="'--columns'",
    )


# ------------------------------------------------------------------- tables


@dataclass
class _Column:
    """A table column; ``min_width`` set means it may be cut to fit the screen."""

    header: str
    cells: list[str]
    right: bool = False
    min_width: int | None = None
    colour: Callable[[str], str | None] | None = None


def _runs_table(
    frame: pd.DataFrame, extra: list[tuple[str, str]], width: int | None
) -> list[str]:
    now = time.time()
    records = frame.to_dict("records")
    columns = [
        _Column("ID", [str(r["id"])[:8] for r in records]),
        _Column("NAME", [str(r["name"]) for r in records], min_width=MIN_SHRUNK_WIDTH),
        _Column(
            "EXPERIMENT",
            [str(r["experiment"]) for r in records],
            min_width=MIN_SHRUNK_WIDTH,
        ),
        _Column(
            "STATUS", [str(r["status"]) for r in records], colour=_STATUS_COLOURS.get
        ),
        _Column("STARTED", [_when(r["started_at"], now) for r in records]),
        _Column("DURATION", [_duration(r["duration"]) for r in records], right=True),
    ]
    tags = [", ".join(r["tags"]) for r in records]
    if any(tags):
        columns.append(_Column("TAGS", tags, min_width=MIN_SHRUNK_WIDTH))
    for header, name in extra:
        values = [r.get(name) for r in records]
        numeric = all(_is_number(v) for v in values if not _missing(v))
        columns.append(
            _Column(
                header,
                [_cell(v, name) for v in values],
                right=numeric,
                min_width=None if numeric else len(header),
            )
        )
    return _render(columns, width)


def _render(columns: list[_Column], width: int | None) -> list[str]:
    """Lay columns out two spaces apart, cutting text columns to fit ``width``."""
    widths = [max([len(c.header), *(len(cell) for cell in c.cells)]) for c in columns]
    excess = 0 if width is None else sum(widths) + 2 * (len(widths) - 1) - width
    while excess > 0:
        cuttable = [
            i
            for i, c in enumerate(columns)
            if c.min_width is not None and widths[i] > c.min_width
        ]
        if not cuttable:
            break  # as narrow as it gets; the terminal wraps the rest
        widest = max(cuttable, key=lambda i: widths[i])
        widths[widest] -= 1
        excess -= 1

    layout = list(zip(columns, widths, strict=True))
    lines = [
        "  ".join(
            _styled(_fit(c.header, w, c.right), bold=True) for c, w in layout
        ).rstrip()
    ]
    for row in range(len(columns[0].cells) if columns else 0):
        parts = []
        for c, w in layout:
            text = c.cells[row]
            colour = c.colour(text) if c.colour else None
            parts.append(_styled(_fit(text, w, c.right), fg=colour))
        lines.append("  ".join(parts).rstrip())
    return lines


def _styled(padded: str, **style: Any) -> str:
    """Style the text of a padded cell, leaving its padding plain."""
    core = padded.strip(" ")
    if not core or not any(style.values()):
        return padded
    start = padded.index(core)
    return padded[:start] + click.style(core, **style) + padded[start + len(core) :]


def _fit(text: str, width: int, right: bool) -> str:
    if len(text) > width:
        text = text[: max(0, width - 1)] + "…"
    return text.rjust(width) if right else text.ljust(width)


def _terminal_width() -> int | None:
    """``COLUMNS`` if set, else the terminal's width; ``None`` when piped."""
    columns = os.environ.get("COLUMNS", "")
    if columns.isdigit() and int(columns) > 0:
        return int(columns)
    if sys.stdout.isatty():
        return shutil.get_terminal_size().columns
    return None


def _missing(value: Any) -> bool:
    if value is None or value is pd.NaT or value is pd.NA:
        return True
    return isinstance(value, float) and math.isnan(value)


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Number) and not isinstance(value, bool)


def _cell(value: Any, column: str = "") -> str:
    """A value as shown in a table cell (blank when missing or NaN)."""
    if _missing(value):
        return ""
    if column == "duration":
        return _duration(value)
    if isinstance(value, pd.Timestamp):
        return _local(value.timestamp())
    if isinstance(value, (bool, list, dict)) or type(value).__name__ == "bool_":
        return json.dumps(_plain(value), ensure_ascii=False)
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, numbers.Integral):
        return str(int(value))
    return str(value)


def _number(value: float | None) -> str:
    """A metric value in full enough precision to read, NaN and infinities kept."""
    if value is None:
        return ""
    return f"{value:.6g}"


def _local(epoch: float, fmt: str = "%Y-%m-%d %H:%M") -> str:
    return dt.datetime.fromtimestamp(epoch).strftime(fmt)


def _when(value: Any, now: float) -> str:
    """A start time for humans: "5 min ago", then "Mar 03 14:05", then a date."""
    if _missing(value):
        return ""
    epoch = value.timestamp() if isinstance(value, pd.Timestamp) else float(value)
    ago = now - epoch
    if ago < 60:
        return "just now"
    if ago < 3600:
        return f"{int(ago // 60)} min ago"
    if ago < 86400:
        return f"{int(ago // 3600)} h ago"
    if _local(epoch, "%Y") == _local(now, "%Y"):
        return _local(epoch, "%b %d %H:%M")
    return _local(epoch, "%Y-%m-%d")


def _duration(seconds: Any) -> str:
    """``0.4s``, ``42s``, ``3m 12s``, ``2h 05m``, ``3d 04h``."""
    if _missing(seconds):
        return ""
    if seconds < 10:
        return f"{max(0.0, float(seconds)):.1f}s"
    total = int(seconds)
    if total < 60:
        return f"{total}s"
    if total < 3600:
        return f"{total // 60}m {total % 60:02d}s"
    if total < 86400:
        return f"{total // 3600}h {total % 3600 // 60:02d}m"
    return f"{total // 86400}d {total % 86400 // 3600:02d}h"


# ---------------------------------------------------------- machine output


def _plain(value: Any) -> Any:
    """A value as strict JSON data: NaN and infinities as "NaN", "Infinity"."""
    if value is None or value is pd.NaT or value is pd.NA:
        return None
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    if isinstance(value, bool) or type(value).__name__ == "bool_":
        return bool(value)
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        number = float(value)
        if math.isfinite(number):
            return number
        if math.isnan(number):
            return "NaN"
        return "Infinity" if number > 0 else "-Infinity"
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)) or hasattr(value, "tolist"):
        items = value.tolist() if hasattr(value, "tolist") else value
        return [_plain(v) for v in items]
    return value


def _records(frame: pd.DataFrame) -> Iterator[dict[str, Any]]:
    """Rows as strict JSON data.

    NaN in a metric column is a value ("NaN"); anywhere else it marks a run that
    lacks the column (a param it never had), which is null.
    """
    metrics = {name for name in frame.columns if str(name).startswith("metrics.")}
    for row in frame.to_dict("records"):
        yield {
            str(k): None if k not in metrics and _missing(v) else _plain(v)
            for k, v in row.items()
        }


def _csv_ready(frame: pd.DataFrame) -> pd.DataFrame:
    """Times as ISO 8601 text and lists or objects as JSON text, for CSV."""
    out = frame.copy()
    for name in out.columns:
        column = out[name]
        if isinstance(column.dtype, pd.DatetimeTZDtype):
            out[name] = column.map(lambda t: None if _missing(t) else t.isoformat())
        elif column.dtype == object:
            out[name] = column.map(
                lambda v: (
                    json.dumps(_plain(v), ensure_ascii=False)
                    if isinstance(v, (list, dict)) or hasattr(v, "tolist")
                    else v
                )
            )
    return out


def _write_csv(frame: pd.DataFrame, out: IO[str]) -> None:
    _csv_ready(frame).to_csv(out, index=False, lineterminator="\n")


def _echo_csv(frame: pd.DataFrame) -> None:
    buffer = io.StringIO()
    _write_csv(frame, buffer)
    click.echo(buffer.getvalue(), nl=False)


def _echo_json(data: Any) -> None:
    click.echo(json.dumps(_plain(data), indent=2, ensure_ascii=False, allow_nan=False))


# -------------------------------------------------------------------- show


@main.command("show")
@click.argument("run_id", metavar="RUN")
@click.option("--json", "as_json", is_flag=True, help="Print the run as JSON.")
@store_option
def show_command(run_id: str, as_json: bool) -> None:
    """Show one run: its details, params, metric summaries, notes and error.

    RUN is a run id or a unique prefix of one (at least 4 characters).
    """
    run = _notebook().get_run(run_id)
    record = run.record
    notes = run.notes()
    artifacts = run.artifacts()
    duration = runs_frame([record], time.time())["duration"].iloc[0]

    if as_json:
        data = asdict(record)
        data["duration"] = duration
        data["notes"] = [asdict(note) for note in notes]
        data["artifacts"] = [asdict(artifact) for artifact in artifacts]
        _echo_json(data)
        return

    for line in _show_lines(record, float(duration), notes, artifacts):
        click.echo(line)


def _show_lines(
    record: RunRecord,
    duration: float,
    notes: Sequence[Any],
    artifacts: Sequence[Artifact] = (),
) -> list[str]:
    now = time.time()
    status = click.style(
        record.status, fg=_STATUS_COLOURS.get(record.status), bold=True
    )
    lines = [click.style(f"run {record.id}", bold=True)]
    rows: list[tuple[str, str]] = [
        ("name", record.name),
        ("experiment", record.experiment),
        ("status", status),
        (
            "started",
            f"{_local(record.started_at, '%Y-%m-%d %H:%M:%S')} "
            f"({_when(record.started_at, now)})",
        ),
    ]
    if record.ended_at is not None:
        rows.append(("ended", _local(record.ended_at, "%Y-%m-%d %H:%M:%S")))
    rows.append(("duration", _duration(duration)))
    host = record.host + (f" (pid {record.pid})" if record.pid is not None else "")
    rows += [("host", host), ("command", record.command)]
    if record.tags:
        rows.append(("tags", ", ".join(record.tags)))
    rows += _environment_rows(record.environment or {})
    lines += [f"  {label:<11} {value}" for label, value in rows if value]

    lines += ["", click.style("params", bold=True)]
    lines += _tree(record.params, 1) if record.params else ["  (none)"]

    lines += ["", click.style("metrics", bold=True)]
    if record.metrics:
        table = [
            _Column("KEY", list(record.metrics)),
            _Column(
                "COUNT", [str(s.count) for s in record.metrics.values()], right=True
            ),
            _Column(
                "LAST", [_number(s.last) for s in record.metrics.values()], right=True
            ),
            _Column(
                "STEP",
                [
                    "" if s.last_step is None else str(s.last_step)
                    for s in record.metrics.values()
                ],
                right=True,
            ),
            _Column(
                "MIN", [_number(s.min) for s in record.metrics.values()], right=True
            ),
            _Column(
                "MAX", [_number(s.max) for s in record.metrics.values()], right=True
            ),
        ]
        lines += ["  " + line for line in _render(table, None)]
    else:
        lines.append("  (none)")

    if artifacts:
        lines += ["", click.style("artifacts", bold=True)]
        lines += ["  " + line for line in _render(_artifact_groups(artifacts), None)]

    if notes:
        lines += ["", click.style("notes", bold=True)]
        for note in notes:
            where = "" if note.step is None else f", step {note.step}"
            lines.append(click.style(f"  [{_local(note.created_at)}{where}]", dim=True))
            lines += ["    " + text for text in note.text.splitlines()]

    if record.error:
        lines += ["", click.style("error", bold=True, fg="red")]
        lines += ["  " + text for text in record.error.rstrip().splitlines()]
    return lines


def _environment_rows(environment: dict[str, Any]) -> list[tuple[str, str]]:
    """The code version and Python of a run, from what was captured at start."""
    rows: list[tuple[str, str]] = []
    code = environment.get("code")
    if isinstance(code, dict) and code.get("commit"):
        text = str(code["commit"])[:12]
        if code.get("branch"):
            text += f" on {code['branch']}"
        if code.get("dirty"):
            text += " (uncommitted changes)"
        rows.append(("code", text))
    python = environment.get("python")
    if isinstance(python, dict) and python.get("version"):
        rows.append(
            ("python", f"{python.get('implementation', '')} {python['version']}")
        )
    return rows


def _artifact_groups(artifacts: Sequence[Artifact]) -> list[_Column]:
    """One row per kind and name: how many, the last step, their total size."""
    groups: dict[tuple[str, str], list[Artifact]] = {}
    for artifact in artifacts:
        groups.setdefault((artifact.kind, artifact.name), []).append(artifact)
    steps = [[a.step for a in group if a.step is not None] for group in groups.values()]
    return [
        _Column("KIND", [kind for kind, _ in groups]),
        _Column("NAME", [name for _, name in groups]),
        _Column("COUNT", [str(len(g)) for g in groups.values()], right=True),
        _Column("LAST STEP", [str(max(s)) if s else "" for s in steps], right=True),
        _Column(
            "SIZE",
            [_size(sum(_shown_size(a) for a in g)) for g in groups.values()],
            right=True,
        ),
    ]


def _tree(value: dict[str, Any], depth: int) -> list[str]:
    """Nested params as an indented tree, keys sorted; lists and scalars as JSON."""
    lines = []
    indent = "  " * depth
    for key, item in sorted(value.items()):
        if isinstance(item, dict) and item:
            lines.append(f"{indent}{key}:")
            lines += _tree(item, depth + 1)
        else:
            lines.append(f"{indent}{key}: {json.dumps(item, ensure_ascii=False)}")
    return lines


# --------------------------------------------------------------- artifacts


@main.command("artifacts")
@click.argument("run_id", metavar="RUN")
@click.option(
    "--kind",
    type=click.Choice(ARTIFACT_KINDS),
    help="Only artifacts of this kind.",
)
@click.option("--name", metavar="NAME", help="Only artifacts with this name.")
@click.option("--step", type=click.IntRange(min=0), help="Only artifacts at this step.")
@click.option("--json", "as_json", is_flag=True, help="Print the artifacts as JSON.")
@click.option(
    "--delete",
    is_flag=True,
    help="Delete the artifacts listed (needs --name); asks first unless --yes.",
)
@click.option("--yes", "-y", is_flag=True, help="Delete without asking.")
@store_option
def artifacts_command(
    run_id: str,
    kind: str | None,
    name: str | None,
    step: int | None,
    as_json: bool,
    delete: bool,
    yes: bool,
) -> None:
    """List a run's artifacts (files, folders, images, checkpoints), oldest first,
    or delete some of them.

    RUN is a run id or a unique prefix of one (at least 4 characters).
    """
    notebook = _notebook()
    found = notebook.artifacts(run_id, kind=kind, name=name)
    if step is not None:
        found = [a for a in found if a.step == step]
    if delete:
        if name is None:
            raise click.UsageError("--delete needs --name: the artifacts to delete")
        if not found:
            _err("no artifacts to delete")
            return
        total = _size(sum(_shown_size(a) for a in found))
        what = f"{len(found)} artifact(s) named {name!r} ({total})"
        if not yes and not click.confirm(f"Delete {what}?", err=True):
            raise click.Abort
        notebook._remove_artifacts(found[0].run_id, found)
        _err(f"deleted {what}")
        return
    if as_json:
        _echo_json([asdict(a) for a in found])
        return
    if not found:
        _err("no artifacts")
        return
    table = [
        _Column("NAME", [a.name for a in found], min_width=MIN_SHRUNK_WIDTH),
        _Column("KIND", [a.kind for a in found]),
        _Column("STEP", ["" if a.step is None else str(a.step) for a in found], True),
        _Column("SIZE", [_size(_shown_size(a)) for a in found], right=True),
        _Column("TYPE", [a.media_type for a in found]),
        _Column("CREATED", [_local(a.created_at) for a in found]),
        _Column("SHA256", [a.sha256[:12] for a in found]),
    ]
    for line in _render(table, _terminal_width()):
        click.echo(line)


def _shown_size(artifact: Artifact) -> int:
    """A folder's size is the total of its files, not of its manifest."""
    total = artifact.meta.get("total_size") if artifact.kind == "folder" else None
    return total if isinstance(total, int) else artifact.size


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{n} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"


@main.command("download")
@click.argument("run_id", metavar="RUN")
@click.argument("name")
@click.argument("dest", required=False, type=click.Path(path_type=Path))
@click.option(
    "--step",
    type=click.IntRange(min=0),
    help="The artifact at this step (default: the latest one).",
)
@click.option(
    "--kind",
    type=click.Choice(ARTIFACT_KINDS),
    help="Only an artifact of this kind (a picture and a checkpoint may share a name).",
)
@store_option
def download_command(
    run_id: str, name: str, dest: Path | None, step: int | None, kind: str | None
) -> None:
    """Copy the artifact NAME of a run to DEST.

    A file is written to DEST, or into it when DEST is a folder (default: the
    current folder); DEST - writes it to standard output. A folder's files are
    restored under DEST (default: a folder NAME in the current folder).
    """
    notebook = _notebook()
    if dest is not None and str(dest) == "-":
        artifact = notebook.find_artifact(run_id, name, step=step, kind=kind)
        if artifact.kind == "folder":
            raise ValidationError(
                f"artifact {name!r} is a folder, which cannot go to standard "
                "output; give a folder path as DEST"
            )
        with (
            notebook.open_artifact(run_id, name, step=step, kind=kind) as f,
            click.open_file("-", "wb") as out,
        ):
            # Checked as a download to a file is; a damaged blob fails the command.
            copy_verified(f, out, artifact.sha256, Path(artifact.name))
        return
    if dest is None:
        artifact = notebook.find_artifact(run_id, name, step=step, kind=kind)
        folder = artifact.kind == "folder"
        dest = Path.cwd() / check_artifact_name(artifact.name) if folder else Path.cwd()
    try:
        written = notebook.download_artifact(run_id, name, dest, step=step, kind=kind)
    except OSError as exc:
        where = f" ({exc.filename})" if exc.filename else ""
        raise CliError(
            f"cannot download {name!r} to {str(dest)!r}: {exc.strerror or exc}{where}"
        ) from None
    click.echo(str(written))


# ------------------------------------------------------------------ export


@main.command("export")
@click.option("--where", metavar="FILTER", help="Only runs matching this filter.")
@click.option("--experiment", metavar="NAME", help="Only runs of this experiment.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(EXPORT_FORMATS),
    help="File format (default: from the --output extension, else csv).",
)
@click.option(
    "--histories",
    is_flag=True,
    help="Export the metric values of the selected runs (run_id, key, step, value, "
    "time) instead of the runs table.",
)
@click.option(
    "--output",
    "-o",
    metavar="PATH",
    required=True,
    type=click.Path(dir_okay=False, writable=True, allow_dash=True),
    help="File to write; - writes csv or jsonl to standard output.",
)
@store_option
def export_command(
    where: str | None,
    experiment: str | None,
    fmt: str | None,
    histories: bool,
    output: str,
) -> None:
    """Export runs, or their metric histories, to CSV, JSON Lines or Parquet."""
    if fmt is None:
        fmt = _SUFFIX_FORMATS.get(Path(output).suffix.lower(), "csv")
    if fmt == "parquet":
        if output == "-":
            raise click.UsageError(
                "Parquet is a binary format; give a file with --output, or use "
                "--format csv or jsonl to write to standard output"
            )
        _pyarrow()

    notebook = _notebook()
    frame = notebook.runs(where, experiment=experiment)
    with _output(output, binary=fmt == "parquet") as out:
        if histories:
            points = _export_histories(notebook, list(frame["id"]), fmt, out)
            what = f"{points} points of {len(frame)} runs"
        else:
            _export_runs(frame, fmt, out)
            what = f"{len(frame)} runs"
    if output != "-":
        click.echo(f"wrote {what} to {output}", err=True)


@contextlib.contextmanager
def _output(path: str, binary: bool) -> Iterator[Any]:
    """Standard output, or a file that appears only once it is complete.

    An existing named pipe or device (``/dev/null``) is written into, never
    replaced by a regular file.
    """
    if path == "-":
        with click.open_file("-", "w") as stream:
            yield stream
        return

    target = Path(path)
    temporary: str | None = None
    try:
        if is_special_file(target):
            fd = os.open(target, os.O_WRONLY | getattr(os, "O_CLOEXEC", 0))
        else:
            fd, temporary = create_temp_file(
                target.parent, f".{target.name}.", suffix=".partial"
            )
    except OSError as exc:
        raise CliError(f"cannot write {path}: {exc.strerror}") from None
    try:
        with (
            os.fdopen(fd, "wb")
            if binary
            else os.fdopen(fd, "w", encoding="utf-8", newline="")
        ) as handle:
            yield handle
        if temporary is not None:
            os.replace(temporary, target)
    except BaseException:
        if temporary is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary)
        raise


def _export_runs(frame: pd.DataFrame, fmt: str, out: Any) -> None:
    if fmt == "csv":
        _write_csv(frame, out)
    elif fmt == "jsonl":
        for record in _records(frame):
            out.write(json.dumps(record, ensure_ascii=False, allow_nan=False) + "\n")
    else:
        pa, pq = _pyarrow()
        arrays = []
        for name in frame.columns:
            column = frame[name]
            try:
                if any(isinstance(v, dict) for v in column):
                    raise pa.ArrowInvalid("objects are written as JSON text")
                arrays.append(pa.Array.from_pandas(column))
            except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
                # Objects, and values of several JSON types (numbers in some runs,
                # strings in others), have no one Parquet type: keep them as JSON.
                arrays.append(_json_text_array(pa, column))
        table = pa.Table.from_arrays(arrays, names=[str(c) for c in frame.columns])
        pq.write_table(table, out)


def _json_text_array(pa: Any, column: pd.Series) -> Any:
    return pa.array(
        [
            None if _missing(v) else json.dumps(_plain(v), ensure_ascii=False)
            for v in column
        ],
        pa.string(),
    )


def _export_histories(
    notebook: Notebook, run_ids: list[str], fmt: str, out: Any
) -> int:
    """Write every point of the runs in long format; returns the number of points."""
    points = 0
    writer: Any = None
    if fmt == "csv":
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["run_id", "key", "step", "value", "time"])
    elif fmt == "parquet":
        pa, pq = _pyarrow()
        schema = pa.schema(
            [
                ("run_id", pa.string()),
                ("key", pa.string()),
                ("step", pa.int64()),
                ("value", pa.float64()),
                ("time", pa.float64()),
            ]
        )
        writer = pq.ParquetWriter(out, schema)

    stderr = sys.stderr
    try:
        with click.progressbar(
            run_ids,
            label="exporting histories",
            file=stderr,
            hidden=not stderr.isatty(),
            show_pos=True,
            width=24,
        ) as progress:
            for run_id in progress:
                data = notebook.store.history(run_id)
                points += sum(len(steps) for steps, _, _ in data.values())
                if fmt == "csv":
                    writer.writerows(_csv_points(run_id, data))
                elif fmt == "jsonl":
                    out.writelines(_jsonl_points(run_id, data))
                elif data:
                    writer.write_table(_arrow_points(run_id, data, schema))
    finally:
        if fmt == "parquet":
            writer.close()
    return points


def _csv_points(
    run_id: str, data: dict[str, Columns]
) -> Iterator[tuple[str, str, int, str, str]]:
    for key, (steps, values, times) in data.items():
        for step, value, t in zip(steps, values, times, strict=True):
            yield run_id, key, int(step), _csv_float(value), repr(float(t))


def _csv_float(value: float) -> str:
    """Shortest text that reads back to the same float; NaN, inf, -inf as such."""
    number = float(value)
    return "NaN" if math.isnan(number) else repr(number)


def _jsonl_points(run_id: str, data: dict[str, Columns]) -> Iterator[str]:
    rid = json.dumps(run_id)
    for key, (steps, values, times) in data.items():
        head = f'{{"run_id":{rid},"key":{json.dumps(key, ensure_ascii=False)},'
        for step, value, t in zip(steps, values, times, strict=True):
            shown = json.dumps(_plain(value))
            yield f'{head}"step":{int(step)},"value":{shown},"time":{float(t)!r}}}\n'


def _arrow_points(
    run_id: str,
    data: dict[str, Columns],
    schema: Any,
) -> Any:
    pa, _ = _pyarrow()
    keys: list[str] = []
    steps: list[int] = []
    values: list[float] = []
    times: list[float] = []
    for key, (s, v, t) in data.items():
        keys += [key] * len(s)
        steps += s
        values += v
        times += t
    return pa.table(
        {
            "run_id": [run_id] * len(steps),
            "key": keys,
            "step": steps,
            "value": values,
            "time": times,
        },
        schema=schema,
    )


def _pyarrow() -> tuple[Any, Any]:
    try:
        import pyarrow
        import pyarrow.parquet
    except ImportError:
        raise CliError(
            "Parquet export needs pyarrow, which is not installed; install it with "
            "pip install 'labnotebook[parquet]', or export --format csv or jsonl"
        ) from None
    return pyarrow, pyarrow.parquet


# ---------------------------------------------------------------------- db


@main.group("db")
def db_group() -> None:
    """Inspect and upgrade the schema of a SQL store."""


def _sql_store() -> SqlStore:
    url = _state().settings().store_url
    if url.startswith(("http://", "https://")):
        raise CliError(
            f"db commands work on a database, not a tracking server ({url}); give "
            "the server's own sqlite:/// or postgresql:// URL with --store"
        )
    return SqlStore(url, upgrade=False)


@contextlib.contextmanager
def _database(store: SqlStore) -> Iterator[sa.Engine]:
    try:
        yield store.engine
    except sa.exc.DBAPIError as exc:
        raise _translate(exc, store.url) from exc
    finally:
        store.close()


@db_group.command("upgrade")
@store_option
def db_upgrade_command() -> None:
    """Bring the store's schema to the newest migration (safe to repeat)."""
    store = _sql_store()
    with _database(store) as engine:
        before = migrate.current_revision(engine)
        migrate.upgrade(engine)
        after = migrate.current_revision(engine)
    name = _safe_url(store.url)
    if before == after:
        click.echo(f"{name} is already at the newest revision {after}")
    else:
        click.echo(f"upgraded {name} from {before or 'an empty database'} to {after}")


@db_group.command("current")
@store_option
def db_current_command() -> None:
    """Print the store's schema revision and whether it is the newest."""
    store = _sql_store()
    with _database(store) as engine:
        revision = migrate.current_revision(engine)
    known = [rev for rev, _ in migrate.migrations()]
    if revision is None:
        click.echo("none (no labnotebook schema yet; run: labnotebook db upgrade)")
    elif revision == known[-1]:
        click.echo(f"{revision} (newest)")
    elif revision in known:
        click.echo(f"{revision} (newer migrations exist; run: labnotebook db upgrade)")
    else:
        click.echo(
            f"{revision} (unknown to labnotebook {__version__}: the store was "
            "upgraded by a newer version; upgrade labnotebook)"
        )


@db_group.command("history")
def db_history_command() -> None:
    """List the migrations of this version of labnotebook, oldest first."""
    for revision, description in migrate.migrations():
        click.echo(f"{revision}  {description}")


# -------------------------------------------------------------------- sync


@main.command("sync")
@click.option(
    "--all",
    "everything",
    is_flag=True,
    help="Send every spool file to the store named in its header, whatever --store "
    "says.",
)
@store_option
def sync_command(everything: bool) -> None:
    """Send data left in spool files by processes that ended before sending it."""
    state = _state()
    settings = state.settings()
    waiting = _spooled_stores(settings)
    refused: list[str] = []

    if not everything:
        notebook = state.notebook
        sent = _sync_into(notebook, refused)
        click.echo(f"sent {sent} batches to {_shown(notebook.store.url)}")
        others = sum(n for url, n in waiting.items() if url != notebook.store.url)
        if others:
            _err(
                f"{_plural(others, 'spool file')} for other stores waiting; send "
                "them with labnotebook sync --all"
            )
        _refused_error(refused)
        return

    failed = 0
    for url in waiting:
        try:
            notebook = Notebook(settings.replace(url=url))
            try:
                sent = _sync_into(notebook, refused)
            finally:
                notebook.close()
        except StoreError as exc:
            failed += 1
            _err(f"could not send to {_shown(url)}: {' '.join(str(exc).split())}")
            continue
        click.echo(f"sent {sent} batches to {_shown(url)}")
    if not waiting:
        click.echo("no spool files to send")
    if failed:
        raise CliError(
            f"{failed} of {len(waiting)} stores could not take their data; it stays "
            "in the spool for the next labnotebook sync"
        )
    _refused_error(refused)


def _sync_into(notebook: Notebook, refused: list[str]) -> int:
    """notebook.sync(), printing each batch the store refused as it goes."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", RuntimeWarning)
        try:
            return notebook.sync()
        finally:
            for warning in caught:
                message = str(warning.message)
                if "store refused a batch" in message:
                    refused.append(message)
                _err(message)


def _refused_error(refused: list[str]) -> None:
    if refused:
        raise CliError(
            f"the store refused {len(refused)} batch(es); they are kept in the "
            ".rejected files named above and are not sent again"
        )


def _spooled_stores(settings: Settings) -> dict[str, int]:
    """Store URL -> number of spool files of ended processes waiting for it."""
    counts: dict[str, int] = {}
    for path in spool_files(settings.spool_dir):
        found = read_spool_file(path)
        if found is None:
            continue  # its process is still running and sends it itself
        url = found[0].get("url")
        if url:
            counts[url] = counts.get(url, 0) + 1
    return counts


def _shown(url: str) -> str:
    return url if url.startswith(("http://", "https://")) else _safe_url(url)


# ------------------------------------------------------------------ delete


@main.command("delete")
@click.argument("run_ids", metavar="RUN...", nargs=-1)
@click.option(
    "--where", metavar="FILTER", help="Delete every run matching this filter."
)
@click.option(
    "--experiment", metavar="NAME", help="With --where: only this experiment."
)
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@store_option
def delete_command(
    run_ids: tuple[str, ...], where: str | None, experiment: str | None, yes: bool
) -> None:
    """Delete runs and everything logged to them.

    Name runs by id (or unique prefix), or select them with --where and/or
    --experiment. Asks for confirmation unless --yes is given.
    """
    if run_ids and (where or experiment):
        raise click.UsageError("give run ids or --where/--experiment, not both")
    if not run_ids and not (where or experiment):
        raise click.UsageError(
            "name the runs to delete (labnotebook delete RUN...) or select them "
            "with --where FILTER"
        )

    notebook = _notebook()
    if run_ids:
        records = [notebook.get_run(run_id).record for run_id in run_ids]
        chosen = list(
            {r.id: (r.id, r.name, r.experiment, r.status) for r in records}.values()
        )
    else:
        frame = notebook.runs(where, experiment=experiment)
        chosen = list(
            zip(
                frame["id"],
                frame["name"],
                frame["experiment"],
                frame["status"],
                strict=True,
            )
        )
    if not chosen:
        click.echo("no runs match; nothing deleted")
        return

    count = _plural(len(chosen), "run")
    if not yes:
        click.echo(f"About to delete {count}:")
        for run_id, name, exp, status in chosen[:CONFIRM_LISTED]:
            click.echo(f"  {run_id[:8]}  {name}  ({exp}, {status})")
        if len(chosen) > CONFIRM_LISTED:
            click.echo(f"  ... and {len(chosen) - CONFIRM_LISTED} more")
        them = "it" if len(chosen) == 1 else "them"
        click.confirm(f"Delete {count} and everything logged to {them}?", abort=True)

    ids = [run_id for run_id, *_ in chosen]
    if len(ids) > CONFIRM_LISTED:
        with click.progressbar(
            ids, label="deleting", file=sys.stderr, hidden=not sys.stderr.isatty()
        ) as progress:
            for run_id in progress:
                notebook.delete_run(run_id)
    else:
        for run_id in ids:
            notebook.delete_run(run_id)
    click.echo(f"deleted {count}")


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


# ------------------------------------------------------------- experiments


@main.group("experiments", invoke_without_command=True)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "csv", "json"]),
    default="table",
    show_default=True,
    help="Output format of the list.",
)
@store_option
@click.pass_context
def experiments_group(ctx: click.Context, fmt: str) -> None:
    """List experiments with their number of runs (or rename one)."""
    if ctx.invoked_subcommand is not None:
        return
    frame = _notebook().experiments()
    if fmt == "csv":
        _echo_csv(frame)
    elif fmt == "json":
        _echo_json(list(_records(frame)))
    elif frame.empty:
        _err("no experiments yet")
    else:
        rows = frame.to_dict("records")
        table = [
            _Column("NAME", [str(r["name"]) for r in rows], min_width=MIN_SHRUNK_WIDTH),
            _Column("RUNS", [str(r["runs"]) for r in rows], right=True),
            _Column("CREATED", [_cell(r["created_at"]) for r in rows]),
        ]
        for line in _render(table, _terminal_width()):
            click.echo(line)


@experiments_group.command("rename")
@click.argument("old")
@click.argument("new")
@store_option
def experiments_rename_command(old: str, new: str) -> None:
    """Rename experiment OLD to NEW (its runs follow)."""
    check_name(new, "new experiment name")
    renamed = _notebook().store.rename_experiment(old, new)
    click.echo(
        f"renamed experiment {old!r} to {renamed.name!r} "
        f"({_plural(renamed.run_count, 'run')})"
    )


# ------------------------------------------------------------------- serve


@main.command("serve")
@click.option(
    "--host",
    metavar="ADDRESS",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on.",
)
@click.option(
    "--port",
    metavar="N",
    type=click.IntRange(1, 65535),
    default=DEFAULT_PORT,
    show_default=True,
    help="Port to listen on.",
)
@click.option(
    "--workers",
    metavar="N",
    type=click.IntRange(min=1),
    default=2,
    show_default=True,
    help="Worker processes.",
)
@click.option(
    "--threads",
    metavar="N",
    type=click.IntRange(min=1),
    default=32,
    show_default=True,
    help="Threads per worker; each open dashboard's live stream holds one.",
)
@click.option(
    "--token",
    metavar="TOKEN",
    envvar="LABNOTEBOOK_TOKEN",
    help="Write token clients must send (required unless --host is a loopback "
    "address).",
)
@click.option(
    "--read-token",
    metavar="TOKEN",
    envvar="LABNOTEBOOK_READ_TOKEN",
    help="Read-only token, for dashboards and notebooks (needs --token too).",
)
@store_option
def serve_command(
    host: str,
    port: int,
    workers: int,
    threads: int,
    token: str | None,
    read_token: str | None,
) -> None:
    """Run the tracking server and dashboard on the store.

    Listening on anything but a loopback address (127.0.0.1, ::1, localhost)
    needs --token.
    """
    from .server import serve  # Flask, gunicorn and the dashboard load only here

    serve(
        _state().settings().store_url,
        host=host,
        port=port,
        workers=workers,
        threads=threads,
        token=token or None,
        read_token=read_token or None,
    )
