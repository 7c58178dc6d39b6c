"""Hugging Face Transformers: a callback that records a ``Trainer`` in labnotebook.

    from labnotebook.integrations.transformers import LabnotebookCallback

    trainer = Trainer(model, args, train_dataset=data,
                      callbacks=[LabnotebookCallback(experiment="glue")])

See docs/integrations.md.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .._artifacts import check_artifact_name
from .._errors import LabnotebookError
from ._common import RunOwner, json_safe, missing, params_note, split_logs

try:
    from transformers import TrainerCallback
except ImportError as exc:
    raise missing("Hugging Face Transformers", "transformers", exc) from None

if TYPE_CHECKING:
    from transformers import TrainerControl, TrainerState, TrainingArguments

    from .._notebook import Notebook
    from .._run import Run

__all__ = ["LabnotebookCallback"]

logger = logging.getLogger(__name__)


class LabnotebookCallback(TrainerCallback):  # type: ignore[misc]
    """Log a ``Trainer``'s arguments and model config as params, then its logs.

    Only the main process logs (``state.is_world_process_zero``).

    run: an active run to log to; the callback then never finishes it.
    name, experiment, params, tags: options of :func:`labnotebook.start` for the
        run the callback starts when training begins (and finishes when it ends).
    notebook: where to start that run (default: ``labnotebook.current()``).
    log_checkpoints: store each checkpoint folder the Trainer saves
        (``checkpoint-<step>`` in ``output_dir``) as a checkpoint of the run.
    checkpoint_name: the name of those checkpoints in the run.
    """

    def __init__(
        self,
        run: Run | None = None,
        *,
        name: str | None = None,
        experiment: str | None = None,
        params: Mapping[str, Any] | Any = None,
        tags: list[str] | str | None = None,
        notebook: Notebook | None = None,
        log_checkpoints: bool = False,
        checkpoint_name: str = "model",
    ):
        self._owner = RunOwner(
            run,
            name=name,
            experiment=experiment,
            params=params,
            tags=tags,
            notebook=notebook,
        )
        self._training = False
        self._log_checkpoints = bool(log_checkpoints)
        self._checkpoint_name = check_artifact_name(checkpoint_name)

    @property
    def run(self) -> Run | None:
        """The run being logged to (``None`` until training begins)."""
        return self._owner.run

    def on_train_begin(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        **kwargs: Any,
    ) -> None:
        if not state.is_world_process_zero:
            return
        self._training = True
        found = self._training_params(args, kwargs.get("model"))
        starting = not self._owner.started
        if starting:
            self._owner.add_defaults(found)
        try:
            run = self._owner.active()
            # A run that an evaluation before training started already holds them.
            known = run.params
            if not starting and any(
                known.get(key) != value for key, value in json_safe(found).items()
            ):
                run.note(params_note("Trainer parameters", found))
        except LabnotebookError as exc:
            logger.warning("could not start logging this training: %s", exc)

    def _training_params(self, args: TrainingArguments, model: Any) -> dict[str, Any]:
        arguments = args.to_dict()  # type: ignore[no-untyped-call]
        found: dict[str, Any] = {"training_args": json_safe(arguments)}
        if model is None:
            return found
        found["model"] = {
            "class": type(model).__name__,
            "params": sum(int(p.numel()) for p in model.parameters()),
            "trainable_params": sum(
                int(p.numel()) for p in model.parameters() if p.requires_grad
            ),
        }
        config = getattr(model, "config", None)
        if config is not None and hasattr(config, "to_dict"):
            found["model_config"] = json_safe(config.to_dict())
        return found

    def on_log(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        logs: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        if not state.is_world_process_zero or not logs:
            return
        if not self._owner.started:
            # trainer.evaluate() before train() starts the run: with the same
            # params as training would, since a run's params are fixed at start.
            self._owner.add_defaults(self._training_params(args, kwargs.get("model")))
        metrics, others = split_logs(logs)
        self._owner.log(metrics, state.global_step, others)

    def on_save(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        **kwargs: Any,
    ) -> None:
        if not self._log_checkpoints or not state.is_world_process_zero:
            return
        folder = os.path.join(args.output_dir or "", f"checkpoint-{state.global_step}")
        if os.path.isdir(folder):
            self._owner.save_checkpoint(
                folder, state.global_step, self._checkpoint_name
            )

    def on_evaluate(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        **kwargs: Any,
    ) -> None:
        # trainer.evaluate() after training logged to the run again: end it again.
        if state.is_world_process_zero and not self._training:
            self._owner.finish("finished")

    def on_train_end(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        **kwargs: Any,
    ) -> None:
        if not state.is_world_process_zero:
            return
        self._training = False
        self._owner.finish("finished")
