"""Console capture: stdout and stderr copied to the run, printed as before."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager

from labnotebook import Notebook, Settings, ValidationError
from labnotebook._console import TRUNCATED, ConsoleCapture, should_capture
from labnotebook._store.base import Batch


@contextlib.contextmanager
def capturing(limit: int = 1_000_000) -> Iterator[ConsoleCapture]:
    """A capture installed over pytest's own (so inside the test's body)."""
    capture = ConsoleCapture(limit)
    assert capture.start()
    try:
        yield capture
    finally:
        capture.stop()


def _text(chunks: list[tuple[float, str, str]], stream: str | None = None) -> str:
    return "".join(text for _, s, text in chunks if stream is None or s == stream)


# ------------------------------------------------------------------ in process


def test_writes_are_printed_and_copied_in_order(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with capturing() as capture:
        print("one")
        print("two", file=sys.stderr)
        sys.stdout.write("three ")
        sys.stdout.write("four\n")
        chunks = capture.drain()

    assert [(s, t) for _, s, t in chunks] == [
        ("stdout", "one\n"),
        ("stderr", "two\n"),
        ("stdout", "three four\n"),
    ]
    times = [t for t, _, _ in chunks]
    assert times == sorted(times)
    out, err = capsys.readouterr()
    assert (out, err) == ("one\nthree four\n", "two\n")
    assert capture.drain() == []


def test_proxy_forwards_every_attribute() -> None:
    original = sys.stdout
    with capturing():
        proxy = sys.stdout
        assert proxy is not original
        assert proxy.encoding == original.encoding
        assert proxy.isatty() == original.isatty()
        assert proxy.closed == original.closed
        assert proxy.flush() is None
        assert repr(proxy) == repr(original)
    assert sys.stdout is original


def test_progress_bars_keep_their_last_state() -> None:
    with capturing() as capture:
        for i in range(3):
            sys.stderr.write(f"\r{i}/3 [{'#' * i:<2}]")
        sys.stderr.write("\n")
    assert _text(capture.drain()) == "\r2/3 [##]\n"


@pytest.mark.parametrize(
    ("written", "kept"),
    [
        ("a\rbb\rcc\rdd\n", "a\rdd\n"),  # "a" may continue an earlier line
        ("\r10%\r20%\r", "\r20%\r"),  # the cursor stays at the line's start
        ("\rlong state\rshort\rend", "\rlong state\rshort\rend"),  # not covered
        (
            "\r\x1b[32m1\x1b[0m\r\x1b[32m2\x1b[0m",
            "\r\x1b[32m1\x1b[0m\r\x1b[32m2\x1b[0m",
        ),
        ("one\r\ntwo\r\n", "one\r\ntwo\r\n"),  # Windows line ends
        ("x\ry\n\r1\r2\r3\n", "x\ry\n\r3\n"),
    ],
)
def test_redrawn_lines_are_merged_only_when_the_last_state_covers_them(
    written: str, kept: str
) -> None:
    with capturing() as capture:
        sys.stderr.write(written)
    assert _text(capture.drain()) == kept


def test_a_bar_redrawn_for_long_does_not_use_up_the_limit() -> None:
    capture = ConsoleCapture(5_000)
    capture.start()
    try:
        for round in range(100):
            for i in range(50):
                sys.stderr.write(f"\r{round:3d} {i:3d}/50 " + "#" * 20)
            capture.drain()
        sys.stderr.write("\ndone\n")
    finally:
        capture.stop()
    # 5,000 redraws of 32 characters were written (160 kB); one state per drain
    # is kept (3.3 kB).
    assert not capture.truncated
    assert "done" in _text(capture.drain())


@pytest.mark.parametrize("before", [True, False])
def test_logging_to_stderr_is_copied(before: bool) -> None:
    logger = logging.getLogger("labnotebook-test-console")
    original = sys.stderr
    handler = None
    if before:  # like logging.basicConfig() at the top of a script
        handler = logging.StreamHandler()  # holds the original sys.stderr
        logger.addHandler(handler)
    try:
        with capturing() as capture:
            if handler is None:
                handler = logging.StreamHandler()  # takes the proxy
                logger.addHandler(handler)
            logger.warning("loss is %s", "nan")
        if before:
            assert handler.stream is original  # given back at the end
    finally:
        if handler is not None:
            logger.removeHandler(handler)
    assert _text(capture.drain(), "stderr") == "loss is nan\n"


def test_writes_from_threads_are_all_kept() -> None:
    # print() writes the text and the newline in two calls, which threads may
    # interleave (on the terminal too): write whole lines.
    def work(n: int) -> None:
        for i in range(200):
            sys.stdout.write(f"thread {n} line {i}\n")

    with capturing() as capture:
        threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    lines = _text(capture.drain()).splitlines()
    assert sorted(lines) == sorted(
        f"thread {n} line {i}" for n in range(4) for i in range(200)
    )
    for n in range(4):
        mine = [line for line in lines if line.startswith(f"thread {n} ")]
        assert mine == [f"thread {n} line {i}" for i in range(200)]


def test_bytes_to_buffer_are_decoded_and_never_raise() -> None:
    raw = io.TextIOWrapper(io.BytesIO(), encoding="utf-8", errors="replace")
    original, sys.stdout = sys.stdout, raw
    try:
        with capturing() as capture:
            sys.stdout.buffer.write(b"\xe2\x82")  # a character cut in two writes
            sys.stdout.buffer.write(b"\xac and \xff\n")  # a byte that is not UTF-8
            print("after\x00nul \udcff")
    finally:
        sys.stdout = original
    assert _text(capture.drain()) == "€ and \ufffd\nafter\ufffdnul \ufffd\n"


def test_str_subclasses_and_buffer_writelines_are_copied(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # numpy.str_ and markupsafe.Markup are str subclasses: printed but were not kept.
    class Text(str):
        def __str__(self) -> str:
            return "not what was written"

    raw = io.TextIOWrapper(io.BytesIO(), encoding="utf-8")
    with capturing() as capture:
        sys.stdout.write(Text("subclass\n"))
        sys.stdout.writelines([Text("line one\n"), "line two\n"])
        chunks = capture.drain()
    assert _text(chunks) == "subclass\nline one\nline two\n"
    assert capsys.readouterr().out == "subclass\nline one\nline two\n"

    original, sys.stdout = sys.stdout, raw
    try:
        with capturing() as capture:
            sys.stdout.buffer.writelines([b"bytes one\n", bytearray(b"bytes two\n")])
            sys.stdout.flush()
    finally:
        sys.stdout = original
    assert _text(capture.drain()) == "bytes one\nbytes two\n"
    assert raw.buffer.getvalue() == b"bytes one\nbytes two\n"  # type: ignore[attr-defined]


def test_text_that_the_stream_refuses_raises_as_before() -> None:
    with capturing() as capture, pytest.raises(TypeError):
        sys.stdout.write(b"bytes to a text stream")  # type: ignore[arg-type]
    assert capture.drain() == []


def test_a_failing_copy_does_not_reach_print(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    class Broken:
        def append(self, entry: object) -> None:
            raise RuntimeError("capture is broken")

    with capturing() as capture:
        monkeypatch.setattr(capture, "entries", Broken())
        print("still printed")
    assert capsys.readouterr().out == "still printed\n"


def test_limit_keeps_a_prefix_and_adds_one_marker(
    capsys: pytest.CaptureFixture[str],
) -> None:
    capture = ConsoleCapture(25)
    capture.start()
    try:
        print("0123456789")
        first = capture.drain()
        print("abcdefghij" * 3)
        print("not kept")
        second = capture.drain()
        print("nor this")
        third = capture.drain()
    finally:
        capture.stop()

    assert _text(first) == "0123456789\n"
    marker = TRUNCATED.format(limit=25)
    assert _text(second) == "abcdefghijabcd\n" + marker
    assert len((_text(first) + _text(second)).encode()) - len(marker) - 1 == 25
    assert third == []
    assert "not kept" in capsys.readouterr().out


def test_limit_counts_utf8_bytes() -> None:
    capture = ConsoleCapture(5)
    capture.start()
    try:
        print("ééé")  # 6 bytes
    finally:
        capture.stop()
    assert _text(capture.drain()) == "éé\n" + TRUNCATED.format(limit=5)


def test_zero_limit_keeps_only_the_marker() -> None:
    capture = ConsoleCapture(0)
    capture.start()
    try:
        print("x")
    finally:
        capture.stop()
    assert _text(capture.drain()) == TRUNCATED.format(limit=0)


def test_only_one_capture_at_a_time() -> None:
    with capturing() as capture:
        other = ConsoleCapture(1000)
        assert not other.start()
        print("mine")
        other.stop()
    assert _text(capture.drain()) == "mine\n"


def test_stop_keeps_a_replacement_installed_meanwhile() -> None:
    original = sys.stdout
    capture = ConsoleCapture(1000)
    capture.start()
    proxy = sys.stdout
    replacement = io.StringIO()
    sys.stdout = replacement
    try:
        capture.stop()
        assert sys.stdout is replacement
        proxy.write("through the old proxy\n")  # still works, no longer copied
    finally:
        sys.stdout = original
    assert capture.drain() == []


def test_modes() -> None:
    assert should_capture("on")
    assert should_capture("auto")  # pytest is not a notebook
    assert not should_capture("off")


# -------------------------------------------------------- in a child process

CHILD = """
import logging, os, sys, threading
import labnotebook as lab
lab.init(os.environ["STORE"], home=os.environ["HOME_DIR"], flush_interval=0.1,
         capture_console=os.environ.get("MODE", "auto"),
         console_limit=int(os.environ.get("LIMIT", "10000000")))
"""


def _child_env(settings: Settings, **env: str) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("LABNOTEBOOK")}
    return {**clean, "STORE": settings.store_url, "HOME_DIR": settings.home, **env}


def run_child(code: str, settings: Settings, **env: str) -> tuple[str, str]:
    """Run a script and return what it printed to the terminal (stdout, stderr)."""
    proc = subprocess.run(
        [sys.executable, "-c", CHILD + textwrap.dedent(code)],
        env=_child_env(settings, **env),
        capture_output=True,
        timeout=120,
    )
    # Decoded here rather than by text=True, which would turn "\r" into "\n".
    out = proc.stdout.decode("utf-8", "replace")
    err = proc.stderr.decode("utf-8", "replace")
    assert proc.returncode == 0, err
    return out, err


def on_a_terminal(text: str) -> list[str]:
    """The lines a terminal shows for ``text``: each line's last ``\r`` state."""
    return [line.rstrip("\r").rsplit("\r", 1)[-1] for line in text.split("\n")]


def same_but_redraws(kept: str, written: str) -> bool:
    """Whether ``kept`` is ``written`` with some redraws of a line merged."""
    return on_a_terminal(kept) == on_a_terminal(written) and all(
        k.count("\r") <= w.count("\r")
        for k, w in zip(kept.split("\n"), written.split("\n"), strict=True)
    )


def stored(notebook: Notebook, run_id: str, stream: str | None = None) -> str:
    chunks = notebook.get_run(run_id).console()
    return "".join(c.text for c in chunks if stream is None or c.stream == stream)


SCRIPT = """
print("before the run")
logging.basicConfig(format="%(levelname)s %(message)s")  # holds sys.stderr
with lab.start("console") as run:
    print("run", run.id)
    print("to stderr", file=sys.stderr)
    logging.warning("a warning <b>bold</b>")
    for i in range(5):
        sys.stderr.write(f"\\r{i + 1}/5 [{'#' * (i + 1):5}]")
        sys.stderr.flush()
    sys.stderr.write("\\n")

    def work(n):
        for i in range(100):
            sys.stdout.write(f"thread {n} line {i}\\n")

    threads = [threading.Thread(target=work, args=(n,)) for n in range(3)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    print("ünïcödé ✓ and a tab\\t.")
    sys.stdout.flush()
    sys.stdout.buffer.write(b"raw \\xff bytes\\n")
    sys.stdout.buffer.flush()
    print("last line", end="")
print()
print("after the run")
"""


def test_script_output_is_printed_and_stored(
    settings: Settings, notebook: Notebook
) -> None:
    out, err = run_child(SCRIPT, settings)

    run_id = out.splitlines()[1].split()[1]
    lines = out.splitlines()
    assert lines[0] == "before the run"
    assert lines[-1] == "after the run"
    assert sorted(lines[2:302]) == sorted(
        f"thread {n} line {i}" for n in range(3) for i in range(100)
    )
    assert "raw \ufffd bytes" in out

    inside = out[len("before the run\n") : -len("\nafter the run\n")]
    kept = stored(notebook, run_id, "stdout")
    # Threads race between writing and copying, as they race on the terminal:
    # the lines of each thread keep their order, the rest is exactly as printed.
    assert sorted(kept.splitlines()) == sorted(inside.splitlines())
    for n in range(3):
        mine = [line for line in kept.splitlines() if line.startswith(f"thread {n}")]
        assert mine == [f"thread {n} line {i}" for i in range(100)]
    others = [line for line in kept.splitlines() if not line.startswith("thread")]
    assert "\n".join(others) == "\n".join(
        line for line in inside.splitlines() if not line.startswith("thread")
    )
    assert kept.endswith("raw \ufffd bytes\nlast line")
    # The bar's redraws may be merged, depending on which fell in one flush.
    assert same_but_redraws(stored(notebook, run_id, "stderr"), err)
    assert err == (
        "to stderr\nWARNING a warning <b>bold</b>\n"
        "\r1/5 [#    ]\r2/5 [##   ]\r3/5 [###  ]\r4/5 [#### ]\r5/5 [#####]\n"
    )

    chunks = notebook.get_run(run_id).console()
    assert chunks[0].stream == "stdout"
    assert chunks[0].text.startswith("run ")
    assert chunks[1].stream == "stderr"
    assert chunks[1].text.startswith("to stderr\n")
    assert [c.time for c in chunks] == sorted(c.time for c in chunks)
    assert [c.id for c in chunks] == sorted(c.id for c in chunks)

    found = notebook.get_run(run_id).console(search="WARNING A WARNING")
    assert [c.stream for c in found] == ["stderr"]


@contextlib.contextmanager
def tracking_server(store_url: str, folder: Path) -> Iterator[str]:
    """``python -m labnotebook.server`` on the store, on a free port."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("LABNOTEBOOK")}
    env["LABNOTEBOOK_HOME"] = str(folder / "server-home")
    command = [sys.executable, "-m", "labnotebook.server", "--store", store_url]
    with (folder / "server.log").open("wb") as log:
        proc = subprocess.Popen(
            [*command, "--port", str(port), "--workers", "1"],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, (folder / "server.log").read_text()
            health = base + "/api/v1/health"
            with (
                contextlib.suppress(OSError),
                urllib.request.urlopen(health, timeout=2),
            ):
                break
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.2)
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_script_output_reaches_the_store_through_a_server(
    settings: Settings, notebook: Notebook, tmp_path: Path
) -> None:
    with tracking_server(settings.store_url, tmp_path) as base:
        remote = settings.replace(url=base, home=str(tmp_path / "client"))
        out, err = run_child(SCRIPT, remote)
        run_id = out.splitlines()[1].split()[1]
        over_http = Notebook(remote)
        try:
            chunks = over_http.get_run(run_id).console()
            found = over_http.get_run(run_id).console(search="a WARNING")
        finally:
            over_http.close()

    assert same_but_redraws(
        "".join(c.text for c in chunks if c.stream == "stderr"), err
    )
    assert stored(notebook, run_id, "stdout").endswith("raw \ufffd bytes\nlast line")
    assert [(c.id, c.text) for c in chunks] == [
        (c.id, c.text) for c in notebook.get_run(run_id).console()
    ]
    assert [c.stream for c in found] == ["stderr"]


def test_limit_marker_and_terminal_unchanged(
    settings: Settings, notebook: Notebook
) -> None:
    out, _ = run_child(
        """
        with lab.start() as run:
            print("run", run.id)
            for i in range(100):
                print(f"{i:04d}" * 10)
        """,
        settings,
        LIMIT="1000",
    )

    assert len(out.splitlines()) == 101  # everything still printed
    run_id = out.split()[1]
    text = stored(notebook, run_id)
    marker = TRUNCATED.format(limit=1000)
    assert text.endswith("\n" + marker)
    assert text[: -len(marker) - 1] == out[:1000]
    assert text.count("[labnotebook:") == 1


def test_streams_are_restored_and_replacements_kept(
    settings: Settings, notebook: Notebook
) -> None:
    out, err = run_child(
        """
        import io
        original_out, original_err = sys.stdout, sys.stderr
        run = lab.start()
        assert sys.stdout is not original_out
        assert sys.stdout.fileno() == original_out.fileno()
        assert sys.stdout.encoding == original_out.encoding
        print("run", run.id)
        mine = io.StringIO()
        sys.stderr = mine
        print("into my own stream", file=sys.stderr)
        run.finish()
        assert sys.stdout is original_out
        assert sys.stderr is mine
        sys.stderr = original_err
        print("done", mine.getvalue().strip())
        """,
        settings,
    )

    assert out.splitlines()[-1] == "done into my own stream"
    assert stored(notebook, out.split()[1]) == out.splitlines()[0] + "\n"
    assert err == ""


def test_output_is_kept_when_the_script_fails_or_is_terminated(
    settings: Settings, notebook: Notebook
) -> None:
    failing = subprocess.run(
        [sys.executable, "-c", CHILD + FAILING],
        env=_child_env(settings),
        capture_output=True,
        timeout=120,
    )
    assert failing.returncode == 1
    run_id = failing.stdout.decode().split()[1]
    assert stored(notebook, run_id) == f"run {run_id}\nabout to fail\n"
    run = notebook.get_run(run_id)
    assert run.status == "failed"
    assert "ZeroDivisionError" in (run.record.error or "")

    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD + WAITING],
        env=_child_env(settings),
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    run_id = proc.stdout.readline().split()[1]
    assert proc.stdout.readline() == "waiting\n"
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=60)
    assert notebook.get_run(run_id).status == "killed"
    assert stored(notebook, run_id) == f"run {run_id}\nwaiting\n"


FAILING = """
run = lab.start()
print("run", run.id)
print("about to fail", flush=True)
1 / 0
"""

WAITING = """
import time
run = lab.start()
print("run", run.id, flush=True)
print("waiting", flush=True)
time.sleep(60)
"""


def test_off_mode_and_second_run(settings: Settings, notebook: Notebook) -> None:
    out, _ = run_child(
        """
        first = lab.start("first")
        second = lab.start("second")
        print(first.id, second.id)
        second.finish()
        first.finish()
        lab.init(os.environ["STORE"], home=os.environ["HOME_DIR"],
                 capture_console="off")
        original = sys.stdout
        with lab.start("third") as third:
            assert sys.stdout is original
            print(third.id)
        """,
        settings,
    )

    first, second = out.splitlines()[0].split()
    third = out.splitlines()[1]
    assert stored(notebook, first) == f"{first} {second}\n"
    assert stored(notebook, second) == ""
    assert stored(notebook, third) == ""


def test_console_search_folds_the_same_letters_on_every_store(
    notebook: Notebook,
) -> None:
    # Like ilike in filters, search folds A-Z only: SQLite's LIKE cannot fold
    # other letters, and PostgreSQL's alone folded them, so the two stores
    # found different chunks for one search.
    with notebook.start() as run:
        pass
    lines = ["Ünïcode ÉTÉ", "ascii WARNING", "50% done_now", "back\\slash"]
    notebook.store.write(
        Batch(run_id=run.id, console=[(time.time(), "stdout", t) for t in lines])
    )

    def found(search: str) -> list[str]:
        return [c.text for c in run.console(search=search)]

    assert found("warning") == ["ascii WARNING"]
    assert found("ÜNïCODE") == ["Ünïcode ÉTÉ"]
    assert found("üNïCODE") == []  # Ü and ü are different letters here
    assert found("ÜNÏCODE") == []
    assert found("été") == []
    assert found("ÉTÉ") == ["Ünïcode ÉTÉ"]
    assert found("Ünïcode") == ["Ünïcode ÉTÉ"]
    assert found("ünïcode") == []
    assert found("0% D") == ["50% done_now"]
    assert found("E_N") == ["50% done_now"]
    assert found("E_X") == []
    assert found("K\\S") == ["back\\slash"]


def test_console_search_is_validated(notebook: Notebook) -> None:
    with notebook.start() as run:
        pass
    with pytest.raises(ValidationError, match="console search"):
        run.console(search=3)  # type: ignore[arg-type]


# ------------------------------------------------------------ in a notebook


@pytest.fixture
def kernel(tmp_path: Path, settings: Settings) -> Iterator[Any]:
    """A real IPython kernel (this Python) on the test's store."""
    spec = tmp_path / "kernels" / "console-test"
    spec.mkdir(parents=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    (spec / "kernel.json").write_text(
        json.dumps({"argv": argv, "display_name": "test", "language": "python"})
    )
    manager = KernelManager(
        kernel_name="console-test",
        kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(spec.parent)]),
        connection_file=str(tmp_path / "connection.json"),
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("LABNOTEBOOK")}
    manager.start_kernel(
        env={**env, "STORE": settings.store_url, "HOME_DIR": settings.home}
    )
    client = manager.client()
    client.start_channels()
    client.wait_for_ready(timeout=60)
    yield client
    client.stop_channels()
    manager.shutdown_kernel(now=True)


def run_cell(client: Any, code: str) -> dict[str, str]:
    """Execute a cell; returns the text of its stdout and stderr stream messages."""
    streams = {"stdout": "", "stderr": ""}

    def hook(message: dict[str, Any]) -> None:
        if message["msg_type"] == "stream":
            streams[message["content"]["name"]] += message["content"]["text"]
        elif message["msg_type"] == "error":
            raise AssertionError("\n".join(message["content"]["traceback"]))

    reply = client.execute_interactive(
        textwrap.dedent(code), output_hook=hook, timeout=60
    )
    assert reply["content"]["status"] == "ok", reply["content"]
    return streams


@pytest.mark.parametrize("mode", ["on", "auto"])
def test_notebook_cells_are_captured_only_when_on(
    kernel: Any, notebook: Notebook, mode: str
) -> None:
    setup = run_cell(
        kernel,
        f"""
        import os, sys
        import labnotebook as lab
        lab.init(os.environ["STORE"], home=os.environ["HOME_DIR"],
                 capture_console={mode!r})
        run = lab.start()
        print("hello from a cell")
        print("careful", file=sys.stderr)
        """,
    )
    more = run_cell(kernel, "print('second cell'); run.finish(); print(run.id)")

    assert setup == {"stdout": "hello from a cell\n", "stderr": "careful\n"}
    run_id = more["stdout"].split()[-1]
    assert more["stdout"] == f"second cell\n{run_id}\n"
    if mode == "on":
        assert stored(notebook, run_id, "stdout") == "hello from a cell\nsecond cell\n"
        assert stored(notebook, run_id, "stderr") == "careful\n"
    else:
        assert stored(notebook, run_id) == ""
    after = run_cell(kernel, "print(type(sys.stdout).__name__)")
    assert after["stdout"] == "OutStream\n"
