"""The run page's Console panel: output printed by real scripts, shown as text,
stderr set apart, searchable, virtualised when long, and followed while the run
runs."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from .conftest import sqlite_url
from .helpers import running_server, screenshot_path
from .test_xss import IMG, SCRIPT, SVG, assert_inert

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(240)]

LINES = 20_000

PRINTER = """
import os, sys, time
from pathlib import Path
import labnotebook as lab
lab.init(sys.argv[1], home=sys.argv[2], flush_interval=0.1)
with lab.start(sys.argv[3]) as run:
    print(run.id, flush=True)
    exec(sys.argv[4])
"""

FINISHED = f"""
print("epoch 1: loss 0.5")
print("disk almost full", file=sys.stderr)
print({IMG + SCRIPT + SVG!r})
for i in range({LINES}):
    print(f"step {{i}} loss {{1 / (i + 1):.6f}}")
for i in range(5):
    sys.stderr.write(f"\\r{{i + 1}}/5 [{{'#' * (i + 1):5}}]")
sys.stderr.write("\\n")
print("the needle in the haystack")
"""

LIVE = """
i = 0
while not Path(sys.argv[5]).exists():
    print(f"live tick {i}", flush=True)
    i += 1
    time.sleep(0.2)
"""


def _start(store: str, home: Path, name: str, code: str, *extra: str) -> Any:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LABNOTEBOOK")}
    return subprocess.Popen(
        [sys.executable, "-c", PRINTER, store, str(home), name, code, *extra],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, dashboard_built: None
) -> Iterator[tuple[str, str, Path]]:
    folder = tmp_path_factory.mktemp("console")
    store = sqlite_url(folder)
    proc = _start(store, folder / "home", "printer", textwrap.dedent(FINISHED))
    assert proc.stdout is not None
    run_id = proc.stdout.readline().strip()
    proc.stdout.read()
    assert proc.wait(timeout=120) == 0
    with running_server(store, folder / "server.log") as base:
        yield base, run_id, folder


def _console(page: Any) -> Any:
    panel = page.locator("section.run-console")
    panel.scroll_into_view_if_needed()
    return panel


def test_console_shows_searches_and_keeps_output_inert(
    server: tuple[str, str, Path], open_page: Any
) -> None:
    base, run_id, _ = server
    page, problems = open_page()
    page.goto(f"{base}/runs/{run_id}")

    panel = _console(page)
    total = LINES + 6  # the run id, 3 lines, LINES steps, the bar, the needle
    expect(panel.locator(".count")).to_have_text(f"{total} lines")
    # Following the newest output: the last lines are on screen, and only a window
    # of the 20,000 lines is in the DOM.
    expect(panel.locator(".line").last).to_contain_text("the needle in the haystack")
    assert panel.locator(".line").count() < 200
    bar = panel.locator(".line.stderr", has_text="5/5")
    expect(bar).to_have_text(f"{total - 1}5/5 [#####]")

    output = panel.locator(".output")
    output.evaluate("el => { el.scrollTop = 0 }")
    expect(panel.locator(".line").first).to_contain_text(run_id)
    stdout_line = panel.locator(".line", has_text="epoch 1: loss 0.5")
    stderr_line = panel.locator(".line.stderr", has_text="disk almost full")
    expect(stderr_line).to_be_visible()
    color = "el => getComputedStyle(el).color"
    assert stderr_line.evaluate(color) != stdout_line.evaluate(color)
    hostile = panel.locator(".line", has_text="<img src=x")
    expect(hostile.locator(".text")).to_have_text(IMG + SCRIPT + SVG)

    panel.get_by_label("Search the console output").fill("NEEDLE")
    expect(panel.locator(".count")).to_have_text(f"1 of {total} lines")
    expect(panel.locator(".line")).to_have_count(1)
    expect(panel.locator(".line .text")).to_have_text("the needle in the haystack")
    panel.get_by_label("Search the console output").fill("step 1999")
    expect(panel.locator(".count")).to_have_text(f"11 of {total} lines")
    panel.get_by_label("Search the console output").fill("")
    expect(panel.locator(".count")).to_have_text(f"{total} lines")

    page.screenshot(path=screenshot_path("console"), full_page=True)
    assert_inert(page, problems)
    assert problems.console == []


def test_console_follows_a_running_script(
    server: tuple[str, str, Path], open_page: Any
) -> None:
    base, _, folder = server
    stop = folder / "stop-live"
    proc = _start(sqlite_url(folder), folder / "home", "live", LIVE, str(stop))
    try:
        assert proc.stdout is not None
        run_id = proc.stdout.readline().strip()
        page, problems = open_page()
        page.goto(f"{base}/runs/{run_id}")
        panel = _console(page)
        expect(panel.locator(".line").first).to_contain_text(run_id)
        expect(panel.locator(".line", has_text="live tick 3")).to_be_visible()
        expect(panel.locator(".line", has_text="live tick 15")).to_be_visible()
        assert problems.errors == []
    finally:
        stop.touch()
        proc.wait(timeout=60)
