"""The ``labnotebook`` command line, against real SQLite and PostgreSQL stores.

Runs are seeded through the Python API; every command is called through click's
test runner with ``--store`` given explicitly, as a user would.
"""

from __future__ import annotations

import io
import json
import math
import os
import socket
import stat
import subprocess
import sys
import textwrap
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import psycopg
import pytest
import sqlalchemy as sa
from click.testing import CliRunner, Result

import labnotebook
from labnotebook import Notebook, Settings
from labnotebook._spool import Spool
from labnotebook._store import migrate
from labnotebook._store.base import Batch, RunCreate
from labnotebook.cli import main

# Variables a developer's shell may hold that would change what the CLI does.
CLEAN_ENV: dict[str, str | None] = {
    "LABNOTEBOOK_URL": None,
    "LABNOTEBOOK_TOKEN": None,
    "LABNOTEBOOK_READ_TOKEN": None,
    "COLUMNS": None,
    "NO_COLOR": None,
}
PG_ADMIN = os.environ.get(
    "LABNOTEBOOK_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test"
)
Invoke = Callable[..., Result]


def _explain(result: Result) -> str:
    text = f"exit code {result.exit_code}\n--- output\n{result.output}"
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        text += "\n--- exception\n" + "".join(
            traceback.format_exception(result.exception)
        )
    return text


@pytest.fixture
def cli(store_url: str, settings: Settings) -> Invoke:
    """Run ``labnotebook --store <the test's store> ARGS``; check the exit code."""

    def invoke(
        *args: str,
        code: int = 0,
        input: str | None = None,
        store: str | None = store_url,
        env: dict[str, str | None] | None = None,
        color: bool = False,
    ) -> Result:
        runner = CliRunner(
            env={**CLEAN_ENV, "LABNOTEBOOK_HOME": settings.home, **(env or {})}
        )
        argv = ["--store", store, *args] if store else list(args)
        result = runner.invoke(main, argv, input=input, color=color)
        assert result.exit_code == code, _explain(result)
        assert "Traceback" not in result.stderr, _explain(result)
        return result

    return invoke


@pytest.fixture
def seeded(notebook: Notebook) -> dict[str, str]:
    """Four runs in two experiments; returns run ids by name."""
    ids: dict[str, str] = {}
    with notebook.start(
        "baseline",
        experiment="mnist",
        params={
            "lr": 0.001,
            "optim": {"name": "adam", "betas": [0.9, 0.999]},
            "seed": 1,
        },
        tags=["baseline", "v1"],
    ) as run:
        for step in range(20):
            run.log(loss=1 / (step + 1), acc=step / 20)
        run.log(loss=math.nan, step=20)
        run.log(loss=math.inf, step=21)
        run.log({"val/loss": -math.inf}, step=21)
        run.note("converged nicely\nsecond line", step=10)
        ids["baseline"] = run.id
    time.sleep(0.01)
    with notebook.start(
        "fast",
        experiment="mnist",
        params={"lr": 0.01, "optim": {"name": "sgd"}, "seed": "random"},
    ) as run:
        for step in range(5):
            run.log(loss=0.5 - step / 100)
        ids["fast"] = run.id
    time.sleep(0.01)
    with notebook.start("cifar-run", experiment="cifar", params={"lr": 0.1}) as run:
        run.log(acc=0.25)
        ids["cifar-run"] = run.id
    time.sleep(0.01)
    with pytest.raises(RuntimeError, match="loss diverged"):
        _fail(notebook, ids)
    return ids


def _fail(notebook: Notebook, ids: dict[str, str]) -> None:
    with notebook.start("broken", experiment="mnist") as run:
        ids["broken"] = run.id
        run.log(loss=2.0)
        raise RuntimeError("loss diverged")


# ------------------------------------------------------------------ general


def test_version_and_help() -> None:
    runner = CliRunner(env=CLEAN_ENV)
    result = runner.invoke(main, ["--version"])
    assert result.exit_code == 0
    assert labnotebook.__version__ in result.output

    result = runner.invoke(main, ["--help"])
    assert result.exit_code == 0
    for command in (
        "ls",
        "show",
        "export",
        "db",
        "sync",
        "delete",
        "experiments",
        "serve",
    ):
        assert command in result.output


def test_unsupported_store_url_is_a_clean_error(tmp_path: Path) -> None:
    runner = CliRunner(env={**CLEAN_ENV, "LABNOTEBOOK_HOME": str(tmp_path)})
    result = runner.invoke(main, ["--store", "mysql://db/x", "ls"])
    assert result.exit_code == 1
    assert result.output.startswith("Error: store URL scheme 'mysql'")
    assert "Traceback" not in result.output


def test_unreachable_store_is_named_with_its_password_hidden(tmp_path: Path) -> None:
    runner = CliRunner(env={**CLEAN_ENV, "LABNOTEBOOK_HOME": str(tmp_path)})
    url = "postgresql://postgres:hunter2@127.0.0.1:1/lab"
    for args in (["ls"], ["show", "abcd"], ["db", "current"]):
        result = runner.invoke(main, ["--store", url, *args])
        assert result.exit_code == 1, result.output
        lines = result.output.strip().splitlines()
        assert len(lines) == 1, result.output
        assert lines[0].startswith("Error: store postgresql://postgres:***@127.0.0.1:1")
        assert "unavailable" in lines[0]
        assert "hunter2" not in result.output


def test_store_option_after_the_command_and_from_the_environment(
    cli: Invoke, seeded: dict[str, str], store_url: str
) -> None:
    after = cli("ls", "--store", store_url, store=None)
    from_env = cli("ls", store=None, env={"LABNOTEBOOK_URL": store_url})
    for result in (after, from_env):
        assert seeded["baseline"][:8] in result.output


# ---------------------------------------------------------------------- ls


def _table(output: str) -> list[list[str]]:
    return [line.split() for line in output.strip().splitlines()]


def test_ls_lists_runs_newest_first(cli: Invoke, seeded: dict[str, str]) -> None:
    rows = _table(cli("ls").stdout)
    assert rows[0][:6] == ["ID", "NAME", "EXPERIMENT", "STATUS", "STARTED", "DURATION"]
    assert [row[0] for row in rows[1:]] == [
        seeded[name][:8] for name in ("broken", "cifar-run", "fast", "baseline")
    ]
    assert rows[1][1:4] == ["broken", "mnist", "failed"]
    assert rows[4][1:4] == ["baseline", "mnist", "finished"]
    assert rows[4][-2:] == ["baseline,", "v1"]


def test_ls_selects_sorts_and_limits(cli: Invoke, seeded: dict[str, str]) -> None:
    names = lambda result: [row[1] for row in _table(result.stdout)[1:]]  # noqa: E731

    assert names(cli("ls", "--experiment", "cifar")) == ["cifar-run"]
    assert names(cli("ls", "--where", "params.lr < 0.05")) == ["fast", "baseline"]
    assert names(cli("ls", "--where", 'tags has "baseline"')) == ["baseline"]
    assert names(
        cli("ls", "--where", "params.lr > 0", "--sort", "params.lr", "--asc")
    ) == ["baseline", "fast", "cifar-run"]
    assert names(cli("ls", "--where", "params.lr > 0", "--sort", "params.lr")) == [
        "cifar-run",
        "fast",
        "baseline",
    ]

    limited = cli("ls", "--limit", "2")
    assert names(limited) == ["broken", "cifar-run"]
    assert "showing 2 of 4 runs" in limited.stderr
    assert "showing" not in cli("ls", "--limit", "0").stderr


def test_ls_extra_columns(cli: Invoke, seeded: dict[str, str]) -> None:
    result = cli(
        "ls",
        "--experiment",
        "mnist",
        "--columns",
        "params.lr,params.optim.name,metrics.loss.min,metrics.loss",
    )
    lines = result.stdout.splitlines()
    header = lines[0].split()
    assert header[-4:] == [
        "params.lr",
        "params.optim.name",
        "metrics.loss.min",
        "metrics.loss",
    ]
    baseline = next(line for line in lines if line.startswith(seeded["baseline"][:8]))
    assert baseline.split()[-4:] == ["0.001", "adam", "0.05", "inf"]
    # A column no run has is blank, not an error.
    broken = next(line for line in lines if line.startswith(seeded["broken"][:8]))
    assert broken.split()[-2:] == ["2", "2"]


def test_ls_fits_the_terminal_width(cli: Invoke, notebook: Notebook) -> None:
    with notebook.start(
        "a-very-long-run-name-" * 5,
        experiment="exp",
        tags=["some", "tags", "that", "take", "room"],
    ):
        pass
    result = cli("ls", "--columns", "params.x", env={"COLUMNS": "80"})
    assert all(len(line) <= 80 for line in result.stdout.splitlines())
    assert "a-very-long-run-name-a…" in result.stdout or "…" in result.stdout

    wide = cli("ls")  # not a terminal: nothing is cut
    assert "a-very-long-run-name-" * 5 in wide.stdout


def test_ls_colours_only_on_a_terminal(cli: Invoke, seeded: dict[str, str]) -> None:
    assert "\x1b[" not in cli("ls").output
    coloured = cli("ls", color=True).output
    assert "\x1b[" in coloured
    assert "failed" in coloured


def test_ls_machine_formats(
    cli: Invoke, notebook: Notebook, seeded: dict[str, str]
) -> None:
    expected = notebook.runs()
    columns = [
        "id",
        "name",
        "experiment",
        "status",
        "started_at",
        "duration",
        "tags",
        "params.lr",
        "metrics.loss.max",
    ]

    as_csv = pd.read_csv(
        io.StringIO(
            cli(
                "ls", "--format", "csv", "--columns", "params.lr,metrics.loss.max"
            ).stdout
        )
    )
    assert list(as_csv.columns) == columns
    assert list(as_csv["id"]) == list(expected["id"])
    assert [json.loads(t) for t in as_csv["tags"]] == list(expected["tags"])

    as_json = json.loads(
        cli("ls", "--format", "json", "--columns", "params.lr,metrics.loss.max").stdout
    )
    assert [row["id"] for row in as_json] == list(expected["id"])
    by_name = {row["name"]: row for row in as_json}
    assert list(by_name["baseline"]) == columns
    assert by_name["baseline"]["metrics.loss.max"] == "Infinity"
    assert by_name["baseline"]["params.lr"] == 0.001
    assert by_name["broken"]["params.lr"] is None
    assert by_name["baseline"]["tags"] == ["baseline", "v1"]

    assert (
        json.loads(cli("ls", "--format", "json", "--where", "params.lr > 5").stdout)
        == []
    )


def test_ls_without_runs(cli: Invoke) -> None:
    result = cli("ls")
    assert result.stdout == ""
    assert "no runs match" in result.stderr


@pytest.mark.parametrize(
    ("option", "value", "bad"),
    [
        ("--where", "params.lr << 3", "<"),
        ("--where", 'status = "done"', '"done"'),
        ("--sort", "metrics.loss.mean", "metrics"),
        ("--columns", "name,metrics.loss.mean", "metrics"),
    ],
)
def test_bad_filter_shows_a_caret_under_the_column(
    cli: Invoke, seeded: dict[str, str], option: str, value: str, bad: str
) -> None:
    result = cli("ls", option, value, code=2)
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert lines[0].startswith("Error: ")
    text = value.split(",")[-1]
    shown = next(i for i, line in enumerate(lines) if line.strip() == text)
    caret = lines[shown + 1]
    assert caret.strip() == "^"
    position = caret.index("^") - lines[shown].index(text)
    assert text[position:].startswith(bad)


def test_columns_that_the_runs_table_lacks(cli: Invoke, seeded: dict[str, str]) -> None:
    result = cli("ls", "--columns", "metrics.loss.count", code=2)
    assert "'metrics.loss.count' cannot be shown as a column" in result.stderr


# -------------------------------------------------------------------- show


def test_show_a_run(cli: Invoke, seeded: dict[str, str]) -> None:
    run_id = seeded["baseline"]
    lines = cli("show", run_id[:6]).stdout.splitlines()
    assert lines[0] == f"run {run_id}"
    header = lines[1 : lines.index("")]
    fields = dict(line.split(None, 1) for line in header)
    assert fields["name"] == "baseline"
    assert fields["experiment"] == "mnist"
    assert fields["status"] == "finished"
    assert fields["tags"] == "baseline, v1"

    text = "\n".join(lines)
    params = (
        'params\n  lr: 0.001\n  optim:\n    betas: [0.9, 0.999]\n    name: "adam"\n'
    )
    assert params + "  seed: 1\n" in text
    loss = next(line.split() for line in lines if line.strip().startswith("loss "))
    assert loss == ["loss", "22", "inf", "21", "0.05", "inf"]
    val = next(line.split() for line in lines if line.strip().startswith("val/loss"))
    assert val == ["val/loss", "1", "-inf", "21", "-inf", "-inf"]
    assert "step 10]" in text
    assert "    converged nicely\n    second line" in text
    assert "error" not in lines


def test_show_a_failed_run_prints_its_traceback(
    cli: Invoke, seeded: dict[str, str]
) -> None:
    text = cli("show", seeded["broken"]).stdout
    assert "status      failed" in text
    error = text.split("\nerror\n", 1)[1]
    assert "Traceback (most recent call last)" in error
    assert "RuntimeError: loss diverged" in error


def test_show_json(cli: Invoke, notebook: Notebook, seeded: dict[str, str]) -> None:
    data = json.loads(cli("show", "--json", seeded["baseline"]).stdout)
    record = notebook.get_run(seeded["baseline"]).record
    assert data["id"] == record.id
    assert data["params"] == record.params
    assert data["started_at"] == record.started_at
    assert data["metrics"]["loss"]["last"] == "Infinity"
    assert data["metrics"]["loss"]["count"] == 22
    assert data["metrics"]["val/loss"]["min"] == "-Infinity"
    assert data["notes"][0]["text"] == "converged nicely\nsecond line"
    assert data["duration"] == pytest.approx(record.ended_at - record.started_at)


def test_show_unknown_and_ambiguous_ids(cli: Invoke, notebook: Notebook) -> None:
    for digit in "12":
        notebook.store.write(
            Batch(
                run_id="abcd" + digit * 28,
                create=RunCreate(
                    experiment="twins",
                    name=f"twin-{digit}",
                    params={},
                    tags=[],
                    started_at=time.time(),
                ),
            )
        )

    unknown = cli("show", "ffff0000", code=1)
    assert unknown.stderr == "Error: no run with id 'ffff0000'\n"
    ambiguous = cli("show", "abcd", code=1)
    assert "'abcd' matches several runs; give more characters" in ambiguous.stderr
    assert "twin-2" in cli("show", "abcd2").stdout


# ------------------------------------------------------------------ export


def _same(got: Any, expected: Any) -> bool:
    """Equal after an export round trip (times to the microsecond, NaN == NaN)."""
    if isinstance(expected, pd.Timestamp):
        return abs(pd.Timestamp(got) - expected) < pd.Timedelta(1, "us")
    if _missing(expected):
        return _missing(got)
    if isinstance(got, np.ndarray):
        got = got.tolist()
    if isinstance(expected, float) and not isinstance(got, str):
        return float(got) == expected
    if got == expected:
        return True
    # Lists in CSV, and params of mixed types in Parquet, are JSON text.
    return isinstance(got, str) and json.loads(got) == expected


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _read(path: Path | str, fmt: str) -> pd.DataFrame:
    if fmt == "csv":
        return pd.read_csv(path)
    if fmt == "jsonl":
        return pd.read_json(path, lines=True, precise_float=True)
    return pd.read_parquet(path)


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet"])
def test_export_runs_round_trip(
    cli: Invoke, notebook: Notebook, seeded: dict[str, str], tmp_path: Path, fmt: str
) -> None:
    path = tmp_path / f"runs.{fmt}"
    old = os.umask(0o027)
    try:
        result = cli("export", "--output", str(path))
    finally:
        os.umask(old)
    assert f"wrote 4 runs to {path}" in result.stderr
    assert path.stat().st_mode & 0o777 == 0o640  # as any new file: 0o666 & ~umask
    assert [p.name for p in tmp_path.iterdir() if p.suffix == ".partial"] == []

    got = _read(path, fmt)
    expected = notebook.runs()
    assert list(got.columns) == list(expected.columns)
    assert list(got["id"]) == list(expected["id"])
    for column in expected.columns:
        for row, (g, e) in enumerate(zip(got[column], expected[column], strict=True)):
            assert _same(g, e), (column, expected["name"][row], g, e)


def test_export_keeps_nan_and_infinities(
    cli: Invoke, seeded: dict[str, str], tmp_path: Path
) -> None:
    cli(
        "export",
        "--format",
        "jsonl",
        "--where",
        "name = 'baseline'",
        "-o",
        str(tmp_path / "runs.jsonl"),
    )
    line = json.loads((tmp_path / "runs.jsonl").read_text())
    assert line["metrics.loss.last"] == "Infinity"
    assert line["metrics.val/loss.min"] == "-Infinity"
    assert line["params.seed"] == 1

    cli("export", "--format", "csv", "-o", str(tmp_path / "runs.csv"))
    frame = pd.read_csv(tmp_path / "runs.csv")
    assert math.isinf(
        frame.loc[frame["name"] == "baseline", "metrics.loss.last"].item()
    )


def test_export_mixed_param_types_to_parquet(
    cli: Invoke, seeded: dict[str, str], tmp_path: Path
) -> None:
    cli("export", "-o", str(tmp_path / "runs.parquet"))
    frame = pd.read_parquet(tmp_path / "runs.parquet").set_index("name")
    # params.seed is 1 in one run and "random" in another: kept as JSON text.
    assert frame.loc["baseline", "params.seed"] == "1"
    assert frame.loc["fast", "params.seed"] == '"random"'
    assert frame["params.lr"].dtype == "float64"


def _expected_points(notebook: Notebook, run_ids: list[str]) -> pd.DataFrame:
    rows = []
    for run_id in run_ids:
        for key in notebook.get_run(run_id).record.metrics:
            history = notebook.history(run_id, key, with_time=True)
            for step, value, t in zip(
                history.index, history[key], history[f"{key}.time"], strict=True
            ):
                rows.append((run_id, key, int(step), float(value), float(t)))
    return pd.DataFrame(rows, columns=["run_id", "key", "step", "value", "time"])


def _by_point(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.sort_values(["run_id", "key", "step"]).reset_index(drop=True)


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet"])
def test_export_histories_round_trip(
    cli: Invoke, notebook: Notebook, seeded: dict[str, str], tmp_path: Path, fmt: str
) -> None:
    path = tmp_path / f"points.{fmt}"
    result = cli("export", "--histories", "--experiment", "mnist", "-o", str(path))
    mnist = [seeded[name] for name in ("broken", "fast", "baseline")]
    expected = _by_point(_expected_points(notebook, mnist))
    assert f"wrote {len(expected)} points of 3 runs" in result.stderr

    got = _by_point(_read(path, fmt))
    assert list(got.columns) == ["run_id", "key", "step", "value", "time"]
    assert list(got["run_id"]) == list(expected["run_id"])
    assert list(got["key"]) == list(expected["key"])
    assert list(got["step"]) == list(expected["step"])
    np.testing.assert_array_equal(got["value"].astype(float), expected["value"])
    np.testing.assert_array_equal(got["time"], expected["time"])
    values = set(got["value"].astype(float).map(repr))
    assert {"nan", "inf", "-inf"} <= values


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_export_to_standard_output(
    cli: Invoke, notebook: Notebook, seeded: dict[str, str], fmt: str
) -> None:
    result = cli("export", "--format", fmt, "--output", "-")
    got = _read(io.StringIO(result.stdout), fmt)
    assert list(got["id"]) == list(notebook.runs()["id"])
    assert "wrote" not in result.stderr

    points = cli(
        "export", "--histories", "--format", fmt, "-o", "-", "--where", "name = 'fast'"
    )
    got = _read(io.StringIO(points.stdout), fmt)
    assert list(got["step"]) == [0, 1, 2, 3, 4]


def test_export_errors(cli: Invoke, seeded: dict[str, str], tmp_path: Path) -> None:
    parquet = cli("export", "--format", "parquet", "-o", "-", code=2)
    assert "Parquet is a binary format" in parquet.stderr

    missing_folder = cli("export", "-o", str(tmp_path / "nope" / "runs.csv"), code=1)
    assert "Error: cannot write" in missing_folder.stderr

    target = tmp_path / "runs.csv"
    cli("export", "--where", "params.lr <", "-o", str(target), code=2)
    assert not target.exists()
    assert list(tmp_path.glob("*.partial")) == []


def test_export_into_a_named_pipe_writes_into_it(
    cli: Invoke, seeded: dict[str, str], tmp_path: Path
) -> None:
    # A pipe (or a device such as /dev/null) given as --output is written into;
    # it is never replaced by a regular file.
    out = tmp_path / "out"
    out.mkdir()
    fifo = out / "runs.csv"
    os.mkfifo(fifo)
    got: list[bytes] = []

    def read() -> None:
        with open(fifo, "rb") as f:
            got.append(f.read())

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    cli("export", "-o", str(fifo))
    reader.join(10)
    assert got and got[0].startswith(b"id,")
    assert len(got[0].splitlines()) == len(seeded) + 1
    assert stat.S_ISFIFO(fifo.stat().st_mode)
    assert [p.name for p in out.iterdir()] == ["runs.csv"]


def test_export_parquet_without_pyarrow(
    cli: Invoke,
    seeded: dict[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    result = cli("export", "-o", str(tmp_path / "runs.parquet"), code=1)
    assert "pip install 'labnotebook[parquet]'" in result.stderr
    assert not (tmp_path / "runs.parquet").exists()


# ------------------------------------------------------------------ delete


def test_delete_asks_first(
    cli: Invoke, notebook: Notebook, seeded: dict[str, str]
) -> None:
    run_id = seeded["fast"]
    refused = cli("delete", run_id[:8], input="n\n", code=1)
    assert "About to delete 1 run:" in refused.output
    assert f"{run_id[:8]}  fast  (mnist, finished)" in refused.output
    assert "Aborted" in refused.output
    assert run_id in set(notebook.runs()["id"])

    accepted = cli("delete", run_id[:8], input="y\n")
    assert "deleted 1 run" in accepted.output
    assert run_id not in set(notebook.runs()["id"])

    cli("delete", "--yes", seeded["cifar-run"])
    assert set(notebook.runs()["name"]) == {"baseline", "broken"}


def test_delete_by_filter(
    cli: Invoke, notebook: Notebook, seeded: dict[str, str]
) -> None:
    result = cli("delete", "--where", "params.lr < 0.05", input="y\n")
    assert "About to delete 2 runs:" in result.output
    assert "Delete 2 runs and everything logged to them?" in result.output
    assert set(notebook.runs()["name"]) == {"cifar-run", "broken"}

    cli("delete", "--experiment", "cifar", "--yes")
    assert set(notebook.runs()["name"]) == {"broken"}

    none = cli("delete", "--where", "params.lr > 100", "--yes")
    assert "no runs match; nothing deleted" in none.output


def test_delete_errors(cli: Invoke, seeded: dict[str, str]) -> None:
    assert "name the runs to delete" in cli("delete", code=2).stderr
    both = cli("delete", seeded["fast"], "--where", "params.lr > 0", code=2)
    assert "not both" in both.stderr
    unknown = cli("delete", "--yes", seeded["fast"], "ffff9999", code=1)
    assert "no run with id 'ffff9999'" in unknown.stderr
    assert seeded["fast"][:8] in cli("ls").stdout  # nothing deleted


# ------------------------------------------------------------- experiments


def test_experiments_list_and_rename(cli: Invoke, seeded: dict[str, str]) -> None:
    rows = _table(cli("experiments").stdout)
    assert rows[0] == ["NAME", "RUNS", "CREATED"]
    assert [row[:2] for row in rows[1:]] == [["cifar", "1"], ["mnist", "3"]]

    data = json.loads(cli("experiments", "--format", "json").stdout)
    assert [(e["name"], e["runs"]) for e in data] == [("cifar", 1), ("mnist", 3)]

    renamed = cli("experiments", "rename", "cifar", "cifar10")
    assert renamed.stdout == "renamed experiment 'cifar' to 'cifar10' (1 run)\n"
    assert cli("show", seeded["cifar-run"]).stdout.count("cifar10") == 1

    assert (
        "already exists"
        in cli("experiments", "rename", "mnist", "cifar10", code=1).stderr
    )
    assert (
        "no experiment named 'nope'"
        in cli("experiments", "rename", "nope", "x", code=1).stderr
    )
    assert "whitespace" in cli("experiments", "rename", "mnist", " x", code=1).stderr


# ---------------------------------------------------------------------- db


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_database(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of a database that has never seen labnotebook."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'fresh.db'}"
    make: Callable[[], str] = request.getfixturevalue("make_pg_database")
    return make()


def test_db_upgrade_is_idempotent(empty_database: str, tmp_path: Path) -> None:
    runner = CliRunner(env={**CLEAN_ENV, "LABNOTEBOOK_HOME": str(tmp_path)})

    def run(*args: str) -> str:
        result = runner.invoke(main, ["--store", empty_database, *args])
        assert result.exit_code == 0, _explain(result)
        return result.stdout

    head = migrate.head_revision()
    assert run("db", "current").startswith("none (no labnotebook schema yet")
    assert run("db", "upgrade").endswith(f"from an empty database to {head}\n")
    assert run("db", "upgrade").endswith(f"is already at the newest revision {head}\n")
    assert run("db", "current") == f"{head} (newest)\n"
    assert (
        "no runs match" in runner.invoke(main, ["--store", empty_database, "ls"]).stderr
    )


def test_db_history_lists_migrations_without_a_store() -> None:
    result = CliRunner(env=CLEAN_ENV).invoke(
        main, ["--store", "postgresql://nobody@127.0.0.1:1/x", "db", "history"]
    )
    assert result.exit_code == 0
    assert result.stdout.splitlines() == [
        f"{revision}  {description}" for revision, description in migrate.migrations()
    ]


def test_db_current_on_a_used_store(cli: Invoke, seeded: dict[str, str]) -> None:
    assert cli("db", "current").stdout == f"{migrate.head_revision()} (newest)\n"


# -------------------------------------------------------------------- sync

OFFLINE_SCRIPT = """
import math, os, signal
import labnotebook as lab

notebook = lab.Notebook(lab.Settings(
    url=os.environ["STORE"], home=os.environ["HOME_DIR"], flush_interval=0.05,
    retry_interval=0.05,
))
run = notebook.start("offline", experiment="sync", params={"lr": 0.1})
for step in range(50):
    run.log(loss=1 / (step + 1), step=step)
run.log(loss=math.nan, step=50)
run.note("written while the store was down")
spooled = not run.flush(30)
print(run.id, spooled, flush=True)
os.kill(os.getpid(), signal.SIGKILL)  # dies without finishing the run
"""


def _admin(sql: str) -> None:
    with psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=5) as conn:
        conn.execute(sql)


def _store_down(
    kind: str, where: Path, request: pytest.FixtureRequest
) -> tuple[str, Callable[[], None]]:
    """A store URL that cannot be reached yet, and a function that brings it up."""
    if kind == "sqlite":
        # A folder where the database file belongs: SQLite cannot open it.
        path = where / "lab.db"
        path.mkdir(parents=True)
        return f"sqlite:///{path}", path.rmdir
    url: str = request.getfixturevalue("make_pg_database")()
    name = sa.engine.make_url(url).database
    _admin(f'DROP DATABASE "{name}"')  # the server is up, the database is not there
    return url, lambda: _admin(f'CREATE DATABASE "{name}"')


def _killed_writer(store: str, home: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(OFFLINE_SCRIPT)],
        env={**os.environ, "STORE": store, "HOME_DIR": home},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _run_id(proc: subprocess.Popen[str]) -> str:
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == -9, err
    run_id, spooled = out.split()
    assert spooled == "True", err
    return run_id


@pytest.fixture
def offline_runs(
    request: pytest.FixtureRequest, tmp_path: Path, settings: Settings
) -> dict[str, Any]:
    """Two processes killed while their stores were down, and those stores."""
    kind = "postgresql" if "postgresql" in settings.url else "sqlite"
    first, first_up = _store_down(kind, tmp_path / "first", request)
    second, second_up = _store_down("sqlite", tmp_path / "second", request)
    procs = [_killed_writer(url, settings.home) for url in (first, second)]
    ids = [_run_id(proc) for proc in procs]
    return {"urls": (first, second), "ids": ids, "up": (first_up, second_up)}


def _check_replayed(url: str, run_id: str, home: str) -> None:
    notebook = Notebook(Settings(url=url, home=home))
    try:
        history = notebook.history(run_id, "loss")
        assert list(history.index) == list(range(51))
        assert history["loss"].iloc[0] == 1.0
        assert math.isnan(history["loss"].iloc[50])
        assert [n.text for n in notebook.get_run(run_id).notes()] == [
            "written while the store was down"
        ]
        assert notebook.get_run(run_id).params == {"lr": 0.1}
    finally:
        notebook.close()


def test_sync_sends_what_killed_processes_spooled(
    cli: Invoke, offline_runs: dict[str, Any], settings: Settings
) -> None:
    (first, second), (first_id, second_id) = offline_runs["urls"], offline_runs["ids"]
    spool = Path(settings.home) / "spool"
    assert len(list(spool.glob("*.spool"))) == 2

    # Both stores still down: nothing is lost, nothing is sent.
    down = cli("sync", store=first, code=1)
    assert "unavailable" in down.stderr
    assert len(list(spool.glob("*.spool"))) == 2

    offline_runs["up"][0]()
    result = cli("sync", store=first)
    assert result.stdout.startswith("sent ")
    assert int(result.stdout.split()[1]) >= 1
    assert "1 spool file for other stores waiting" in result.stderr
    _check_replayed(first, first_id, settings.home)

    # --all sends each file to the store in its header; one still down is kept.
    partial = cli("sync", "--all", code=1)
    assert "could not send to sqlite:///" in partial.stderr
    assert "1 of 1 stores could not take their data" in partial.stderr
    assert len(list(spool.glob("*.spool"))) == 1

    offline_runs["up"][1]()
    done = cli("sync", "--all")
    assert done.stdout.startswith("sent ")
    assert second in done.stdout
    _check_replayed(second, second_id, settings.home)
    assert list(spool.glob("*.spool")) == []
    assert cli("sync", "--all").stdout == "no spool files to send\n"
    assert cli("sync", store=first).stdout.startswith("sent 0 batches")


# ------------------------------------------------------------------- serve


def test_serve_help() -> None:
    result = CliRunner(env=CLEAN_ENV).invoke(main, ["serve", "--help"])
    assert result.exit_code == 0
    for option in (
        "--host",
        "--port",
        "--workers",
        "--token",
        "--read-token",
        "--store",
    ):
        assert option in result.output


@pytest.mark.timeout(60)
def test_serve_refuses_a_public_address_without_a_token(tmp_path: Path) -> None:
    runner = CliRunner(env={**CLEAN_ENV, "LABNOTEBOOK_HOME": str(tmp_path)})
    result = runner.invoke(
        main,
        [
            "serve",
            "--store",
            f"sqlite:///{tmp_path / 'lab.db'}",
            "--host",
            "0.0.0.0",
            "--port",
            "1",
        ],
    )
    assert result.exit_code == 1, _explain(result)
    assert result.stderr.startswith("Error: refusing to listen on '0.0.0.0'")


@pytest.mark.timeout(60)
def test_serve_on_an_address_it_cannot_listen_on_is_a_one_line_error(
    tmp_path: Path,
) -> None:
    env = {
        **{k: v for k, v in os.environ.items() if k not in CLEAN_ENV},
        "LABNOTEBOOK_HOME": str(tmp_path),
    }
    command = [
        str(Path(sys.executable).parent / "labnotebook"),
        "serve",
        "--store",
        f"sqlite:///{tmp_path / 'lab.db'}",
        "--token",
        "a-token-of-some-length",
    ]
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        started = time.monotonic()
        in_use = subprocess.run(
            [*command, "--port", str(port)], capture_output=True, text=True, env=env
        )
        # Refused before the server starts, not after gunicorn's retries.
        assert time.monotonic() - started < 4
    unknown = subprocess.run(
        [*command, "--host", "no-such-host.invalid", "--port", str(port)],
        capture_output=True,
        text=True,
        env=env,
    )
    for result, cause in (
        (in_use, f"cannot listen on 127.0.0.1:{port}: "),
        (unknown, f"cannot listen on no-such-host.invalid:{port}: "),
    ):
        assert result.returncode == 1, result.stderr
        assert result.stderr.startswith(f"Error: {cause}"), result.stderr
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "--port" in in_use.stderr
    assert "--host" in unknown.stderr


def test_show_lists_artifacts_and_the_code_version(
    cli: Invoke, notebook: Notebook
) -> None:
    with notebook.start("kept") as run:
        for step in (1, 2, 3):
            run.log(loss=1.0 / step, step=step)
            run.save_checkpoint(b"w" * 100 * step)
        run.attach(b"lr: 1", name="config.yaml")
    text = cli("show", run.id).stdout
    artifacts = text.split("\nartifacts\n", 1)[1].splitlines()
    assert artifacts[0].split() == ["KIND", "NAME", "COUNT", "LAST", "STEP", "SIZE"]
    assert artifacts[1].split() == ["checkpoint", "model", "3", "3", "600", "B"]
    assert artifacts[2].split() == ["file", "config.yaml", "1", "5", "B"]
    assert "  python      CPython " in text or "  python      PyPy " in text

    data = json.loads(cli("show", "--json", run.id).stdout)
    assert [a["name"] for a in data["artifacts"]] == ["model"] * 3 + ["config.yaml"]
    commit = data["environment"]["code"].get("commit")
    if commit:  # run from a git checkout
        assert f"  code        {commit[:12]} " in text


def test_sync_keeps_a_batch_the_store_refuses_apart_and_sends_the_rest(
    cli: Invoke, settings: Settings, notebook: Notebook
) -> None:
    with notebook.start("kept") as kept:
        pass
    spool_dir = Path(settings.home) / "spool"
    gone = uuid.uuid4().hex
    for run_id, status in ((gone, "finished"), (kept.id, "failed")):
        spool = Spool(spool_dir, run_id, settings.url)
        spool.append(Batch(run_id=run_id, status=status))
        spool.close()

    result = cli("sync", code=1)
    assert result.stdout == "sent 1 batches to " + result.stdout.split()[-1] + "\n"
    assert f"run {gone}: store refused a batch (NotFoundError" in result.stderr
    assert "the store refused 1 batch(es)" in result.stderr
    assert notebook.get_run(kept.id).status == "failed"
    assert list(spool_dir.glob("*.spool")) == []
    (rejected,) = spool_dir.glob("*.rejected")
    assert rejected.name.startswith(gone)
    assert cli("sync").stdout.startswith("sent 0 batches")
