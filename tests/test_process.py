"""Runs in real child processes: kill -9, SIGTERM, crashes, exits, many writers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from labnotebook import Notebook, Settings, _process

CHILD_PRELUDE = """
import os, sys, time
import labnotebook as lab
lab.init(os.environ["STORE"], home=os.environ["HOME_DIR"], flush_interval=0.1,
         heartbeat_interval=0.2)
"""


def spawn(code: str, settings: Settings, **env: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", CHILD_PRELUDE + textwrap.dedent(code)],
        env={
            **os.environ,
            "STORE": settings.store_url,
            "HOME_DIR": settings.home,
            **env,
        },
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for_line(proc: subprocess.Popen[str], prefix: str) -> str:
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith(prefix):
            return line
    raise AssertionError(f"child ended without printing {prefix!r}: {proc.stderr}")


LOGGER = """
run = lab.start("victim", params={"pid": os.getpid()})
print("id", run.id, flush=True)
step = 0
while True:
    run.log(x=float(step), step=step)
    print("logged", step, time.time(), flush=True)
    step += 1
    time.sleep(0.002)
"""


def finish_reading(proc: subprocess.Popen[str]) -> tuple[str, str]:
    """The rest of a child's output (communicate() would skip buffered lines)."""
    assert proc.stdout is not None and proc.stderr is not None
    out = proc.stdout.read()
    err = proc.stderr.read()
    proc.wait(timeout=30)
    return out, err


def _logged(out: str) -> list[tuple[int, float]]:
    rows = []
    for line in out.splitlines():
        parts = line.split()
        if parts and parts[0] == "logged":
            rows.append((int(parts[1]), float(parts[2])))
    return rows


def test_sigkill_loses_at_most_the_last_flush_interval(
    settings: Settings, notebook: Notebook
) -> None:
    proc = spawn(LOGGER, settings)
    run_id = wait_for_line(proc, "id").split()[1]
    time.sleep(1.5)
    killed_at = time.time()
    proc.send_signal(signal.SIGKILL)
    out, _ = finish_reading(proc)
    logged = _logged(out)
    assert len(logged) > 100

    # Whatever the store did not take is in the spool; sync sends it.
    notebook.sync()
    stored = set(notebook.history(run_id, "x").index)
    # One flush interval (0.1 s here), plus slack for a loaded machine that
    # schedules the writer thread late.
    must_have = {step for step, t in logged if t < killed_at - 0.1 - 0.5}
    assert must_have <= stored
    assert stored <= {step for step, _ in logged}

    reader = Notebook(settings.replace(crash_timeout=1.0))
    deadline = time.time() + 10
    while reader.get_run(run_id).status != "crashed":
        assert time.time() < deadline, "a killed run must show as crashed"
        time.sleep(0.2)


def test_sigterm_marks_killed_and_flushes_everything(
    settings: Settings, notebook: Notebook
) -> None:
    proc = spawn(LOGGER, settings)
    run_id = wait_for_line(proc, "id").split()[1]
    time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    out, err = finish_reading(proc)
    assert proc.returncode == -signal.SIGTERM, err
    logged = {step for step, _ in _logged(out)}
    run = notebook.get_run(run_id)
    assert run.status == "killed"
    assert set(notebook.history(run_id, "x").index) == logged


@pytest.mark.parametrize(
    ("code", "status", "returncode"),
    [
        ("run = lab.start(); run.log(x=1.0)\nraise ValueError('boom')", "failed", 1),
        ("run = lab.start(); run.log(x=1.0)\n", "finished", 0),
        # No reference kept: the run is still active, and finished at exit.
        (
            "import gc\nlab.start().log(x=1.0)\ngc.collect()\ntime.sleep(0.3)",
            "finished",
            0,
        ),
        ("run = lab.start(); run.log(x=1.0)\nsys.exit(3)", "finished", 3),
        ("with lab.start() as run:\n    run.log(x=1.0)\n    sys.exit(2)", "failed", 2),
        ("run = lab.start(); run.log(x=1.0)\nraise KeyboardInterrupt", "killed", -2),
    ],
)
def test_script_exit_sets_status(
    settings: Settings, notebook: Notebook, code: str, status: str, returncode: int
) -> None:
    proc = spawn(code + "\n", settings)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == returncode, err
    runs = notebook.runs()
    assert list(runs["status"]) == [status]
    run = notebook.get_run(runs["id"][0])
    assert list(notebook.history(run.id)["x"]) == [1.0]
    if status == "failed" and "boom" in code:
        assert run.record.error is not None and "ValueError: boom" in run.record.error


def test_many_processes_write_at_once(settings: Settings, notebook: Notebook) -> None:
    code = """
    with lab.start(f"w{os.environ['N']}", experiment="many") as run:
        for i in range(2000):
            run.log(a=float(i), b=float(-i))
            if i % 200 == 0:
                run.note(f"note {i}")
                time.sleep(0.01)
    """
    procs = [spawn(code, settings, N=str(n)) for n in range(16)]
    for proc in procs:
        _, err = proc.communicate(timeout=240)
        assert proc.returncode == 0, err
        assert "locked" not in err and "Traceback" not in err, err
    runs = notebook.runs(experiment="many")
    assert len(runs) == 16
    assert set(runs["status"]) == {"finished"}
    for run_id in runs["id"]:
        frame = notebook.history(run_id)
        assert len(frame) == 2000
        assert frame["a"].sum() == sum(range(2000))
        assert len(notebook.store.notes(run_id)) == 10
    assert not list(Path(settings.home, "spool").glob("*.spool"))


FORKS = """
import faulthandler, multiprocessing, signal

faulthandler.enable()  # a hung process aborted below says where it was

run = lab.start("parent", experiment="parent")
run.log(x=0.0, step=0)
lab.runs()  # the parent's pool now holds an open connection a child would share

def work(lr):
    try:
        run.log(x=1.0)
    except lab.LabnotebookError as exc:
        refused = str(exc)
    with lab.start(f"lr={lr}", experiment="sweep", params={"lr": lr}) as own:
        for step in range(50):
            own.log(loss=lr * step, step=step)
        lab.runs(experiment="sweep")
    return refused

began = time.monotonic()
with multiprocessing.get_context("fork").Pool(3) as pool:
    refused = pool.map(work, [0.1, 0.2, 0.3, 0.4, 0.5, 0.6])
print("refused", refused[0], flush=True)

pid = os.fork()
if pid == 0:
    sys.exit(0)  # a plain child that ends normally: its exit runs atexit
os.waitpid(pid, 0)
ready, told = os.pipe()
pid = os.fork()
if pid == 0:
    os.write(told, b"x")  # a SIGTERM that came before the fork ended is lost
    time.sleep(30)
    os._exit(0)
os.read(ready, 1)
os.kill(pid, signal.SIGTERM)
assert os.waitpid(pid, 0)[1] == signal.SIGTERM
print("took", time.monotonic() - began, flush=True)
print("status", lab.get_run(run.id).status, flush=True)
run.log(x=2.0, step=1)
"""


def test_forked_children_leave_the_parents_run_alone(
    settings: Settings, notebook: Notebook
) -> None:
    proc = spawn(FORKS, settings)
    try:
        out, err = proc.communicate(timeout=180)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGABRT)
        out, err = proc.communicate()
        pytest.fail(f"the script did not end:\n{out}\n{err}")
    assert proc.returncode == 0, err
    lines = dict(line.split(" ", 1) for line in out.splitlines())
    assert "is logged by process" in lines["refused"]
    assert "start a run of this process's own" in lines["refused"]
    # Without the fork hooks each child waited for a writer it did not have,
    # exit_timeout (20 s here) at a time.
    assert float(lines["took"]) < 15, err
    assert lines["status"] == "running"
    assert "did not take everything" not in err

    parent = notebook.runs(experiment="parent")
    assert list(parent["status"]) == ["finished"]
    assert list(notebook.history(parent["id"][0])["x"]) == [0.0, 2.0]
    sweep = notebook.runs(experiment="sweep")
    assert sorted(sweep["params.lr"]) == [0.1, 0.2, 0.3, 0.4, 0.5, 0.6]
    assert set(sweep["status"]) == {"finished"}
    for run_id in sweep["id"]:
        assert len(notebook.history(run_id, "loss")) == 50


def test_sigterm_is_handled_only_while_a_run_is_active(notebook: Notebook) -> None:
    before = signal.getsignal(signal.SIGTERM)
    with notebook.start("outer"):
        assert signal.getsignal(signal.SIGTERM) is _process._on_sigterm
        with notebook.start("inner"):
            pass
        # The outer run is still active: SIGTERM still finishes it.
        assert signal.getsignal(signal.SIGTERM) is _process._on_sigterm
    assert signal.getsignal(signal.SIGTERM) is before


BLOCKED_WORKER = """
import multiprocessing, os, signal, sys, time
import labnotebook as lab

run = lab.start("parent")
held = multiprocessing.get_context("fork").Lock()
held.acquire()

def wait_for_the_lock():
    # A Pool worker waiting for a task waits like this, in C.
    sys.stdout.write(f"{signal.getsignal(signal.SIGTERM) == signal.SIG_DFL}\\n")
    sys.stdout.flush()
    held.acquire()

child = multiprocessing.get_context("fork").Process(target=wait_for_the_lock)
child.start()
time.sleep(0.5)
child.terminate()
child.join(20)
print("exitcode", child.exitcode, flush=True)
run.finish()
"""


def test_a_forked_child_waiting_in_c_ends_on_sigterm(settings: Settings) -> None:
    proc = spawn(BLOCKED_WORKER, settings)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    # The child has no run of its own, so SIGTERM has its default action there:
    # a Python handler could not run while the child waits in C.
    assert out.splitlines() == ["True", f"exitcode {-signal.SIGTERM}"], err
