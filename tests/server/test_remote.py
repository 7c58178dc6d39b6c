"""Logging through a real tracking server process, on SQLite and on PostgreSQL.

The server runs as ``python -m labnotebook.server`` (gunicorn) in a child process on
a free port; clients are this process or child processes using ``lab.init(url)``.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import requests

import labnotebook
from labnotebook import (
    ConflictError,
    FilterError,
    Notebook,
    NotFoundError,
    Settings,
    StoreError,
)
from labnotebook._store.sql import SqlStore

TOKEN = "write-token-for-tests"
READ_TOKEN = "read-token-for-tests"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServerProcess:
    """``python -m labnotebook.server`` in a child process, on a free port."""

    def __init__(
        self,
        store_url: str,
        folder: Path,
        *,
        workers: int = 1,
        threads: int = 8,
        token: str = TOKEN,
        read_token: str = READ_TOKEN,
        env: dict[str, str] | None = None,
    ):
        self.store_url = store_url
        self.folder = folder
        self.port = free_port()
        self.workers = workers
        self.threads = threads
        self.token = token
        self.read_token = read_token
        self.env = env or {}
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = folder / f"server-{self.port}.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> ServerProcess:
        self.folder.mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith("LABNOTEBOOK_")}
        env.update(LABNOTEBOOK_HOME=str(self.folder / "server-home"), **self.env)
        command = [
            sys.executable,
            "-m",
            "labnotebook.server",
            "--store",
            self.store_url,
            "--port",
            str(self.port),
            "--workers",
            str(self.workers),
            "--threads",
            str(self.threads),
        ]
        if self.token:
            command += ["--token", self.token]
        if self.read_token:
            command += ["--read-token", self.read_token]
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                command,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited early:\n{self.log.read_text()}")
            with contextlib.suppress(requests.RequestException):
                if requests.get(f"{self.url}/api/v1/health", timeout=1).ok:
                    return self
            time.sleep(0.1)
        raise AssertionError(f"server did not start:\n{self.log.read_text()}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> None:
        """Send ``sig`` to the server and all its workers, and wait for them."""
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, sig)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        # SIGKILL leaves the workers behind, outside the reaped master.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc = None


@pytest.fixture
def start_server(
    tmp_path: Path,
) -> Iterator[Callable[..., ServerProcess]]:
    """Starts servers on demand; stops them all at the end of the test."""
    started: list[ServerProcess] = []

    def start(store_url: str, **options: Any) -> ServerProcess:
        server = ServerProcess(store_url, tmp_path / "servers", **options).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop(signal.SIGKILL)


@pytest.fixture
def server(store_url: str, start_server: Callable[..., ServerProcess]) -> ServerProcess:
    return start_server(store_url)


def remote_settings(url: str, home: Path, **changes: Any) -> Settings:
    return Settings(
        url=url,
        token=TOKEN,
        home=str(home),
        flush_interval=0.05,
        heartbeat_interval=1.0,
        retry_interval=0.1,
        exit_timeout=20.0,
    ).replace(**changes)


def child_env(**env: str) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("LABNOTEBOOK_")}
    return {**clean, **env}


# -------------------------------------------------------- same as directly


def _log_everything(nb: Notebook, name: str) -> str:
    params = {"optim": {"lr": 3e-4, "betas": [0.9, 0.99]}, "seed": 1, "arch": "mlp"}
    with nb.start(name, experiment="remote", params=params, tags=["a", "b"]) as run:
        for step in range(500):
            value = 1.0 / (step + 1)
            if step == 10:
                value = math.nan
            run.log({"loss": value, "val/acc": step / 500}, step=step)
            if step % 100 == 0:
                run.log(fields={"lr": 0.1 * step, "phase": "warmup"}, step=step)
        run.log(edge=math.inf, step=500)
        run.log(edge=-math.inf, step=501)
        run.note("first note, **markdown**")
        run.note("at a step", step=42)
    return run.id


def test_logging_through_the_server_matches_logging_directly(
    store_url: str, server: ServerProcess, tmp_path: Path
):
    lab = labnotebook
    # No system metrics: their samples depend on timing, not on the path taken.
    lab.init(
        server.url,
        token=TOKEN,
        home=str(tmp_path / "remote"),
        flush_interval=0.05,
        system_metrics_interval=0,
    )
    try:
        remote_id = _log_everything(lab.current(), "through-server")
        direct = Notebook(
            Settings(
                url=store_url,
                home=str(tmp_path / "direct"),
                flush_interval=0.05,
                system_metrics_interval=0,
            )
        )
        direct_id = _log_everything(direct, "direct")

        # The same runs, read through the server and straight from the store.
        via_server = lab.runs(order_by="name")
        via_store = direct.runs(order_by="name")
        pd.testing.assert_frame_equal(via_server, via_store)
        assert list(via_server["name"]) == ["through-server", "direct"]

        # Every point, NaN and infinities included, through either path.
        remote_history = lab.history(remote_id, with_time=True)
        direct_history = direct.history(direct_id, with_time=True)
        assert remote_history.shape == (502, 6)
        for key in ("loss", "val/acc", "edge"):
            np.testing.assert_array_equal(
                remote_history[key].to_numpy(), direct_history[key].to_numpy()
            )
        pd.testing.assert_frame_equal(
            remote_history, direct.history(remote_id, with_time=True)
        )
        assert math.isnan(remote_history.loc[10, "loss"])
        assert remote_history.loc[500, "edge"] == math.inf
        assert remote_history.loc[501, "edge"] == -math.inf

        run = lab.get_run(remote_id[:6])
        summary = run.summary
        assert summary["edge"].max == math.inf
        assert summary["edge"].min == -math.inf
        assert summary["loss"].count == 500
        assert run.params == direct.get_run(direct_id).params
        assert run.tags == ["a", "b"]
        assert run.status == "finished"

        notes = [(n.step, n.text) for n in run.notes()]
        assert notes == [(n.step, n.text) for n in direct.store.notes(direct_id)]
        assert notes == [(None, "first note, **markdown**"), (42, "at a step")]

        remote_store = lab.current().store
        assert remote_store.step_fields(remote_id) == direct.store.step_fields(
            remote_id
        )
        assert [s for s, _, _ in remote_store.step_fields(remote_id)] == [
            0,
            100,
            200,
            300,
            400,
        ]
        assert remote_store.metric_keys(remote_id) == ["edge", "loss", "val/acc"]
        assert list(remote_store.history(remote_id, ["loss"], 100, 103)["loss"][0]) == [
            100,
            101,
            102,
        ]
        direct.close()
    finally:
        lab.current().close()


def test_reading_and_editing_through_the_server(
    store_url: str, server: ServerProcess, tmp_path: Path
):
    nb = Notebook(remote_settings(server.url, tmp_path / "home"))
    with nb.start("one", experiment="exp-a", params={"lr": 0.1}) as run:
        run.log(loss=0.5)
        run.note("note")
    with nb.start("two", experiment="exp-a", params={"lr": 0.01}):
        pass
    store = nb.store

    assert store.count_runs() == 2
    assert store.count_runs(where="params.lr < 0.05") == 1
    assert [r.name for r in store.list_runs(order_by="name", descending=False)] == [
        "one",
        "two",
    ]
    with pytest.raises(FilterError) as bad:
        nb.runs("params.lr <")
    assert bad.value.column == 12

    with pytest.raises(NotFoundError):
        nb.get_run("0123456789abcdef")

    run.rename("renamed")
    run.set_tags(["kept"])
    assert store.get_run(run.id).name == "renamed"
    assert store.get_run(run.id).tags == ["kept"]
    (note,) = store.notes(run.id)
    assert store.edit_note(note.id, "edited").text == "edited"

    store.create_experiment("exp-b")
    assert store.create_experiment("exp-b").name == "exp-b"
    with pytest.raises(ConflictError):
        store.rename_experiment("exp-a", "exp-b")
    assert store.rename_experiment("exp-b", "exp-c").name == "exp-c"
    assert {e.name: e.run_count for e in store.experiments()} == {
        "exp-a": 2,
        "exp-c": 0,
    }

    nb.delete_run(run.id)
    with pytest.raises(NotFoundError):
        store.get_run(run.id)
    nb.close()


def test_tokens(server: ServerProcess, tmp_path: Path):
    writer = Notebook(remote_settings(server.url, tmp_path / "w"))
    with writer.start("run"):
        pass
    reader = Notebook(remote_settings(server.url, tmp_path / "r", token=READ_TOKEN))
    wrong = Notebook(remote_settings(server.url, tmp_path / "x", token="nope-nope"))

    assert len(reader.runs()) == 1
    with pytest.raises(StoreError, match="write token") as refused:
        reader.store.create_experiment("new")
    with pytest.raises(StoreError, match="token") as invalid:
        wrong.runs()

    for text in (str(refused.value), str(invalid.value), repr(reader.store)):
        assert READ_TOKEN not in text
        assert "nope-nope" not in text
    for nb in (writer, reader, wrong):
        nb.close()


WRONG_TOKEN = """
import os, time
import labnotebook as lab

lab.init(os.environ["SERVER"], home=os.environ["HOME_DIR"], flush_interval=0.05,
         exit_timeout=20)
run = lab.start("typo", experiment="tokens")
for step in range(100):
    run.log(x=float(step), step=step)
began = time.monotonic()
print("complete", run.finish(), flush=True)
print("took", time.monotonic() - began, flush=True)
"""


def test_a_refused_token_does_not_hold_up_the_exit(
    server: ServerProcess, tmp_path: Path
) -> None:
    home = tmp_path / "client"
    proc = subprocess.run(
        [sys.executable, "-c", WRONG_TOKEN],
        env=child_env(
            SERVER=server.url, LABNOTEBOOK_TOKEN="typo-token", HOME_DIR=str(home)
        ),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    lines = dict(line.split(" ", 1) for line in proc.stdout.splitlines())
    assert lines["complete"] == "False"
    # Waiting does not mend a token: finish() gives up at once, not after 20 s.
    assert float(lines["took"]) < 5, proc.stderr
    assert "did not accept the token" in proc.stderr
    assert "with a valid token" in proc.stderr

    nb = Notebook(remote_settings(server.url, home))
    try:
        assert nb.sync() > 0
        run = nb.runs(experiment="tokens")
        assert list(run["status"]) == ["finished"]
        assert list(nb.history(run["id"][0])["x"]) == [float(s) for s in range(100)]
    finally:
        nb.close()


# --------------------------------------------------------- many processes

CLIENT = """
import os, sys, time
import labnotebook as lab

lab.init(os.environ["SERVER"], home=os.environ["HOME_DIR"], flush_interval=0.05)
index = int(os.environ["INDEX"])
steps = int(os.environ["STEPS"])
for r in range(2):
    with lab.start(f"client{index}-{r}", experiment="multi",
                   params={"client": index, "r": r}) as run:
        for step in range(steps):
            run.log(a=float(step), b=index + step / steps, step=step)
            if step % 500 == 0:
                run.note(f"note {step}", step=step)
            if step % 200 == 0:
                time.sleep(0.01)
print("done", flush=True)
"""


def test_many_client_processes_lose_and_duplicate_nothing(
    store_url: str, start_server: Callable[..., ServerProcess], tmp_path: Path
):
    server = start_server(store_url, workers=3, threads=8)
    clients, steps = 6, 1500
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(CLIENT)],
            env=child_env(
                SERVER=server.url,
                LABNOTEBOOK_TOKEN=TOKEN,
                INDEX=str(i),
                STEPS=str(steps),
                HOME_DIR=str(tmp_path / f"client{i}"),
            ),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(clients)
    ]
    for proc in procs:
        out, err = proc.communicate(timeout=240)
        assert proc.returncode == 0, err
        assert "done" in out
        assert "Warning" not in err, err

    store = SqlStore(store_url)
    records = store.list_runs(experiment="multi")
    assert len(records) == 2 * clients
    for record in records:
        assert record.status == "finished"
        index = record.params["client"]
        data = store.history(record.id)
        assert list(data["a"][0]) == list(range(steps))
        assert list(data["a"][1]) == [float(s) for s in range(steps)]
        assert list(data["b"][1]) == [index + s / steps for s in range(steps)]
        assert record.metrics["a"].count == steps
        notes = [(n.step, n.text) for n in store.notes(record.id)]
        assert notes == [(s, f"note {s}") for s in range(0, steps, 500)]
    store.close()
    for i in range(clients):
        assert not list((tmp_path / f"client{i}").glob("spool/*"))


# ------------------------------------------------------ server goes away

STEADY_CLIENT = """
import os, sys, time
import labnotebook as lab

lab.init(os.environ["SERVER"], home=os.environ["HOME_DIR"], flush_interval=0.1,
         retry_interval=0.2, exit_timeout=float(os.environ["EXIT_TIMEOUT"]))
run = lab.start("steady", params={"n": int(os.environ["STEPS"])})
print("id", run.id, flush=True)
for step in range(int(os.environ["STEPS"])):
    run.log(x=float(step), y=math.nan if step % 7 == 0 else -step, step=step)
    if step % 250 == 0:
        run.note(f"at {step}", step=step)
    time.sleep(0.002)
print("finishing", time.time(), flush=True)
complete = run.finish()
print("finished", time.time(), complete, flush=True)
"""


def _spawn_steady(
    server: ServerProcess, home: Path, steps: int, exit_timeout: float
) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", "import math\n" + textwrap.dedent(STEADY_CLIENT)],
        env=child_env(
            SERVER=server.url,
            LABNOTEBOOK_TOKEN=TOKEN,
            HOME_DIR=str(home),
            STEPS=str(steps),
            EXIT_TIMEOUT=str(exit_timeout),
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _read_until(proc: subprocess.Popen[str], word: str) -> list[str]:
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith(word):
            return line.split()
    raise AssertionError(
        f"client ended before {word!r}: {proc.stderr and proc.stderr.read()}"
    )


def _check_exactly_once(store_url: str, run_id: str, steps: int) -> None:
    store = SqlStore(store_url)
    record = store.get_run(run_id)
    data = store.history(run_id)
    assert list(data["x"][0]) == list(range(steps))
    assert list(data["x"][1]) == [float(s) for s in range(steps)]
    y = data["y"][1]
    assert all(math.isnan(y[s]) if s % 7 == 0 else y[s] == -s for s in range(steps))
    assert record.metrics["x"].count == steps
    notes = [(n.step, n.text) for n in store.notes(run_id)]
    assert notes == [(s, f"at {s}") for s in range(0, steps, 250)]
    assert record.status == "finished"
    store.close()


FORKED_SWEEP = """
import faulthandler, multiprocessing, os
import labnotebook as lab

faulthandler.enable()  # inherited: a worker that crashes or is aborted says where

lab.init(os.environ["SERVER"], home=os.environ["HOME_DIR"], flush_interval=0.05)
parent = lab.start("parent", experiment="parent")
lab.runs()  # a kept-alive connection that forked children must not share

def work(lr):
    with lab.start(f"lr={lr}", experiment="sweep", params={"lr": lr}) as run:
        for step in range(100):
            run.log(loss=lr * step, step=step)
            if step % 25 == 0:
                lab.runs(experiment="sweep")
    return run.id

with multiprocessing.get_context("fork").Pool(4) as pool:
    print(" ".join(pool.map(work, [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8])))
parent.log(x=1.0)
"""


def test_a_forked_sweep_logs_through_the_server(
    server: ServerProcess, tmp_path: Path
) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", FORKED_SWEEP],
        env=child_env(
            SERVER=server.url, LABNOTEBOOK_TOKEN=TOKEN, HOME_DIR=str(tmp_path / "c")
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=180)
    except subprocess.TimeoutExpired:
        # Every process of the sweep prints its threads' stacks, then ends.
        os.killpg(proc.pid, signal.SIGABRT)
        out, err = proc.communicate()
        pytest.fail(f"the sweep did not end:\n{out}\n{err}")
    assert proc.returncode == 0, err
    assert "Warning" not in err, err
    ids = out.split()
    nb = Notebook(remote_settings(server.url, tmp_path / "reader"))
    try:
        for run_id in ids:
            assert nb.get_run(run_id).status == "finished"
            assert len(nb.history(run_id, "loss")) == 100
        parent = nb.runs(experiment="parent")
        assert list(parent["status"]) == ["finished"]
    finally:
        nb.close()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_server_restart_mid_run_delivers_every_point_once(
    store_url: str,
    start_server: Callable[..., ServerProcess],
    tmp_path: Path,
    sig: int,
):
    server = start_server(store_url, workers=2)
    steps = 1500
    proc = _spawn_steady(server, tmp_path / "client", steps, exit_timeout=30.0)
    run_id = _read_until(proc, "id")[1]

    time.sleep(1.0)
    server.stop(sig)
    time.sleep(1.5)
    server.start()

    finishing = float(_read_until(proc, "finishing")[1])
    _, finished, complete = _read_until(proc, "finished")
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert complete == "True", "finish() gave up waiting for the server"
    assert float(finished) - finishing < 30.0

    _check_exactly_once(store_url, run_id, steps)
    assert not list((tmp_path / "client").glob("spool/*.spool"))


def test_exit_stays_bounded_while_the_server_is_down_and_sync_sends_the_rest(
    store_url: str,
    start_server: Callable[..., ServerProcess],
    tmp_path: Path,
):
    server = start_server(store_url)
    steps, exit_timeout = 800, 3.0
    proc = _spawn_steady(server, tmp_path / "client", steps, exit_timeout)
    run_id = _read_until(proc, "id")[1]
    time.sleep(0.5)
    server.stop(signal.SIGKILL)

    finishing = float(_read_until(proc, "finishing")[1])
    proc.communicate(timeout=60)
    exited = time.time()
    assert proc.returncode == 0
    assert exited - finishing < exit_timeout + 3.0
    assert list((tmp_path / "client").glob("spool/*.spool"))

    server.start()
    nb = Notebook(remote_settings(server.url, tmp_path / "client"))
    assert nb.sync() > 0
    nb.close()

    _check_exactly_once(store_url, run_id, steps)
    assert not list((tmp_path / "client").glob("spool/*.spool"))


_KILLED_OFFLINE = """
import os, signal, sys, time
import labnotebook as lab

lab.init(sys.argv[1], token=sys.argv[2], home=sys.argv[3], flush_interval=0.05,
         retry_interval=0.1, capture_console="off", system_metrics_interval=0)
runs = [lab.start(name) for name in ("deleted-meanwhile", "kept")]
for run in runs:
    run.log(loss=1.0)
    run.flush()
print(*(run.id for run in runs), flush=True)
sys.stdin.readline()  # the server has gone away
for run in runs:
    run.log(loss=2.0)
    run.attach(f"late bytes of {run.name}".encode(), name="late.txt")
time.sleep(1.5)  # both batches are in the spool files
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_sync_sets_aside_batches_the_server_refuses_and_sends_the_rest(
    store_url: str,
    start_server: Callable[..., ServerProcess],
    tmp_path: Path,
):
    server = start_server(store_url)
    home = tmp_path / "client"
    proc = subprocess.Popen(
        [sys.executable, "-c", _KILLED_OFFLINE, server.url, TOKEN, str(home)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=child_env(),
    )
    assert proc.stdout is not None and proc.stdin is not None
    doomed, kept = proc.stdout.readline().split()
    server.stop(signal.SIGKILL)
    proc.stdin.write("\n")
    proc.stdin.flush()
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    spooled = {p.name.split("-")[0]: p for p in home.glob("spool/*.spool")}
    assert set(spooled) == {doomed, kept}
    # The file of the deleted run is the older one, so it is sent first.
    os.utime(spooled[doomed], (time.time() - 60, time.time() - 60))

    server.start()
    nb = Notebook(remote_settings(server.url, home))
    try:
        nb.delete_run(doomed)
        with pytest.warns(RuntimeWarning, match=f"{doomed}.*rejected") as caught:
            assert nb.sync() > 0
        assert "NotFoundError" in str(caught[0].message)
        assert [a.name for a in nb.artifacts(kept)] == ["late.txt"]
        assert nb.read_artifact(kept, "late.txt") == b"late bytes of kept"
        assert nb.get_run(kept).summary["loss"].last == 2.0
        # Nothing is left to send: the refused batch waits in its .rejected file.
        assert not list(home.glob("spool/*.spool"))
        (rejected,) = home.glob("spool/*.rejected")
        assert rejected.name.startswith(doomed)
        assert nb.sync() == 0
    finally:
        nb.close()


# ----------------------------------------------- two servers, one database


def read_events(
    url: str,
    token: str,
    found: list[dict[str, Any]],
    stop: threading.Event,
    params: dict[str, str] | None = None,
) -> None:
    """Append the runs of every event of a stream to ``found``, reconnecting."""
    cursor = ""
    while not stop.is_set():
        headers = {"Authorization": f"Bearer {token}"}
        if cursor:
            headers["Last-Event-ID"] = cursor
        try:
            with requests.get(
                f"{url}/api/v1/events",
                headers=headers,
                params=params,
                stream=True,
                timeout=(5, 60),
            ) as response:
                response.raise_for_status()
                kind = ""
                for line in response.iter_lines(decode_unicode=True):
                    if stop.is_set():
                        return
                    if line.startswith("event:"):
                        kind = line.split(":", 1)[1].strip()
                    elif line.startswith("id:"):
                        cursor = line.split(":", 1)[1].strip()
                    elif line.startswith("data:") and kind == "runs":
                        found.extend(json.loads(line.split(":", 1)[1])["runs"])
        except requests.RequestException:
            stop.wait(0.2)


def wait_for(condition: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def test_a_stream_on_one_server_sees_writes_through_another(
    store_url: str,
    start_server: Callable[..., ServerProcess],
    tmp_path: Path,
):
    writer_side = start_server(store_url)
    reader_side = start_server(store_url)
    found: list[dict[str, Any]] = []
    stop = threading.Event()
    reader = threading.Thread(
        target=read_events,
        args=(reader_side.url, READ_TOKEN, found, stop),
        daemon=True,
    )
    reader.start()
    time.sleep(1.0)

    nb = Notebook(remote_settings(writer_side.url, tmp_path / "home"))
    run = nb.start("seen-elsewhere")
    assert wait_for(lambda: any(r["id"] == run.id for r in found), 10)
    run.log(loss=1.0)
    run.finish()
    assert wait_for(
        lambda: any(r["id"] == run.id and r.get("status") == "finished" for r in found),
        10,
    )
    nb.delete_run(run.id)
    assert wait_for(
        lambda: any(r["id"] == run.id and r.get("deleted") for r in found), 10
    )
    stop.set()
    nb.close()
