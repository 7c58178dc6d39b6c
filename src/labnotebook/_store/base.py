"""What every store takes and gives: batches in, records out.

A :class:`Batch` is the unit of writing: everything one run logged since the last
flush. A store applies a batch all-or-nothing and at most once (by ``Batch.id``), so
a batch may be resent after a failure without duplicating anything.
"""

from __future__ import annotations

import base64
import json
import sys
import uuid
from array import array
from collections.abc import MutableSequence, Sequence
from dataclasses import asdict, dataclass, field
from dataclasses import fields as dataclass_fields
from typing import Any, BinaryIO, Protocol

#: Per key: steps, values and wall times, in logging order.
Columns = tuple[MutableSequence[int], MutableSequence[float], MutableSequence[float]]


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
class ArtifactCreate:
    """One artifact row to write; its blob is already in the artifact store."""

    kind: str
    name: str
    step: int | None
    size: int
    sha256: str
    media_type: str
    created_at: float
    meta: dict[str, Any] = field(default_factory=dict)


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
    #: Artifact rows (see :class:`ArtifactCreate`) whose blobs are already stored.
    artifacts: list[ArtifactCreate] = field(default_factory=list)
    #: Console output chunks: (time, "stdout" or "stderr", text).
    console: list[tuple[float, str, str]] = field(default_factory=list)
    status: str | None = None
    ended_at: float | None = None
    error: str | None = None
    heartbeat: float | None = None

    @property
    def point_count(self) -> int:
        return sum(len(cols[0]) for cols in self.points.values())

    def is_empty(self) -> bool:
        return not (
            self.create
            or self.resume
            or self.points
            or self.fields
            or self.notes
            or self.artifacts
            or self.console
            or self.status
            or self.heartbeat is not None
        )

    def to_json(self) -> str:
        """Serialise for the spool file or the wire.

        Metric columns are packed as base64 of little-endian int64 (steps) and
        float64 (values, times) arrays: exact for NaN and infinities, and several
        times faster to write and read than JSON numbers. :meth:`from_json` also
        accepts plain JSON lists (``[steps, values, times]``, with non-finite
        values as the strings "NaN", "Infinity", "-Infinity").
        """
        data: dict[str, Any] = {
            f.name: getattr(self, f.name)
            for f in dataclass_fields(self)
            if f.name not in ("create", "points", "artifacts")
        }
        data["artifacts"] = [asdict(a) for a in self.artifacts]
        data["create"] = asdict(self.create) if self.create is not None else None
        data["points"] = {
            key: {
                "steps": _pack("q", steps),
                "values": _pack("d", values),
                "times": _pack("d", times),
            }
            for key, (steps, values, times) in self.points.items()
        }
        return json.dumps(data, separators=(",", ":"), allow_nan=False)

    @classmethod
    def from_json(cls, text: str | bytes) -> Batch:
        """Rebuild a batch from :meth:`to_json` output (or plain JSON lists)."""
        data = json.loads(text)
        create = data.pop("create", None)
        points = data.pop("points", {})
        artifacts = data.pop("artifacts", [])
        batch = cls(**data)
        batch.artifacts = [ArtifactCreate(**a) for a in artifacts]
        batch.console = [(float(t), str(s), str(text)) for t, s, text in batch.console]
        if create is not None:
            batch.create = RunCreate(**create)
        batch.points = {key: _unpack_columns(cols) for key, cols in points.items()}
        batch.fields = [(int(s), float(t), f) for s, t, f in batch.fields]
        batch.notes = [(float(t), s, text) for t, s, text in batch.notes]
        return batch


def _pack(code: str, values: Sequence[Any]) -> str:
    packed = (
        values
        if isinstance(values, array) and values.typecode == code
        else (array(code, values))
    )
    if sys.byteorder != "little":
        packed = array(code, packed)
        packed.byteswap()
    return base64.b64encode(packed.tobytes()).decode("ascii")


def _unpack(code: str, text: str) -> array[Any]:
    out = array(code)
    out.frombytes(base64.b64decode(text, validate=True))
    if sys.byteorder != "little":
        out.byteswap()
    return out


def _unpack_columns(cols: Any) -> Columns:
    if isinstance(cols, dict):
        steps = _unpack("q", cols["steps"])
        values = _unpack("d", cols["values"])
        times = _unpack("d", cols["times"])
    else:
        raw_steps, raw_values, raw_times = cols
        steps = array("q", raw_steps)
        values = array("d", [float(v) for v in raw_values])
        times = array("d", raw_times)
    if not len(steps) == len(values) == len(times):
        raise ValueError("steps, values and times must have the same length")
    return steps, values, times


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
class Artifact:
    """A file, folder, image or checkpoint of a run, as stored.

    ``kind`` is ``file``, ``folder``, ``image`` or ``checkpoint``; ``name`` is a
    label, never a path; ``sha256`` names the bytes in the artifact store (for a
    folder, its JSON manifest); ``meta`` holds kind-specific details such as an
    image's width and height.
    """

    id: int
    run_id: str
    kind: str
    name: str
    step: int | None
    size: int
    sha256: str
    media_type: str
    created_at: float
    meta: dict[str, Any]


@dataclass
class ConsoleChunk:
    """A piece of a run's console output."""

    id: int
    run_id: str
    stream: str
    time: float
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

    def count_runs(
        self, where: str | None = None, experiment: str | None = None
    ) -> int: ...

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

    def list_artifacts(
        self, run_id: str, kind: str | None = None, name: str | None = None
    ) -> list[Artifact]: ...

    def open_blob(self, run_id: str, sha256: str) -> BinaryIO: ...

    def delete_artifacts(self, run_id: str, ids: list[int]) -> list[str]: ...

    def console(
        self,
        run_id: str,
        after: int | None = None,
        limit: int = 1000,
        search: str | None = None,
    ) -> list[ConsoleChunk]: ...

    def close(self) -> None: ...
