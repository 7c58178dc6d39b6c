"""A run: one execution of a training script or notebook, and its lifecycle.

``running`` → ``finished`` | ``failed`` (an exception) | ``killed`` (SIGTERM,
KeyboardInterrupt); a run whose heartbeat stops is shown as ``crashed``.
"""

from __future__ import annotations

import hashlib
import io
import os
import struct
import threading
import time
import traceback
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, BinaryIO

from ._console import ConsoleCapture, should_capture
from ._errors import LabnotebookError, ValidationError
from ._store.base import (
    Artifact,
    ArtifactCreate,
    Batch,
    ConsoleChunk,
    Note,
    RunRecord,
    Summary,
)
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

    from ._artifacts import Readable
    from ._notebook import Notebook
    from ._sysmetrics import SystemSampler

#: A set of metric keys and the packer of their values (little-endian float64).
_KeySet = tuple[tuple[str, ...], struct.Struct]

FINAL_STATUSES = ("finished", "failed", "killed")
#: Console chunks read per request by Run.console(), and the longest search text.
CONSOLE_PAGE = 1000
MAX_CONSOLE_SEARCH = 1000
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
        self._sampler: SystemSampler | None = None
        self._system_keys: dict[tuple[str, ...], _KeySet] = {}
        self._final_status: str | None = None
        self._console: ConsoleCapture | None = None
        #: The pid of the process logging to the run, when this copy of it was
        #: inherited by a forked child (see :meth:`_left_in_parent`).
        self._parent_pid: int | None = None
        #: Set when finish() has written the run's end (or spooled it).
        self._ended = threading.Event()
        self._ended.set()

    # --------------------------------------------------------------- reading

    def __repr__(self) -> str:
        try:
            return f"<Run {self.id[:8]} {self.name!r} {self.status}>"
        except LabnotebookError as exc:
            # repr() never raises (tracebacks, debuggers, a list of runs shown in a
            # notebook): what this process knows, and why the rest is missing.
            parts = [f"<Run {self.id[:8]}"]
            if self._record is not None:
                parts.append(repr(self._record.name))
            status = self._final_status or ("running" if self.is_active else None)
            if status is not None:
                parts.append(status)
            parts.append(f"(could not read the store: {type(exc).__name__})>")
            return " ".join(parts)

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
    def environment(self) -> dict[str, Any]:
        """The code and environment captured at start (empty if none was captured).

        Keys: ``code``, ``python``, ``platform``, ``packages``, ``host``; see
        docs/environment.md.
        """
        environment = dict(self.record.environment or {})
        packages = environment.get("packages")
        if isinstance(packages, dict):
            # PostgreSQL's JSONB does not keep the order of keys.
            environment["packages"] = dict(sorted(packages.items()))
        return environment

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

    def console(self, search: str | None = None) -> list[ConsoleChunk]:
        """The run's console output (stdout and stderr), in the order written.

        search: only the chunks that contain this text (the case of A-Z ignored).
        """
        if search is not None:
            check_text(search, "a console search", MAX_CONSOLE_SEARCH)
        self.flush()
        chunks: list[ConsoleChunk] = []
        after = None
        while True:
            page = self._notebook.store.console(
                self.id, after=after, limit=CONSOLE_PAGE, search=search
            )
            chunks.extend(page)
            if len(page) < CONSOLE_PAGE:
                return chunks
            after = page[-1].id

    def artifacts(
        self, kind: str | None = None, name: str | None = None
    ) -> list[Artifact]:
        """The run's artifacts, oldest first.

        kind: only ``file``, ``folder``, ``image`` or ``checkpoint`` artifacts.
        name: only artifacts with this name.
        """
        return self._notebook.artifacts(self.id, kind=kind, name=name)

    def delete_artifacts(
        self, name: str, step: int | None = None, kind: str | None = None
    ) -> list[Artifact]:
        """Delete this run's artifacts named ``name`` (see
        ``labnotebook.delete_artifacts``); returns the deleted ones.
        """
        return self._notebook.delete_artifacts(self.id, name, step=step, kind=kind)

    def read_artifact(
        self, name: str, step: int | None = None, *, kind: str | None = None
    ) -> bytes:
        """The bytes of the artifact ``name`` (the latest one unless ``step``)."""
        return self._notebook.read_artifact(self.id, name, step=step, kind=kind)

    def open_artifact(
        self, name: str, step: int | None = None, *, kind: str | None = None
    ) -> BinaryIO:
        """The artifact ``name`` as a binary file object to read (and close)."""
        return self._notebook.open_artifact(self.id, name, step=step, kind=kind)

    def download_artifact(
        self,
        name: str,
        dest: str | os.PathLike[str],
        step: int | None = None,
        *,
        kind: str | None = None,
    ) -> Path:
        """Copy the artifact ``name`` to ``dest``; returns the path written.

        A file goes to ``dest``, or into it when ``dest`` is a folder; a folder's
        tree is restored under ``dest``.
        """
        return self._notebook.download_artifact(
            self.id, name, dest, step=step, kind=kind
        )

    # -------------------------------------------------------------- notebooks

    def display(self) -> None:
        """Show the run's summary in a Jupyter notebook, updated live while active.

        Same as ending a cell with ``run``; see docs/jupyter.md.
        """
        from ._jupyter import display

        display(self)

    def _ipython_display_(self) -> None:
        from ._jupyter import display

        display(self)

    def _repr_html_(self) -> str:
        from ._jupyter import summary_html

        return summary_html(self)

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
        if self._parent_pid is not None:
            raise LabnotebookError(
                f"run {self.id[:8]} is logged by process {self._parent_pid}; this "
                f"process ({os.getpid()}) is a fork of it and cannot log to it. Log "
                "in the parent (send values back, e.g. as a Pool result), or start "
                "a run of this process's own with labnotebook.start()"
            )
        if self._final_status is not None:
            raise LabnotebookError(
                f"run {self.id[:8]} is {self._final_status}; start a new run with "
                "labnotebook.start(), or call run.resume() to log more to this one"
            )
        raise LabnotebookError(
            f"run {self.id[:8]} was opened for reading; call run.resume() to log to it"
        )

    def _log_system(self, step: int, values: Mapping[str, float]) -> None:
        """Log sampled system metrics at ``step`` of the sampler's own counter.

        Unlike :meth:`log`, this never moves the training step; the keys come from
        the sampler and are trusted.
        """
        append = self._buffer_append
        if append is None:
            return
        keys = tuple(values)
        known = self._system_keys.get(keys)
        if known is None:
            if len(self._system_keys) >= MAX_KEY_SETS:
                self._system_keys.clear()
            known = (keys, struct.Struct(f"<{len(keys)}d"))
            self._system_keys[keys] = known
        append((step, _now(), known[0], known[1].pack(*values.values()), None))

    def note(self, text: str, *, step: int | None = None, images: Any = None) -> None:
        """Add a Markdown note to the run (stored with the next flush).

        step: the step the note belongs to, if any.
        images: pictures shown below the text: a list of pictures (named
            ``note-1``, ``note-2``, ...) or of (name, picture) pairs, or a dict of
            names to pictures; each is stored as an image (see :meth:`image`).
        """
        check_text(text, "a note", MAX_NOTE_LENGTH)
        if step is not None:
            step = check_step(step)
        if self._writer is None:
            self._not_active()
        if images is not None:
            text = self._note_images(text, step, images)
        assert self._writer is not None
        entry = (_now(), step, text)
        self._writer.add(lambda batch: batch.notes.append(entry))

    def _note_images(self, text: str, step: int | None, images: Any) -> str:
        from ._artifacts import check_artifact_name
        from ._images import markdown_image, note_images, to_png

        # Encode every picture and check the final text first, so a bad picture
        # or a note grown too long stores nothing.
        encoded = [
            (check_artifact_name(name), to_png(obj))
            for name, obj in note_images(images)
        ]
        if not encoded:
            return text
        references = [
            markdown_image(name, hashlib.sha256(data).hexdigest())
            for name, (data, _, _) in encoded
        ]
        text = check_text(
            f"{text}\n\n" + "\n".join(references), "a note", MAX_NOTE_LENGTH
        )
        if step is None:
            step = self._current_step()
        for name, (data, width, height) in encoded:
            meta = {"width": width, "height": height, "note": True}
            self._add_artifact(
                "image", name, data, step=step, media_type="image/png", meta=meta
            )
        return text

    def _current_step(self) -> int | None:
        """The last step logged (or resumed from), None before the first."""
        return self._next_step - 1 if self._next_step > 0 else None

    def image(self, obj: Any, name: str, step: int | None = None) -> ArtifactCreate:
        """Store a picture with the run, as PNG.

        obj: a matplotlib Figure, a PIL Image, a numpy array (HxW, HxWx1,
            HxWx3 or HxWx4) or a torch tensor (HxW or CxHxW, channels first);
            uint8, bool, integers 0-255 or floats 0.0-1.0.
        name: the picture's name; pictures of one name form a series by step.
        step: the step it shows (default: the last step logged, or none before
            the first).
        """
        from ._artifacts import check_artifact_name
        from ._images import to_png

        name = check_artifact_name(name)
        if step is not None:
            step = check_step(step)
        if self._writer is None:
            self._not_active()
        data, width, height = to_png(obj)
        return self._add_artifact(
            "image",
            name,
            data,
            step=self._current_step() if step is None else step,
            media_type="image/png",
            meta={"width": width, "height": height},
        )

    def save_checkpoint(
        self, obj: Any, step: int | None = None, name: str = "model"
    ) -> ArtifactCreate:
        """Store a checkpoint with the run.

        obj: a torch module (its state_dict), optimizer, tensor or state dict; a
            numpy array or dict of arrays; bytes; or the path of a file or folder.
        step: the step it was saved at (default: the last step logged).
        name: the checkpoint's name; several names keep separate series.
        """
        from ._artifacts import check_artifact_name
        from ._checkpoints import serialise

        name = check_artifact_name(name)
        if step is not None:
            step = check_step(step)
        if self._writer is None:
            self._not_active()
        with serialise(obj) as saved:
            return self._add_artifact(
                "checkpoint",
                name,
                saved.source,
                step=self._current_step() if step is None else step,
                media_type=saved.media_type,
                meta=saved.meta,
            )

    def load_checkpoint(
        self,
        step: int | None = None,
        name: str = "model",
        *,
        allow_pickle: bool = False,
        map_location: Any = None,
        dest: str | os.PathLike[str] | None = None,
    ) -> Any:
        """Read a checkpoint of this run back (see ``labnotebook.load_checkpoint``)."""
        return self._notebook.load_checkpoint(
            self.id,
            step,
            name,
            allow_pickle=allow_pickle,
            map_location=map_location,
            dest=dest,
        )

    def prune_checkpoints(
        self,
        name: str = "model",
        *,
        keep_last: int = 1,
        keep_best: int = 0,
        metric: str | None = None,
        mode: str = "min",
    ) -> list[Artifact]:
        """Delete older checkpoints (see ``labnotebook.prune_checkpoints``)."""
        return self._notebook.prune_checkpoints(
            self.id,
            name,
            keep_last=keep_last,
            keep_best=keep_best,
            metric=metric,
            mode=mode,
        )

    def attach(
        self,
        source: str | os.PathLike[str] | bytes | bytearray | memoryview | Readable,
        name: str | None = None,
        step: int | None = None,
    ) -> ArtifactCreate:
        """Store a file, a folder, bytes or a binary file object with the run.

        source: a path to a file or folder, bytes, or a file object opened in
            binary mode.
        name: the artifact's name, a label (default: the file or folder's name;
            required for bytes and file objects).
        step: the step the artifact belongs to, if any.

        The bytes are stored at once; the artifact's row reaches the store with
        the next flush. Returns what was stored.
        """
        if self._writer is None:
            self._not_active()
        if isinstance(source, str | os.PathLike):
            if not os.fspath(source):
                # Path("") is the current folder: never attach it by accident.
                raise ValidationError(
                    "the path to attach is empty; give a file or folder path ('.' "
                    "for the current folder)"
                )
            path = Path(os.fsdecode(source))  # an os.PathLike may give bytes
            if name is None:
                # "." and ".." are named after the folder they stand for.
                name = path.name if path.name not in ("", "..") else path.resolve().name
            if path.is_dir():
                return self._add_folder(path, name, step)
            return self._add_artifact("file", name, path, step=step)
        if name is None:
            raise ValidationError(
                f"attaching {type(source).__name__} needs a name; pass "
                "run.attach(data, name='weights.bin')"
            )
        return self._add_artifact("file", name, source, step=step)

    def _add_folder(self, path: Path, name: str, step: int | None) -> ArtifactCreate:
        from ._artifacts import FOLDER_MEDIA_TYPE, check_artifact_name, store_folder

        name = check_artifact_name(name)
        if step is not None:
            step = check_step(step)
        sha, size, meta = store_folder(self._notebook.blobs, path)
        row = ArtifactCreate(
            kind="folder",
            name=name,
            step=step,
            size=size,
            sha256=sha,
            media_type=FOLDER_MEDIA_TYPE,
            created_at=_now(),
            meta=meta,
        )
        return self._queue_artifact(row)

    def _add_artifact(
        self,
        kind: str,
        name: str,
        source: str | os.PathLike[str] | bytes | bytearray | memoryview | Readable,
        *,
        step: int | None = None,
        media_type: str | None = None,
        meta: Mapping[str, Any] | None = None,
    ) -> ArtifactCreate:
        """Store one blob and queue its artifact row for the next batch.

        kind: one of ``ARTIFACT_KINDS``; source: bytes, the path of a file, or a
        binary file object. The row is written only after the blob is complete.
        """
        from ._artifacts import check_artifact_name, guess_media_type
        from ._schema import ARTIFACT_KINDS

        if kind not in ARTIFACT_KINDS:
            raise ValidationError(
                f"artifact kind {kind!r} is not one of {ARTIFACT_KINDS}"
            )
        name = check_artifact_name(name)
        if step is not None:
            step = check_step(step)
        extra = to_json({} if meta is None else meta, "artifact meta")
        if not isinstance(extra, dict):
            raise ValidationError(
                f"artifact meta must be a dict, got {type(meta).__name__}"
            )
        if media_type is None:
            media_type = guess_media_type(name)
        if self._writer is None:
            self._not_active()

        blobs = self._notebook.blobs
        if isinstance(source, bytes | bytearray | memoryview):
            sha, size = blobs.put_bytes(source)
        elif isinstance(source, str | os.PathLike):
            sha, size = blobs.put_file(Path(source))
        elif isinstance(source, io.TextIOBase):
            raise ValidationError(
                f"{source!r} is a text file object; open the file in binary mode "
                "('rb') or pass its path"
            )
        elif callable(getattr(source, "read", None)):
            sha, size = blobs.put_stream(source, source_name=f"file object {name!r}")
        else:
            raise ValidationError(
                f"cannot attach {type(source).__name__}; pass a file or folder path, "
                "bytes, or a file object opened in binary mode"
            )
        row = ArtifactCreate(
            kind=kind,
            name=name,
            step=step,
            size=size,
            sha256=sha,
            media_type=media_type,
            created_at=_now(),
            meta=extra,
        )
        return self._queue_artifact(row)

    def _queue_artifact(self, row: ArtifactCreate) -> ArtifactCreate:
        writer = self._writer
        if writer is None:
            self._not_active()
        assert writer is not None
        writer.add(lambda batch: batch.artifacts.append(row))
        return row

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
        self._ended = threading.Event()
        self._start_console(self._writer)
        self._writer.submit_now(first)
        self._notebook.register(self)

    def _left_in_parent(self) -> None:
        """In a forked child: this copy of an active run stops being active.

        The parent's writer, sampler and console capture threads did not come
        along; the run goes on in the parent, and ``finish()`` here does nothing.
        """
        self._parent_pid = os.getppid()
        self._lock = threading.Lock()
        self._writer = None
        self._buffer_append = None
        self._sampler = None
        if self._console is not None:
            self._console.keeping = False
            self._console = None

    def _start_console(self, writer: Writer) -> None:
        settings = self._notebook.settings
        if not should_capture(settings.capture_console):
            return
        capture = ConsoleCapture(settings.console_limit, owner=self)
        if capture.start():
            self._console = capture
            writer.sources.append(capture.add_to)

    def resume(self, *, system_metrics: bool = True) -> Run:
        """Reopen a run for logging; steps continue after the highest one stored.

        system_metrics: sample CPU, memory, disk, network and GPU use while the
            run is active (when ``system_metrics_interval`` is above 0).
        """
        if not isinstance(system_metrics, bool):
            raise ValidationError(
                f"system_metrics must be True or False, got {system_metrics!r}"
            )
        if self._parent_pid is not None:
            self._not_active()
        with self._lock:
            if self._writer is not None:
                return self
            record = self.refresh().record
            last, last_sample = -1, -1
            for key, s in record.metrics.items():
                if s.last_step is None:
                    continue
                if key.startswith("sys/"):
                    last_sample = max(last_sample, s.last_step)
                else:
                    last = max(last, s.last_step)
            self._activate(Batch(run_id=self.id, resume=True), next_step=last + 1)
            if system_metrics:
                self._sample_system(first_step=last_sample + 1)
        return self

    def _sample_system(self, first_step: int = 0) -> None:
        """Start the system metrics sampler, unless the settings turn it off."""
        interval = self._notebook.settings.system_metrics_interval
        if interval > 0:
            from ._sysmetrics import SystemSampler

            self._sampler = SystemSampler(self, interval, first_step)

    def finish(self, status: str = "finished", *, error: str | None = None) -> bool:
        """End the run and flush its data; True if it all reached the store.

        status: ``finished`` (default), ``failed`` or ``killed``.
        error: text stored with a failed run (a traceback, say).
        """
        if status not in FINAL_STATUSES:
            raise ValidationError(
                f"status {status!r} is not a final status; use one of {FINAL_STATUSES}"
            )
        sampler, self._sampler = self._sampler, None
        if sampler is not None:
            sampler.stop()  # its last sample goes into the final batch
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

        if self._console is not None:
            self._console.stop()
            self._console = None
        writer.add(_end)
        self._notebook.unregister(self)
        complete = writer.close(self._notebook.settings.exit_timeout)
        self._record = None
        self._ended.set()
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
