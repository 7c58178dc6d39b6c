"""Logging through a Run: values, steps, fields, notes, lifecycle."""

from __future__ import annotations

import math
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from labnotebook import (
    LabnotebookError,
    Notebook,
    Run,
    Settings,
    StoreUnavailableError,
    ValidationError,
    _process,
)


def test_log_and_read_back(notebook: Notebook) -> None:
    with notebook.start("r", experiment="cifar", params={"lr": 0.1}, tags="a") as run:
        for i in range(50):
            run.log(loss=1.0 / (i + 1), acc=i / 50)
        run.log({"val/loss": 0.25}, step=10)

    frame = notebook.history(run.id)
    assert list(frame.columns) == ["acc", "loss", "val/loss"]
    assert frame.index.name == "step"
    assert len(frame) == 50
    assert frame.loc[49, "loss"] == pytest.approx(1 / 50)
    assert frame.loc[10, "val/loss"] == 0.25
    assert math.isnan(frame.loc[11, "val/loss"])

    stored = notebook.get_run(run.id)
    assert stored.status == "finished"
    assert stored.experiment == "cifar"
    assert stored.params == {"lr": 0.1}
    assert stored.tags == ["a"]
    assert stored.summary["loss"].count == 50
    assert stored.summary["loss"].min == pytest.approx(1 / 50)
    assert stored.summary["loss"].max == 1.0
    assert stored.summary["loss"].last_step == 49


def test_auto_step_follows_highest_step(notebook: Notebook) -> None:
    with notebook.start() as run:
        run.log(a=1)  # step 0
        run.log(a=2, step=10)
        run.log(a=3)  # step 11
        run.log(b=4, step=5)
        run.log(a=5)  # step 12
    frame = notebook.history(run.id, "a")
    assert list(frame.index) == [0, 10, 11, 12]


def test_repeated_step_keeps_last_value_and_exact_summary(notebook: Notebook) -> None:
    with notebook.start() as run:
        for i in range(5):
            run.log(x=float(i), step=i)
        run.flush()
        run.log(x=100.0, step=2)  # overwrite a stored step
        run.log(x=-1.0, step=3)
        run.log(x=-7.0, step=3)  # overwrite within one batch
    frame = notebook.history(run.id, "x")
    assert list(frame["x"]) == [0.0, 1.0, 100.0, -7.0, 4.0]
    summary = notebook.get_run(run.id).summary["x"]
    assert summary.count == 5
    assert (summary.min, summary.max, summary.last) == (-7.0, 100.0, 4.0)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (3, 3.0),
        (True, 1.0),
        (np.float32(0.5), 0.5),
        (np.int64(7), 7.0),
        (np.array(2.5), 2.5),
        (Decimal("1.25"), 1.25),
        (float("inf"), math.inf),
        (float("-inf"), -math.inf),
    ],
)
def test_values_are_converted(notebook: Notebook, value: Any, expected: float) -> None:
    with notebook.start() as run:
        run.log(v=value)
    assert notebook.history(run.id, "v")["v"].iloc[0] == expected


def test_nan_and_infinities_round_trip(notebook: Notebook) -> None:
    values = [math.nan, math.inf, -math.inf, 0.0, -0.0, 5e-324, 1.7976931348623157e308]
    with notebook.start() as run:
        for v in values:
            run.log(v=v)
    got = list(notebook.history(run.id, "v")["v"])
    assert math.isnan(got[0])
    assert got[1:] == values[1:]
    assert math.copysign(1, got[4]) == -1 or got[4] == 0.0
    summary = notebook.get_run(run.id).summary["v"]
    assert summary.min == -math.inf and summary.max == math.inf
    assert summary.count == len(values)


def test_all_nan_metric_has_nan_summary(notebook: Notebook) -> None:
    with notebook.start() as run:
        run.log(v=math.nan)
        run.log(v=math.nan)
    summary = notebook.get_run(run.id).summary["v"]
    assert summary.count == 2
    assert math.isnan(summary.min) and math.isnan(summary.max)
    assert math.isnan(summary.last)


def test_fields_are_stored_per_step_and_merged(notebook: Notebook) -> None:
    with notebook.start() as run:
        run.log(loss=1.0, fields={"lr": 0.1, "phase": "warmup"})
        run.log({"acc": 0.5}, step=0, fields={"batch": [1, 2]})
        run.log(step=3, fields={"only": True})
    rows = notebook.store.step_fields(run.id)
    assert rows[0][0] == 0
    assert rows[0][2] == {"lr": 0.1, "phase": "warmup", "batch": [1, 2]}
    assert rows[1][0] == 3 and rows[1][2] == {"only": True}


def test_notes(notebook: Notebook) -> None:
    with notebook.start() as run:
        run.note("# Plateau\nafter epoch 3")
        run.note("second", step=7)
    notes = notebook.get_run(run.id).notes()
    assert [n.text for n in notes] == ["# Plateau\nafter epoch 3", "second"]
    assert notes[1].step == 7
    edited = notebook.store.edit_note(notes[0].id, "edited")
    assert edited.text == "edited"


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda r: r.log(loss="high"), "metric 'loss' must be a number"),
        (lambda r: r.log(loss=None), "metric 'loss' must be a number"),
        (lambda r: r.log(loss=[1, 2]), "single number"),
        (lambda r: r.log(loss=np.array([1.0, 2.0])), "single number"),
        (lambda r: r.log({"": 1.0}), "must not be empty"),
        (lambda r: r.log({"k" * 251: 1.0}), "limit is 250"),
        (lambda r: r.log({"a\nb": 1.0}), "control character"),
        (lambda r: r.log({3: 1.0}), "must be a string"),
        (lambda r: r.log(x=1, step=-1), "step must be between 0"),
        (lambda r: r.log(x=1, step=1.5), "step must be a non-negative integer"),
        (lambda r: r.log(x=1, step="3"), "step must be a non-negative integer"),
        (lambda r: r.log(x=1, step=2**63), "step must be between 0"),
        (lambda r: r.log(), "nothing to log"),
        (lambda r: r.log([1, 2]), "takes a dict"),
        (lambda r: r.log(x=1, fields={"f": object()}), "not JSON"),
        (lambda r: r.log(x=1, fields=[1]), "fields must be a dict"),
        (lambda r: r.note(""), "must not be empty"),
        (lambda r: r.note(3), "must be a string"),
        (lambda r: r.finish("done"), "not a final status"),
    ],
)
def test_bad_input_is_rejected_with_a_clear_message(
    notebook: Notebook, call: Any, message: str
) -> None:
    with notebook.start() as run:
        with pytest.raises(ValidationError, match=message):
            call(run)
        run.log(ok=1.0)
    assert list(notebook.history(run.id).columns) == ["ok"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": ""}, "run name must not be empty"),
        ({"name": "x" * 201}, "limit is 200"),
        ({"experiment": " padded"}, "whitespace"),
        ({"params": [1, 2]}, "params must be a dict"),
        ({"params": {"f": lambda: 1}}, "not JSON"),
        ({"params": {1.5: "x"}}, "JSON keys must be strings"),
        ({"tags": [1]}, "tag must be a string"),
        ({"tags": ["t"] * 2 + [str(i) for i in range(101)]}, "at most 100 tags"),
    ],
)
def test_bad_start_arguments(notebook: Notebook, kwargs: Any, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        notebook.start(**kwargs)


def test_params_are_converted_to_json(notebook: Notebook) -> None:
    import dataclasses
    import pathlib

    @dataclasses.dataclass
    class Opt:
        lr: float = 0.1

    params = {
        "np": np.float64(0.5),
        "arr": np.arange(3),
        "tuple": (1, 2),
        "path": pathlib.Path("/data"),
        "opt": Opt(),
        "nested": {"deep": {"nan": float("nan")}},
        1: "int key",
    }
    run = notebook.start(params=params)
    run.finish()
    assert notebook.get_run(run.id).params == {
        "np": 0.5,
        "arr": [0, 1, 2],
        "tuple": [1, 2],
        "path": "/data",
        "opt": {"lr": 0.1},
        "nested": {"deep": {"nan": "NaN"}},
        "1": "int key",
    }


def test_finished_run_refuses_to_log_until_resumed(notebook: Notebook) -> None:
    run = notebook.start()
    run.log(x=1.0)
    assert run.finish() is True
    with pytest.raises(LabnotebookError, match="resume"):
        run.log(x=2.0)

    again = notebook.get_run(run.id)
    with pytest.raises(LabnotebookError, match="resume"):
        again.log(x=2.0)
    with again.resume():
        assert again.status == "running"
        again.log(x=2.0)
    assert list(notebook.history(run.id, "x").index) == [0, 1]
    assert notebook.get_run(run.id).status == "finished"


def test_exception_inside_with_marks_run_failed(notebook: Notebook) -> None:
    def train() -> str:
        with notebook.start() as run:
            run.log(x=1.0)
            _ = 1 / 0
        return run.id

    with pytest.raises(ZeroDivisionError):
        train()
    run = notebook.get_run(notebook.runs()["id"][0])
    stored = notebook.get_run(run.id)
    assert stored.status == "failed"
    assert stored.record.error is not None
    assert "ZeroDivisionError" in stored.record.error


def test_keyboard_interrupt_marks_run_killed(notebook: Notebook) -> None:
    with pytest.raises(KeyboardInterrupt), notebook.start() as run:
        raise KeyboardInterrupt
    assert notebook.get_run(run.id).status == "killed"


def test_run_ids_can_be_abbreviated(notebook: Notebook) -> None:
    run = notebook.start("short")
    run.finish()
    assert notebook.get_run(run.id[:6]).name == "short"
    with pytest.raises(KeyError, match="no run with id"):
        notebook.get_run("ffffffffffff")


def test_tags_and_rename(notebook: Notebook) -> None:
    with notebook.start("before", tags=["a"]) as run:
        run.add_tags("b", "a")
        run.rename("after")
    stored = notebook.get_run(run.id)
    assert stored.tags == ["a", "b"]
    assert stored.name == "after"


def test_delete_run_removes_everything(notebook: Notebook) -> None:
    with notebook.start() as run:
        run.log(x=1.0, fields={"a": 1})
        run.note("n")
    notebook.delete_run(run.id)
    with pytest.raises(KeyError):
        notebook.get_run(run.id)
    assert notebook.runs().empty


@pytest.mark.parametrize(
    "call",
    [
        lambda nb: nb.start(params={"a": "x\x00y"}),
        lambda nb: nb.start(params={"k\x00": 1}),
        lambda nb: nb.start().log(x=1, fields={"f": "\x00"}),
        lambda nb: nb.start().note("nul \x00 inside"),
    ],
)
def test_nul_characters_are_rejected_on_every_store(
    notebook: Notebook, call: Any
) -> None:
    with pytest.raises(ValidationError, match="NUL"):
        call(notebook)


@pytest.mark.parametrize(
    "call",
    [
        lambda nb: nb.start(params={"a": "x\ud800y"}),
        lambda nb: nb.start(params={"k\udcff": 1}),
        lambda nb: nb.start(name="run \ud800"),
        lambda nb: nb.start(tags=["t\udc80"]),
        lambda nb: nb.start().log(x=1, fields={"f": "\ud800"}),
        lambda nb: nb.start().note("lone \udfff surrogate"),
    ],
)
def test_lone_surrogates_are_rejected_on_every_store(
    notebook: Notebook, call: Any
) -> None:
    with pytest.raises(ValidationError, match="lone surrogate"):
        call(notebook)


def test_history_step_range_and_extreme_steps(notebook: Notebook) -> None:
    top = 2**63 - 1
    with notebook.start() as run:
        for step in (0, 5, 10, top):
            run.log(x=float(step % 1000), step=step)
    assert list(notebook.history(run.id, start=5, stop=11).index) == [5, 10]
    assert list(notebook.history(run.id, start=11).index) == [top]
    assert list(notebook.history(run.id, stop=1).index) == [0]
    assert notebook.history(run.id, stop=0).empty
    with_time = notebook.history(run.id, "x", with_time=True)
    assert list(with_time.columns) == ["x", "x.time"]


@pytest.mark.parametrize(
    ("raised", "status"), [(KeyboardInterrupt, "killed"), (RuntimeError, "failed")]
)
@pytest.mark.parametrize("where", ["_activate", "_sample_system"])
def test_start_interrupted_after_the_run_is_stored_ends_it(
    notebook: Notebook,
    monkeypatch: pytest.MonkeyPatch,
    raised: type[BaseException],
    status: str,
    where: str,
) -> None:
    # Ctrl-C (or a notebook's stop button) can land anywhere in start(); once
    # the run's row exists it must not be left "running".
    def interrupted(*args: Any, **kwargs: Any) -> None:
        raise raised("stopped")

    monkeypatch.setattr(Run, where, interrupted)
    with pytest.raises(raised):
        notebook.start("cut short")
    monkeypatch.undo()
    runs = notebook.runs()
    assert list(runs["status"]) == [status]
    record = notebook.get_run(runs["id"][0]).record
    assert record.ended_at is not None
    if status == "failed":
        assert record.error is not None and "stopped" in record.error
    assert all(run._notebook is not notebook for run in _process.active_runs())


def test_notebook_takes_a_url_or_settings(
    store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LABNOTEBOOK_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("LABNOTEBOOK_SYSTEM_METRICS_INTERVAL", "0")
    nb = Notebook(store_url)
    try:
        assert nb.settings.url == store_url
        with nb.start("by-url") as run:
            run.log({"x": 1.0})
        assert nb.get_run(run.id).name == "by-url"
    finally:
        nb.close()
    with pytest.raises(ValidationError, match=r"store URL or a Settings.*not int"):
        Notebook(5)  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        Notebook("mysql://nowhere/db")


@pytest.mark.parametrize(
    "name", ["flush_interval", "heartbeat_interval", "exit_timeout", "retry_interval"]
)
@pytest.mark.parametrize("value", [0, -1.0, math.nan, math.inf, 1e10, True])
def test_intervals_waited_for_must_be_finite(name: str, value: float) -> None:
    # An infinite or huge wait made the background threads raise OverflowError,
    # leaving runs 'running'.
    with pytest.raises(ValidationError, match=rf"setting {name}=.*at most 31536000"):
        Settings(**{name: value})
    assert getattr(Settings(**{name: 365 * 86400}), name) == 365 * 86400


@pytest.mark.parametrize(
    ("variable", "raw"),
    [
        ("LABNOTEBOOK_FLUSH_INTERVAL", "-1"),
        ("LABNOTEBOOK_EXIT_TIMEOUT", "inf"),
        ("LABNOTEBOOK_CRASH_TIMEOUT", "0"),
        ("LABNOTEBOOK_BUFFER_LIMIT", "5"),
        ("LABNOTEBOOK_CONSOLE_LIMIT", "-5"),
        ("LABNOTEBOOK_CAPTURE_CONSOLE", "sometimes"),
        ("LABNOTEBOOK_SYSTEM_METRICS_INTERVAL", "0.01"),
        ("LABNOTEBOOK_DASHBOARD_URL", "ftp://lab-server"),
    ],
)
def test_a_bad_value_in_the_environment_names_its_variable(
    variable: str, raw: str
) -> None:
    # Values that parse but are out of range were reported as 'setting
    # flush_interval=-1.0', leaving the user to guess where the value came from.
    with pytest.raises(ValidationError, match=rf"^environment variable {variable}="):
        Settings.from_env({variable: raw})
    # An argument wins over the environment, also over a bad value there.
    name = variable.removeprefix("LABNOTEBOOK_").lower()
    good = Settings()
    assert Settings.from_env({variable: raw}, **{name: getattr(good, name)}) == good


def test_repr_never_raises_when_the_store_cannot_be_read(
    notebook: Notebook, monkeypatch: pytest.MonkeyPatch
) -> None:
    with notebook.start("shown") as run:
        run.log(x=1.0)

    def down(run_id: str) -> None:
        raise StoreUnavailableError("the store is down")

    monkeypatch.setattr(notebook.store, "get_run", down)
    assert repr(run) == (
        f"<Run {run.id[:8]} finished (could not read the store: StoreUnavailableError)>"
    )
    unread = Run(notebook, run.id)
    assert repr([unread]) == (
        f"[<Run {run.id[:8]} (could not read the store: StoreUnavailableError)>]"
    )
    monkeypatch.undo()
    assert repr(run) == f"<Run {run.id[:8]} 'shown' finished>"

    stored = notebook.get_run(run.id)
    notebook.delete_run(run.id)
    assert repr(stored) == f"<Run {run.id[:8]} 'shown' finished>"  # as last read
    assert repr(Run(notebook, run.id)) == (
        f"<Run {run.id[:8]} (could not read the store: NotFoundError)>"
    )
