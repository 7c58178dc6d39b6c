"""labnotebook: the lab notebook for machine-learning runs.

    import labnotebook as lab

    with lab.start("baseline", params={"lr": 1e-3}) as run:
        for step in range(100):
            run.log(loss=1 / (step + 1))

See docs/ for the full guide.
"""

from __future__ import annotations

from ._api import (
    artifacts,
    current,
    delete_artifacts,
    delete_run,
    download_artifact,
    experiments,
    get_run,
    history,
    init,
    load_checkpoint,
    prune_checkpoints,
    read_artifact,
    runs,
    start,
    sync,
)
from ._compat import end_experiment, initialize, start_experiment, step_experiment
from ._config import Settings
from ._errors import (
    ConflictError,
    FilterError,
    LabnotebookError,
    NotFoundError,
    StoreError,
    StoreUnavailableError,
    ValidationError,
)
from ._notebook import Notebook
from ._run import Run
from ._store.base import Artifact, ArtifactCreate, ConsoleChunk, Note, Summary

__version__ = "0.1.0"

__all__ = [
    "Artifact",
    "ArtifactCreate",
    "ConflictError",
    "ConsoleChunk",
    "FilterError",
    "LabnotebookError",
    "NotFoundError",
    "Note",
    "Notebook",
    "Run",
    "Settings",
    "StoreError",
    "StoreUnavailableError",
    "Summary",
    "ValidationError",
    "__version__",
    "artifacts",
    "current",
    "delete_artifacts",
    "delete_run",
    "download_artifact",
    "end_experiment",
    "experiments",
    "get_run",
    "history",
    "init",
    "initialize",
    "load_checkpoint",
    "prune_checkpoints",
    "read_artifact",
    "runs",
    "start",
    "start_experiment",
    "step_experiment",
    "sync",
]
