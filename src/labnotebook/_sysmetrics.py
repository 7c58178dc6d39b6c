"""System metrics: CPU, memory, disk, network and GPU use while a run is active.

Each active run has one daemon *sampler* thread (started with the run when
``system_metrics_interval`` is above 0). It takes a sample soon after the start,
then one every interval, and a last one when the run finishes, and logs each as
metrics named ``sys/...`` at its own step: the sample index, counted apart from
the training steps that :meth:`Run.log` assigns. Values come from psutil and, for
NVIDIA GPUs, from NVML (``nvidia-ml-py``, imported on first use); a value that
cannot be read is left out of that sample, and a machine without NVML or a GPU
simply has no GPU metrics.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import warnings
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import psutil

from ._threads import start_thread

if TYPE_CHECKING:
    from ._run import Run

logger = logging.getLogger(__name__)

#: Every system metric key starts with this.
PREFIX = "sys/"
#: Seconds from the start of a run to its first sample (at most one interval).
FIRST_SAMPLE_DELAY = 1.0
#: Seconds that finishing a run waits for the sampler's last sample.
STOP_TIMEOUT = 2.0

_nvml_lock = threading.Lock()
#: NVML once looked for in this process: (pynvml module, device handles), or
#: False when there is no NVML library, driver or GPU.
_nvml: tuple[Any, list[Any]] | bool | None = None


class SystemSampler:
    """Samples system use every ``interval`` seconds and logs it to one run."""

    def __init__(self, run: Run, interval: float, first_step: int = 0):
        self.interval = interval
        #: The step of the next sample.
        self.step = first_step
        #: CPU seconds the sampler thread has used so far.
        self.cpu_time = 0.0
        self._run = weakref.ref(run)
        self._pid = os.getpid()
        self._stop = threading.Event()
        self._process = psutil.Process()
        self._last_time = 0.0
        self._last_cpu: tuple[float, float] | None = None
        self._last_disk: tuple[int, int] | None = None
        self._last_net: tuple[int, int] | None = None
        self._thread = start_thread(
            self._loop, name=f"labnotebook-sysmetrics-{run.id[:8]}"
        )

    @property
    def running(self) -> bool:
        """Whether the sampler thread is alive (always False in a forked child)."""
        return os.getpid() == self._pid and self._thread.is_alive()

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """Take the last sample and end the thread, waiting at most ``timeout`` s."""
        if os.getpid() != self._pid:
            # A forked child has no sampler thread, and must not log for its parent.
            return
        self._stop.set()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout)

    # ---------------------------------------------------------------- thread

    def _loop(self) -> None:
        self._guarded(self._prime)
        wait = min(FIRST_SAMPLE_DELAY, self.interval)
        while not self._stop.wait(wait):
            if not self._guarded(self._sample):
                return
            wait = self.interval
        self._guarded(self._sample)

    def _guarded(self, action: Callable[[], bool | None]) -> bool:
        """Run one step of the loop; an error is logged and never ends the thread.

        Returns False when the run is gone and the thread should end.
        """
        try:
            return action() is not False
        except Exception:
            logger.debug("system metrics: sample failed", exc_info=True)
            return True
        finally:
            self.cpu_time = time.thread_time()

    def _prime(self) -> None:
        """Start the counters that later samples are measured against."""
        _attempt(lambda: self._process.cpu_percent(None))
        self._last_cpu = _cpu()
        self._last_time = time.monotonic()
        self._last_disk = _disk()
        self._last_net = _net()

    def _sample(self) -> bool:
        run = self._run()
        if run is None:
            return False
        values: dict[str, float] = {}
        put = values.__setitem__

        cpu = _cpu()
        if cpu is not None and self._last_cpu is not None:
            busy, total = cpu[0] - self._last_cpu[0], cpu[1] - self._last_cpu[1]
            if total > 0:
                put(f"{PREFIX}cpu_percent", min(100.0, max(0.0, 100 * busy / total)))
        self._last_cpu = cpu
        _read(put, "sys/memory_percent", lambda: psutil.virtual_memory().percent)
        _read(put, "sys/process_cpu_percent", lambda: self._process.cpu_percent(None))
        _read(put, "sys/process_rss", lambda: self._process.memory_info().rss)

        now = time.monotonic()
        elapsed = now - self._last_time
        self._last_time = now
        disk, net = _disk(), _net()
        if elapsed > 0:
            _rates(put, "disk_read", "disk_write", self._last_disk, disk, elapsed)
            _rates(put, "net_sent", "net_recv", self._last_net, net, elapsed)
        self._last_disk, self._last_net = disk, net

        _gpu_values(put)
        if values:
            run._log_system(self.step, values)
            self.step += 1
        return True


# ------------------------------------------------------------------ readings


def _attempt(read: Callable[[], Any]) -> Any:
    """The value ``read`` returns, or None when the system refuses it.

    Any error counts as a refusal: psutil raises ``NotImplementedError`` where a
    counter does not exist (``disk_io_counters`` without ``/proc/diskstats`` and
    ``/sys/block``, in some containers), and one missing value must not cost the
    others of the sample.
    """
    try:
        return read()
    except Exception:
        return None


def _read(put: Callable[[str, float], None], key: str, read: Callable[[], Any]) -> None:
    value = _attempt(read)
    if value is not None:
        put(key, float(value))


def _cpu() -> tuple[float, float] | None:
    """Busy and total CPU seconds of the machine, all cores together.

    Kept per sampler, rather than through ``psutil.cpu_percent()``, whose state is
    shared by everything in the process that calls it.
    """
    times = _attempt(psutil.cpu_times)
    if times is None:
        return None
    # On Linux, guest time is already counted in user time.
    total = sum(times) - getattr(times, "guest", 0) - getattr(times, "guest_nice", 0)
    idle = times.idle + getattr(times, "iowait", 0)
    return total - idle, total


def _disk() -> tuple[int, int] | None:
    counters = _attempt(lambda: psutil.disk_io_counters(nowrap=True))
    return None if counters is None else (counters.read_bytes, counters.write_bytes)


def _net() -> tuple[int, int] | None:
    counters = _attempt(lambda: psutil.net_io_counters(nowrap=True))
    return None if counters is None else (counters.bytes_sent, counters.bytes_recv)


def _rates(
    put: Callable[[str, float], None],
    first: str,
    second: str,
    before: tuple[int, int] | None,
    after: tuple[int, int] | None,
    elapsed: float,
) -> None:
    if before is None or after is None:
        return
    put(f"{PREFIX}{first}_bytes_per_s", max(0, after[0] - before[0]) / elapsed)
    put(f"{PREFIX}{second}_bytes_per_s", max(0, after[1] - before[1]) / elapsed)


def _gpu_values(put: Callable[[str, float], None]) -> None:
    found = _find_gpus()
    if not found:
        return
    nvml, handles = found
    for index, handle in enumerate(handles):
        key = f"{PREFIX}gpu{index}/"
        utilization = _nvml_call(nvml.nvmlDeviceGetUtilizationRates, handle)
        if utilization is not None:
            put(key + "utilization", float(utilization.gpu))
        memory = _nvml_call(nvml.nvmlDeviceGetMemoryInfo, handle)
        if memory is not None:
            put(key + "memory_used", float(memory.used))
            put(key + "memory_total", float(memory.total))
        temperature = _nvml_call(
            nvml.nvmlDeviceGetTemperature, handle, nvml.NVML_TEMPERATURE_GPU
        )
        if temperature is not None:
            put(key + "temperature", float(temperature))
        milliwatts = _nvml_call(nvml.nvmlDeviceGetPowerUsage, handle)
        if milliwatts is not None:
            put(key + "power", milliwatts / 1000.0)


def _nvml_call(function: Callable[..., Any], *args: Any) -> Any:
    try:
        return function(*args)
    except Exception:  # NVMLError: not supported on this GPU, GPU lost, ...
        return None


def _find_gpus() -> tuple[Any, list[Any]] | None:
    """NVML and the GPUs' handles, looked for once per process; None if absent."""
    global _nvml
    with _nvml_lock:
        if _nvml is None:
            _nvml = _open_nvml()
        found = _nvml
    return found if isinstance(found, tuple) else None


def _open_nvml() -> tuple[Any, list[Any]] | bool:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import pynvml

        pynvml.nvmlInit()
        count = pynvml.nvmlDeviceGetCount()
        handles = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(count)]
    except Exception as exc:  # no nvidia-ml-py, no NVML library, no driver
        logger.debug("system metrics: no GPU metrics (%s)", exc)
        return False
    return (pynvml, handles) if handles else False


def _forget_nvml() -> None:
    global _nvml, _nvml_lock
    _nvml = None
    _nvml_lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    # NVML handles do not carry over to a forked child; it looks again if it logs.
    os.register_at_fork(after_in_child=_forget_nvml)
