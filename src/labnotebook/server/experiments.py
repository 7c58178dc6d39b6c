"""Experiments: list, create, rename."""

from __future__ import annotations

from typing import Any

from flask import Blueprint

from .._errors import NotFoundError
from .._store.base import Experiment
from .._values import check_name
from ._auth import read, write
from ._http import MAX_ID, check_params, json_body, store
from ._serialize import experiment_json

bp = Blueprint("experiments", __name__)


@bp.get("/experiments")
@read
def list_experiments() -> dict[str, Any]:
    """Every experiment, by name, with its number of runs."""
    check_params(())
    return {"experiments": [experiment_json(e) for e in store().experiments()]}


@bp.post("/experiments")
@write
def create_experiment() -> tuple[dict[str, Any], int]:
    """Create an experiment (an existing one of that name is returned as is)."""
    check_params(())
    body = json_body(("name",), required=("name",))
    name = check_name(body["name"], "experiment name")
    return experiment_json(store().create_experiment(name)), 201


@bp.patch("/experiments/<int:experiment_id>")
@write
def rename_experiment(experiment_id: int) -> dict[str, Any]:
    """Rename an experiment; 409 if another one has the new name."""
    check_params(())
    body = json_body(("name",), required=("name",))
    name = check_name(body["name"], "experiment name")
    old = _find(experiment_id)
    if old.name == name:
        return experiment_json(old)
    return experiment_json(store().rename_experiment(old.name, name))


def _find(experiment_id: int) -> Experiment:
    if experiment_id > MAX_ID:
        raise NotFoundError(f"no experiment with id {experiment_id}")
    for experiment in store().experiments():
        if experiment.id == experiment_id:
            return experiment
    raise NotFoundError(
        f"no experiment with id {experiment_id}; GET /api/v1/experiments lists them"
    )
