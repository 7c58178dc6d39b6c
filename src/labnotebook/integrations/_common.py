"""What the framework adapters share: owning a run, JSON-safe params, metric splits."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._errors import LabnotebookError, ValidationError
from .._values import (
    MAX_JSON_DEPTH,
    check_key,
    check_name,
    check_tags,
    to_float,
    to_json,
)

if TYPE_CHECKING:
    from .._config import Settings
    from .._notebook import Notebook
    from .._run import Run

logger = logging.getLogger(__name__)

#: Longest text kept for a value that is not JSON (its ``str()``).
MAX_TEXT = 1000


def missing(package: str, pip_name: str, exc: ImportError) -> ImportError:
    """The error raised when a framework cannot be imported."""
    error = ImportError(
        f"this labnotebook integration needs {package}, which cannot be imported "
        f"({exc}); install it with: pip install {pip_name}"
    )
    error.__cause__ = exc
    return error


def json_safe(value: object, depth: int = 0) -> Any:
    """``value`` as plain JSON; what is not JSON becomes its (shortened) ``str()``.

    Framework configs hold devices, dtypes, callables and enums that labnotebook's
    own conversion refuses; an adapter keeps their text instead of failing.
    """
    if depth >= MAX_JSON_DEPTH - 1:
        return _text(value)
    if isinstance(value, Mapping):
        return {_text(key): json_safe(item, depth + 1) for key, item in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [json_safe(item, depth + 1) for item in value]
    if type(value).__name__ == "Namespace" and hasattr(value, "__dict__"):
        return json_safe(vars(value), depth)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        # Field by field, so one dtype or device in a config dataclass keeps its
        # text without turning the whole config into one string.
        fields = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
        return json_safe(fields, depth)
    if isinstance(value, str):
        return _text(value, limit=None)
    try:
        return to_json(value, "a value")
    except ValidationError:
        return _text(value)


def _text(value: object, limit: int | None = MAX_TEXT) -> str:
    text = value if isinstance(value, str) else str(value)
    if limit is not None and len(text) > limit:
        text = text[: limit - 3] + "..."
    text = text.replace("\x00", "\\x00")
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def split_logs(
    logs: Mapping[str, Any], prefix: str = ""
) -> tuple[dict[str, float], dict[str, Any]]:
    """Split a framework's logs into metric values and other (JSON) values.

    Numbers (and 0-d arrays or tensors) become metrics named ``prefix + key``;
    strings and other values are returned apart, made JSON-safe. Keys that are
    not valid metric keys are skipped with a logged warning.
    """
    metrics: dict[str, float] = {}
    others: dict[str, Any] = {}
    for key, value in logs.items():
        name = f"{prefix}{key}"
        try:
            check_key(name)
        except ValidationError as exc:
            logger.warning("skipped %r: %s", name, exc)
            continue
        if value is None or isinstance(value, (str, bytes)):
            others[name] = json_safe(value)
            continue
        try:
            metrics[name] = to_float(name, value)
        except ValidationError:
            others[name] = json_safe(value)
    return metrics, others


class RunOwner:
    """The run an adapter logs to: one it was given, or one it starts when needed.

    run: an active run to log to (the adapter never finishes it).
    name, experiment, params, tags: options of :func:`labnotebook.start` for a run
        the adapter starts (and finishes) itself.
    notebook: the notebook to start it in (default: ``labnotebook.current()``).
    """

    def __init__(
        self,
        run: Run | None,
        *,
        name: str | None,
        experiment: str | None,
        params: Mapping[str, Any] | Any,
        tags: list[str] | str | None,
        notebook: Notebook | None,
    ):
        from .._notebook import Notebook
        from .._run import Run

        if run is not None:
            if not isinstance(run, Run):
                raise ValidationError(
                    f"run must be a labnotebook Run, got {type(run).__name__}; "
                    "pass the run returned by labnotebook.start()"
                )
            given = [
                option
                for option, value in (
                    ("name", name),
                    ("experiment", experiment),
                    ("params", params),
                    ("tags", tags),
                    ("notebook", notebook),
                )
                if value is not None
            ]
            if given:
                raise ValidationError(
                    f"pass either run= or the options of a new run, not both; "
                    f"{', '.join(given)} would be ignored for run {run.id[:8]}"
                )
            if not run.is_active:
                raise ValidationError(
                    f"run {run.id[:8]} is not active (it is {run.status}); pass a run "
                    "from labnotebook.start(), or call run.resume() first"
                )
        if notebook is not None and not isinstance(notebook, Notebook):
            raise ValidationError(
                "notebook must be a labnotebook Notebook, got "
                f"{type(notebook).__name__}"
            )
        self.run = run
        self.owned = run is None
        self.name = None if name is None else check_name(name, "run name")
        self.experiment = (
            None if experiment is None else check_name(experiment, "experiment name")
        )
        self.tags = check_tags(tags)
        self.params: dict[str, Any] = {}
        if params is not None:
            self.add_params(params)
        self.notebook = notebook
        #: The store settings and run id a spawned process reopens the run from.
        self.handed: tuple[Settings, str] | None = None
        #: Whether this process handed its run to spawned processes.
        self.handed_out = False

    def __getstate__(self) -> dict[str, Any]:
        """What a process started by ``spawn`` receives (Lightning's ddp_spawn).

        Notebooks and runs hold threads and connections, which do not pickle. The
        run is started here, so that this process and the new ones know its id,
        and ended here; the new process reopens it from the same store.
        """
        if not self.owned:
            run_id = self.run.id[:8] if self.run is not None else "?"
            raise ValidationError(
                f"run {run_id} was given with run= and cannot be logged to from "
                "processes started with spawn (Lightning's strategy='ddp_spawn'): "
                "let the adapter start the run (name=, experiment=, ...), or use "
                "strategy='ddp'"
            )
        state = dict(self.__dict__)
        if self.handed is None:
            run = self.get()
            if run.is_active:
                run.finish("finished")
            assert self.notebook is not None  # set by get()
            state["handed"] = (self.notebook.settings, run.id)
            self.handed_out = True
        state["run"] = None
        state["notebook"] = None
        return state

    def add_params(self, params: Mapping[str, Any] | Any) -> None:
        """Merge ``params`` into those of the run the adapter will start."""
        converted = json_safe(params)
        if not isinstance(converted, dict):
            raise ValidationError(
                f"params must be a dict (or an object convertible to one), got "
                f"{type(params).__name__}"
            )
        self.params.update(converted)

    def add_defaults(self, found: Mapping[str, Any]) -> None:
        """Add params the adapter found; those given by the user win."""
        self.params = {**json_safe(found), **self.params}

    @property
    def started(self) -> bool:
        return self.run is not None

    def get(self) -> Run:
        """The run, started now if the adapter owns it and it was not started yet."""
        if self.run is None and self.handed is not None:
            from .._notebook import Notebook

            settings, run_id = self.handed
            self.notebook = Notebook(settings)
            self.run = self.notebook.get_run(run_id)
        if self.run is None:
            from .._api import current
            from .._notebook import DEFAULT_EXPERIMENT

            notebook = self.notebook = self.notebook or current()
            self.run = notebook.start(
                self.name,
                experiment=self.experiment or DEFAULT_EXPERIMENT,
                params=self.params,
                tags=self.tags,
            )
        return self.run

    def active(self) -> Run:
        """The run, resumed first if the adapter finished a run it owns."""
        run = self.get()
        if not run.is_active and self.owned:
            run.resume()
        return run

    def log(
        self,
        metrics: Mapping[str, float],
        step: int | None,
        fields: Mapping[str, Any] | None = None,
    ) -> None:
        """Log metric values (and fields); a problem is logged as a warning.

        Training never stops because of labnotebook: a value it refuses is
        reported through the ``logging`` module and the step goes on.
        """
        if not metrics and not fields:
            return
        try:
            self.active().log(metrics, step=step, fields=fields or None)
        except LabnotebookError as exc:
            logger.warning("could not log %s: %s", sorted(metrics), exc)

    def save_checkpoint(self, path: str | Path, step: int | None, name: str) -> None:
        """Store a checkpoint file or folder; a problem is logged as a warning."""
        try:
            self.active().save_checkpoint(Path(path), step=step, name=name)
        except (LabnotebookError, OSError) as exc:
            logger.warning("could not store checkpoint %s: %s", path, exc)

    def finish(self, status: str, error: str | None = None) -> None:
        """Finish the run if the adapter owns it; else only flush it."""
        run = self.run
        if run is None:
            return
        if not run.is_active:
            if self.handed_out and status != "finished":
                # The spawned processes that logged the run failed; only this
                # process hears of it.
                try:
                    run.resume(system_metrics=False)
                    run.finish(status, error=error)
                except LabnotebookError as exc:
                    logger.warning("could not mark run %s %s: %s", run.id, status, exc)
            return
        if self.owned:
            run.finish(status, error=error)
        else:
            run.flush()


def params_note(title: str, params: Mapping[str, Any]) -> str:
    """A Markdown note that shows ``params`` as indented JSON."""
    import json

    text = json.dumps(json_safe(params), indent=2, ensure_ascii=False)
    return f"{title}\n\n```json\n{text}\n```"
