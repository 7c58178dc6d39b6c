"""The main flow against a real server, on SQLite and on PostgreSQL: a run logged by
another process appears in the runs table live, its chart grows live, a note is added
and edited, tags are changed, and the run's end shows up without a reload."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from .conftest import store_for
from .helpers import running_server, screenshot_path

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(240)]

LOGGER = Path(__file__).with_name("logger.py")


@pytest.fixture(params=["sqlite", "postgresql"])
def live_server(
    request: pytest.FixtureRequest, tmp_path: Path, dashboard_built: None
) -> Iterator[tuple[str, str, str]]:
    """(base URL, store URL, store kind) of a server on a new, empty store."""
    store = store_for(request, tmp_path)
    with running_server(store, tmp_path / "server.log") as base:
        yield base, store, request.param


def wait_for(condition: Any, timeout: float = 20.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def last_step(chart: Any) -> int:
    value = chart.get_attribute("data-last-step")
    return int(value) if value not in (None, "") else -1


def test_a_live_run_appears_and_its_chart_grows(
    live_server: tuple[str, str, str], open_page: Any, tmp_path: Path
) -> None:
    base, store, kind = live_server
    page, problems = open_page()
    page.goto(base + "/")
    expect(page.get_by_role("heading", name="No runs yet")).to_be_visible()
    page.screenshot(path=screenshot_path(f"runs-empty-{kind}"))

    stop = tmp_path / "stop"
    logger = subprocess.Popen(
        [
            sys.executable,
            str(LOGGER),
            store,
            str(tmp_path / "home"),
            "live-run",
            "10",
            str(stop),
        ]
    )
    try:
        row = page.locator(".body .row", has_text="live-run")
        expect(row).to_be_visible(timeout=30_000)
        expect(row.locator("[data-status]")).to_have_attribute("data-status", "running")

        page.locator(".table").focus()
        page.keyboard.press("Enter")
        expect(page).to_have_url(re.compile(r"/runs/[0-9a-f]+"))
        chart = page.locator('figure[data-metric="loss"]')
        expect(chart).to_be_visible()
        first = (
            wait_for(
                lambda: last_step(chart) >= 0 and last_step(chart) + 1,
                what="the first points",
            )
            - 1
        )
        wait_for(lambda: last_step(chart) > first + 30, what="the chart to grow live")
        page.screenshot(path=screenshot_path(f"run-live-{kind}"))

        page.fill("#note-text", "**Learning rate** looks right; see [the plan](/plan).")
        page.get_by_role("button", name="Add note").click()
        note = page.locator(".note .markdown strong", has_text="Learning rate")
        expect(note).to_be_visible()
        page.get_by_role("button", name="Edit note").click()
        page.get_by_role("textbox", name="Note text").fill("Rate _halved_ at step 100.")
        page.get_by_role("button", name="Save").click()
        expect(page.locator(".note .markdown em")).to_have_text("halved")
        expect(page.locator(".note")).to_contain_text("(edited)")

        page.get_by_role("textbox", name="New tag").fill("promising")
        page.get_by_role("button", name="Add", exact=True).click()
        expect(page.locator(".tags .tag", has_text="promising")).to_be_visible()
        page.get_by_role("button", name="Remove tag live").click()
        expect(page.locator(".tags .tag")).to_have_count(1)
    finally:
        stop.touch()
        logger.wait(timeout=60)
    assert logger.returncode == 0

    status = page.locator(".run-header [data-status]")
    expect(status).to_have_attribute("data-status", "finished", timeout=30_000)
    page.go_back()
    row = page.locator(".body .row", has_text="live-run")
    expect(row.locator("[data-status]")).to_have_attribute("data-status", "finished")
    assert not problems.errors, problems.errors
    assert not problems.dialogs, problems.dialogs
