"""A run: one execution of a training script or notebook, and its lifecycle.

``running`` → ``finished`` | ``failed`` (an exception) | ``killed`` (SIGTERM,
KeyboardInterrupt); a run whose heartbeat stops is shown as ``crashed``.
"""

from __future__ import annotations

import struct
import threading
import time
import traceback
from collections.abc import Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any

from ._errors import LabnotebookError, ValidationError
from ._store.base import Batch, Note, RunRecord, Summary
from ._values import (
    MAX_FIELDS_BYTES,
    MAX_NOTE_LENGTH,
    MAX_STEP,
    check_key,
    check_name,
    check_step,
    check_tags,
    check_text,
    to_float,
    to_json,
)
from ._writer import WAKE_ENTRIES, Writer

if TYPE_CHECKING:
    import pandas as pd

    from ._notebook import Notebook

#: A set of metric keys and the packer of their values (little-endian float64).
_KeySet = tuple[tuple[str, ...], struct.Struct]

FINAL_STATUSES = ("finished", "failed", "killed")
#: Distinct sets of metric keys remembered as already validated.
MAX_KEY_SETS = 10_000
_now = time.time


class Run:
    """One run. Create it with :func:`labnotebook.start`; read one with ``get_run``.

    Use it as a context manager, or call :meth:`finish` when done. A run obtained
    from :func:`labnotebook.get_run` is read-only until :meth:`resume` is called.
    """

    def __init__(
        self, notebook: Notebook, run_id: str, record: RunRecord | None = None
    ):
        self._notebook = notebook
        self.id = run_id
        self._record = record
        self._writer: Writer | None = None
        self._buffer_append: Any = None
        self._buffer: Any = None
        self._next_step = 0
        self._keys: dict[tuple[str, ...], _KeySet] = {}
        self._last_keys: _KeySet = ((), struct.Struct("<0d"))
        self._lock = threading.Lock()
        self._final_status: str | None = None

    # --------------------------------------------------------------- reading

    def __repr__(self) -> str:
        return f"<Run {self.id[:8]} {self.name!r} {self.status}>"

    @property
    def record(self) -> RunRecord:
        """The run as last read from the store (see :meth:`refresh`)."""
        if self._record is None:
            self.refresh()
        assert self._record is not None
        return self._record

    def refresh(self) -> Run:
        """Read the run again from the store."""
        self._record = self._notebook.store.get_run(self.id)
        return self

    @property
    def name(self) -> str:
        return self.record.name

    @property
    def experiment(self) -> str:
        return self.record.experiment

    @property
    def params(self) -> dict[str, Any]:
        return self.record.params

    @property
    def tags(self) -> list[str]:
        return self.record.tags

    @property
    def status(self) -> str:
        """``running``, ``finished``, ``failed``, ``killed`` or ``crashed``."""
        if self._final_status is not None:
            return self._final_status
        if self.is_active:
            return "running"
        return self.record.status

    @property
    def summary(self) -> dict[str, Summary]:
        """Per metric: count, last value and step, min and max (NaN ignored)."""
        return self.refresh().record.metrics

    @property
    def is_active(self) -> bool:
        """Whether this process is logging to the run."""
        return self._writer is not None

    def history(
        self, keys: str | list[str] | None = None, **options: Any
    ) -> pd.DataFrame:
        """The run's metrics as a DataFrame indexed by step (see ``history``)."""
        self.flush()
        return self._notebook.history(self.id, keys, **options)

    def notes(self) -> list[Note]:
        """The run's notes, oldest first."""
        self.flush()
        return self._notebook.store.notes(self.id)

    # --------------------------------------------------------------- logging

    def log(
        self,
        data: Mapping[str, Any] | None = None,
        /,
        step: int | None = None,
        fields: Mapping[str, Any] | None = None,
        **metrics: Any,
    ) -> None:
        """Log metric values at one step.

        data: a dict of metric names to numbers (keys that are not valid Python
            names, such as ``"val/loss"``, go here).
        step: the step (a non-negative integer); by default one past the highest
            step logged so far, starting at 0.
        fields: optional JSON-compatible dict stored with this step.
        metrics: more metric values as keyword arguments.
        """
        if data is None:
            data = metrics
        elif metrics:
            data = {**data, **metrics}
        elif type(data) is not dict:
            data = self._as_dict(data)

        append = self._buffer_append
        if append is None:
            self._not_active()
        # One long-lived tuple per distinct set of keys, with a packer for its
        # values: buffered entries then hold only the tuple and bytes, which the
        # garbage collector does not track (so they never trigger full
        # collections), and the writer groups entries by the tuple's identity.
        keys = tuple(data)
        last = self._last_keys
        if keys != last[0]:
            last = self._keys.get(keys) or self._check_keys(keys)
            self._last_keys = last
        keys, packer = last
        try:
            values = packer.pack(*data.values())
        except (struct.error, TypeError, ValueError, OverflowError):
            values = self._bad_values(data, packer)

        if step is None:
            step = self._next_step
            self._next_step = step + 1
        else:
            if type(step) is not int or not 0 <= step <= MAX_STEP:
                step = check_step(step)
            if step >= self._next_step:
                self._next_step = step + 1

        if fields is not None:
            fields = to_json(fields, "fields", MAX_FIELDS_BYTES)
            if not isinstance(fields, dict):
                raise ValidationError(
                    f"fields must be a dict, got {type(fields).__name__}"
                )
        elif not keys:
            raise ValidationError(
                "log() was called with nothing to log; pass metrics such as "
                "run.log(loss=0.5) or fields={...}"
            )

        append((step, _now(), keys, values, fields))
        if len(self._buffer) > WAKE_ENTRIES:
            assert self._writer is not None
            self._writer.wake()

    def _as_dict(self, data: object) -> dict[str, Any]:
        if not isinstance(data, Mapping):
            raise ValidationError(
                f"log() takes a dict of metric values, got {type(data).__name__}; "
                "use run.log({'loss': 0.5}) or run.log(loss=0.5)"
            )
        return dict(data)

    def _bad_values(self, data: Mapping[str, Any], packer: struct.Struct) -> bytes:
        for key, value in data.items():
            to_float(str(key), value)
        return packer.pack(*[float(v) for v in data.values()])

    def _check_keys(self, keys: tuple[str, ...]) -> _KeySet:
        for key in keys:
            check_key(key)
        if len(self._keys) >= MAX_KEY_SETS:
            self._keys.clear()
        known = self._keys[keys] = (keys, struct.Struct(f"<{len(keys)}d"))
        return known

    def _not_active(self) -> None:
        if self._final_status is not None:
            raise LabnotebookError(
                f"run {self.id[:8]} is {self._final_status}; start a new run with "
                "labnotebook.start(), or call run.resume() to log more to this one"
            )
        raise LabnotebookError(
            f"run {self.id[:8]} was opened for reading; call run.resume() to log to it"
        )

    def note(self, text: str, *, step: int | None = None) -> None:
        """Add a Markdown note to the run (stored with the next flush)."""
        check_text(text, "a note", MAX_NOTE_LENGTH)
        if step is not None:
            step = check_step(step)
        if self._writer is None:
            self._not_active()
        assert self._writer is not None
        entry = (_now(), step, text)
        self._writer.add(lambda batch: batch.notes.append(entry))

    def set_tags(self, tags: list[str]) -> None:
        """Replace the run's tags."""
        self._record = self._notebook.store.update_run(self.id, tags=check_tags(tags))

    def add_tags(self, *tags: str) -> None:
        """Add tags to the run."""
        self.set_tags([*self.tags, *tags])

    def rename(self, name: str) -> None:
        """Change the run's name."""
        self._record = self._notebook.store.update_run(
            self.id, name=check_name(name, "run name")
        )

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything logged so far is in the store or the spool.

        Returns True when it reached the store, False when it went to the spool
        (store unavailable) or ``timeout`` seconds (default: the exit timeout)
        passed first.
        """
        writer = self._writer
        if writer is None:
            return True
        limit = self._notebook.settings.exit_timeout if timeout is None else timeout
        return writer.flush(limit)

    # -------------------------------------------------------------- lifecycle

    def _activate(self, first: Batch, next_step: int = 0) -> None:
        settings = self._notebook.settings
        self._writer = Writer(
            self._notebook.store,
            self.id,
            self._notebook.new_spool(self.id),
            flush_interval=settings.flush_interval,
            heartbeat_interval=settings.heartbeat_interval,
            buffer_limit=settings.buffer_limit,
            retry_interval=settings.retry_interval,
        )
        self._buffer = self._writer.buffer
        self._buffer_append = self._writer.buffer.append
        self._next_step = next_step
        self._final_status = None
        self._writer.submit_now(first)
        self._notebook.register(self)

    def resume(self) -> Run:
        """Reopen a run for logging; steps continue after the highest one stored."""
        with self._lock:
            if self._writer is not None:
                return self
            record = self.refresh().record
            last = max(
                (
                    s.last_step
                    for s in record.metrics.values()
                    if s.last_step is not None
                ),
                default=-1,
            )
            self._activate(Batch(run_id=self.id, resume=True), next_step=last + 1)
        return self

    def finish(self, status: str = "finished", *, error: str | None = None) -> bool:
        """End the run and flush its data; True if it all reached the store.

        status: ``finished`` (default), ``failed`` or ``killed``.
        error: text stored with a failed run (a traceback, say).
        """
        if status not in FINAL_STATUSES:
            raise ValidationError(
                f"status {status!r} is not a final status; use one of {FINAL_STATUSES}"
            )
        with self._lock:
            writer = self._writer
            if writer is None:
                return True
            self._writer = None
            self._buffer_append = None
            self._final_status = status
        ended = _now()

        def _end(batch: Batch) -> None:
            batch.status = status
            batch.ended_at = ended
            batch.error = error

        writer.add(_end)
        self._notebook.unregister(self)
        complete = writer.close(self._notebook.settings.exit_timeout)
        self._record = None
        return complete

    def __enter__(self) -> Run:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.finish()
        elif issubclass(exc_type, KeyboardInterrupt):
            self.finish("killed")
        elif issubclass(exc_type, SystemExit) and not getattr(exc, "code", 1):
            self.finish()
        else:
            self.finish(
                "failed", error="".join(traceback.format_exception(exc_type, exc, tb))
            )
