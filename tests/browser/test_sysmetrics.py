"""The run page's System group: a run's ``sys/...`` metrics apart from its training
metrics, collapsed until opened, plotted against wall time by default."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import expect

from labnotebook import Notebook, Settings

from .conftest import sqlite_url
from .helpers import running_server, screenshot_path

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(240)]


@pytest.fixture(scope="module")
def sampled_run(
    tmp_path_factory: pytest.TempPathFactory, dashboard_built: None
) -> Iterator[tuple[str, str]]:
    folder = tmp_path_factory.mktemp("sysmetrics")
    store = sqlite_url(folder)
    settings = Settings(
        url=store,
        home=str(folder / "home"),
        flush_interval=0.05,
        system_metrics_interval=0.2,
    )
    notebook = Notebook(settings)
    with notebook.start("sampled") as run:
        for step in range(20):
            run.log(loss=1 / (step + 1))
            time.sleep(0.08)
    notebook.close()
    with running_server(store, folder / "server.log") as base:
        yield base, run.id


def test_system_group_on_the_run_page(
    sampled_run: tuple[str, str], open_page: Any
) -> None:
    base, run_id = sampled_run
    page, problems = open_page()
    page.goto(f"{base}/runs/{run_id}")

    training = page.locator('section[aria-label="Metrics"] > .charts')
    expect(training.locator('figure[data-metric="loss"] canvas')).to_be_visible()
    expect(training.locator('figure[data-metric^="sys/"]')).to_have_count(0)

    group = page.locator('section[aria-label="System"]')
    expect(group.locator("summary")).to_contain_text("System")
    expect(group.locator("figure")).to_have_count(0)  # collapsed: nothing loaded

    group.locator("summary").click()
    expect(page).to_have_url(re.compile(r"sys=1"))
    cpu = group.locator('figure[data-metric="sys/cpu_percent"]')
    expect(cpu.locator("canvas")).to_be_visible()
    expect(group.locator('figure[data-metric="sys/process_rss"]')).to_be_visible()
    expect(cpu).to_have_attribute("data-points", re.compile(r"^([3-9]|\d\d+)$"))
    expect(group.get_by_label("Wall time")).to_be_checked()
    page.screenshot(path=screenshot_path("run-system-group"))

    group.get_by_text("Sample", exact=True).click()
    expect(page).to_have_url(re.compile(r"sysx=step"))
    expect(cpu.locator("canvas")).to_be_visible()
    expect(cpu).to_have_attribute("data-last-step", re.compile(r"^\d+$"))

    page.reload()
    expect(
        group.locator('figure[data-metric="sys/cpu_percent"] canvas')
    ).to_be_visible()
    assert not problems.errors, problems.errors


def test_system_group_on_the_compare_page(
    sampled_run: tuple[str, str], open_page: Any
) -> None:
    base, run_id = sampled_run
    page, problems = open_page()
    page.goto(f"{base}/compare?runs={run_id}")

    metrics = page.locator('section[aria-label="Metrics"]')
    expect(metrics.locator('figure[data-metric="loss"] canvas')).to_be_visible()
    expect(metrics.locator('figure[data-metric^="sys/"]')).to_have_count(0)

    group = page.locator('section[aria-label="System metrics"]')
    toggle = group.get_by_role("button", name=re.compile(r"^System"))
    expect(toggle).to_have_attribute("aria-expanded", "false")
    expect(group.locator("figure")).to_have_count(0)
    toggle.click()
    expect(
        group.locator('figure[data-metric="sys/cpu_percent"] canvas')
    ).to_be_visible()
    assert not problems.errors, problems.errors
