"""Background threads that leave the process's signals to the main thread.

The kernel delivers a signal sent to a process (SIGTERM from ``kill`` or from
``Pool.terminate()``, SIGINT from Ctrl-C) to any one of its threads that does not
block it. Python runs signal handlers in the main thread only: when the signal
lands on a background thread while the main thread waits in C (a lock, a
semaphore, a queue), the handler never runs and the process does not stop. So
labnotebook's threads block these signals, and the kernel picks the main thread,
whose wait is interrupted.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from typing import Any

#: Signals sent to a process that its handlers (Python's, labnotebook's, a
#: framework's) expect the main thread to receive. Faults (SIGSEGV...) and
#: SIGABRT stay with the thread that raised them.
_PROCESS_SIGNALS = frozenset(
    getattr(signal, name)
    for name in (
        "SIGINT",
        "SIGTERM",
        "SIGHUP",
        "SIGQUIT",
        "SIGUSR1",
        "SIGUSR2",
        "SIGALRM",
    )
    if hasattr(signal, name)
)
_CAN_MASK = hasattr(signal, "pthread_sigmask")


def block_process_signals() -> None:
    """Block the process's signals in the calling (background) thread."""
    if _CAN_MASK:
        signal.pthread_sigmask(signal.SIG_BLOCK, _PROCESS_SIGNALS)


def start_thread(
    target: Callable[..., Any], *, name: str, args: tuple[Any, ...] = ()
) -> threading.Thread:
    """Start a daemon thread that blocks the process's signals from its first
    instruction (it inherits the mask in force while it is created).
    """
    thread = threading.Thread(target=target, name=name, args=args, daemon=True)
    if not _CAN_MASK:
        thread.start()
        return thread
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, _PROCESS_SIGNALS)
    try:
        thread.start()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
    return thread
