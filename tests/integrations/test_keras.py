"""LabnotebookCallback records a real Keras 3 model.fit (PyTorch backend)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from labnotebook import Notebook, Settings, ValidationError

keras = pytest.importorskip(
    "keras", reason="Keras 3 is not installed (pip install keras)"
)

from labnotebook.integrations.keras import LabnotebookCallback  # noqa: E402


def tiny_model() -> Any:
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input(shape=(4,)),
            keras.layers.Dense(8, activation="relu"),
            keras.layers.Dense(1),
        ]
    )
    model.compile(
        optimizer=keras.optimizers.SGD(learning_rate=0.05), loss="mse", metrics=["mae"]
    )
    return model


def data() -> tuple[np.ndarray, np.ndarray]:
    x = np.random.default_rng(0).normal(size=(32, 4)).astype("float32")
    return x, x.sum(axis=1, keepdims=True)


def test_fit_records_params_metrics_and_status(notebook: Notebook) -> None:
    callback = LabnotebookCallback(
        notebook=notebook,
        experiment="tiny",
        params={"data": "random", "epochs": 99},
        tags="keras",
        batch_size=8,
        log_every_n_batches=2,
    )
    x, y = data()
    tiny_model().fit(
        x,
        y,
        epochs=3,
        batch_size=8,
        validation_split=0.25,
        callbacks=[callback],
        verbose=0,
    )

    assert callback.run is not None
    run = notebook.get_run(callback.run.id)
    assert run.status == "finished"
    assert run.experiment == "tiny"
    assert run.tags == ["keras"]
    params = run.params
    assert params["data"] == "random"
    assert params["epochs"] == 99  # the user's value wins
    assert params["steps_per_epoch"] == 3
    assert params["batch_size"] == 8
    assert params["loss"] == "mse"
    assert params["model"]["params"] == 4 * 8 + 8 + 8 + 1
    assert params["model"]["trainable_params"] == 49
    assert params["optimizer"]["class"] == "SGD"
    assert params["optimizer"]["learning_rate"] == pytest.approx(0.05)

    summary = run.summary
    for key in ("loss", "mae", "val_loss", "val_mae"):
        assert summary[key].count == 3, key
        assert summary[key].last_step == 2, key
    # 9 batches, every second one: 0, 2, 4, 6, 8.
    assert summary["batch/loss"].count == 5
    assert summary["batch/loss"].last_step == 8


def test_given_run_gets_a_note_and_stays_open(notebook: Notebook) -> None:
    x, y = data()
    with notebook.start("mine", params={"lr": 0.05}) as run:
        callback = LabnotebookCallback(run)
        tiny_model().fit(x, y, epochs=2, batch_size=16, callbacks=[callback], verbose=0)
        assert run.is_active
        assert callback.run is run

    stored = notebook.get_run(run.id)
    assert stored.status == "finished"
    assert stored.params == {"lr": 0.05}
    [note] = stored.notes()
    assert note.text.startswith("Keras training parameters")
    assert '"steps_per_epoch": 2' in note.text
    assert stored.summary["loss"].count == 2


def test_failure_inside_fit_fails_the_enclosing_run(notebook: Notebook) -> None:
    def explode(batch: int, logs: Any) -> None:
        if batch == 2:
            raise RuntimeError("loss diverged")

    x, y = data()
    with (
        pytest.raises(RuntimeError, match="loss diverged"),
        notebook.start("failing") as run,
    ):
        tiny_model().fit(
            x,
            y,
            epochs=3,
            batch_size=8,
            callbacks=[
                LabnotebookCallback(run, log_every_n_batches=1),
                keras.callbacks.LambdaCallback(on_train_batch_end=explode),
            ],
            verbose=0,
        )

    stored = notebook.get_run(run.id)
    assert stored.status == "failed"
    assert "loss diverged" in (stored.record.error or "")
    assert stored.summary["batch/loss"].count == 3


SCRIPT = """
import numpy as np
import keras
import labnotebook as lab
from labnotebook.integrations.keras import LabnotebookCallback

lab.init({url!r}, home={home!r}, flush_interval=0.05)

def explode(batch, logs):
    if batch == 1:
        raise RuntimeError("loss diverged")

model = keras.Sequential([keras.Input(shape=(4,)), keras.layers.Dense(1)])
model.compile(optimizer="sgd", loss="mse")
x = np.zeros((16, 4), "float32")
model.fit(
    x,
    x[:, :1],
    batch_size=4,
    callbacks=[
        LabnotebookCallback(name="uncaught", log_every_n_batches=1),
        keras.callbacks.LambdaCallback(on_train_batch_end=explode),
    ],
    verbose=0,
)
"""


def test_uncaught_failure_fails_the_run_it_started(
    notebook: Notebook, settings: Settings, tmp_path: Path
) -> None:
    script = tmp_path / "train.py"
    script.write_text(
        textwrap.dedent(SCRIPT.format(url=settings.url, home=str(tmp_path / "h")))
    )
    done = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "KERAS_BACKEND": "torch"},
    )
    assert done.returncode == 1
    assert "loss diverged" in done.stderr

    [record] = notebook.store.list_runs()
    assert record.name == "uncaught"
    assert record.status == "failed"
    assert "loss diverged" in (record.error or "")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"batch_size": 0}, "batch_size must be an integer of at least 1"),
        ({"log_every_n_batches": -1}, "log_every_n_batches must be an integer"),
        ({"log_every_n_batches": 1.5}, "log_every_n_batches must be an integer"),
        ({"tags": 3}, "tags must be a list of strings"),
    ],
)
def test_bad_options_are_refused(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        LabnotebookCallback(**options)


def test_checkpoints_every_n_epochs(notebook: Notebook, tmp_path: Path) -> None:
    callback = LabnotebookCallback(
        notebook=notebook, checkpoint_every_n_epochs=2, checkpoint_name="tiny.keras"
    )
    x, y = data()
    model = tiny_model()
    model.fit(x, y, epochs=4, batch_size=16, callbacks=[callback], verbose=0)

    assert callback.run is not None
    stored = notebook.get_run(callback.run.id).artifacts(kind="checkpoint")
    assert [(a.name, a.step) for a in stored] == [("tiny.keras", 1), ("tiny.keras", 3)]
    path = notebook.load_checkpoint(callback.run.id, name="tiny.keras", dest=tmp_path)
    restored = keras.saving.load_model(path)
    np.testing.assert_allclose(
        restored.predict(x, verbose=0), model.predict(x, verbose=0)
    )


def test_a_second_fit_continues_the_batch_steps(notebook: Notebook) -> None:
    # Fine-tuning after training the head: two fits, one callback, one run.
    callback = LabnotebookCallback(notebook=notebook, log_every_n_batches=1)
    x, y = data()
    model = tiny_model()
    model.fit(x, y, epochs=2, batch_size=16, callbacks=[callback], verbose=0)
    model.fit(
        x, y, epochs=4, initial_epoch=2, batch_size=16, callbacks=[callback], verbose=0
    )

    assert callback.run is not None
    summary = notebook.get_run(callback.run.id).summary
    assert (summary["loss"].count, summary["loss"].last_step) == (4, 3)
    # 2 batches an epoch: steps 0-3 in the first fit, 4-7 in the second.
    assert (summary["batch/loss"].count, summary["batch/loss"].last_step) == (8, 7)
