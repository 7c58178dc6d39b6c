"""Keras 3: a callback that records ``model.fit`` in labnotebook.

    from labnotebook.integrations.keras import LabnotebookCallback

    model.fit(x, y, epochs=10, callbacks=[LabnotebookCallback(experiment="mnist")])

See docs/integrations.md.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .._artifacts import check_artifact_name
from .._errors import LabnotebookError, ValidationError
from ._common import RunOwner, json_safe, missing, params_note, split_logs

try:
    import keras
except ImportError as exc:
    raise missing("Keras 3", "keras", exc) from None

if TYPE_CHECKING:
    from .._notebook import Notebook
    from .._run import Run

__all__ = ["LabnotebookCallback"]

logger = logging.getLogger(__name__)


class LabnotebookCallback(keras.callbacks.Callback):  # type: ignore[misc]
    """Log a Keras model's training: its settings as params, then its metrics.

    run: an active run to log to; the callback then never finishes it.
    name, experiment, params, tags: options of :func:`labnotebook.start` for the
        run the callback starts when training begins (and finishes when it ends).
    notebook: where to start that run (default: ``labnotebook.current()``).
    batch_size: the batch size given to ``fit``, recorded as a param (Keras does
        not tell callbacks).
    log_every_n_batches: also log the running metrics every N batches, as
        ``batch/<name>`` at the global batch step (0, the default: only per epoch).
    checkpoint_every_n_epochs: every N epochs, save the model (``model.save``,
        the ``.keras`` format) as a checkpoint of the run at the epoch's step
        (0, the default: never).
    checkpoint_name: the name of those checkpoints in the run; keep the
        ``.keras`` ending so that ``load_checkpoint`` gives a file Keras can load.
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
        batch_size: int | None = None,
        log_every_n_batches: int = 0,
        checkpoint_every_n_epochs: int = 0,
        checkpoint_name: str = "model.keras",
    ):
        super().__init__()
        for option, value, low in (
            ("batch_size", batch_size, 1),
            ("log_every_n_batches", log_every_n_batches, 0),
            ("checkpoint_every_n_epochs", checkpoint_every_n_epochs, 0),
        ):
            if value is None and option == "batch_size":
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValidationError(
                    f"{option} must be an integer of at least {low}, got {value!r}"
                )
        self._owner = RunOwner(
            run,
            name=name,
            experiment=experiment,
            params=params,
            tags=tags,
            notebook=notebook,
        )
        self._batch_size = batch_size
        self._every = log_every_n_batches
        # Counts every batch this callback saw, across fits: a later fit logs
        # after the earlier ones instead of over them.
        self._batches = 0
        self._checkpoint_every = checkpoint_every_n_epochs
        self._checkpoint_name = check_artifact_name(checkpoint_name)

    @property
    def run(self) -> Run | None:
        """The run being logged to (``None`` until training begins)."""
        return self._owner.run

    def on_train_begin(self, logs: Mapping[str, Any] | None = None) -> None:
        found = self._training_params()
        starting = not self._owner.started
        if starting:
            self._owner.add_defaults(found)
        try:
            run = self._owner.active()
            if found and not starting:
                run.note(params_note("Keras training parameters", found))
        except LabnotebookError as exc:
            logger.warning("could not start logging this training: %s", exc)

    def _training_params(self) -> dict[str, Any]:
        found: dict[str, Any] = {}
        settings = self.params or {}
        if settings.get("epochs") is not None:
            found["epochs"] = settings["epochs"]
        if settings.get("steps") is not None:
            found["steps_per_epoch"] = settings["steps"]
        if self._batch_size is not None:
            found["batch_size"] = self._batch_size
        model = self.model
        if model is None:
            return found
        try:
            found["model"] = {
                "name": model.name,
                "params": int(model.count_params()),
                "trainable_params": sum(
                    int(keras.ops.size(w)) for w in model.trainable_weights
                ),
            }
        except ValueError:  # a model that is not built yet has no weights
            found["model"] = {"name": model.name}
        optimizer = getattr(model, "optimizer", None)
        if optimizer is not None:
            found["optimizer"] = json_safe(
                {"class": type(optimizer).__name__, **optimizer.get_config()}
            )
        loss = getattr(model, "loss", None)
        if loss is not None:
            name = getattr(loss, "name", None) or getattr(loss, "__name__", loss)
            found["loss"] = json_safe(name)
        return found

    def on_train_batch_end(
        self, batch: int, logs: Mapping[str, Any] | None = None
    ) -> None:
        step = self._batches
        self._batches += 1
        if self._every and logs and step % self._every == 0:
            values, _ = split_logs(logs, "batch/")
            self._owner.log(values, step)

    def on_epoch_end(self, epoch: int, logs: Mapping[str, Any] | None = None) -> None:
        if logs:
            values, _ = split_logs(logs)
            self._owner.log(values, epoch)
        every = self._checkpoint_every
        if every and (epoch + 1) % every == 0 and self.model is not None:
            self._save_model(epoch)

    def _save_model(self, epoch: int) -> None:
        with tempfile.TemporaryDirectory(prefix="labnotebook-keras-") as folder:
            path = os.path.join(folder, "model.keras")
            try:
                self.model.save(path)
            except (OSError, ValueError, TypeError, NotImplementedError) as exc:
                logger.warning("could not save the model at epoch %d: %s", epoch, exc)
                return
            self._owner.save_checkpoint(path, epoch, self._checkpoint_name)

    def on_train_end(self, logs: Mapping[str, Any] | None = None) -> None:
        self._owner.finish("finished")
