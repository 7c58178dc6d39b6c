"""What every store takes and gives: batches in, records out.

A :class:`Batch` is the unit of writing: everything one run logged since the last
flush. A store applies a batch all-or-nothing and at most once (by ``Batch.id``), so
a batch may be resent after a failure without duplicating anything.
"""

from __future__ import annotations

import json
import math
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

#: Per key: steps, values and wall times, in logging order.
Columns = tuple[list[int], list[float], list[float]]


@dataclass
class RunCreate:
    """Everything known about a run when it starts."""

    experiment: str
    name: str
    params: dict[str, Any]
    tags: list[str]
    started_at: float
    host: str = ""
    pid: int | None = None
    command: str = ""
    environment: dict[str, Any] | None = None


@dataclass
class Batch:
    """One all-or-nothing write for one run."""

    run_id: str
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    create: RunCreate | None = None
    resume: bool = False
    points: dict[str, Columns] = field(default_factory=dict)
    fields: list[tuple[int, float, dict[str, Any]]] = field(default_factory=list)
    notes: list[tuple[float, int | None, str]] = field(default_factory=list)
    status: str | None = None
    ended_at: float | None = None
    error: str | None = None
    heartbeat: float | None = None

    @property
    def point_count(self) -> int:
        return sum(len(cols[0]) for cols in self.points.values())

    def is_empty(self) -> bool:
        return not (
            self.create or self.resume or self.points or self.fields or self.notes
            or self.status or self.heartbeat is not None
        )

    def to_json(self) -> str:
        """Serialise for the spool file or the wire (NaN and infinities kept)."""
        data = asdict(self)
        data["points"] = {
            key: [steps, [_encode_float(v) for v in values], times]
            for key, (steps, values, times) in self.points.items()
        }
        return json.dumps(data, separators=(",", ":"), allow_nan=False)

    @classmethod
    def from_json(cls, text: str | bytes) -> Batch:
        data = json.loads(text)
        create = data.pop("create", None)
        points = data.pop("points", {})
        batch = cls(**data)
        if create is not None:
            batch.create = RunCreate(**create)
        batch.points = {
            key: (list(steps), [_decode_float(v) for v in values], list(times))
            for key, (steps, values, times) in points.items()
        }
        batch.fields = [(int(s), float(t), f) for s, t, f in batch.fields]
        batch.notes = [(float(t), s, text) for t, s, text in batch.notes]
        return batch


def _encode_float(value: float) -> float | str:
    if math.isfinite(value):
        return value
    return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")


def _decode_float(value: float | str) -> float:
    return float(value)


@dataclass
class Summary:
    """Summary of one metric of one run, kept up to date at write time."""

    count: int
    last: float
    last_step: int | None
    last_time: float | None
    min: float
    max: float


@dataclass
class RunRecord:
    """A run as stored."""

    id: str
    experiment: str
    name: str
    status: str
    params: dict[str, Any]
    tags: list[str]
    started_at: float
    ended_at: float | None
    heartbeat_at: float
    updated_at: float
    host: str
    pid: int | None
    command: str
    error: str | None
    environment: dict[str, Any] | None
    metrics: dict[str, Summary]


@dataclass
class Note:
    """A Markdown note on a run."""

    id: int
    run_id: str
    step: int | None
    created_at: float
    updated_at: float
    text: str


@dataclass
class Experiment:
    """A named group of runs."""

    id: int
    name: str
    created_at: float
    run_count: int


class Store(Protocol):
    """The interface of every store (SQL database or tracking server)."""

    url: str

    def write(self, batch: Batch) -> None: ...

    def get_run(self, run_id: str) -> RunRecord: ...

    def list_runs(
        self,
        where: str | None = None,
        experiment: str | None = None,
        order_by: str | None = None,
        descending: bool = True,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[RunRecord]: ...

    def count_runs(self, where: str | None = None, experiment: str | None = None) -> int: ...

    def history(
        self,
        run_id: str,
        keys: list[str] | None = None,
        start: int | None = None,
        stop: int | None = None,
    ) -> dict[str, Columns]: ...

    def metric_keys(self, run_id: str) -> list[str]: ...

    def step_fields(
        self, run_id: str, start: int | None = None, stop: int | None = None
    ) -> list[tuple[int, float, dict[str, Any]]]: ...

    def notes(self, run_id: str) -> list[Note]: ...

    def edit_note(self, note_id: int, text: str) -> Note: ...

    def experiments(self) -> list[Experiment]: ...

    def create_experiment(self, name: str) -> Experiment: ...

    def rename_experiment(self, old: str, new: str) -> Experiment: ...

    def update_run(
        self,
        run_id: str,
        name: str | None = None,
        tags: list[str] | None = None,
        status: str | None = None,
    ) -> RunRecord: ...

    def delete_run(self, run_id: str) -> None: ...

    def close(self) -> None: ...
