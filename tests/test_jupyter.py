"""Runs in Jupyter, driven through a real IPython kernel (ipykernel + jupyter_client).

Each kernel test starts its own kernel on the test's store (SQLite or PostgreSQL),
executes cells as a notebook frontend would (with a cell id in the request's
metadata), and reads the display messages the kernel publishes.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import queue
import re
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager

from labnotebook import LabnotebookError, Notebook, Settings
from labnotebook._jupyter import (
    MAX_POINTS,
    SEED_BUCKETS,
    RunSummary,
    _read_from,
    _Series,
    dashboard_link,
    sparkline,
    summary_html,
)
from labnotebook._store.base import RunRecord

Message = dict[str, Any]
#: Longest a cell may take (a loaded 2-core machine starts a kernel slowly).
CELL_TIMEOUT = 60.0


class Kernel:
    """One IPython kernel, and every iopub message it sent."""

    def __init__(self, folder: Path, env: dict[str, str]):
        spec = folder / "kernels" / "labnotebook-test"
        spec.mkdir(parents=True)
        argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
        (spec / "kernel.json").write_text(
            json.dumps({"argv": argv, "display_name": "test", "language": "python"})
        )
        self.manager = KernelManager(
            kernel_name="labnotebook-test",
            kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(spec.parent)]),
            connection_file=str(folder / "connection.json"),
        )
        self.manager.start_kernel(env={**os.environ, **env})
        self.client = self.manager.client()
        self.client.start_channels()
        self.client.wait_for_ready(timeout=CELL_TIMEOUT)
        self.messages: list[Message] = []

    def close(self) -> None:
        self.client.stop_channels()
        self.manager.shutdown_kernel(now=True)

    def send(self, code: str, cell_id: str | None = None) -> str:
        """Send an execute request, as a notebook does; returns its message id."""
        content = {
            "code": code,
            "silent": False,
            "store_history": True,
            "user_expressions": {},
            "allow_stdin": False,
            "stop_on_error": False,
        }
        metadata = {"cellId": cell_id} if cell_id else {}
        msg = self.client.session.msg("execute_request", content, metadata=metadata)
        self.client.shell_channel.send(msg)
        return str(msg["header"]["msg_id"])

    def wait_for(
        self, found: Callable[[Message], bool], timeout: float = CELL_TIMEOUT
    ) -> Message:
        """Read iopub messages (keeping them all) until one is ``found``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                msg = self.client.get_iopub_msg(timeout=0.5)
            except queue.Empty:
                continue
            self.messages.append(msg)
            if found(msg):
                return msg
        raise AssertionError(f"no such message within {timeout} s")

    def seen_or_wait(
        self, found: Callable[[Message], bool], since: int, timeout: float = 15
    ) -> Message:
        """The first message from index ``since`` on that is ``found``, or the next."""
        for msg in self.messages[since:]:
            if found(msg):
                return msg
        return self.wait_for(found, timeout)

    def execute(self, code: str, cell_id: str | None = None) -> list[Message]:
        """Run a cell to its end; returns the iopub messages that came meanwhile."""
        first = len(self.messages)
        msg_id = self.send(code, cell_id)
        self.wait_for(lambda m: is_idle(m, msg_id))
        return self.messages[first:]

    def settle(self, seconds: float) -> list[Message]:
        """Messages that arrive within ``seconds`` while no cell runs."""
        first = len(self.messages)
        with contextlib.suppress(AssertionError):
            self.wait_for(lambda m: False, seconds)
        return self.messages[first:]


def is_idle(msg: Message, msg_id: str) -> bool:
    return bool(
        msg["msg_type"] == "status"
        and msg["content"]["execution_state"] == "idle"
        and msg["parent_header"].get("msg_id") == msg_id
    )


def displays(messages: list[Message], kind: str = "display_data") -> list[Message]:
    return [m for m in messages if m["msg_type"] == kind]


def html_of(msg: Message) -> str:
    return str(msg["content"]["data"]["text/html"])


def is_final(msg: Message) -> bool:
    return msg["msg_type"] == "update_display_data" and ">finished<" in html_of(msg)


def errors(messages: list[Message]) -> list[str]:
    return [
        f"{m['content']['ename']}: {m['content']['evalue']}"
        for m in messages
        if m["msg_type"] == "error"
    ]


@pytest.fixture
def kernel(store_url: str, tmp_path: Path) -> Iterator[Kernel]:
    folder = tmp_path / "kernel"
    env = {
        "LABNOTEBOOK_URL": store_url,
        "LABNOTEBOOK_HOME": str(tmp_path / "home"),
        "LABNOTEBOOK_FLUSH_INTERVAL": "0.05",
        "LABNOTEBOOK_SYSTEM_METRICS_INTERVAL": "0.2",
        "LABNOTEBOOK_CAPTURE_CODE": "false",
        "LABNOTEBOOK_CAPTURE_ENVIRONMENT": "false",
        "LABNOTEBOOK_DASHBOARD_URL": "http://lab-server:5000/",
        "IPYTHONDIR": str(tmp_path / "ipython"),
    }
    started = Kernel(folder, env)
    yield started
    started.close()


def by_name(notebook: Notebook) -> dict[str, RunRecord]:
    return {r.name: r for r in notebook.store.list_runs()}


# --------------------------------------------------------------- the summary


def test_summary_updates_while_the_cell_runs(
    kernel: Kernel, notebook: Notebook
) -> None:
    start = len(kernel.messages)
    messages = kernel.execute(
        "import time\n"
        "import labnotebook as lab\n"
        "run = lab.start('<script>alert(1)</script>', tags=['<b>tag</b>'])\n"
        "run.display()\n"
        "for i in range(80):\n"
        "    run.log({'loss': 1 / (i + 1), 'acc': i / 80})\n"
        "    run.log({'x<i>': 2.0, 'y': 1.0, 'z': 1.0}, step=i)\n"
        "    time.sleep(0.05)\n"
        "_ = run.finish()\n",
        cell_id="train",
    )
    assert errors(messages) == []
    [first] = displays(messages)
    display_id = first["content"]["transient"]["display_id"]
    during = displays(messages, "update_display_data")
    assert during, "no update arrived while the cell ran"
    assert {m["content"]["transient"]["display_id"] for m in during} == {display_id}
    running = [html_of(m) for m in during if ">running<" in html_of(m)]
    assert any(re.search(r">step [1-9]\d*<", page) for page in running), running

    # The last update, soon after finish(), shows the final status and values.
    final = kernel.seen_or_wait(is_final, start)
    page = html_of(final)
    assert final["content"]["transient"]["display_id"] == display_id
    assert ">0.9875<" in page  # acc at step 79
    assert ">0.0125<" in page  # loss
    assert ">step 79<" in page
    assert "<polyline" in page
    assert "x&lt;i&gt;" in page
    assert "and 1 more metric" in page  # four shown, z left out
    assert "sys/" not in page

    # User text is escaped everywhere.
    for msg in [first, *during, final]:
        text = html_of(msg)
        assert "<script" not in text and "<b>" not in text and "x<i>" not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "&lt;b&gt;tag&lt;/b&gt;" in page

    run_id = by_name(notebook)["<script>alert(1)</script>"].id
    assert f'href="http://lab-server:5000/runs/{run_id}"' in page
    assert notebook.get_run(run_id).status == "finished"

    # One update with the final status, and no more once the run has ended.
    kernel.settle(2.5)
    updates = displays(kernel.messages[start:], "update_display_data")
    assert updates[-1] is final
    assert [m for m in updates if ">running<" not in html_of(m)] == [final]

    # A run not active here is shown once, from the store; the same for a cell
    # that ends with the run.
    for code in ("run", f"lab.get_run({run_id!r})"):
        messages = kernel.execute(code)
        [shown] = displays(messages)
        assert ">finished<" in html_of(shown) and ">0.0125<" in html_of(shown)
        assert "display_id" not in shown["content"].get("transient", {})
        assert displays(messages, "execute_result") == []


def test_a_cell_ending_with_a_running_run_shows_it_live(
    kernel: Kernel, notebook: Notebook
) -> None:
    kernel.execute(
        "import labnotebook as lab\nrun = lab.start('live')\nrun.log(loss=0.5)\nrun",
        cell_id="a",
    )
    update = kernel.seen_or_wait(
        lambda m: m["msg_type"] == "update_display_data" and ">0.5<" in html_of(m), 0
    )
    assert ">running<" in html_of(update)

    start = len(kernel.messages)
    messages = kernel.execute("run.log(loss=0.25)\n_ = run.finish()", cell_id="b")
    assert errors(messages) == []
    final = kernel.seen_or_wait(is_final, start)
    assert ">0.25<" in html_of(final)


# ------------------------------------------------------------ cells run again


def test_a_cell_run_again_finishes_the_runs_it_started(
    kernel: Kernel, notebook: Notebook
) -> None:
    def run_cell(code: str, cell_id: str | None = None) -> None:
        assert errors(kernel.execute(code, cell_id)) == []

    run_cell("import time\nimport labnotebook as lab")

    # Ran to its end: finished when the cell runs again (edited, same cell id).
    run_cell("first = lab.start('first')\nfirst.log(x=1)", "c1")
    assert by_name(notebook)["first"].status == "running"
    run_cell("second = lab.start('second')", "c1")
    assert by_name(notebook)["first"].status == "finished"
    assert by_name(notebook)["second"].status == "running"

    # Raised: failed, with the traceback.
    raised = kernel.execute(
        "boom = lab.start('boom')\nraise ValueError('no data')", "c2"
    )
    assert errors(raised) == ["ValueError: no data"]
    assert by_name(notebook)["boom"].status == "running"
    run_cell("after = lab.start('after')", "c2")
    boom = by_name(notebook)["boom"]
    assert boom.status == "failed"
    assert boom.error is not None and "ValueError: no data" in boom.error

    # Interrupted: killed.
    first = len(kernel.messages)
    msg_id = kernel.send(
        "loop = lab.start('loop')\nwhile True:\n    time.sleep(0.05)", "c3"
    )
    deadline = time.monotonic() + CELL_TIMEOUT
    while "loop" not in by_name(notebook):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    kernel.manager.interrupt_kernel()
    kernel.wait_for(lambda m: is_idle(m, msg_id))
    assert errors(kernel.messages[first:]) == ["KeyboardInterrupt: "]
    run_cell("again = lab.start('again')", "c3")
    assert by_name(notebook)["loop"].status == "killed"

    # A run used as a context manager is ended by its `with` block.
    first = len(kernel.messages)
    msg_id = kernel.send(
        "with lab.start('ctx') as ctx:\n    while True:\n        time.sleep(0.05)", "c6"
    )
    while "ctx" not in by_name(notebook):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    kernel.manager.interrupt_kernel()
    kernel.wait_for(lambda m: is_idle(m, msg_id))
    assert errors(kernel.messages[first:]) == ["KeyboardInterrupt: "]
    assert by_name(notebook)["ctx"].status == "killed"

    # Without a cell id, the source identifies the cell.
    run_cell("plain = lab.start('plain-1')")
    run_cell("plain = lab.start('plain-1')")
    plain = [r for r in notebook.store.list_runs() if r.name == "plain-1"]
    assert sorted(r.status for r in plain) == ["finished", "running"]

    # Several runs started by one execution of a cell all stay.
    run_cell("sweep = [lab.start(f'sweep-{i}') for i in range(3)]", "c4")
    runs = by_name(notebook)
    assert [runs[f"sweep-{i}"].status for i in range(3)] == ["running"] * 3

    # A run started without `with` stays running across other cells.
    assert runs["second"].status == "running"
    assert runs["after"].status == "running"

    # A cell that finished its own run leaves nothing to finish.
    run_cell("done = lab.start('done')\n_ = done.finish('killed')", "c5")
    run_cell("done2 = lab.start('done-2')", "c5")
    assert by_name(notebook)["done"].status == "killed"


# ------------------------------------------------------------- plain Python


def test_plain_python_never_imports_ipython(store_url: str, tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "import labnotebook as lab\n"
        "with lab.start('script') as run:\n"
        "    run.log(loss=1.0)\n"
        "assert 'IPython' not in sys.modules, 'IPython was imported'\n"
        "assert run._repr_html_().count('script') >= 1\n"
        "assert 'IPython' not in sys.modules, 'IPython was imported'\n"
        "try:\n"
        "    run.display()\n"
        "except lab.LabnotebookError as exc:\n"
        "    print(exc)\n"
    )
    env = {
        **os.environ,
        "LABNOTEBOOK_URL": store_url,
        "LABNOTEBOOK_HOME": str(tmp_path / "home"),
        "LABNOTEBOOK_SYSTEM_METRICS_INTERVAL": "0",
    }
    done = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "run.display() needs IPython" in done.stdout


# --------------------------------------------------------------- the pieces


def test_summary_html_of_a_stored_run(notebook: Notebook) -> None:
    with notebook.start("a & b", experiment="e<1>", tags=['t"x']) as run:
        for i in range(10):
            run.log({"loss": 1.0 / (i + 1), "sys/cpu_percent": 50.0})
        run.log(nan=float("nan"))

    page = summary_html(notebook.get_run(run.id))
    assert "a &amp; b" in page and "e&lt;1&gt;" in page and "t&quot;x" in page
    assert ">finished<" in page and ">0.1<" in page and ">nan<" in page
    assert "sys/" not in page
    assert "href" not in page  # a local store and no dashboard_url: no link


def test_summary_of_a_failed_run_shows_its_error(notebook: Notebook) -> None:
    run = notebook.start("boom")
    run.log(loss=1.0)
    try:
        raise ValueError("<b>diverged</b> at step " + "9" * 400)
    except ValueError:
        run.finish("failed", error=traceback.format_exc())

    page = summary_html(notebook.get_run(run.id))
    assert ">failed<" in page
    assert "ValueError: &lt;b&gt;diverged&lt;/b&gt; at step 999" in page
    assert "<b>" not in page and "9" * 300 not in page and "…" in page


def test_display_outside_ipython_says_what_to_do(notebook: Notebook) -> None:
    with notebook.start() as run, pytest.raises(LabnotebookError, match="IPython"):
        run.display()


@pytest.mark.parametrize(
    ("settings_url", "store_url", "expected"),
    [
        ("", "sqlite:///x.db", None),
        ("http://dash:8000/lab/", "sqlite:///x.db", "http://dash:8000/lab/runs/"),
        ("", "http://user:secret@server:5000/?q=1", "http://server:5000/runs/"),
        ("", "https://[::1]:8443", "https://[::1]:8443/runs/"),
    ],
)
def test_dashboard_link(
    settings_url: str, store_url: str, expected: str | None, tmp_path: Path
) -> None:
    class Store:
        url = store_url

    class Book:
        settings = Settings(home=str(tmp_path), dashboard_url=settings_url)
        store = Store()

    class Shown:
        id = "ab" * 16
        _notebook = Book()

    link = dashboard_link(Shown())  # type: ignore[arg-type]
    assert link == (None if expected is None else expected + "ab" * 16)


@pytest.mark.parametrize(
    "url", ["ftp://x", "http://u:p@x", "http://x/?a=1", "x", 'http://x/"', 5]
)
def test_bad_dashboard_url_is_rejected(url: object) -> None:
    from labnotebook import ValidationError

    with pytest.raises(ValidationError, match="dashboard_url"):
        Settings(dashboard_url=url)  # type: ignore[arg-type]


def test_sparkline() -> None:
    assert "<polyline" not in sparkline([], [])
    assert "<circle" in sparkline([3], [1.0])
    flat = sparkline([0, 1, 2], [5.0, 5.0, 5.0])
    assert "2.0,12.0" in flat and "118.0,12.0" in flat
    gaps = sparkline([0, 1, 2, 3], [1.0, float("nan"), float("inf"), 2.0])
    assert "nan" not in gaps and "inf" not in gaps

    # Many points are thinned to the pixel columns, and a spike stays.
    values = [0.0] * 100_000
    values[54_321] = 9.0
    line = sparkline(list(range(100_000)), values, title="<k>")
    points = re.search(r'points="([^"]+)"', line)
    assert points is not None and len(points.group(1).split()) <= 4 * 121
    assert ",2.0" in points.group(1)  # the spike reaches the top
    assert "<title>&lt;k&gt;</title>" in line


def test_series_keeps_evenly_spaced_points_and_the_latest() -> None:
    series = _Series()
    for first in range(0, 100_000, 1000):
        series.extend(range(first, first + 1000), [float(i) for i in range(1000)])
    series.extend([5, 99_999], [1.0, 1.0])  # steps already read are skipped

    steps, values = series.points()
    assert len(steps) <= MAX_POINTS + 1
    gaps = {b - a for a, b in itertools.pairwise(steps[:-1])}
    assert gaps == {series.stride}
    assert steps[0] == 0 and steps[-1] == 99_999 and values[-1] == 999.0
    assert series.cursor == 100_000


def test_summary_reads_only_what_is_new(notebook: Notebook) -> None:
    run = notebook.start("incremental", system_metrics=False)
    summary = RunSummary(run)
    for step in range(10):
        run.log(loss=float(step))
    run.log({"val/loss": 0.5}, step=0)
    run.flush()
    summary.read()

    for step in range(10, 20):
        run.log(loss=float(step))
        if step == 15:
            run.log({"val/loss": 0.25}, step=step)
    run.flush()
    summary.read()
    run.finish()

    loss, val = summary._series["loss"], summary._series["val/loss"]
    assert loss.points() == (list(range(20)), [float(s) for s in range(20)])
    assert val.points() == ([0, 15], [0.5, 0.25])
    assert loss.received == 20  # no point was read twice
    assert ">finished<" in summary.html()


def test_read_from() -> None:
    def at(cursor: int) -> _Series:
        return _Series(cursor=cursor)

    assert _read_from([None, at(0)]) == 0
    assert _read_from([None, at(10)]) == 9
    assert _read_from([at(0), at(10)]) == 9
    # A metric logged once does not make every refresh read everything again.
    assert _read_from([at(1), at(5_000)]) == 4_999
    assert _read_from([at(7)]) == 6


def test_a_long_run_is_first_read_in_buckets(notebook: Notebook) -> None:
    with notebook.start("long", system_metrics=False) as run:
        for step in range(50_000):
            run.log(loss=1.0 if step == 31_337 else 0.0)
    summary = RunSummary(notebook.get_run(run.id))
    summary.read(whole=True)

    steps, values = summary._series["loss"].points()
    assert len(steps) <= 3 * SEED_BUCKETS + 1
    assert steps[0] == 0 and steps[-1] == 49_999
    assert 31_337 in steps and max(values) == 1.0  # the spike is kept
    assert ">step 49999<" in summary.html()


def test_summary_through_a_tracking_server(store_url: str, tmp_path: Path) -> None:
    from werkzeug.serving import make_server

    from labnotebook.server import ServerConfig, create_app

    app = create_app(ServerConfig(store=store_url, token="token-0123456789abcdef"))
    server = make_server("127.0.0.1", 0, app, threaded=True)
    serving = threading.Thread(target=server.serve_forever, daemon=True)
    serving.start()
    url = f"http://127.0.0.1:{server.server_port}"
    notebook = Notebook(
        Settings(
            url=url,
            token="token-0123456789abcdef",
            home=str(tmp_path / "home"),
            flush_interval=0.05,
            system_metrics_interval=0,
        )
    )
    try:
        run = notebook.start("remote", system_metrics=False)
        live = RunSummary(run)
        for step in range(5000):
            run.log(loss=1.0 / (step + 1))
        run.flush()
        live.read()
        assert ">step 4999<" in live.html() and ">running<" in live.html()
        # The first read is the server's downsampled curve, not every point.
        steps, _ = live._series["loss"].points()
        assert steps[0] == 0 and len(steps) <= 3 * SEED_BUCKETS + 1
        run.finish()

        page = summary_html(notebook.get_run(run.id))
        assert ">finished<" in page and ">0.0002<" in page
        curve, missing = notebook.store.downsample(  # type: ignore[attr-defined]
            [(run.id, "loss"), (run.id, "nope")], 10, start=1000
        )
        assert missing is None
        assert curve.count == 4000 and curve.downsampled
        assert curve.steps[0] == 1000 and curve.steps[-1] == 4999
        assert f'href="{url}/runs/{run.id}"' in page
        assert "token-0123" not in page
    finally:
        notebook.close()
        server.shutdown()
        serving.join(10)
