"""The original LabNotebook's calls, as thin wrappers over the current API.

``import labnotebook`` and keep calling ``initialize``, ``start_experiment``,
``step_experiment`` and ``end_experiment``; each maps onto one new call.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from . import _api
from ._notebook import Notebook
from ._run import Run


def initialize(db_url: str | None = None) -> Notebook:
    """Connect to a store: same as :func:`labnotebook.init`."""
    return _api.init(db_url)


def start_experiment(
    model_desc: Mapping[str, Any] | None = None,
    *,
    name: str | None = None,
    experiment: str = "default",
    tags: list[str] | None = None,
) -> Run:
    """Start a run whose params are ``model_desc``; returns the run."""
    return _api.start(name, experiment=experiment, params=model_desc, tags=tags)


def step_experiment(
    xp: Run,
    timestep: int,
    trainloss: float | None = None,
    trainacc: float | None = None,
    valacc: float | None = None,
    epoch: int | None = None,
    custom_fields: Mapping[str, Any] | None = None,
) -> None:
    """Log one step: the given values as metrics, ``custom_fields`` as fields."""
    values = {
        key: value
        for key, value in (
            ("trainloss", trainloss),
            ("trainacc", trainacc),
            ("valacc", valacc),
            ("epoch", epoch),
        )
        if value is not None
    }
    if not values and custom_fields is None:
        custom_fields = {}
    xp.log(values, step=timestep, fields=custom_fields)


def end_experiment(
    xp: Run,
    final_trainloss: float | None = None,
    final_trainacc: float | None = None,
    final_valacc: float | None = None,
) -> None:
    """Log the final values (as ``final_*`` metrics) and finish the run."""
    values = {
        key: value
        for key, value in (
            ("final_trainloss", final_trainloss),
            ("final_trainacc", final_trainacc),
            ("final_valacc", final_valacc),
        )
        if value is not None
    }
    if values:
        xp.log(values)
    xp.finish()
