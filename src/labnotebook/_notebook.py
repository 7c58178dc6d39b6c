"""The client object behind the module-level API: settings plus a store."""

from __future__ import annotations

import logging
import time
import uuid
import warnings
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from . import _process
from ._config import Settings
from ._errors import StoreError, ValidationError
from ._run import Run
from ._spool import Spool, read_spool_file, spool_files
from ._store import open_store
from ._store.base import Batch, RunCreate, RunRecord, Store
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

    def __init__(self, settings: Settings | None = None, store: Store | None = None):
        self.settings = settings or Settings.from_env()
        self.store = store or open_store(
            self.settings.store_url,
            token=self.settings.token,
            crash_timeout=self.settings.crash_timeout,
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
    ) -> Run:
        """Start a run and return it (use it as a context manager)."""
        run_id = uuid.uuid4().hex
        name = f"run-{run_id[:6]}" if name is None else check_name(name, "run name")
        experiment = check_name(experiment, "experiment name")
        converted = to_json({} if params is None else params, "params")
        if not isinstance(converted, dict):
            raise ValidationError(
                f"params must be a dict (or an object convertible to one), got "
                f"{type(params).__name__}"
            )
        create = RunCreate(
            experiment=experiment,
            name=name,
            params=converted,
            tags=check_tags(tags),
            started_at=time.time(),
            **_process.host_info(),
        )
        first = Batch(run_id=run_id, create=create)
        try:
            self.store.write(first)
            pending = Batch(run_id=run_id)
        except (StoreError, OSError) as exc:
            warnings.warn(
                f"store is unavailable ({exc}); run {run_id[:8]} is logged to the "
                "spool and sent when the store is back",
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
            environment=None,
            metrics={},
        )
        run = Run(self, run_id, record)
        run._activate(pending)
        return run

    def new_spool(self, run_id: str) -> Spool:
        return Spool(self.settings.spool_dir, run_id, self.store.url)

    def register(self, run: Run) -> None:
        _process.register(run)

    def unregister(self, run: Run) -> None:
        _process.unregister(run)

    def sync(self) -> int:
        """Send the spool files that ended processes left for this store.

        Returns how many batches were sent.
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
                self.store.write(batch)
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

        keys: one key or a list of keys (default: all of the run's metrics).
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

    def delete_run(self, run_id: str) -> None:
        """Delete a run and everything logged to it."""
        self.store.delete_run(run_id)
