"""LabnotebookCallback records a real Hugging Face Trainer (tiny BERT, offline)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from labnotebook import Notebook, ValidationError

transformers = pytest.importorskip(
    "transformers", reason="Transformers is not installed (pip install transformers)"
)
torch = pytest.importorskip("torch", reason="PyTorch is not installed")
pytest.importorskip("accelerate", reason="accelerate is not installed")

from labnotebook.integrations.transformers import LabnotebookCallback  # noqa: E402


def tiny_model() -> Any:
    torch.manual_seed(0)
    config = transformers.BertConfig(
        vocab_size=50,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=37,
        max_position_embeddings=16,
        num_labels=2,
    )
    return transformers.BertForSequenceClassification(config)


def dataset(rows: int = 24) -> list[dict[str, Any]]:
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(1, 50, (rows, 8), generator=generator)
    return [
        {
            "input_ids": ids[i],
            "attention_mask": torch.ones(8, dtype=torch.long),
            "labels": int(ids[i, 0] % 2),
        }
        for i in range(rows)
    ]


def arguments(tmp_path: Path, **options: Any) -> Any:
    settings: dict[str, Any] = {
        "output_dir": str(tmp_path / "out"),
        "per_device_train_batch_size": 4,
        "per_device_eval_batch_size": 8,
        "learning_rate": 1e-3,
        "max_steps": 6,
        "logging_steps": 2,
        "report_to": "none",
        "save_strategy": "no",
        "use_cpu": True,
        "disable_tqdm": True,
    }
    return transformers.TrainingArguments(**{**settings, **options})


class Explode(transformers.TrainerCallback):  # type: ignore[misc]
    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if state.global_step == 3:
            raise RuntimeError("loss diverged")


def test_train_records_params_metrics_and_status(
    notebook: Notebook, tmp_path: Path
) -> None:
    callback = LabnotebookCallback(
        notebook=notebook, experiment="tiny", params={"data": "random"}, tags="hf"
    )
    trainer = transformers.Trainer(
        model=tiny_model(),
        args=arguments(tmp_path, eval_strategy="steps", eval_steps=3),
        train_dataset=dataset(),
        eval_dataset=dataset(8),
        callbacks=[callback],
    )
    trainer.train()

    assert callback.run is not None
    run = notebook.get_run(callback.run.id)
    assert run.status == "finished"
    assert run.experiment == "tiny"
    assert run.tags == ["hf"]
    params = run.params
    assert params["data"] == "random"
    assert params["training_args"]["learning_rate"] == 1e-3
    assert params["training_args"]["max_steps"] == 6
    assert params["training_args"]["hub_token"] == "<HUB_TOKEN>"
    assert params["model_config"]["hidden_size"] == 32
    assert params["model_config"]["num_hidden_layers"] == 2
    assert params["model"]["class"] == "BertForSequenceClassification"
    assert params["model"]["params"] == sum(
        p.numel() for p in trainer.model.parameters()
    )

    summary = run.summary
    assert summary["loss"].count == 3  # steps 2, 4, 6
    assert summary["loss"].last_step == 6
    assert summary["learning_rate"].count == 3
    assert summary["eval_loss"].count == 2  # steps 3, 6
    assert summary["train_runtime"].last_step == 6
    assert "epoch" in summary

    # Evaluating after training logs to the same run and ends it again.
    evaluated = trainer.evaluate()
    again = notebook.get_run(run.id)
    assert again.status == "finished"
    assert again.summary["eval_runtime"].last == evaluated["eval_runtime"]
    assert again.summary["eval_runtime"].last_step == 6


def test_strings_in_logs_become_fields(notebook: Notebook, tmp_path: Path) -> None:
    class Note(transformers.TrainerCallback):  # type: ignore[misc]
        def on_step_end(
            self, args: Any, state: Any, control: Any, **kwargs: Any
        ) -> None:
            if state.global_step == 4:
                trainer.log({"phase": "warm", "ratio": 0.5, "skip": None})

    callback = LabnotebookCallback(notebook=notebook)
    trainer = transformers.Trainer(
        model=tiny_model(),
        args=arguments(tmp_path),
        train_dataset=dataset(),
        callbacks=[callback, Note()],
    )
    trainer.train()

    assert callback.run is not None
    rows = notebook.store.step_fields(callback.run.id)
    assert [(step, fields) for step, _, fields in rows] == [
        (4, {"phase": "warm", "skip": None})
    ]
    assert notebook.get_run(callback.run.id).summary["ratio"].last_step == 4


def test_failure_inside_training_fails_the_enclosing_run(
    notebook: Notebook, tmp_path: Path
) -> None:
    def train(run: Any) -> None:
        transformers.Trainer(
            model=tiny_model(),
            args=arguments(tmp_path, logging_steps=1),
            train_dataset=dataset(),
            callbacks=[LabnotebookCallback(run), Explode()],
        ).train()

    with (
        pytest.raises(RuntimeError, match="loss diverged"),
        notebook.start("failing", params={"lr": 1e-3}) as run,
    ):
        train(run)

    stored = notebook.get_run(run.id)
    assert stored.status == "failed"
    assert "loss diverged" in (stored.record.error or "")
    assert stored.params == {"lr": 1e-3}
    [note] = stored.notes()
    assert note.text.startswith("Trainer parameters")
    # Steps 1 and 2 were logged; step 3 failed before its logs.
    assert stored.summary["loss"].count == 2


def test_only_the_main_process_logs(notebook: Notebook, tmp_path: Path) -> None:
    callback = LabnotebookCallback(notebook=notebook)
    state = transformers.TrainerState(is_world_process_zero=False)
    control = transformers.TrainerControl()
    args = arguments(tmp_path)
    callback.on_train_begin(args, state, control, model=tiny_model())
    callback.on_log(args, state, control, logs={"loss": 1.0})
    callback.on_train_end(args, state, control)
    assert callback.run is None
    assert notebook.store.list_runs() == []


def test_bad_options_are_refused(notebook: Notebook) -> None:
    with pytest.raises(ValidationError, match="notebook must be a labnotebook"):
        LabnotebookCallback(notebook="sqlite:///x.db")  # type: ignore[arg-type]


def test_checkpoints_are_stored_with_the_run(
    notebook: Notebook, tmp_path: Path
) -> None:
    callback = LabnotebookCallback(notebook=notebook, log_checkpoints=True)
    transformers.Trainer(
        model=tiny_model(),
        args=arguments(tmp_path, save_strategy="steps", save_steps=3),
        train_dataset=dataset(),
        callbacks=[callback],
    ).train()

    assert callback.run is not None
    stored = notebook.get_run(callback.run.id).artifacts(kind="checkpoint")
    assert [(a.name, a.step) for a in stored] == [("model", 3), ("model", 6)]
    folder = notebook.load_checkpoint(callback.run.id, dest=tmp_path / "back")
    restored = transformers.BertForSequenceClassification.from_pretrained(folder)
    assert restored.config.hidden_size == 32


def test_evaluating_before_training_keeps_the_params(
    notebook: Notebook, tmp_path: Path
) -> None:
    # A baseline evaluation, then training: one run, with the Trainer's params.
    callback = LabnotebookCallback(notebook=notebook, params={"data": "random"})
    trainer = transformers.Trainer(
        model=tiny_model(),
        args=arguments(tmp_path),
        train_dataset=dataset(),
        eval_dataset=dataset(8),
        callbacks=[callback],
    )
    trainer.evaluate()
    trainer.train()

    assert callback.run is not None
    run = notebook.get_run(callback.run.id)
    assert run.status == "finished"
    assert run.params["data"] == "random"
    assert run.params["training_args"]["max_steps"] == 6
    assert run.params["model"]["class"] == "BertForSequenceClassification"
    assert run.notes() == []
    assert run.summary["eval_loss"].last_step == 0
    assert run.summary["loss"].count == 3
    assert [r.id for r in notebook.store.list_runs()] == [run.id]
