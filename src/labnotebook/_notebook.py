"""The client object behind the module-level API: settings plus a store."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import time
import uuid
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from . import _jupyter, _process
from ._artifacts import BlobStore
from ._config import Settings
from ._environment import capture
from ._environment import prefetch as prefetch_environment
from ._errors import LabnotebookError, StoreError, ValidationError
from ._run import Run
from ._spool import Spool, read_spool_file, reject_batch, spool_files
from ._store import open_store
from ._store.base import Artifact, Batch, RunCreate, RunRecord, Store
from ._store.sql import SqlStore
from ._values import check_key, check_name, check_step, check_tags, to_json

if TYPE_CHECKING:
    import pandas as pd


logger = logging.getLogger(__name__)

DEFAULT_EXPERIMENT = "default"


class Notebook:
    """A connection to one store, and the runs this process logs to it.

    Most users call :func:`labnotebook.init` once and use the module functions;
    a Notebook is useful to talk to several stores from one process.
    """

    def __init__(
        self, settings: Settings | str | None = None, store: Store | None = None
    ):
        if settings is None:
            settings = Settings.from_env()
        elif isinstance(settings, str):
            settings = Settings.from_env(url=settings)
        elif not isinstance(settings, Settings):
            raise ValidationError(
                f"Notebook() takes a store URL or a Settings object, not "
                f"{type(settings).__name__}; e.g. Notebook('sqlite:///runs.db')"
            )
        self.settings = settings
        if self.settings.capture_environment:
            prefetch_environment()
        #: The local artifact store: every attached file's bytes land here first.
        self.blobs = BlobStore(
            self.settings.artifacts_path, self.settings.max_artifact_size
        )
        self.blobs.remove_stale_temp_files()
        self.store = store or open_store(
            self.settings.store_url,
            token=self.settings.token,
            crash_timeout=self.settings.crash_timeout,
            blobs=self.blobs,
        )

    def __repr__(self) -> str:
        return f"<Notebook {self.store.url}>"

    def close(self) -> None:
        """Finish this notebook's active runs and release the store."""
        for run in _process.active_runs():
            if run._notebook is self:
                run.finish()
        self.store.close()

    # ---------------------------------------------------------------- writing

    def start(
        self,
        name: str | None = None,
        *,
        experiment: str = DEFAULT_EXPERIMENT,
        params: Mapping[str, Any] | Any = None,
        tags: list[str] | str | None = None,
        system_metrics: bool = True,
    ) -> Run:
        """Start a run and return it (use it as a context manager)."""
        if not isinstance(system_metrics, bool):
            raise ValidationError(
                f"system_metrics must be True or False, got {system_metrics!r}"
            )
        run_id = uuid.uuid4().hex
        name = f"run-{run_id[:6]}" if name is None else check_name(name, "run name")
        experiment = check_name(experiment, "experiment name")
        converted = to_json({} if params is None else params, "params")
        if not isinstance(converted, dict):
            raise ValidationError(
                f"params must be a dict (or an object convertible to one), got "
                f"{type(params).__name__}"
            )
        # In IPython: a cell run again ends the runs it started the last time.
        cells = _jupyter.before_start()
        create = RunCreate(
            experiment=experiment,
            name=name,
            params=converted,
            tags=check_tags(tags),
            started_at=time.time(),
            environment=self._capture(),
            **_process.host_info(),
        )
        first = Batch(run_id=run_id, create=create)
        written = False
        run: Run | None = None
        try:
            try:
                self.store.write(first)
                written = True
                pending = Batch(run_id=run_id)
            except (StoreError, OSError) as exc:
                warnings.warn(
                    f"store is unavailable ({exc}); run {run_id[:8]} is logged to "
                    "the spool and sent when the store is back",
                    RuntimeWarning,
                    stacklevel=2,
                )
                pending = first

            record = RunRecord(
                id=run_id,
                experiment=experiment,
                name=name,
                status="running",
                params=converted,
                tags=create.tags,
                started_at=create.started_at,
                ended_at=None,
                heartbeat_at=create.started_at,
                updated_at=create.started_at,
                host=create.host,
                pid=create.pid,
                command=create.command,
                error=None,
                environment=create.environment,
                metrics={},
            )
            run = Run(self, run_id, record)
            run._activate(pending)
            if cells is not None:
                cells.started(run)
            if system_metrics:
                run._sample_system()
        except BaseException as exc:
            # Interrupted (Ctrl-C, a notebook's stop button) or failed once the
            # run was stored: end it, so that it is not left "running".
            self._abandon(run_id, run, written, exc)
            raise
        return run

    def _abandon(
        self, run_id: str, run: Run | None, written: bool, exc: BaseException
    ) -> None:
        status = "killed" if isinstance(exc, KeyboardInterrupt) else "failed"
        error = None if status == "killed" else f"start() failed: {exc!r}"
        with contextlib.suppress(Exception):
            if run is not None and run.is_active:
                run.finish(status, error=error)
            elif written:
                self.store.write(
                    Batch(
                        run_id=run_id, status=status, ended_at=time.time(), error=error
                    )
                )

    def _capture(self) -> dict[str, Any] | None:
        """The code and environment to record, as the settings ask."""
        code = self.settings.capture_code
        environment = self.settings.capture_environment
        if not (code or environment):
            return None
        return capture(
            code=code,
            environment=environment,
            max_diff_size=self.settings.max_diff_size,
        )

    def new_spool(self, run_id: str) -> Spool:
        return Spool(self.settings.spool_dir, run_id, self.store.url)

    def register(self, run: Run) -> None:
        _process.register(run)

    def unregister(self, run: Run) -> None:
        _process.unregister(run)

    def sync(self) -> int:
        """Send the spool files that ended processes left for this store.

        Returns how many batches were sent. A batch the store refuses (its run
        was deleted, say) is kept in the ``.rejected`` file next to its spool
        file, with a RuntimeWarning naming it, and the rest are sent; a store
        that cannot be reached raises, and the files wait for the next sync.
        """
        sent = 0
        for path in spool_files(self.settings.spool_dir):
            found = read_spool_file(path)
            if found is None:
                continue
            header, batches = found
            if header.get("url") != self.store.url:
                continue
            for batch in batches:
                try:
                    self.store.write(batch)
                except StoreError:
                    raise
                except LabnotebookError as exc:
                    kept = reject_batch(path, batch)
                    message = (
                        f"run {batch.run_id}: store refused a batch "
                        f"({type(exc).__name__}: {exc}); it was kept in {kept}"
                    )
                    warnings.warn(message, RuntimeWarning, stacklevel=2)
                    continue
                sent += 1
            path.unlink(missing_ok=True)
            logger.info("sent %d batches from %s", len(batches), path)
        return sent

    # ---------------------------------------------------------------- reading

    def get_run(self, run_id: str) -> Run:
        """The run with this id (or unique id prefix), for reading or resuming."""
        record = self.store.get_run(run_id)
        return Run(self, record.id, record)

    def runs(
        self,
        where: str | None = None,
        *,
        experiment: str | None = None,
        order_by: str | None = None,
        descending: bool = True,
        limit: int | None = None,
    ) -> pd.DataFrame:
        """Runs matching a filter, as a DataFrame (params flattened to columns)."""
        if where is not None and not isinstance(where, str):
            raise ValidationError(
                f"where must be a filter string, got {type(where).__name__}"
            )
        if experiment is not None:
            check_name(experiment, "experiment name")
        if limit is not None and (not isinstance(limit, int) or limit < 0):
            raise ValidationError(
                f"limit must be a non-negative integer, got {limit!r}"
            )
        records = self.store.list_runs(
            where=where,
            experiment=experiment,
            order_by=order_by,
            descending=descending,
            limit=limit,
        )
        from ._frames import runs_frame

        return runs_frame(records, time.time())

    def history(
        self,
        run_id: str,
        keys: str | list[str] | None = None,
        *,
        start: int | None = None,
        stop: int | None = None,
        with_time: bool = False,
    ) -> pd.DataFrame:
        """Metric values of one run as a DataFrame indexed by step.

        keys: one key or a list of keys (default: all of the run's metrics but the
            ``sys/...`` system metrics, which are read when named).
        start, stop: only steps in ``[start, stop)``.
        with_time: add a ``<key>.time`` column of wall times (epoch seconds).
        """
        if isinstance(keys, str):
            keys = [keys]
        if keys is not None:
            keys = [check_key(k) for k in keys]
        if start is not None:
            start = check_step(start)
        if stop is not None:
            stop = check_step(stop)
        if isinstance(self.store, SqlStore):
            data = self.store.history(run_id, keys, start, stop, with_time=with_time)
        else:
            data = self.store.history(run_id, keys, start, stop)
        if keys is None:
            # System metrics count samples, not training steps: only on request.
            data = {k: v for k, v in data.items() if not k.startswith("sys/")}
        from ._frames import history_frame

        return history_frame(
            data, keys if keys is not None else sorted(data), with_time
        )

    def experiments(self) -> pd.DataFrame:
        """All experiments with their number of runs."""
        import pandas as pd

        rows = self.store.experiments()
        frame = pd.DataFrame(
            [(e.name, e.run_count, e.created_at) for e in rows],
            columns=["name", "runs", "created_at"],
        )
        frame["created_at"] = pd.to_datetime(frame["created_at"], unit="s", utc=True)
        return frame

    def artifacts(
        self, run_id: str, *, kind: str | None = None, name: str | None = None
    ) -> list[Artifact]:
        """A run's artifacts, oldest first (optionally of one kind or name)."""
        from ._artifacts import check_artifact_name
        from ._schema import ARTIFACT_KINDS

        if kind is not None and kind not in ARTIFACT_KINDS:
            raise ValidationError(
                f"artifact kind {kind!r} is not one of {ARTIFACT_KINDS}"
            )
        if name is not None:
            check_artifact_name(name)
        self._flush_active(run_id)
        return self.store.list_artifacts(run_id, kind=kind, name=name)

    def _flush_active(self, run_id: str) -> None:
        """Flush the runs this process logs to that ``run_id`` names (a full id
        or a prefix), so that reading or deleting their artifacts sees the rows
        still queued for the next batch.
        """
        if not isinstance(run_id, str) or not run_id:
            return
        for run in _process.active_runs():
            if run._notebook is self and run.id.startswith(run_id):
                run.flush()

    def find_artifact(
        self,
        run_id: str,
        name: str,
        *,
        step: int | None = None,
        kind: str | None = None,
    ) -> Artifact:
        """The artifact ``name`` of a run: at ``step``, else the latest by step
        then time; only of ``kind`` when given (a picture and a checkpoint may
        share a name). NotFoundError if there is none.
        """
        from ._artifacts import check_artifact_name
        from ._errors import NotFoundError

        # Checked here: artifacts() takes name=None as "every name".
        check_artifact_name(name)
        if step is not None:
            step = check_step(step)
        found = self.artifacts(run_id, name=name, kind=kind)
        if step is not None:
            found = [a for a in found if a.step == step]
        if not found:
            at = "" if step is None else f" at step {step}"
            of = "" if kind is None else f" of kind {kind!r}"
            raise NotFoundError(
                f"run {run_id[:8]} has no artifact named {name!r}{of}{at}; list "
                f"them with lab.artifacts({run_id[:8]!r}) or 'labnotebook artifacts "
                f"{run_id[:8]}'"
            )
        return max(
            found,
            key=lambda a: (-1 if a.step is None else a.step, a.created_at, a.id),
        )

    def open_artifact(
        self,
        run_id: str,
        name: str,
        *,
        step: int | None = None,
        kind: str | None = None,
    ) -> BinaryIO:
        """A file artifact's bytes as a binary file object (close it when done)."""
        artifact = self.find_artifact(run_id, name, step=step, kind=kind)
        return self._open_file(artifact)

    def _open_file(self, artifact: Artifact) -> BinaryIO:
        if artifact.kind == "folder":
            raise ValidationError(
                f"artifact {artifact.name!r} is a folder; copy it with "
                "download_artifact(run_id, name, dest)"
            )
        return self._open_blob(artifact.run_id, artifact.sha256)

    def read_artifact(
        self,
        run_id: str,
        name: str,
        *,
        step: int | None = None,
        kind: str | None = None,
    ) -> bytes:
        """A file artifact's bytes, checked against their sha256 (StoreError if
        the stored bytes are damaged).
        """
        import hashlib

        artifact = self.find_artifact(run_id, name, step=step, kind=kind)
        with self._open_file(artifact) as f:
            data = f.read()
        if hashlib.sha256(data).hexdigest() != artifact.sha256:
            raise StoreError(
                f"the bytes read for artifact {name!r} of run {artifact.run_id[:8]} "
                f"do not match their sha256 {artifact.sha256}; the stored blob is "
                "damaged"
            )
        return data

    def download_artifact(
        self,
        run_id: str,
        name: str,
        dest: str | os.PathLike[str],
        *,
        step: int | None = None,
        kind: str | None = None,
    ) -> Path:
        """Copy an artifact to ``dest``; returns the path written.

        A file goes to ``dest``, or into it (under its name) when ``dest`` is an
        existing folder; an existing named pipe or device (``/dev/null``) is
        written into. A folder's tree is restored under ``dest``.
        """
        from ._artifacts import (
            copy_verified,
            file_name_in,
            is_special_file,
            make_dest_folder,
            parse_manifest,
            restore_folder,
            write_verified,
        )

        if not isinstance(dest, str | os.PathLike) or not os.fspath(dest):
            raise ValidationError(
                f"dest must be a file or folder path, got {type(dest).__name__}"
            )
        target = Path(dest)
        artifact = self.find_artifact(run_id, name, step=step, kind=kind)
        if artifact.kind == "folder":
            if target.exists() and not target.is_dir():
                raise ValidationError(
                    f"{str(target)!r} is a file; artifact {name!r} is a folder, so "
                    "give a folder path (it is created if missing)"
                )
            with self._open_blob(artifact.run_id, artifact.sha256) as f:
                entries = parse_manifest(f.read())
            created = not target.exists()
            make_dest_folder(target)
            try:
                restore_folder(
                    entries, target, lambda sha: self._open_blob(artifact.run_id, sha)
                )
            except BaseException:
                if created:
                    # Made by this call: no half-restored folder is left behind.
                    shutil.rmtree(target, ignore_errors=True)
                raise
            return target

        if target.is_dir():
            target = file_name_in(
                target,
                artifact.name,
                "give dest a file path, e.g. download_artifact(run_id, name, "
                "'out/file.bin')",
            )
        if is_special_file(target):
            # A pipe or a device: write into it, never replace it by a file.
            with (
                self._open_blob(artifact.run_id, artifact.sha256) as f,
                open(target, "wb") as out,
            ):
                copy_verified(f, out, artifact.sha256, target)
            return target
        make_dest_folder(target.parent)
        with self._open_blob(artifact.run_id, artifact.sha256) as f:
            write_verified(f, target, artifact.sha256)
        return target

    def _open_blob(self, run_id: str, sha256: str) -> BinaryIO:
        # The local artifact store holds what this machine attached (and is the
        # store's own for SQL stores); anything else comes through the store.
        if self.blobs.has(sha256):
            return self.blobs.open(sha256)
        return self.store.open_blob(run_id, sha256)

    def load_checkpoint(
        self,
        run_id: str,
        step: int | None = None,
        name: str = "model",
        *,
        allow_pickle: bool = False,
        map_location: Any = None,
        dest: str | os.PathLike[str] | None = None,
    ) -> Any:
        """A run's checkpoint, read back: the latest one unless ``step`` is given.

        Returns a torch checkpoint as what ``torch.load(weights_only=True)`` gives
        (a state dict for a module), a numpy one as an array (or a dict of
        arrays), bytes as bytes, a file as the Path of a copy in ``dest`` and a
        folder as ``dest`` with the folder's files restored under it. ``dest`` is
        a folder (default: a new temporary folder).

        allow_pickle: let torch unpickle arbitrary objects; only for checkpoints
            you trust, since unpickling runs code stored in the file.
        map_location: passed to ``torch.load`` (e.g. ``"cpu"``).
        """
        from ._checkpoints import load

        return load(
            self,
            run_id,
            step,
            name,
            allow_pickle=allow_pickle,
            map_location=map_location,
            dest=dest,
        )

    def prune_checkpoints(
        self,
        run_id: str,
        name: str = "model",
        *,
        keep_last: int = 1,
        keep_best: int = 0,
        metric: str | None = None,
        mode: str = "min",
    ) -> list[Artifact]:
        """Delete a run's checkpoints but the latest and the best; returns the
        deleted ones. Blobs no artifact uses any more are removed.

        keep_last: keep this many checkpoints with the highest steps.
        keep_best: also keep this many with the best ``metric`` value logged at
            their step (``mode`` ``"min"``: lowest is best, ``"max"``: highest).
        """
        from ._checkpoints import prune

        return prune(
            self,
            run_id,
            name,
            keep_last=keep_last,
            keep_best=keep_best,
            metric=metric,
            mode=mode,
        )

    def delete_artifacts(
        self,
        run_id: str,
        name: str,
        *,
        step: int | None = None,
        kind: str | None = None,
    ) -> list[Artifact]:
        """Delete a run's artifacts named ``name`` (only the one at ``step`` when
        given, only those of ``kind`` when given); returns the deleted ones.

        Bytes that no artifact uses any more leave the artifact store. Deleting
        nothing is not an error: the list is empty.
        """
        from ._artifacts import check_artifact_name

        check_artifact_name(name)
        if step is not None:
            step = check_step(step)
        found = self.artifacts(run_id, kind=kind, name=name)
        victims = [a for a in found if step is None or a.step == step]
        self._remove_artifacts(run_id, victims)
        return victims

    def _remove_artifacts(self, run_id: str, victims: list[Artifact]) -> None:
        """Delete these artifact rows of a run, then the bytes no one uses."""
        if not victims:
            return
        unused = self.store.delete_artifacts(run_id, [a.id for a in victims])
        for sha in unused:
            try:
                self.blobs.delete(sha)
            except OSError as exc:
                logger.warning("could not delete blob %s: %s", sha, exc)

    def delete_run(self, run_id: str) -> None:
        """Delete a run and everything logged to it."""
        self.store.delete_run(run_id)
