"""Console capture: a copy of what a run's process writes to stdout and stderr.

While a run is active, ``sys.stdout`` and ``sys.stderr`` are replaced by proxies
that write to the original stream first, then append ``(time, stream, text)`` to a
deque. Every attribute other than ``write`` and ``writelines`` (``encoding``,
``isatty``, ``fileno``, ``buffer``...) is the original's, and bytes written to
``buffer`` are copied too. The run's writer drains the deque into each batch,
joining consecutive writes to one stream into one chunk.

Only Python-level writes are copied: output that C extensions or subprocesses
write to file descriptors 1 and 2 is not. One capture is active per process: the
first run started captures, runs started while it is active do not.
"""

from __future__ import annotations

import codecs
import collections
import contextlib
import logging
import re
import sys
import threading
import time
import weakref
from typing import Any

from ._store.base import Batch

STREAMS = ("stdout", "stderr")
#: Largest chunk of text stored in one row; longer output is cut into several.
MAX_CHUNK = 64 * 1024
TRUNCATED = (
    "[labnotebook: console output truncated after {limit} bytes; "
    "raise console_limit to keep more]\n"
)

_SURROGATE = re.compile("[\ud800-\udfff]")
_now = time.time
_lock = threading.RLock()  # stop() may run in a signal handler (SIGTERM)
_active: ConsoleCapture | None = None


def in_notebook() -> bool:
    """Whether this process is an IPython shell or a Jupyter kernel."""
    ipython = sys.modules.get("IPython")
    if ipython is None:
        return False
    try:
        return ipython.get_ipython() is not None
    except Exception:
        return False


def should_capture(mode: str) -> bool:
    """Whether the ``capture_console`` setting asks for capture in this process."""
    return mode == "on" or (mode == "auto" and not in_notebook())


class ConsoleCapture:
    """Copies one process's stdout and stderr writes, up to ``limit`` bytes."""

    def __init__(self, limit: int, owner: object | None = None):
        self.limit = limit
        #: The run that captures; a capture whose run was dropped without being
        #: finished gives way to the next run started.
        self._owner = None if owner is None else weakref.ref(owner)
        #: (time, stream, str or bytes) in the order written, from any thread.
        self.entries: collections.deque[tuple[float, str, Any]] = collections.deque()
        #: Characters or bytes appended so far: a cheap lower bound of the UTF-8
        #: size, so that memory stays bounded between drains.
        self.counted = 0
        self.kept = 0
        self.truncated = False
        self.active = False
        #: Active and not truncated: whether writes are copied.
        self.keeping = False
        self._proxies: dict[str, _StreamProxy] = {}
        self._handlers: list[tuple[logging.StreamHandler[Any], _StreamProxy]] = []
        self._decoders = {
            name: codecs.getincrementaldecoder("utf-8")("replace") for name in STREAMS
        }

    # ------------------------------------------------------------- lifecycle

    def start(self) -> bool:
        """Install the proxies; False when another capture is already active."""
        global _active
        with _lock:
            if _active is not None and _active._orphaned():
                _active._stop_locked()
            if _active is not None:
                return False
            _active = self
            self.active = True
            self.keeping = not self.truncated
            for name in STREAMS:
                original = getattr(sys, name)
                if original is None:
                    continue
                proxy = _StreamProxy(original, name, self)
                self._proxies[name] = proxy
                setattr(sys, name, proxy)
            self._redirect_handlers()
        return True

    def _redirect_handlers(self) -> None:
        """Point logging handlers that hold an original stream at its proxy.

        ``logging.basicConfig()`` before the run started made a handler that kept
        the original ``sys.stderr``; without this its records would not be kept.
        """
        by_stream = {id(p._lnb_original): p for p in self._proxies.values()}
        for handler in _stream_handlers():
            proxy = by_stream.get(id(handler.stream))
            if proxy is not None:
                handler.setStream(proxy)
                self._handlers.append((handler, proxy))

    def stop(self) -> None:
        """Stop copying; put the original streams back unless they were replaced."""
        with _lock:
            self._stop_locked()

    def _stop_locked(self) -> None:
        global _active
        if self.active:
            self.active = False
            self.keeping = False
            if _active is self:
                _active = None
            for name, proxy in self._proxies.items():
                if getattr(sys, name) is proxy:
                    setattr(sys, name, proxy._lnb_original)
            self._proxies.clear()
            for handler, proxy in self._handlers:
                if handler.stream is proxy:
                    handler.setStream(proxy._lnb_original)
            self._handlers.clear()

    def _orphaned(self) -> bool:
        if self._owner is None:
            return False
        owner = self._owner()
        return owner is None or not getattr(owner, "is_active", True)

    # ---------------------------------------------------------------- writing

    def record(self, stream: str, data: Any) -> None:
        """Keep one write (``_StreamProxy.write`` has its own copy of this)."""
        if not self.keeping:
            return
        size = len(data)
        if not size:
            return
        self.entries.append((_now(), stream, data))
        self.counted += size
        if self.counted > self.limit:
            self.truncated = True
            self.keeping = False

    # ---------------------------------------------------------------- reading

    def drain(self) -> list[tuple[float, str, str]]:
        """The writes kept since the last drain, as chunks of consecutive writes."""
        entries = self.entries
        taken = [entries.popleft() for _ in range(len(entries))]
        if not taken:
            return []
        chunks: list[tuple[float, str, str]] = []
        kept_before = self.kept
        start = 0
        for i in range(1, len(taken) + 1):
            if i == len(taken) or taken[i][1] != taken[start][1]:
                self._add_chunk(chunks, taken[start:i])
                start = i
        if not self.truncated:
            # Count what was kept (progress bar states merged), not what was
            # written, so that a bar redrawn for hours does not use up the limit.
            written = sum(len(data) for _, _, data in taken)
            self.counted -= written - (self.kept - kept_before)
        if self.truncated and self.kept >= 0 and not self.entries:
            self._add_marker(chunks)
        return chunks

    def _add_chunk(
        self, chunks: list[tuple[float, str, str]], run: list[tuple[float, str, Any]]
    ) -> None:
        if self.kept < 0:
            return  # the marker is already out: nothing more is kept
        stream = run[0][1]
        decoder = self._decoders[stream]
        parts = [
            data if isinstance(data, str) else decoder.decode(bytes(data))
            for _, _, data in run
        ]
        text = _storable("".join(parts))
        if "\r" in text:
            text = _merge_rewrites(text)
        encoded = text.encode("utf-8")
        room = self.limit - self.kept
        over = len(encoded) > room
        if over:
            text = encoded[:room].decode("utf-8", "ignore")
            encoded = text.encode("utf-8")
            self.truncated = True
            self.keeping = False
        self.kept += len(encoded)
        for offset in range(0, len(text), MAX_CHUNK):
            chunks.append((run[0][0], stream, text[offset : offset + MAX_CHUNK]))
        if over:
            self._add_marker(chunks)

    def _add_marker(self, chunks: list[tuple[float, str, str]]) -> None:
        if self.kept < 0:
            return
        last = chunks[-1][2] if chunks else ""
        newline = "\n" if last and not last.endswith("\n") else ""
        marker = newline + TRUNCATED.format(limit=self.limit)
        chunks.append((_now(), "stderr", marker))
        self.kept = -1

    def add_to(self, batch: Batch) -> None:
        """Move the kept writes into a batch (called by the run's writer)."""
        chunks = self.drain()
        if chunks:
            batch.console.extend(chunks)


def _stream_handlers() -> list[logging.StreamHandler[Any]]:
    """Every logging handler that writes to a stream (not to a file)."""
    loggers: list[Any] = [logging.getLogger()]
    loggers += list(logging.Logger.manager.loggerDict.values())
    found: dict[int, logging.StreamHandler[Any]] = {}
    for logger in loggers:
        for handler in getattr(logger, "handlers", ()):
            if isinstance(handler, logging.StreamHandler):
                found[id(handler)] = handler
    return list(found.values())


def _merge_rewrites(text: str) -> str:
    """Merge the states of a line redrawn with ``\r`` into its last one.

    ``"\r1/3 [#  ]\r2/3 [## ]\r3/3 [###]"`` becomes ``"\r3/3 [###]"``: what a
    terminal shows, with the cursor where it would be. A line is merged only when
    its last state is at least as long as every earlier one since the first
    ``\r`` (so it covers them, as progress bars do) and it holds no escape
    sequence; the text before the first ``\r`` may continue an earlier chunk's
    line and is kept.
    """
    lines = text.split("\n")
    for i, line in enumerate(lines):
        if line.count("\r") < 2 or "\x1b" in line:
            continue
        body = line.rstrip("\r")
        first, *states = body.split("\r")
        last = states[-1] if states else ""
        if len(states) < 2 or any(len(state) > len(last) for state in states):
            continue
        lines[i] = f"{first}\r{last}" + "\r" * (len(line) - len(body))
    return "\n".join(lines)


def _storable(text: str) -> str:
    """Text every database stores: no NUL characters, no lone surrogates."""
    if "\x00" in text:
        text = text.replace("\x00", "\ufffd")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = _SURROGATE.sub("\ufffd", text)
    return text


class _StreamProxy:
    """Stands in for ``sys.stdout`` or ``sys.stderr``; the original does the work."""

    def __init__(self, original: Any, name: str, capture: ConsoleCapture):
        # Attributes set on the proxy stay on the proxy (IPython replaces the
        # ``write`` of sys.stdout for a cell and puts it back afterwards); its own
        # have names that no stream uses.
        self._lnb_original = original
        self._lnb_name = name
        self._lnb_capture = capture

    def write(self, text: Any) -> Any:
        capture = self._lnb_capture
        if type(text) is str:
            # Recorded before it is written: whatever a reader of the real stream
            # has seen is in the run, even when the process is stopped by a signal
            # right after this write.
            if text and capture.keeping:
                try:
                    # ConsoleCapture.record(), inlined: this runs on every print().
                    capture.entries.append((_now(), self._lnb_name, text))
                    capture.counted += len(text)
                    if capture.counted > capture.limit:
                        capture.truncated = True
                        capture.keeping = False
                except Exception:  # noqa: S110 - a failed copy must never break print()
                    pass
            return self._lnb_original.write(text)
        if isinstance(text, str):
            # A subclass (numpy.str_, markupsafe.Markup): kept as the plain text
            # the stream writes, whatever its __str__ returns.
            with contextlib.suppress(Exception):  # as above
                capture.record(self._lnb_name, str.__str__(text))
            return self._lnb_original.write(text)
        written = self._lnb_original.write(text)
        if capture.keeping and isinstance(text, (bytes, bytearray)):
            with contextlib.suppress(Exception):  # as above
                capture.record(self._lnb_name, text)
        return written

    def writelines(self, lines: Any) -> None:
        lines = list(lines)
        self._lnb_original.writelines(lines)
        for line in lines:
            try:
                if isinstance(line, str):
                    self._lnb_capture.record(self._lnb_name, line)
            except Exception:  # noqa: S110 - as in write()
                pass

    @property
    def buffer(self) -> Any:
        buffer = self._lnb_original.buffer
        proxy: _BufferProxy | None = self.__dict__.get("_lnb_buffer")
        if proxy is None or proxy._lnb_original is not buffer:
            proxy = _BufferProxy(buffer, self._lnb_name, self._lnb_capture)
            self._lnb_buffer = proxy
        return proxy

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_lnb_"):  # not set yet (a copy being made)
            raise AttributeError(name)
        return getattr(self._lnb_original, name)

    def __iter__(self) -> Any:
        return iter(self._lnb_original)

    def __enter__(self) -> Any:
        return self._lnb_original.__enter__()

    def __exit__(self, *exc: object) -> Any:
        return self._lnb_original.__exit__(*exc)

    def __repr__(self) -> str:
        return repr(self._lnb_original)


class _BufferProxy:
    """Stands in for ``sys.stdout.buffer``: bytes written there are copied too."""

    def __init__(self, original: Any, name: str, capture: ConsoleCapture):
        self._lnb_original = original
        self._lnb_name = name
        self._lnb_capture = capture

    def write(self, data: Any) -> Any:
        # Recorded first, as in _StreamProxy.write.
        with contextlib.suppress(Exception):  # a failed copy never breaks a write
            self._lnb_capture.record(self._lnb_name, bytes(memoryview(data)))
        return self._lnb_original.write(data)

    def writelines(self, lines: Any) -> None:
        lines = list(lines)
        with contextlib.suppress(Exception):  # as in write()
            for line in lines:
                self._lnb_capture.record(self._lnb_name, bytes(memoryview(line)))
        self._lnb_original.writelines(lines)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_lnb_"):  # not set yet (a copy being made)
            raise AttributeError(name)
        return getattr(self._lnb_original, name)

    def __repr__(self) -> str:
        return repr(self._lnb_original)
