"""The run page as runs change under it: charts whose labels fit, a long metric key
that wraps inside its chart, another run opened in the same page, a run deleted while
its page is open, a server that stops while it is open, the same runs compared, and
the runs table holding long names.
Runs are logged through the tracking server, on SQLite and on PostgreSQL."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from playwright.sync_api import expect

from labnotebook import Notebook, Settings

from .conftest import sqlite_url, store_for
from .helpers import running_server, screenshot_path, seed_runs

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(240)]

#: A metric key at the length limit, with no place to break it.
LONG_KEY = "k" * 250
#: A param name as long, offered in the compare page's scatter pickers.
LONG_PARAM = "p" * 300

# Where every y axis of the page sits relative to its chart: never left of it.
AXES_INSIDE = """() => Array.from(document.querySelectorAll('.uplot')).flatMap(
 (chart) => {
  const left = chart.getBoundingClientRect().left;
  return Array.from(chart.querySelectorAll('.u-axis'))
    .map((axis) => axis.getBoundingClientRect().left - left)
    .filter((offset) => offset < 0);
 })"""


# Charts whose leftmost pixels are drawn on: a y label wider than its axis, cut off.
LABELS_CUT = """() => Array.from(document.querySelectorAll('.uplot canvas'))
  .filter((canvas) => {
    const pixels = canvas.getContext('2d').getImageData(0, 0, 2, canvas.height).data;
    return pixels.some((value, i) => i % 4 === 3 && value > 0);
  }).length"""


def _wait_axes_inside(page: Any) -> None:
    """Wait until no axis sits left of its chart (a chart being built may, briefly)."""
    # Polled from here: the page's Content-Security-Policy forbids the eval that
    # wait_for_function would use.
    deadline = time.monotonic() + 15
    while (outside := page.evaluate(AXES_INSIDE)) and time.monotonic() < deadline:
        page.wait_for_timeout(100)
    assert outside == []


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def server(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    dashboard_built: None,
) -> Iterator[tuple[str, Notebook, list[str]]]:
    """(base URL, a notebook logging to it, ids of two runs with the same pictures)."""
    folder = tmp_path_factory.mktemp(f"run-page-{request.param}")
    store = store_for(request, folder)
    with running_server(store, folder / "server.log") as base:
        notebook = Notebook(
            Settings(
                url=base,
                home=str(folder / "home"),
                flush_interval=0.05,
                capture_console="off",
            )
        )
        ids = []
        try:
            for name in ("first", "second"):
                params = {LONG_PARAM: len(ids), "lr": 0.1}
                with notebook.start(name, params=params, system_metrics=False) as run:
                    for step in range(30):
                        values = {"loss": 1.0 / (step + 1), LONG_KEY: step}
                        run.log({**values, "big": 1e8 - 1e6 * step}, step=step)
                    for step in range(4):
                        picture = np.full((4, 4), step * 60, np.uint8)
                        run.image(picture, "samples", step=step)
                ids.append(run.id)
            yield base, notebook, ids
        finally:
            notebook.close()


def test_axis_labels_and_long_keys_fit_their_charts(
    server: tuple[str, Notebook, list[str]], open_page: Any
) -> None:
    base, _, (run_id, _) = server
    page, problems = open_page()
    page.goto(f"{base}/runs/{run_id}")
    charts = page.locator(".uplot")
    expect(charts).to_have_count(3)
    # Ticks of 1/(step+1) are 0, 0.25, ... 1: the y axis is as wide as "0.75"; those
    # of "big" are as wide as "100000000" in the axis font.
    expect(page.locator(".u-axis").first).to_be_visible()
    _wait_axes_inside(page)
    assert page.evaluate(LABELS_CUT) == 0
    # A 250-character key wraps in the legend instead of widening the page.
    legend = page.locator(".u-legend .u-label", has_text=LONG_KEY)
    expect(legend).to_be_visible()
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= page.viewport_size["width"]
    page.screenshot(path=screenshot_path("run-page-long-key"), full_page=True)
    assert problems.errors == [] and problems.console == []


def test_compare_page_fits_the_window_with_long_names(
    server: tuple[str, Notebook, list[str]], open_page: Any
) -> None:
    base, _, ids = server
    page, problems = open_page()
    page.goto(f"{base}/compare?runs={','.join(ids)}")
    expect(page.locator(".uplot")).to_have_count(3)
    x_picker = page.get_by_label("x (param)")
    expect(x_picker.locator("option", has_text=LONG_PARAM)).to_have_count(1)
    assert page.evaluate("document.documentElement.scrollWidth") <= 1400
    _wait_axes_inside(page)
    x_picker.select_option(f"params.{LONG_PARAM}")
    page.get_by_label("y (metric)").select_option("metrics.loss.last")
    expect(page.locator("svg.scatter circle")).to_have_count(2)
    assert page.evaluate("document.documentElement.scrollWidth") <= 1400
    page.screenshot(path=screenshot_path("compare-long-names"), full_page=True)
    assert problems.errors == [] and problems.console == []


def test_runs_table_columns_line_up_with_long_names(
    server: tuple[str, Notebook, list[str]], open_page: Any
) -> None:
    base, notebook, _ = server
    with notebook.start("N" * 200, experiment="E" * 200, system_metrics=False):
        pass
    page, problems = open_page()
    page.goto(base + "/")
    rows = page.locator(".table .row")
    expect(page.locator(".body .row", has_text="N" * 200)).to_be_visible()
    expect(page.locator(".body .row", has_text="first")).to_be_visible()
    # The left edge of each row's Experiment cell, and each row's width.
    edges = page.evaluate(
        """() => Array.from(document.querySelectorAll('.table .row')).map((row) => [
             row.children[3].getBoundingClientRect().left,
             row.getBoundingClientRect().width])"""
    )
    assert rows.count() == len(edges) >= 3
    assert len({tuple(edge) for edge in edges}) == 1, edges
    assert page.evaluate("document.documentElement.scrollWidth") <= 1400
    page.screenshot(path=screenshot_path("runs-long-names"))
    assert problems.errors == [] and problems.console == []


def test_another_run_opened_in_the_page_starts_afresh(
    server: tuple[str, Notebook, list[str]], open_page: Any
) -> None:
    base, _, (first, second) = server
    page, problems = open_page()
    page.goto(f"{base}/runs/{first}")
    series = page.locator('figure.series[data-name="samples"]')
    slider = series.get_by_role("slider")
    slider.focus()
    page.keyboard.press("Home")
    expect(series.locator("img")).to_have_attribute("data-step", "0")

    # The dashboard's own router, as a link between runs would use it.
    page.evaluate(
        "(id) => document.querySelector('#app').__vue_app__"
        ".config.globalProperties.$router.push(`/runs/${id}`)",
        second,
    )
    expect(page.locator("h1")).to_have_text("second")
    expect(series.locator("figcaption")).to_contain_text("step 3")
    expect(series.locator("img")).to_have_attribute("data-step", "3")
    assert slider.input_value() == "3"
    assert problems.errors == [] and problems.console == []


def test_a_run_deleted_while_its_page_is_open(
    server: tuple[str, Notebook, list[str]], open_page: Any
) -> None:
    base, notebook, _ = server
    with notebook.start("doomed", system_metrics=False) as run:
        run.log(loss=1.0, step=0)
    page, problems = open_page()
    page.goto(f"{base}/runs/{run.id}")
    expect(page.locator("h1")).to_have_text("doomed")

    notebook.delete_run(run.id)
    alert = page.get_by_role("alert")
    expect(alert).to_contain_text(f"no run with id '{run.id}'")
    expect(page.locator("h1")).to_have_count(0)
    expect(page.locator(".uplot")).to_have_count(0)
    page.screenshot(path=screenshot_path("run-page-deleted"), full_page=True)
    assert problems.errors == []


def test_a_server_gone_while_a_run_page_is_open(
    tmp_path: Path, open_page: Any, dashboard_built: None
) -> None:
    store = sqlite_url(tmp_path)
    (run_id,) = seed_runs(store, tmp_path / "home", [{"name": "left open"}])
    page, _ = open_page()
    with running_server(store, tmp_path / "server.log") as base:
        page.goto(f"{base}/runs/{run_id}")
        expect(page.locator("h1")).to_have_text("left open")
        expect(page.locator(".banner")).to_have_count(0)
    # Nothing is clicked: the live stream, which the page keeps open, notices.
    expect(page.locator(".banner")).to_be_visible(timeout=20_000)
    expect(page.get_by_role("button", name="Retry")).to_be_visible()
