"""LabnotebookLogger records a real Lightning Trainer's run."""

from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
import textwrap
from argparse import Namespace
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from labnotebook import Notebook, Settings, ValidationError

pl = pytest.importorskip(
    "lightning.pytorch",
    reason="PyTorch Lightning is not installed (pip install lightning)",
)
torch = pytest.importorskip("torch", reason="PyTorch is not installed")

from labnotebook.integrations.lightning import LabnotebookLogger  # noqa: E402


class Tiny(pl.LightningModule):  # type: ignore[misc]
    def __init__(self, lr: float = 0.05, hidden: int = 8, fail_at: int = -1) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.net = torch.nn.Sequential(
            torch.nn.Linear(4, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, 1)
        )

    def training_step(self, batch: Any, index: int) -> Any:
        if self.global_step == self.hparams.fail_at:
            raise RuntimeError("loss diverged")
        x, y = batch
        loss = torch.nn.functional.mse_loss(self.net(x), y)
        self.log("train/loss", loss)
        return loss

    def validation_step(self, batch: Any, index: int) -> None:
        x, y = batch
        self.log("val/loss", torch.nn.functional.mse_loss(self.net(x), y))

    def test_step(self, batch: Any, index: int) -> None:
        x, y = batch
        self.log("test/loss", torch.nn.functional.mse_loss(self.net(x), y))

    def configure_optimizers(self) -> Any:
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)


def loader() -> Any:
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(32, 4, generator=generator)
    data = torch.utils.data.TensorDataset(x, x.sum(dim=1, keepdim=True))
    return torch.utils.data.DataLoader(data, batch_size=8)


def trainer(logger: LabnotebookLogger, tmp_path: Path, epochs: int = 2) -> Any:
    return pl.Trainer(
        max_epochs=epochs,
        logger=logger,
        log_every_n_steps=1,
        accelerator="cpu",
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )


def test_fit_records_params_metrics_and_status(
    notebook: Notebook, tmp_path: Path
) -> None:
    logger = LabnotebookLogger(
        notebook=notebook,
        experiment="tiny",
        name="lightning-fit",
        params={"data": {"rows": 32}, "device": torch.device("cpu")},
        tags=["lightning"],
    )
    logger.log_hyperparams(Namespace(seed=7, layers=(4, 8, 1)))
    trainer(logger, tmp_path).fit(Tiny(), loader(), loader())

    run = notebook.get_run(logger.version)
    assert logger.experiment.id == run.id
    assert logger.name == "tiny"
    assert run.status == "finished"
    assert run.name == "lightning-fit"
    assert run.tags == ["lightning"]
    assert run.params == {
        "data": {"rows": 32},
        "device": "cpu",
        "seed": 7,
        "layers": [4, 8, 1],
    }
    # The module's hyperparameters arrive after the run started: a note.
    [note] = run.notes()
    assert note.text.startswith("Hyperparameters")
    assert '"lr": 0.05' in note.text

    summary = run.summary
    assert summary["train/loss"].count == 8
    assert summary["train/loss"].last_step == 7
    assert summary["val/loss"].count == 2
    assert summary["epoch"].max == 1


def test_hyperparameters_given_as_params_make_no_note(
    notebook: Notebook, tmp_path: Path
) -> None:
    model = Tiny(hidden=4)
    logger = LabnotebookLogger(notebook=notebook, params=model.hparams)
    trainer(logger, tmp_path, epochs=1).fit(model, loader())

    run = notebook.get_run(logger.version)
    assert run.params == {"lr": 0.05, "hidden": 4, "fail_at": -1}
    assert run.notes() == []


def test_test_after_fit_logs_to_the_same_run(
    notebook: Notebook, tmp_path: Path
) -> None:
    logger = LabnotebookLogger(notebook=notebook, prefix="pl/")
    fit = trainer(logger, tmp_path, epochs=1)
    model = Tiny()
    fit.fit(model, loader())
    fit.test(model, loader())

    run = notebook.get_run(logger.version)
    assert run.status == "finished"
    assert run.summary["pl/train/loss"].count == 4
    assert run.summary["pl/test/loss"].count == 1


def test_failure_inside_training_fails_the_run(
    notebook: Notebook, tmp_path: Path
) -> None:
    logger = LabnotebookLogger(notebook=notebook)
    with pytest.raises(RuntimeError, match="loss diverged"):
        trainer(logger, tmp_path).fit(Tiny(fail_at=3), loader())

    run = notebook.get_run(logger.version)
    assert run.status == "failed"
    assert "loss diverged" in (run.record.error or "")
    assert run.summary["train/loss"].count == 3


class Interrupted(Tiny):
    def training_step(self, batch: Any, index: int) -> Any:
        if self.global_step == 2:
            raise KeyboardInterrupt
        return super().training_step(batch, index)


def test_ctrl_c_kills_the_run(notebook: Notebook, tmp_path: Path) -> None:
    logger = LabnotebookLogger(notebook=notebook)
    handler = signal.getsignal(signal.SIGINT)
    try:
        # Lightning ends the process after a KeyboardInterrupt.
        with pytest.raises(SystemExit):
            trainer(logger, tmp_path).fit(Interrupted(), loader())
    finally:
        signal.signal(signal.SIGINT, handler)

    run = notebook.get_run(logger.version)
    assert run.status == "killed"
    assert run.summary["train/loss"].count == 2


def test_requeue_signal_kills_the_run(notebook: Notebook) -> None:
    logger = LabnotebookLogger(notebook=notebook)
    logger.log_metrics({"loss": 0.5}, step=0)
    logger.finalize("finished")
    assert notebook.get_run(logger.version).status == "killed"


def test_given_run_is_left_to_its_owner(notebook: Notebook, tmp_path: Path) -> None:
    with notebook.start("mine", params={"lr": 0.05}) as run:
        logger = LabnotebookLogger(run)
        trainer(logger, tmp_path, epochs=1).fit(Tiny(), loader())
        assert run.is_active
        assert logger.version == run.id
        run.log(extra=1.0)

    stored = notebook.get_run(run.id)
    assert stored.status == "finished"
    assert stored.params == {"lr": 0.05}
    assert stored.summary["train/loss"].count == 4
    assert stored.summary["extra"].count == 1


def test_bad_options_are_refused(notebook: Notebook) -> None:
    with (
        notebook.start("mine") as run,
        pytest.raises(ValidationError, match="either run= or"),
    ):
        LabnotebookLogger(run, experiment="other")
    with pytest.raises(ValidationError, match="not active"):
        LabnotebookLogger(run)
    with pytest.raises(ValidationError, match="must be a labnotebook Run"):
        LabnotebookLogger("abc")  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="prefix must be a string"):
        LabnotebookLogger(prefix=3)  # type: ignore[arg-type]


def test_checkpoints_are_stored_with_the_run(
    notebook: Notebook, tmp_path: Path
) -> None:
    logger = LabnotebookLogger(
        notebook=notebook, log_checkpoints=True, checkpoint_name="tiny"
    )
    fit = pl.Trainer(
        max_epochs=2,
        logger=logger,
        log_every_n_steps=1,
        accelerator="cpu",
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[
            pl.callbacks.ModelCheckpoint(dirpath=tmp_path / "ckpt", save_top_k=-1)
        ],
    )
    fit.fit(Tiny(), loader())

    run = notebook.get_run(logger.version)
    stored = run.artifacts(kind="checkpoint", name="tiny")
    assert [a.step for a in stored] == [3, 7]
    assert [a.meta.get("filename") for a in stored] == [
        "epoch=0-step=4.ckpt",
        "epoch=1-step=8.ckpt",
    ]
    restored = notebook.load_checkpoint(run.id, name="tiny", dest=tmp_path / "back")
    state = torch.load(restored, weights_only=False)
    assert state["global_step"] == 8


@dataclass
class Optim:
    dtype: Any = None
    betas: tuple[float, float] = (0.9, 0.99)


@dataclass
class Config:
    root: Path = Path("/data")
    optim: Optim = field(default_factory=Optim)


def test_dataclass_configs_keep_their_fields(notebook: Notebook) -> None:
    # A dtype deep inside a config keeps its text; the rest stays filterable.
    logger = LabnotebookLogger(
        notebook=notebook, params={"config": Config(optim=Optim(torch.bfloat16))}
    )
    logger.log_hyperparams(Namespace(extra=Optim()))
    logger.log_metrics({"loss": 0.5}, step=0)
    logger.finalize("success")

    assert notebook.get_run(logger.version).params == {
        "config": {
            "root": "/data",
            "optim": {"dtype": "torch.bfloat16", "betas": [0.9, 0.99]},
        },
        "extra": {"dtype": None, "betas": [0.9, 0.99]},
    }


SPAWN = """
import torch
import lightning.pytorch as pl
import labnotebook as lab
from labnotebook.integrations.lightning import LabnotebookLogger


class Tiny(pl.LightningModule):
    def __init__(self):
        super().__init__()
        self.net = torch.nn.Linear(4, 1)

    def training_step(self, batch, index):
        if {fail!r} and self.global_step == 1:
            raise RuntimeError("loss diverged")
        x, y = batch
        loss = torch.nn.functional.mse_loss(self.net(x), y)
        self.log("train/loss", loss)
        return loss

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.05)


if __name__ == "__main__":
    lab.init({url!r}, home={home!r}, flush_interval=0.05)
    x = torch.randn(32, 4)
    data = torch.utils.data.TensorDataset(x, x.sum(dim=1, keepdim=True))
    logger = LabnotebookLogger(name="spawned")
    pl.Trainer(
        max_epochs=1, logger=logger, log_every_n_steps=1, accelerator="cpu",
        devices=2, strategy="ddp_spawn", enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False,
        default_root_dir={root!r},
    ).fit(Tiny(), torch.utils.data.DataLoader(data, batch_size=8))
    print("version", logger.version)
"""


def spawn(settings: Settings, tmp_path: Path, fail: bool) -> Any:
    script = tmp_path / "train.py"
    script.write_text(
        textwrap.dedent(
            SPAWN.format(
                url=settings.url,
                home=str(tmp_path / "h"),
                root=str(tmp_path / "r"),
                fail=fail,
            )
        )
    )
    return subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=240,
        env={**os.environ, "LABNOTEBOOK_HOME": str(tmp_path / "elsewhere")},
    )


def test_ddp_spawn_logs_one_run_from_rank_zero(
    notebook: Notebook, settings: Settings, tmp_path: Path
) -> None:
    # The spawned processes never run lab.init(): the logger takes the store along.
    done = spawn(settings, tmp_path, fail=False)
    assert done.returncode == 0, done.stderr[-3000:]

    [record] = notebook.store.list_runs()
    assert f"version {record.id}" in done.stdout
    assert record.name == "spawned"
    assert record.status == "finished"
    # 32 rows, 2 processes, batches of 8: 2 steps, logged by rank 0 only.
    summary = notebook.get_run(record.id).summary
    assert (summary["train/loss"].count, summary["train/loss"].last_step) == (2, 1)


def test_ddp_spawn_failure_fails_the_run(
    notebook: Notebook, settings: Settings, tmp_path: Path
) -> None:
    done = spawn(settings, tmp_path, fail=True)
    assert done.returncode == 1

    [record] = notebook.store.list_runs()
    assert record.status == "failed"
    assert "loss diverged" in (record.error or "")
    assert notebook.get_run(record.id).summary["train/loss"].count == 1


def test_a_given_run_is_not_handed_to_spawned_processes(notebook: Notebook) -> None:
    with notebook.start("mine") as run:
        with pytest.raises(ValidationError, match="strategy='ddp'"):
            pickle.dumps(LabnotebookLogger(run))
        # One the logger starts is: started and ended here, reopened there.
        logger = LabnotebookLogger(notebook=notebook)
        pickle.loads(pickle.dumps(logger))
        assert notebook.get_run(logger.version).status == "finished"


def test_checkpoints_saved_between_logged_steps_keep_their_step(
    notebook: Notebook, tmp_path: Path
) -> None:
    # Saved every 3 steps, logged every 5: each checkpoint at its own step.
    logger = LabnotebookLogger(notebook=notebook, log_checkpoints=True)
    pl.Trainer(
        max_epochs=2,
        logger=logger,
        log_every_n_steps=5,
        accelerator="cpu",
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[
            pl.callbacks.ModelCheckpoint(
                dirpath=tmp_path / "ckpt", every_n_train_steps=3, save_top_k=-1
            )
        ],
    ).fit(Tiny(), loader())

    stored = notebook.get_run(logger.version).artifacts(kind="checkpoint")
    assert [(a.meta.get("filename"), a.step) for a in stored] == [
        ("epoch=0-step=3.ckpt", 2),
        ("epoch=1-step=6.ckpt", 5),
    ]


def test_test_and_validate_after_fit_repeat_no_hyperparameters_note(
    notebook: Notebook, tmp_path: Path
) -> None:
    # Lightning logs the module's hyperparameters at each fit, validate and test.
    logger = LabnotebookLogger(notebook=notebook)
    fit = trainer(logger, tmp_path, epochs=1)
    model = Tiny()
    fit.fit(model, loader())
    fit.validate(model, loader())
    fit.test(model, loader())

    [note] = notebook.get_run(logger.version).notes()
    assert note.text.startswith("Hyperparameters")
