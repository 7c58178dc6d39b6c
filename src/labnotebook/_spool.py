"""The spool: an append-only file of batches that could not be written yet.

Each line is ``<batch id> <batch as JSON>``. The first line is a header naming the
store the batches are for. A writer holds an exclusive lock on its spool file while
it lives, so ``labnotebook sync`` only replays files whose writer is gone. A torn
last line (the process died mid-write) is skipped on replay.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from ._store.base import Batch

logger = logging.getLogger(__name__)

SUFFIX = ".spool"


class Spool:
    """One writer's spool file, locked for as long as the writer lives."""

    def __init__(self, folder: Path, run_id: str, store_url: str):
        self.folder = folder
        self.path = folder / f"{run_id}-{uuid.uuid4().hex[:8]}{SUFFIX}"
        self.store_url = store_url
        self.run_id = run_id
        self._file: IO[bytes] | None = None
        self._read_offset = 0

    def _open(self) -> IO[bytes]:
        if self._file is None:
            self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
            handle = os.fdopen(fd, "a+b")
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            header = {
                "labnotebook_spool": 1,
                "url": self.store_url,
                "run_id": self.run_id,
            }
            handle.write(json.dumps(header).encode() + b"\n")
            handle.flush()
            self._read_offset = handle.tell()
            self._file = handle
        return self._file

    def append(self, batch: Batch) -> None:
        """Append one batch and hand it to the operating system."""
        handle = self._open()
        handle.write(f"{batch.id} {batch.to_json()}\n".encode())
        handle.flush()

    def reject(self, batch: Batch) -> Path:
        """Keep a batch the store refused, apart from those to replay."""
        return reject_batch(self.path, batch)

    @property
    def pending(self) -> bool:
        """Whether lines were appended that have not been read back yet."""
        if self._file is None:
            return False
        return os.fstat(self._file.fileno()).st_size > self._read_offset

    def read_pending(self) -> Iterator[tuple[str, str, int]]:
        """Yield ``(batch id, JSON, offset after the line)`` for unread lines."""
        handle = self._open()
        handle.seek(self._read_offset)
        while True:
            line = handle.readline()
            if not line:
                return
            if not line.endswith(b"\n"):
                return  # being written right now; read it next time
            end = handle.tell()
            batch_id, _, text = line.decode().rstrip("\n").partition(" ")
            yield batch_id, text, end

    def advance(self, offset: int) -> None:
        self._read_offset = offset

    def reset_if_drained(self) -> bool:
        """Empty the file when every line has been read back; True if emptied."""
        if self._file is None:
            return True
        if os.fstat(self._file.fileno()).st_size != self._read_offset:
            return False
        self.close(remove=True)
        return True

    def close(self, remove: bool = False) -> None:
        if self._file is None:
            return
        with contextlib.suppress(OSError):
            fcntl.flock(self._file.fileno(), fcntl.LOCK_UN)
        self._file.close()
        self._file = None
        self._read_offset = 0
        if remove:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()


def reject_batch(spool_path: Path, batch: Batch) -> Path:
    """Append a batch the store refused to the ``.rejected`` file next to a spool
    file; returns that file. Refused batches are kept there, never replayed.
    """
    path = spool_path.with_suffix(".rejected")
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(fd, "ab") as handle:
        handle.write(f"{batch.id} {batch.to_json()}\n".encode())
    return path


def spool_files(folder: Path) -> list[Path]:
    """Spool files in ``folder``, oldest first."""
    if not folder.is_dir():
        return []
    return sorted(folder.glob(f"*{SUFFIX}"), key=lambda p: p.stat().st_mtime)


def read_spool_file(path: Path) -> tuple[dict[str, str], list[Batch]] | None:
    """Read an abandoned spool file, or ``None`` if its writer still holds it.

    Returns the header and the batches; torn lines are skipped with a warning.
    """
    with path.open("rb") as handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return None
        header_line = handle.readline()
        try:
            header = json.loads(header_line)
        except ValueError:
            logger.warning("spool file %s has no valid header; skipped", path)
            return {}, []
        found: list[Batch] = []
        for number, line in enumerate(handle, start=2):
            _, _, text = line.decode(errors="replace").partition(" ")
            try:
                found.append(Batch.from_json(text))
            except (ValueError, TypeError, KeyError):
                logger.warning("spool file %s line %d is torn; skipped", path, number)
        return header, found
