"""PyTorch Lightning: a logger that records a ``Trainer``'s run in labnotebook.

    from labnotebook.integrations.lightning import LabnotebookLogger

    trainer = Trainer(logger=LabnotebookLogger(experiment="mnist"))

See docs/integrations.md.
"""

from __future__ import annotations

import logging
import os
import sys
import traceback
from argparse import Namespace
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .._artifacts import check_artifact_name
from .._errors import LabnotebookError, ValidationError
from ._common import RunOwner, json_safe, missing, params_note, split_logs

try:
    from lightning.fabric.loggers.logger import rank_zero_experiment
    from lightning.pytorch.callbacks import ModelCheckpoint
    from lightning.pytorch.loggers import Logger
    from lightning.pytorch.utilities import rank_zero_only
except ImportError as exc:
    raise missing("PyTorch Lightning", "lightning", exc) from None

if TYPE_CHECKING:
    from .._notebook import Notebook
    from .._run import Run

__all__ = ["LabnotebookLogger"]

logger = logging.getLogger(__name__)

#: Lightning's final statuses and the run statuses they become.
STATUSES = {"success": "finished", "failed": "failed", "finished": "killed"}


class LabnotebookLogger(Logger):  # type: ignore[misc]
    """Log a Lightning ``Trainer``'s hyperparameters and metrics to a run.

    run: an active run to log to; the logger then never finishes it.
    name, experiment, params, tags: options of :func:`labnotebook.start` for the
        run the logger starts on first use (and finishes when training ends).
    notebook: where to start that run (default: ``labnotebook.current()``).
    prefix: put before every metric key, e.g. ``"train/"``.
    log_checkpoints: store each checkpoint file a ``ModelCheckpoint`` writes as a
        checkpoint of the run (at the step of the training batch before it).
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
        prefix: str = "",
        log_checkpoints: bool = False,
        checkpoint_name: str = "model",
    ):
        super().__init__()
        if not isinstance(prefix, str):
            raise ValidationError(
                f"prefix must be a string, got {type(prefix).__name__}"
            )
        self._owner = RunOwner(
            run,
            name=name,
            experiment=experiment,
            params=params,
            tags=tags,
            notebook=notebook,
        )
        self._prefix = prefix
        self._log_checkpoints = bool(log_checkpoints)
        self._checkpoint_name = check_artifact_name(checkpoint_name)
        self._stored: set[tuple[str, int, int]] = set()

    @property
    def name(self) -> str:
        """The experiment the run belongs to."""
        if self._owner.run is not None:
            return self._owner.run.experiment
        return self._owner.experiment or "default"

    @property
    def version(self) -> str | None:
        """The run id (``None`` on processes other than rank 0)."""
        if getattr(rank_zero_only, "rank", 0) != 0:
            return None
        run: Run = self.experiment
        return run.id

    @property
    @rank_zero_experiment  # type: ignore[untyped-decorator]
    def experiment(self) -> Run:
        """The run, started on first access when the logger was not given one."""
        return self._owner.get()

    @rank_zero_only  # type: ignore[untyped-decorator]
    def log_hyperparams(
        self, params: Mapping[str, Any] | Namespace, *args: Any, **kwargs: Any
    ) -> None:
        """Record hyperparameters (a dict, possibly nested, or a Namespace).

        Before the run starts they become its params; after, they are added to the
        run as a note (unless its params or an earlier note already hold them),
        since a run's params are fixed when it starts.
        """
        if isinstance(params, Namespace):
            params = vars(params)
        if not params:
            return
        if not self._owner.started:
            self._owner.add_params(params)
            return
        try:
            run = self._owner.active()
            known = run.params
            converted = json_safe(params)
            if any(k not in known or known[k] != v for k, v in converted.items()):
                text = params_note("Hyperparameters", params)
                # Lightning logs them again at each fit, validate and test.
                if all(note.text != text for note in run.notes()):
                    run.note(text)
        except LabnotebookError as exc:
            logger.warning("could not record hyperparameters: %s", exc)

    @rank_zero_only  # type: ignore[untyped-decorator]
    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        """Log numeric metrics at ``step``; other values are skipped."""
        values, _ = split_logs(metrics, self._prefix)
        self._owner.log(values, step)

    @rank_zero_only  # type: ignore[untyped-decorator]
    def after_save_checkpoint(self, checkpoint_callback: ModelCheckpoint) -> None:
        """Store the checkpoint files written since the last call (if asked to)."""
        if not self._log_checkpoints:
            return
        paths = {
            *checkpoint_callback.best_k_models,
            checkpoint_callback.last_model_path,
            checkpoint_callback.best_model_path,
        }
        # The step of the last optimizer step before the save, where its metrics
        # are logged; the run's current step is the last *logged* one, which
        # lags behind when checkpoints and logs are on different intervals.
        saved_at = getattr(checkpoint_callback, "_last_global_step_saved", None)
        step = saved_at - 1 if isinstance(saved_at, int) and saved_at > 0 else None
        for path in sorted(p for p in paths if p and os.path.isfile(p)):
            found = os.stat(path)
            key = (path, found.st_mtime_ns, found.st_size)
            if key not in self._stored:
                self._stored.add(key)
                self._owner.save_checkpoint(path, step, self._checkpoint_name)

    @rank_zero_only  # type: ignore[untyped-decorator]
    def save(self) -> None:
        """Ask the run's writer to send what was logged, without waiting."""
        run = self._owner.run
        if run is not None and run.is_active:
            run.flush(timeout=0)

    @rank_zero_only  # type: ignore[untyped-decorator]
    def finalize(self, status: str) -> None:
        """End the run: ``success`` → finished, ``failed`` → failed (killed for
        Ctrl-C), ``finished`` (a requeue signal) → killed.

        A run the logger was given is only flushed.
        """
        mapped = STATUSES.get(status, "finished")
        error = None
        if mapped == "failed":
            exc_type, exc, tb = sys.exc_info()
            if exc_type is not None and issubclass(exc_type, KeyboardInterrupt):
                mapped = "killed"
            elif exc_type is not None:
                error = "".join(traceback.format_exception(exc_type, exc, tb))
        self._owner.finish(mapped, error)
