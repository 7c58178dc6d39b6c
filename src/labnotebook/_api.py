"""Module-level functions: one default :class:`Notebook` per process."""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._config import Settings
from ._notebook import DEFAULT_EXPERIMENT, Notebook
from ._run import Run
from ._store.base import Artifact

if TYPE_CHECKING:
    import pandas as pd


_default: Notebook | None = None
_default_lock = threading.Lock()


def init(
    url: str | None = None,
    *,
    token: str | None = None,
    home: str | None = None,
    **settings: Any,
) -> Notebook:
    """Connect to a store and make it the default for the module functions.

    url: ``sqlite:///path.db``, ``postgresql://user@host/db`` or
        ``http://server:port``; default ``LABNOTEBOOK_URL``, else a SQLite file in
        the per-user data folder.
    token: token for a tracking server (default ``LABNOTEBOOK_TOKEN``).
    home: folder for the default store and the spool (``LABNOTEBOOK_HOME``).
    settings: any other :class:`Settings` field, e.g. ``flush_interval=1.0``.
    """
    global _default
    notebook = Notebook(Settings.from_env(url=url, token=token, home=home, **settings))
    with _default_lock:
        previous, _default = _default, notebook
    if previous is not None and previous.store.url != notebook.store.url:
        previous.close()
    return notebook


def current() -> Notebook:
    """The default notebook, created from the environment on first use."""
    global _default
    with _default_lock:
        if _default is None:
            _default = Notebook(Settings.from_env())
        return _default


def start(
    name: str | None = None,
    *,
    experiment: str = DEFAULT_EXPERIMENT,
    params: Mapping[str, Any] | Any = None,
    tags: list[str] | str | None = None,
    system_metrics: bool = True,
) -> Run:
    """Start a run in the default store.

    name: a readable name (default ``run-<6 hex digits>``).
    experiment: the experiment that groups this run (created if new).
    params: hyperparameters, any JSON-compatible dict (numpy values converted).
    tags: a tag or list of tags.
    system_metrics: sample CPU, memory, disk, network and GPU use as ``sys/...``
        metrics while the run is active (every ``system_metrics_interval`` s).
    """
    return current().start(
        name,
        experiment=experiment,
        params=params,
        tags=tags,
        system_metrics=system_metrics,
    )


def get_run(run_id: str) -> Run:
    """The run with this id (or a unique prefix of at least 4 characters)."""
    return current().get_run(run_id)


def runs(
    where: str | None = None,
    *,
    experiment: str | None = None,
    order_by: str | None = None,
    descending: bool = True,
    limit: int | None = None,
) -> pd.DataFrame:
    """Runs as a DataFrame, newest first.

    where: a filter, e.g. ``"params.lr < 1e-3 and metrics.acc.max > 0.9"``
        (see docs/filter-language.md).
    experiment: only runs of this experiment.
    order_by: a field to sort by, e.g. ``"metrics.val/loss.min"``.
    descending: sort direction.
    limit: at most this many runs.
    """
    return current().runs(
        where,
        experiment=experiment,
        order_by=order_by,
        descending=descending,
        limit=limit,
    )


def history(
    run_id: str,
    keys: str | list[str] | None = None,
    *,
    start: int | None = None,
    stop: int | None = None,
    with_time: bool = False,
) -> pd.DataFrame:
    """Metric values of a run as a DataFrame indexed by step."""
    return current().history(run_id, keys, start=start, stop=stop, with_time=with_time)


def experiments() -> pd.DataFrame:
    """All experiments in the default store, with their number of runs."""
    return current().experiments()


def delete_run(run_id: str) -> None:
    """Delete a run and everything logged to it."""
    current().delete_run(run_id)


def sync() -> int:
    """Send spooled batches of ended processes to the default store."""
    return current().sync()


def load_checkpoint(
    run_id: str,
    step: int | None = None,
    name: str = "model",
    *,
    allow_pickle: bool = False,
    map_location: Any = None,
    dest: str | os.PathLike[str] | None = None,
) -> Any:
    """A run's checkpoint, read back (the latest one unless ``step`` is given).

    torch checkpoints load with ``torch.load(weights_only=True)`` unless
    ``allow_pickle=True`` (only for checkpoints you trust: unpickling runs code).
    Files and folders are copied into ``dest`` (default: a new temporary folder).
    """
    return current().load_checkpoint(
        run_id,
        step,
        name,
        allow_pickle=allow_pickle,
        map_location=map_location,
        dest=dest,
    )


def prune_checkpoints(
    run_id: str,
    name: str = "model",
    *,
    keep_last: int = 1,
    keep_best: int = 0,
    metric: str | None = None,
    mode: str = "min",
) -> list[Artifact]:
    """Delete a run's older checkpoints, keeping the ``keep_last`` latest and the
    ``keep_best`` best by ``metric`` (``mode`` ``"min"`` or ``"max"``).
    """
    return current().prune_checkpoints(
        run_id,
        name,
        keep_last=keep_last,
        keep_best=keep_best,
        metric=metric,
        mode=mode,
    )


def delete_artifacts(
    run_id: str, name: str, *, step: int | None = None, kind: str | None = None
) -> list[Artifact]:
    """Delete a run's artifacts named ``name`` (only the one at ``step``, only
    those of ``kind``, when given); returns the deleted ones.
    """
    return current().delete_artifacts(run_id, name, step=step, kind=kind)


def artifacts(
    run_id: str, *, kind: str | None = None, name: str | None = None
) -> list[Artifact]:
    """A run's artifacts, oldest first.

    kind: only ``file``, ``folder``, ``image`` or ``checkpoint`` artifacts.
    name: only artifacts with this name.
    """
    return current().artifacts(run_id, kind=kind, name=name)


def read_artifact(
    run_id: str, name: str, *, step: int | None = None, kind: str | None = None
) -> bytes:
    """The bytes of a run's artifact ``name`` (the latest one unless ``step``)."""
    return current().read_artifact(run_id, name, step=step, kind=kind)


def download_artifact(
    run_id: str,
    name: str,
    dest: str | os.PathLike[str],
    *,
    step: int | None = None,
    kind: str | None = None,
) -> Path:
    """Copy a run's artifact ``name`` to ``dest``; returns the path written.

    A file goes to ``dest``, or into it when ``dest`` is a folder; a folder's
    tree is restored under ``dest`` (created if missing).
    """
    return current().download_artifact(run_id, name, dest, step=step, kind=kind)
