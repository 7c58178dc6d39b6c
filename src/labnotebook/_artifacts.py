"""The artifact store: file bytes kept by their sha256 in a local folder.

Objects live at ``<root>/objects/<sha[:2]>/<sha[2:]>``. A write goes to a temp file
in ``<root>/tmp/``, is hashed while copied, fsync'd and then renamed into place, so
an object is either complete or absent; equal bytes are stored once. Artifact names
are labels in the database and never become paths here: only a validated sha256 is
joined to the root.

A folder is stored as one blob per file plus a JSON manifest (see
:func:`folder_manifest`) that the artifact row points to.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import hashlib
import io
import json
import mimetypes
import os
import re
import stat
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, Any, BinaryIO, Protocol

from ._errors import NotFoundError, StoreError, ValidationError
from ._threads import block_process_signals
from ._values import _check_encodable, _short

#: Bytes read and written at a time while copying.
CHUNK_SIZE = 4 << 20
#: A large file's write-back to disk is started every this many bytes.
WRITEBACK_EVERY = 16 << 20
#: Temp files older than this (seconds) are left over from a killed write.
STALE_TEMP_AGE = 24 * 3600
MAX_ARTIFACT_NAME_LENGTH = 255
DEFAULT_MEDIA_TYPE = "application/octet-stream"
#: Media type of a folder's manifest blob.
FOLDER_MEDIA_TYPE = "application/json"
MANIFEST_FORMAT = 1


class Readable(Protocol):
    """Anything with a binary ``read(size)``, such as an open file."""

    def read(self, size: int = -1, /) -> bytes: ...


_SHA256 = re.compile(r"[0-9a-f]{64}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def check_sha256(value: object) -> str:
    """Return ``value`` if it is a sha256 in 64 lowercase hex digits."""
    if not isinstance(value, str) or not _SHA256.fullmatch(value):
        raise ValidationError(
            f"sha256 must be 64 lowercase hexadecimal digits, got {_short(value)}"
        )
    return value


def check_artifact_name(value: object) -> str:
    """Return ``value`` if it is a usable artifact name (a label, never a path)."""
    if not isinstance(value, str):
        raise ValidationError(
            f"artifact name must be a string, got {type(value).__name__} "
            f"{_short(value)}"
        )
    if not value:
        raise ValidationError("artifact name must not be empty; pass name='...'")
    if len(value) > MAX_ARTIFACT_NAME_LENGTH:
        raise ValidationError(
            f"artifact name is {len(value)} characters long; the limit is "
            f"{MAX_ARTIFACT_NAME_LENGTH}: shorten {_short(value)}"
        )
    if value in (".", ".."):
        raise ValidationError(
            f"artifact name {value!r} is not allowed; give a readable name such as "
            "'model.pt'"
        )
    if "/" in value or "\\" in value:
        raise ValidationError(
            f"artifact name {_short(value)} contains '/' or '\\'; a name is a label, "
            "not a path: pass name= with a single name such as 'config.yaml'"
        )
    if _CONTROL.search(value):
        raise ValidationError(
            f"artifact name {_short(value)} contains a control character (NUL, "
            "newline, tab ...); use printable characters only"
        )
    _check_encodable(value, "artifact name")
    return value


# Python's own table only: the system's (/etc/mime.types) differs from machine to
# machine and maps ".pt" to a game console format, say.
_MEDIA_TYPES = mimetypes.MimeTypes()
for _type, _extension in (
    ("application/yaml", ".yaml"),
    ("application/yaml", ".yml"),
    ("text/markdown", ".md"),
    ("application/toml", ".toml"),
    ("application/x-ndjson", ".jsonl"),
):
    _MEDIA_TYPES.add_type(_type, _extension)


def guess_media_type(name: str) -> str:
    """The media type of a file name's extension, else application/octet-stream."""
    found, _encoding = _MEDIA_TYPES.guess_type(name)
    return found or DEFAULT_MEDIA_TYPE


class BlobStore:
    """A content-addressed folder of blobs.

    root: the folder (created on first write).
    max_size: the largest blob accepted, in bytes.
    """

    def __init__(self, root: Path | str, max_size: int):
        self.root = Path(root)
        self.max_size = max_size

    def __repr__(self) -> str:
        return f"<BlobStore {str(self.root)!r}>"

    # ----------------------------------------------------------------- paths

    def path(self, sha256: str) -> Path:
        """Where the blob with this hash lives (whether it exists or not)."""
        sha = check_sha256(sha256)
        return self.root / "objects" / sha[:2] / sha[2:]

    @property
    def tmp_dir(self) -> Path:
        return self.root / "tmp"

    # --------------------------------------------------------------- writing

    def put_file(self, path: Path | str) -> tuple[str, int]:
        """Store a file's bytes; returns (sha256, size)."""
        with self._open_source(Path(path)) as f:
            return self.put_stream(f, source_name=str(path))

    def put_files(self, paths: list[Path]) -> list[tuple[str, int]]:
        """Store many files (a folder's) with one flush to disk for them all.

        Each file is copied to a temp file and hashed; then the file system is
        flushed once (``syncfs`` on Linux, else an fsync per file) and the temp
        files renamed into place. Returns (sha256, size) per path, in order.
        """
        staged: list[tuple[str, str, int]] = []
        try:
            for path in paths:
                with self._open_source(path) as f:
                    staged.append(self._stage(f, str(path), sync=False))
            self._sync([name for name, _sha, _size in staged])
            folders = {self._install(name, sha, sync=False) for name, sha, _ in staged}
            self._sync([str(folder) for folder in folders if folder is not None])
        except BaseException:
            for name, _sha, _size in staged:
                with contextlib.suppress(OSError):
                    os.unlink(name)
            raise
        return [(sha, size) for _name, sha, size in staged]

    def put_bytes(self, data: bytes | bytearray | memoryview) -> tuple[str, int]:
        """Store bytes; returns (sha256, size)."""
        view = memoryview(data)
        self._check_size(view.nbytes, "the data")
        if not view.c_contiguous:
            # A strided or Fortran-order view cannot be cast to bytes in place.
            view = memoryview(view.tobytes())
        return self.put_stream(io.BytesIO(view.cast("B")), source_name="the data")

    def put_stream(
        self,
        fileobj: Readable,
        expected_sha256: str | None = None,
        *,
        source_name: str = "the file object",
    ) -> tuple[str, int]:
        """Copy a binary file object into the store; returns (sha256, size).

        expected_sha256: when given, the bytes must have this hash (else
            ValidationError and nothing is stored).
        Raises ValidationError past ``max_size`` and StoreError when the store's
        folder cannot be written (disk full, say); the temp file is removed on
        any error.
        """
        if expected_sha256 is not None:
            check_sha256(expected_sha256)
        name, sha, size = self._stage(fileobj, source_name, sync=True)
        try:
            if expected_sha256 is not None and sha != expected_sha256:
                raise ValidationError(
                    f"the bytes have sha256 {sha}, not the expected {expected_sha256}; "
                    "the upload was corrupted or incomplete: send it again"
                )
            self._install(name, sha, sync=True)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(name)
            raise
        return sha, size

    def _open_source(self, source: Path) -> BinaryIO:
        """A file to store, opened, checked to be a regular file within the limit."""
        try:
            # O_NONBLOCK: opening a named pipe must not wait for a writer (it is
            # then refused below as not a regular file); regular files ignore it.
            fd = os.open(source, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
            f = open(fd, "rb")  # noqa: SIM115 (the caller closes it)
        except FileNotFoundError:
            raise ValidationError(
                f"file {str(source)!r} does not exist; check the path"
            ) from None
        except PermissionError as exc:
            raise ValidationError(
                f"file {str(source)!r} cannot be read ({exc.strerror}); check its "
                "permissions"
            ) from None
        except IsADirectoryError:
            raise ValidationError(
                f"{str(source)!r} is a folder; attach it with run.attach(path)"
            ) from None
        except OSError as exc:
            raise ValidationError(f"cannot read {str(source)!r}: {exc}") from None
        except ValueError:  # the only one os.open raises: an embedded NUL
            raise ValidationError(
                f"path {str(source)!r} contains a NUL character, which no file "
                "name can hold; check the path"
            ) from None
        try:
            info = os.fstat(f.fileno())
            if stat.S_ISDIR(info.st_mode):
                raise ValidationError(
                    f"{str(source)!r} is a folder; attach it with run.attach(path)"
                )
            if not stat.S_ISREG(info.st_mode):
                raise ValidationError(
                    f"{str(source)!r} is not a regular file; attach a file or a folder"
                )
            self._check_size(info.st_size, str(source))
        except BaseException:
            f.close()
            raise
        return f

    def _stage(
        self, fileobj: Readable, source_name: str, sync: bool
    ) -> tuple[str, str, int]:
        """Copy into a new temp file; returns its name, the sha256 and the size."""
        tmp = self._temp_file()
        try:
            try:
                sha, size = self._copy(fileobj, tmp, source_name, sync)
            finally:
                # After a failed write, closing fails too (the same error); the
                # first error is the one to report.
                with contextlib.suppress(OSError):
                    tmp.close()
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp.name)
            raise
        return tmp.name, sha, size

    def _install(self, name: str, sha: str, sync: bool) -> Path | None:
        """Rename a complete temp file into place (or drop it when the object is
        already there); returns the folder that changed, if any.
        """
        target = self.path(sha)
        if target.exists():
            os.unlink(name)
            return None
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(name, target)
        except OSError as exc:
            # A full disk can refuse the new folder (ENOSPC) after taking the
            # bytes; so can a folder that is not writable, or not a folder.
            raise StoreError(
                f"cannot write to the artifact store {str(self.root)!r}: {exc}; "
                "free some space, or check the folder (settings.artifacts) and "
                "its permissions"
            ) from None
        if sync:
            _fsync_dir(target.parent)
        return target.parent

    def _sync(self, paths: list[str]) -> None:
        """Make the given files or folders durable: one ``syncfs`` of the store's
        file system where there is one, else an fsync of each.
        """
        if not paths:
            return
        try:
            if _syncfs(self.tmp_dir):
                return
            for path in paths:
                fd = os.open(path, os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
        except OSError as exc:
            raise StoreError(
                f"cannot write to the artifact store {str(self.root)!r}: {exc}; "
                "free some space or move settings.artifacts"
            ) from None

    def remove_stale_temp_files(self, max_age: float = STALE_TEMP_AGE) -> int:
        """Delete temp files untouched for ``max_age`` seconds; returns how many.

        A write in progress keeps its file's modification time fresh, so only
        the leftovers of a process killed mid-write (SIGKILL, power loss) are
        old. Errors are ignored: this is housekeeping.
        """
        removed = 0
        cutoff = time.time() - max_age
        try:
            entries = list(os.scandir(self.tmp_dir))
        except OSError:
            return 0
        for entry in entries:
            with contextlib.suppress(OSError):
                if entry.is_file(follow_symlinks=False) and (
                    entry.stat(follow_symlinks=False).st_mtime < cutoff
                ):
                    os.unlink(entry.path)
                    removed += 1
        return removed

    def _temp_file(self) -> IO[bytes]:
        try:
            self.tmp_dir.mkdir(parents=True, exist_ok=True)
            return tempfile.NamedTemporaryFile(
                dir=self.tmp_dir, prefix="put-", delete=False
            )
        except OSError as exc:
            raise StoreError(
                f"cannot write to the artifact store {str(self.root)!r}: {exc}; "
                "check the folder (settings.artifacts) and its permissions"
            ) from None

    def _copy(
        self, fileobj: Readable, tmp: IO[bytes], source_name: str, sync: bool
    ) -> tuple[str, int]:
        digest = hashlib.sha256()
        size = 0
        # From the first full chunk on, each chunk is written by a helper thread
        # while this one hashes it (both release the GIL): a large file costs
        # about the slower of the two instead of their sum. Every WRITEBACK_EVERY
        # bytes the helper also asks the kernel to start writing them to disk, so
        # that the final fsync has little left to wait for.
        pool: ThreadPoolExecutor | None = None
        writing: Future[int] | None = None
        unsynced = 0
        try:
            for chunk in _chunks(fileobj, source_name):
                size += len(chunk)
                self._check_size(size, source_name)
                if writing is not None:
                    self._written(writing)
                    writing = None
                if pool is None and len(chunk) == CHUNK_SIZE:
                    pool = ThreadPoolExecutor(
                        1,
                        thread_name_prefix="labnotebook-blob",
                        initializer=block_process_signals,
                    )
                if pool is not None:
                    unsynced += len(chunk)
                    flush = unsynced >= WRITEBACK_EVERY
                    if flush:
                        unsynced = 0
                    writing = pool.submit(_write_chunk, tmp, chunk, flush)
                else:
                    self._written(None, tmp, chunk)
                digest.update(chunk)
            if writing is not None:
                self._written(writing)
        finally:
            if pool is not None:
                pool.shutdown(wait=True)
        try:
            tmp.flush()
            if sync:
                os.fsync(tmp.fileno())
        except OSError as exc:
            raise StoreError(
                f"cannot write to the artifact store {str(self.root)!r}: {exc}; "
                "free some space or move settings.artifacts"
            ) from None
        return digest.hexdigest(), size

    def _written(
        self,
        writing: Future[int] | None,
        tmp: IO[bytes] | None = None,
        chunk: bytes | memoryview | None = None,
    ) -> None:
        """Wait for a chunk's write (or write it now), as a StoreError on failure."""
        try:
            if writing is not None:
                writing.result()
            elif tmp is not None and chunk is not None:
                tmp.write(chunk)
        except OSError as exc:
            raise StoreError(
                f"cannot write to the artifact store {str(self.root)!r}: {exc}; "
                "free some space or move settings.artifacts"
            ) from None

    def _check_size(self, size: int, source_name: str) -> None:
        if size > self.max_size:
            raise ValidationError(
                f"{source_name} is larger than the artifact size limit of "
                f"{self.max_size} bytes; raise max_artifact_size "
                "(LABNOTEBOOK_MAX_ARTIFACT_SIZE) or attach a smaller file"
            )

    # --------------------------------------------------------------- reading

    def has(self, sha256: str) -> bool:
        """Whether the blob with this hash is stored."""
        return self.path(sha256).is_file()

    def open(self, sha256: str) -> BinaryIO:
        """The blob's bytes as a file object (NotFoundError if absent)."""
        try:
            return open(self.path(sha256), "rb")
        except FileNotFoundError:
            raise NotFoundError(
                f"blob {sha256} is not in the artifact store {str(self.root)!r}"
            ) from None

    def read(self, sha256: str) -> bytes:
        """The blob's bytes."""
        with self.open(sha256) as f:
            return f.read()

    def size(self, sha256: str) -> int:
        """The blob's size in bytes (NotFoundError if absent)."""
        try:
            return self.path(sha256).stat().st_size
        except FileNotFoundError:
            raise NotFoundError(
                f"blob {sha256} is not in the artifact store {str(self.root)!r}"
            ) from None

    def delete(self, sha256: str) -> None:
        """Remove the blob if it is stored."""
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path(sha256))


def _chunks(fileobj: Readable, source_name: str) -> Iterator[bytes | memoryview]:
    """The bytes of a file object in chunks; each is valid until the one after
    the next is asked for.

    Files and ``BytesIO`` are read into two buffers in turn (no allocation per
    chunk); other objects through ``read()``.
    """
    if getattr(fileobj, "closed", False) is True:
        raise ValidationError(
            f"{source_name} is closed; attach it before closing it (inside its "
            "'with' block), or pass the file's path"
        )
    try:
        if isinstance(fileobj, io.BytesIO):
            # In memory already: slices of its own buffer, no copy at all.
            start = fileobj.tell()
            with fileobj.getbuffer() as whole:
                for offset in range(start, len(whole), CHUNK_SIZE):
                    yield whole[offset : offset + CHUNK_SIZE]
                fileobj.seek(len(whole))
            return
        if isinstance(fileobj, io.BufferedIOBase | io.RawIOBase):
            size = _buffer_size(fileobj)
            buffers = [memoryview(bytearray(size)) for _ in range(2)]
            turn = 0
            while n := fileobj.readinto(buffers[turn]):
                yield buffers[turn][:n]
                turn ^= 1
            if n is None:
                raise _not_ready(source_name)
            return
        while True:
            chunk = fileobj.read(CHUNK_SIZE)
            if chunk is None:
                raise _not_ready(source_name)
            if not isinstance(chunk, bytes | bytearray | memoryview):
                # Checked before the end test: a text file's "" ends it too.
                raise ValidationError(
                    f"{source_name} returned {type(chunk).__name__}, not bytes; open "
                    "files in binary mode ('rb')"
                )
            if not chunk:
                return
            yield chunk
    except OSError as exc:
        raise ValidationError(f"cannot read {source_name}: {exc}") from None


def _not_ready(source_name: str) -> ValidationError:
    """The error for a non-blocking stream that has no bytes ready (read() gave
    None): storing what came so far would cut the file short.
    """
    return ValidationError(
        f"{source_name} returned None: it is non-blocking and had no bytes ready, so "
        "it cannot be read to its end; attach a blocking file object, or read it "
        "yourself and attach the bytes"
    )


def _write_chunk(tmp: IO[bytes], chunk: bytes | memoryview, flush: bool) -> int:
    """Write a chunk; with ``flush``, start writing what is written so far to disk.

    ``POSIX_FADV_DONTNEED`` starts the write-back of the file's dirty pages
    without waiting for it (and drops the pages already written from the page
    cache: a large blob is not read again soon). Where it is missing, the final
    fsync does all the work.
    """
    written = tmp.write(chunk)
    if flush and _DONTNEED is not None:
        tmp.flush()
        with contextlib.suppress(OSError):  # only a hint
            os.posix_fadvise(tmp.fileno(), 0, 0, _DONTNEED)
    return written


_DONTNEED: int | None = getattr(os, "POSIX_FADV_DONTNEED", None)


def _buffer_size(fileobj: io.BufferedIOBase | io.RawIOBase) -> int:
    """CHUNK_SIZE, or less for a regular file known to be smaller (a small file
    then costs no 4 MiB buffers); one byte more than the size so that the end of
    the file is seen by the second read.
    """
    try:
        info = os.fstat(fileobj.fileno())
        if stat.S_ISREG(info.st_mode):
            return max(1, min(CHUNK_SIZE, info.st_size - fileobj.tell() + 1))
    except (OSError, AttributeError, io.UnsupportedOperation):
        pass
    return CHUNK_SIZE


def _syncfs(folder: Path) -> bool:
    """Flush the file system holding ``folder`` (Linux); False where unsupported."""
    syncfs = getattr(_libc(), "syncfs", None)
    if syncfs is None:
        return False
    fd = os.open(folder, os.O_RDONLY)
    try:
        if syncfs(fd) != 0:
            errno = ctypes.get_errno()
            raise OSError(errno, os.strerror(errno))
    finally:
        os.close(fd)
    return True


@functools.cache
def _libc() -> Any:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None


def _fsync_dir(path: Path) -> None:
    if os.name != "posix":
        return
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


# ------------------------------------------------------------------ folders


@dataclass(frozen=True)
class ManifestEntry:
    """One file of a stored folder."""

    path: str
    size: int
    sha256: str
    mode: int


def unreadable_folder(error: OSError) -> None:
    """``os.walk``'s onerror: a folder that cannot be listed is an error, not a
    folder to leave out without a word.
    """
    raise ValidationError(
        f"folder {error.filename!r} cannot be read ({error.strerror or error}); "
        "check its permissions, or move it out of the folder you store"
    ) from None


def folder_files(root: Path) -> Iterator[tuple[str, Path]]:
    """(relative POSIX path, path) of every regular file under ``root``.

    Symbolic links are skipped (files and folders alike), so nothing outside the
    folder is read; see :func:`skipped_links`. A folder that cannot be listed
    raises ValidationError.
    """
    walk = os.walk(root, onerror=unreadable_folder, followlinks=False)
    for dirpath, dirnames, filenames in walk:
        here = Path(dirpath)
        dirnames[:] = sorted(d for d in dirnames if not (here / d).is_symlink())
        for name in sorted(filenames):
            path = here / name
            if path.is_symlink() or not path.is_file():
                continue
            yield path.relative_to(root).as_posix(), path


def skipped_links(root: Path) -> list[str]:
    """Relative POSIX paths of the symbolic links under ``root`` (not stored)."""
    found: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        here = Path(dirpath)
        for name in [*dirnames, *filenames]:
            if (here / name).is_symlink():
                found.append((here / name).relative_to(root).as_posix())
    return sorted(found)


def folder_manifest(entries: list[ManifestEntry], links: list[str]) -> bytes:
    """The manifest blob of a folder: JSON, entries sorted by path."""
    data = {
        "format": MANIFEST_FORMAT,
        "files": [
            {"path": e.path, "size": e.size, "sha256": e.sha256, "mode": e.mode}
            for e in sorted(entries, key=lambda e: e.path)
        ],
        "skipped_links": links,
    }
    return json.dumps(data, separators=(",", ":"), sort_keys=True).encode("utf-8")


def parse_manifest(data: bytes) -> list[ManifestEntry]:
    """The entries of a folder manifest, each path checked to be safe to join.

    Raises StoreError when the manifest is malformed or names an unsafe path (an
    absolute path, "..", NUL), so a tampered manifest never writes outside the
    destination.
    """
    try:
        parsed: Any = json.loads(data)
        files = parsed["files"]
        entries = [
            ManifestEntry(
                path=str(f["path"]),
                size=int(f["size"]),
                sha256=check_sha256(f["sha256"]),
                mode=int(f["mode"]),
            )
            for f in files
        ]
    except (ValueError, KeyError, TypeError) as exc:
        raise StoreError(f"the folder's manifest is malformed: {exc}") from None
    for entry in entries:
        check_relative_path(entry.path)
    return entries


def _is_unsafe_path(value: str) -> bool:
    """Whether a manifest path could reach outside the folder it is restored
    to, on any system: absolute, with "..", "." or empty parts, NUL, a
    backslash or a drive letter.
    """
    return (
        not value
        or "\x00" in value
        or "\\" in value
        or PurePosixPath(value).is_absolute()
        or value.startswith("/")
        or any(part in ("..", ".", "") for part in value.split("/"))
        or re.match(r"^[A-Za-z]:", value) is not None
    )


def check_relative_path(value: str) -> PurePosixPath:
    """A manifest path as a safe relative path, else StoreError."""
    path = PurePosixPath(value)
    if _is_unsafe_path(value):
        raise StoreError(
            f"the folder's manifest names an unsafe path {_short(value)}; it was "
            "not restored"
        )
    return path


def store_folder(blobs: BlobStore, root: Path) -> tuple[str, int, dict[str, Any]]:
    """Store every file under ``root`` and its manifest.

    Returns the manifest's (sha256, size) and the artifact's ``meta``: the number
    of files, their total size and the symbolic links that were skipped.
    """
    found = list(folder_files(root))
    for relative, _path in found:
        # Refused now rather than stored as a folder that cannot be restored.
        if _is_unsafe_path(relative):
            raise ValidationError(
                f"{str(root)!r} holds the file {relative!r}, whose name has a "
                "backslash or starts with a drive letter ('c:'); a folder restored "
                "from it could not be written safely, so nothing was stored: "
                "rename the file, or attach it alone with run.attach(path, name=...)"
            )
    stored = blobs.put_files([path for _relative, path in found])
    entries: list[ManifestEntry] = []
    for (relative, path), (sha, size) in zip(found, stored, strict=True):
        try:
            mode = stat.S_IMODE(path.stat().st_mode)
        except OSError:
            mode = 0o644
        entries.append(ManifestEntry(relative, size, sha, mode))
    links = skipped_links(root)
    manifest = folder_manifest(entries, links)
    sha, size = blobs.put_bytes(manifest)
    meta: dict[str, Any] = {
        "files": len(entries),
        "total_size": sum(e.size for e in entries),
    }
    if links:
        meta["skipped_links"] = len(links)
    return sha, size, meta


# ------------------------------------------------------------------ reading


def write_verified(
    source: IO[bytes], target: Path, sha256: str, mode: int | None = None
) -> None:
    """Copy ``source`` to ``target`` through a temp file beside it.

    The bytes must hash to ``sha256`` (else StoreError and ``target`` is left as
    it was); ``mode`` sets the permission bits (at most 0o777). Without it the
    file gets the mode of any new file: 0o666 less the process's umask.
    """
    fd, name = create_temp_file(target.parent, ".download-")
    try:
        with os.fdopen(fd, "wb") as out:
            copy_verified(source, out, sha256, target)
        if mode is not None:
            os.chmod(name, mode & 0o777)
        os.replace(name, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(name)
        raise


def file_name_in(folder: Path, name: str, hint: str) -> Path:
    """``folder / name`` for a file named after its artifact, checked to be a
    name the folder's file system takes (an artifact name may have 255
    characters, a file name usually 255 bytes). ``hint`` says what to do else.
    """
    name = check_artifact_name(name)
    try:
        limit = os.pathconf(folder, "PC_NAME_MAX")
    except (OSError, ValueError, AttributeError):
        limit = 255
    size = len(os.fsencode(name))
    if limit > 0 and size > limit:
        raise ValidationError(
            f"artifact name {_short(name)} is {size} bytes long in UTF-8, but file "
            f"names in {str(folder)!r} may have at most {limit}; {hint}"
        )
    return folder / name


def make_dest_folder(folder: Path) -> None:
    """Create a download's destination folder and its parents, if missing.

    ValidationError when it cannot be made (a file is in the way, no
    permission), naming the folder.
    """
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ValidationError(
            f"cannot create the folder {str(folder)!r} ({exc.strerror or exc}); give "
            "a dest whose folders can be created (a file may be in the way)"
        ) from None


def copy_verified(source: IO[bytes], out: IO[bytes], sha256: str, target: Path) -> None:
    """Copy ``source`` to ``out``; StoreError if the bytes do not hash to ``sha256``."""
    digest = hashlib.sha256()
    while chunk := source.read(CHUNK_SIZE):
        digest.update(chunk)
        out.write(chunk)
    if digest.hexdigest() != sha256:
        raise StoreError(
            f"the bytes read for {str(target)!r} do not match their sha256 "
            f"{sha256}; the stored blob is damaged"
        )


def is_special_file(path: Path) -> bool:
    """Whether ``path`` is an existing named pipe, device or socket.

    Such a destination (``/dev/null``, a pipe another program reads) is written
    into, never replaced by a regular file.
    """
    try:
        mode = path.stat().st_mode
    except OSError:
        return False
    return not (stat.S_ISREG(mode) or stat.S_ISDIR(mode))


def create_temp_file(folder: Path, prefix: str, suffix: str = "") -> tuple[int, str]:
    """A new file in ``folder`` opened for writing, with a random name.

    Unlike ``tempfile.mkstemp`` (always 0o600), its mode is 0o666 less the
    umask, as for any file a program creates, so a file renamed into place from
    it is as readable as one the user copied. The kernel applies the umask, so
    nothing reads or changes the process's umask (which other threads share).
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    for _ in range(100):
        name = os.path.join(folder, prefix + os.urandom(8).hex() + suffix)
        try:
            return os.open(name, flags, 0o666), name
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary file name in {str(folder)!r}")


def restore_folder(
    entries: list[ManifestEntry],
    dest: Path,
    open_blob: Callable[[str], IO[bytes]],
) -> None:
    """Write a folder's files under ``dest``, never outside it.

    Every path was checked by :func:`parse_manifest`; folders are created one
    level at a time and a symbolic link met on the way is an error, so nothing is
    written (or created) through a link that points elsewhere.
    """
    root = dest.resolve()
    for entry in entries:
        parts = check_relative_path(entry.path).parts
        parent = make_folders(root, parts[:-1], entry.path)
        target = parent / parts[-1]
        if target.is_dir() and not target.is_symlink():
            raise StoreError(
                f"cannot restore the folder's file {entry.path!r}: {str(target)!r} "
                "is a folder; download into an empty folder"
            )
        with open_blob(entry.sha256) as source:
            write_verified(source, target, entry.sha256, entry.mode)


def make_folders(root: Path, parts: tuple[str, ...], path: str) -> Path:
    here = root
    for part in parts:
        here = here / part
        if here.is_symlink():
            raise StoreError(
                f"the folder's file {path!r} would be written outside "
                f"{str(root)!r} through the symbolic link {str(here)!r}; download "
                "into an empty folder"
            )
        try:
            here.mkdir()
        except FileExistsError:
            if not here.is_dir():
                raise StoreError(
                    f"cannot restore the folder's file {path!r}: {str(here)!r} is "
                    "a file; download into an empty folder"
                ) from None
    return here
