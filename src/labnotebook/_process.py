"""Process-wide hooks that end active runs: normal exit, uncaught exceptions, SIGTERM.

Installed once, on the first run started in the process. Earlier handlers are
kept and called after ours.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import signal
import socket
import sys
import threading
import traceback
from types import FrameType, TracebackType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._run import Run

logger = logging.getLogger(__name__)

#: Runs started and not yet finished, held strongly: a run whose last reference
#: the caller dropped (``lab.start().log(x=1)``) is still active, and still
#: finished at exit, on an uncaught exception or on SIGTERM. Kept in start order.
_active: dict[Run, None] = {}
# Reentrant: the SIGTERM handler may run while this thread holds it.
_active_lock = threading.RLock()
_installed = False
# Reentrant: taken again when the SIGTERM handler finishes the last run.
_install_lock = threading.RLock()
_previous_excepthook = sys.excepthook
#: Whether labnotebook's SIGTERM handler is in place, and what it replaced.
_sigterm_held = False
_previous_sigterm: Any = None


def register(run: Run) -> None:
    _install()
    with _active_lock:
        _active[run] = None
    _hold_sigterm()


def unregister(run: Run) -> None:
    with _active_lock:
        _active.pop(run, None)
        idle = not _active
    if idle:
        _release_sigterm()


def active_runs() -> list[Run]:
    with _active_lock:
        return list(_active)


def _after_fork_in_child() -> None:
    """A forked child leaves the parent's runs to the parent.

    The child has none of the parent's writer threads, so the runs it inherited
    are detached (logging to them raises) and its exit, exceptions and SIGTERM
    no longer end them: a DataLoader worker or a Pool process that ends must not
    wait for a writer that is not there, nor mark the parent's run finished.
    """
    global _active_lock, _install_lock
    # Another thread may have held the locks at the fork; that thread is gone.
    _active_lock = threading.RLock()
    _install_lock = threading.RLock()
    inherited = list(_active)
    _active.clear()
    for run in inherited:
        run._left_in_parent()
    _release_sigterm()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _finish_all(status: str, error: str | None = None) -> None:
    for run in active_runs():
        try:
            run.finish(status, error=error)
        except Exception:
            logger.exception("could not finish run %s", run.id)


def _install() -> None:
    global _installed, _previous_excepthook
    with _install_lock:
        if _installed:
            return
        _installed = True
        atexit.register(_at_exit)
        _previous_excepthook = sys.excepthook
        sys.excepthook = _excepthook


def _hold_sigterm() -> None:
    """Handle SIGTERM while a run is active (from the main thread only, where
    Python lets handlers be set)."""
    global _sigterm_held, _previous_sigterm
    if threading.current_thread() is not threading.main_thread():
        return
    with _install_lock:
        if _sigterm_held:
            return
        previous = signal.getsignal(signal.SIGTERM)
        if previous is signal.SIG_IGN:
            return
        signal.signal(signal.SIGTERM, _on_sigterm)
        _previous_sigterm = previous
        _sigterm_held = True


def _release_sigterm() -> None:
    """Give SIGTERM back to its previous handler once no run is active.

    A Python-level handler only runs between bytecodes of the main thread: a
    process stopped by SIGTERM while that thread waits in C (a Pool worker
    waiting for a task) would not end. Without an active run there is nothing to
    finish, so the process is left with the handling it had without labnotebook.
    """
    global _sigterm_held
    if threading.current_thread() is not threading.main_thread():
        return
    with _install_lock:
        if not _sigterm_held or active_runs():
            return
        _sigterm_held = False
        if signal.getsignal(signal.SIGTERM) is _on_sigterm:  # not replaced since
            with contextlib.suppress(ValueError, TypeError):
                signal.signal(signal.SIGTERM, _previous_sigterm)


def _at_exit() -> None:
    _finish_all("finished")


def _excepthook(
    exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None
) -> None:
    if issubclass(exc_type, KeyboardInterrupt):
        _finish_all("killed")
    else:
        _finish_all("failed", "".join(traceback.format_exception(exc_type, exc, tb)))
    _previous_excepthook(exc_type, exc, tb)


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    _finish_all("killed")
    previous = _previous_sigterm
    if callable(previous):
        previous(signum, frame)
        return
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGTERM)


def host_info() -> dict[str, Any]:
    """Host, pid and command line (or notebook) of this process."""
    if "ipykernel" in sys.modules:
        command = "jupyter notebook"
        session = os.environ.get("JPY_SESSION_NAME")
        if session:
            command += f" {session}"
    else:
        command = " ".join([sys.executable, *sys.argv])
    # Arguments that were not valid in the file system encoding arrive as lone
    # surrogates, which no database stores: keep them as visible escapes.
    command = command.encode("utf-8", "backslashreplace").decode("utf-8")
    return {"host": socket.gethostname(), "pid": os.getpid(), "command": command}
