"""System metrics: sampled while a run is active, on their own step counter."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Iterator
from typing import Any

import psutil
import pytest

from labnotebook import Notebook, Settings, ValidationError
from labnotebook._sysmetrics import PREFIX

# The machine's CPU use needs a window of at least one clock tick: a sample taken
# right after the previous one has none.
CORE_KEYS = {
    "sys/memory_percent",
    "sys/process_cpu_percent",
    "sys/process_rss",
}


@pytest.fixture
def sampled(settings: Settings) -> Iterator[Notebook]:
    """A notebook whose runs sample system use every 0.2 s."""
    nb = Notebook(settings.replace(system_metrics_interval=0.2))
    yield nb
    nb.close()


def sampler_threads() -> list[threading.Thread]:
    return [
        t
        for t in threading.enumerate()
        if t.name.startswith("labnotebook-sysmetrics") and t.is_alive()
    ]


def sys_keys(notebook: Notebook, run_id: str) -> list[str]:
    return sorted(k for k in notebook.get_run(run_id).summary if k.startswith(PREFIX))


def wait_for_samples(run: Any, count: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while run._sampler.step < count:
        assert time.monotonic() < deadline, f"only {run._sampler.step} samples"
        time.sleep(0.05)


def test_samples_have_their_own_steps(sampled: Notebook) -> None:
    with sampled.start() as run:
        for i in range(5):
            run.log(loss=1.0 / (i + 1))
            if i == 2:
                wait_for_samples(run, 4)
        run.log(acc=0.5)  # the next training step, whatever was sampled

    keys = sys_keys(sampled, run.id)
    assert set(keys) >= CORE_KEYS
    assert "sys/cpu_percent" in keys
    cpu = sampled.history(run.id, "sys/memory_percent", with_time=True)
    assert len(cpu) >= 5  # four while logging and the last one at finish
    assert list(cpu.index) == list(range(len(cpu)))
    assert cpu["sys/memory_percent.time"].is_monotonic_increasing
    rss = sampled.history(run.id, "sys/process_rss")["sys/process_rss"]
    assert (rss > 1e6).all()

    training = sampled.history(run.id)
    assert list(training.columns) == ["acc", "loss"]
    assert list(training.index) == [0, 1, 2, 3, 4, 5]
    assert sampled.get_run(run.id).summary["acc"].last_step == 5


def test_a_short_run_gets_one_sample(settings: Settings) -> None:
    notebook = Notebook(settings.replace(system_metrics_interval=10.0))
    try:
        with notebook.start() as run:
            run.log(loss=1.0)
            sampler = run._sampler
            assert sampler is not None
            started = time.monotonic()
            sampler.stop()  # wakes the thread: no waiting out the 10 s interval
            assert time.monotonic() - started < 2.5
            assert not sampler.running
        assert set(sys_keys(notebook, run.id)) >= CORE_KEYS
        assert list(notebook.history(run.id, "sys/memory_percent").index) == [0]
    finally:
        notebook.close()


def test_interval_zero_samples_nothing(settings: Settings) -> None:
    notebook = Notebook(settings.replace(system_metrics_interval=0))
    try:
        with notebook.start() as run:
            run.log(loss=1.0)
            assert run._sampler is None
            assert not sampler_threads()
        assert sys_keys(notebook, run.id) == []
    finally:
        notebook.close()


def test_start_can_turn_sampling_off(sampled: Notebook) -> None:
    with sampled.start(system_metrics=False) as run:
        run.log(loss=1.0)
        time.sleep(0.5)
    assert sys_keys(sampled, run.id) == []


def test_finish_stops_the_sampler(sampled: Notebook) -> None:
    runs = [sampled.start() for _ in range(2)]
    wait_for_samples(runs[0], 1)
    assert len(sampler_threads()) >= 2

    samplers = [run._sampler for run in runs]
    started = time.monotonic()
    for sampler in samplers:
        assert sampler is not None
        sampler.stop()
    assert time.monotonic() - started < 4  # each waits at most 2 s
    for run in runs:
        run.finish()

    assert not sampler_threads()
    assert all(run._sampler is None for run in runs)


def test_resume_continues_both_counters(sampled: Notebook) -> None:
    with sampled.start() as run:
        run.log(loss=1.0)
        wait_for_samples(run, 3)
    samples = len(sampled.history(run.id, "sys/memory_percent"))

    resumed = sampled.get_run(run.id).resume()
    resumed.log(loss=2.0)
    resumed.finish()

    assert list(sampled.history(run.id).index) == [0, 1]
    steps = list(sampled.history(run.id, "sys/memory_percent").index)
    assert steps == list(range(len(steps)))
    assert len(steps) > samples


def test_unreadable_values_are_skipped(sampled: Notebook) -> None:
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    process = psutil.Process(gone.pid)
    gone.wait()

    with sampled.start() as run:
        assert run._sampler is not None
        run._sampler._process = process  # every read of it now fails
        first = run._sampler.step
        wait_for_samples(run, first + 3)
        assert run._sampler.running

    summary = sampled.get_run(run.id).summary
    rss = summary["sys/process_rss"].count if "sys/process_rss" in summary else 0
    assert summary["sys/memory_percent"].count >= rss + 3


def test_an_error_in_a_sample_does_not_end_the_thread(
    sampled: Notebook, monkeypatch: pytest.MonkeyPatch
) -> None:
    with sampled.start() as run:
        sampler = run._sampler
        assert sampler is not None
        failures = []

        def broken(step: int, values: dict[str, float]) -> None:
            failures.append(step)
            raise RuntimeError("disk on fire")

        monkeypatch.setattr(run, "_log_system", broken)
        deadline = time.monotonic() + 10
        while len(failures) < 2:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert sampler.running
        monkeypatch.undo()
        step = sampler.step
        wait_for_samples(run, step + 1)
    assert sys_keys(sampled, run.id)


def test_no_gpu_means_no_gpu_metrics_and_no_warning(sampled: Notebook) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with sampled.start() as run:
            wait_for_samples(run, 2)
    gpu = [k for k in sys_keys(sampled, run.id) if k.startswith("sys/gpu")]
    try:
        import pynvml

        pynvml.nvmlInit()
        has_gpu = pynvml.nvmlDeviceGetCount() > 0
    except Exception:
        has_gpu = False
    if has_gpu:
        assert "sys/gpu0/memory_total" in gpu
    else:
        assert gpu == []
    assert not [w for w in caught if "sysmetrics" in str(w.filename)]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_has_no_sampler(sampled: Notebook) -> None:
    with sampled.start() as run:
        sampler = run._sampler
        assert sampler is not None
        wait_for_samples(run, 1)
        pid = os.fork()
        if pid == 0:  # the child: no sampler thread, and stop() must not log
            step = sampler.step
            sampler.stop()
            quiet = sampler.step == step and not sampler._stop.is_set()
            os._exit(
                0 if quiet and not sampler.running and not sampler_threads() else 3
            )
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert sampler.running


@pytest.mark.parametrize(
    "interval", [-1, 0.05, float("nan"), float("inf"), True, "5", 1e10, 366 * 86400]
)
def test_bad_interval_is_rejected(interval: object) -> None:
    with pytest.raises(ValidationError, match="system_metrics_interval"):
        Settings(system_metrics_interval=interval)  # type: ignore[arg-type]


def test_bad_interval_in_the_environment_is_rejected() -> None:
    with pytest.raises(ValidationError, match="SYSTEM_METRICS_INTERVAL"):
        Settings.from_env({"LABNOTEBOOK_SYSTEM_METRICS_INTERVAL": "often"})


def test_bad_flag_is_rejected(sampled: Notebook) -> None:
    with pytest.raises(ValidationError, match="system_metrics must be True or False"):
        sampled.start(system_metrics="yes")  # type: ignore[arg-type]
    with sampled.start() as run:
        pass
    with pytest.raises(ValidationError, match="system_metrics"):
        sampled.get_run(run.id).resume(system_metrics=1)  # type: ignore[arg-type]


def test_a_process_that_exits_stops_its_sampler(settings: Settings) -> None:
    code = """
import os, time
import labnotebook as lab
lab.init(os.environ["STORE"], home=os.environ["HOME_DIR"], flush_interval=0.05,
         system_metrics_interval=0.2)
run = lab.start("exits")
print(run.id, flush=True)
while run._sampler.step < 2:
    time.sleep(0.05)
run.log(loss=1.0)
"""  # no finish(): the exit hook ends the run, and with it the sampler
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "STORE": settings.store_url, "HOME_DIR": settings.home},
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert proc.returncode == 0, proc.stderr
    assert time.monotonic() - started < 30
    notebook = Notebook(settings)
    try:
        run = notebook.get_run(proc.stdout.strip())
        assert run.status == "finished"
        assert run.summary["sys/memory_percent"].count >= 3  # 2, and one at exit
        assert run.summary["loss"].last_step == 0
    finally:
        notebook.close()


def test_a_counter_the_system_lacks_leaves_the_others(
    sampled: Notebook, monkeypatch: pytest.MonkeyPatch
) -> None:
    # What psutil raises in a container without /proc/diskstats and /sys/block.
    def no_disks(*args: object, **kwargs: object) -> None:
        raise NotImplementedError("/proc/diskstats nor /sys/block are available")

    monkeypatch.setattr(psutil, "disk_io_counters", no_disks)
    with sampled.start() as run:
        wait_for_samples(run, 3)
    keys = set(sys_keys(sampled, run.id))
    assert keys >= CORE_KEYS | {"sys/net_sent_bytes_per_s", "sys/cpu_percent"}
    assert not any(k.startswith("sys/disk_") for k in keys)
