"""The runs, run and compare pages against a real server on a seeded SQLite store:
filtering (and a filter error shown inline), sorting, columns, selecting, comparing,
chart options in the URL, and screenshots of every page in both themes."""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from .conftest import sqlite_url
from .helpers import running_server, screenshot_path, seed_runs

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(240)]

LRS = [0.0001, 0.0003, 0.001, 0.003, 0.01]


def _specs() -> list[dict[str, object]]:
    specs: list[dict[str, object]] = []
    for i in range(20):
        lr = LRS[i % len(LRS)]
        specs.append(
            {
                "name": f"sweep-{i:02d}",
                "experiment": "sweep" if i < 15 else "ablation",
                "params": {
                    "optim": {"lr": lr, "name": "adam"},
                    "batch": 32 * (1 + i % 2),
                },
                "tags": ["baseline"] if i % 4 == 0 else ["search"],
                "metrics": {
                    "loss": [2 * math.exp(-s * lr * 5) + 0.01 * i for s in range(300)],
                    "acc": [1 - math.exp(-s * lr * 5) for s in range(300)],
                },
                "fields": [{"grad_norm": 1 / (1 + s)} for s in range(300)],
                "status": "failed" if i == 7 else "finished",
                "error": "Traceback (most recent call last):\nValueError: loss is NaN"
                if i == 7
                else None,
                "notes": ["Started from the **baseline** config."] if i == 0 else [],
            }
        )
    return specs


@pytest.fixture(scope="module")
def seeded(
    tmp_path_factory: pytest.TempPathFactory, dashboard_built: None
) -> Iterator[tuple[str, list[str]]]:
    folder = tmp_path_factory.mktemp("pages")
    store = sqlite_url(folder)
    ids = seed_runs(store, folder / "home", _specs())
    with running_server(store, folder / "server.log") as base:
        yield base, ids


def names(page: Any) -> list[str]:
    return page.locator(".body .row .name").all_inner_texts()


def test_filter_sort_and_columns(seeded: tuple[str, list[str]], open_page: Any) -> None:
    base, _ = seeded
    page, problems = open_page()
    page.goto(base + "/")
    expect(page.locator(".summary")).to_contain_text("20 runs")
    expect(page.locator(".body .row")).to_have_count(20)

    page.keyboard.press("/")
    expect(page.locator("#filter-input")).to_be_focused()
    page.keyboard.type('params.optim.lr < 0.001 and tags has "baseline"')
    page.keyboard.press("Enter")
    expect(page.locator(".summary")).to_contain_text("2 runs")
    expect(page).to_have_url(re.compile(r"q=params\.optim\.lr"))

    page.fill("#filter-input", "params.optim.lr <")
    page.keyboard.press("Enter")
    error = page.locator(".filter-error")
    expect(error).to_be_visible()
    expect(error.locator(".caret")).to_have_text(re.compile(r"^\s*\^$"))
    caret = error.locator(".caret").inner_text()
    assert len(caret) - 1 <= len("params.optim.lr <")
    page.screenshot(path=screenshot_path("runs-filter-error"))

    page.fill("#filter-input", "")
    page.keyboard.press("Enter")
    expect(error).to_be_hidden()
    expect(page.locator(".summary")).to_contain_text("20 runs")

    page.get_by_role("button", name=re.compile("^Name")).click()
    expect(page).to_have_url(re.compile(r"sort=name&order=desc"))
    expect(page.locator(".body .row .name").first).to_have_text("sweep-19")
    page.get_by_role("button", name=re.compile("^Name")).click()
    expect(page.locator(".body .row .name").first).to_have_text("sweep-00")

    page.get_by_role("button", name="Columns").click()
    page.get_by_label("optim.lr").check()
    page.get_by_label("loss (min)").check()
    page.get_by_role("button", name="Done").click()
    header = page.get_by_role("button", name=re.compile(r"^optim\.lr"))
    expect(header).to_be_visible()
    header.click()
    expect(page).to_have_url(re.compile(r"sort=params\.optim\.lr"))
    cells = page.locator(".body .row").first.locator('[role="gridcell"]')
    expect(cells.nth(7)).to_have_text("0.01")

    page.select_option('select[aria-label="Experiment"]', "ablation")
    expect(page.locator(".summary")).to_contain_text("5 runs")
    page.screenshot(path=screenshot_path("runs-columns-light"))
    assert not problems.errors, problems.errors


def test_select_and_compare(seeded: tuple[str, list[str]], open_page: Any) -> None:
    base, _ = seeded
    for scheme in ("light", "dark"):
        page, problems = open_page(color_scheme=scheme)
        page.goto(base + "/?sort=name&order=asc")
        rows = page.locator(".body .row")
        for i in (0, 1, 2):
            rows.nth(i).locator('input[type="checkbox"]').check()
        expect(page.locator(".summary")).to_contain_text("3 selected")
        page.get_by_role("button", name=re.compile("Compare")).click()
        expect(page).to_have_url(re.compile(r"/compare\?runs="))
        expect(page.get_by_role("heading", name="Compare 3 runs")).to_be_visible()
        expect(page.locator('figure[data-metric="loss"] canvas')).to_be_visible()
        expect(page.locator('figure[data-metric="acc"]')).to_be_visible()

        params = page.locator('section[aria-labelledby="compare-params-title"]')
        expect(params.locator("tbody tr")).to_have_count(3)
        params.get_by_label("Only differing keys").check()
        expect(params.locator("tbody tr")).to_have_count(2)
        expect(page).to_have_url(re.compile(r"diff=1"))

        page.get_by_label("sweep-01").uncheck()
        expect(page).to_have_url(re.compile(r"hide="))

        page.select_option('select:near(:text("x (param)"))', "params.optim.lr")
        page.select_option('select:near(:text("y (metric)"))', "metrics.loss.min")
        expect(page.locator("svg.scatter circle")).to_have_count(3)
        page.screenshot(path=screenshot_path(f"compare-{scheme}"), full_page=True)

        page.reload()
        expect(page.locator("svg.scatter circle")).to_have_count(3)
        assert not problems.errors, problems.errors


def test_run_page_options_and_failed_run(
    seeded: tuple[str, list[str]], open_page: Any
) -> None:
    base, ids = seeded
    for scheme in ("light", "dark"):
        page, problems = open_page(color_scheme=scheme)
        page.goto(f"{base}/runs/{ids[7]}")
        expect(page.locator(".run-header [data-status]")).to_have_text("failed")
        expect(page.locator(".run-header .error pre")).to_contain_text("loss is NaN")
        expect(page.locator('figure[data-metric="loss"]')).to_have_attribute(
            "data-last-step", "299"
        )

        page.get_by_label("Log y").check()
        page.get_by_label("Smoothing").fill("0.6")
        page.get_by_label("grad_norm").check()
        expect(
            page.locator('figure[data-metric="fields.grad_norm"]')
        ).to_have_attribute("data-last-step", "299")
        expect(page).to_have_url(re.compile(r"log=1"))
        expect(page).to_have_url(re.compile(r"smooth=0\.60"))
        expect(page).to_have_url(re.compile(r"fields=grad_norm"))
        page.screenshot(path=screenshot_path(f"run-{scheme}"), full_page=True)

        page.reload()
        expect(page.get_by_label("Log y")).to_be_checked()
        expect(page.locator('figure[data-metric="fields.grad_norm"]')).to_be_visible()
        assert not problems.errors, problems.errors


def test_zoom_requeries_and_double_click_resets(
    seeded: tuple[str, list[str]], open_page: Any
) -> None:
    base, ids = seeded
    page, problems = open_page()
    page.goto(f"{base}/runs/{ids[0]}")
    chart = page.locator('figure[data-metric="loss"]')
    expect(chart).to_have_attribute("data-last-step", "299")
    over = chart.locator(".u-over")
    box = over.bounding_box()
    assert box is not None
    with page.expect_request(re.compile(r"/api/v1/series\?.*start=")):
        page.mouse.move(box["x"] + box["width"] * 0.3, box["y"] + 20)
        page.mouse.down()
        page.mouse.move(box["x"] + box["width"] * 0.6, box["y"] + 40, steps=5)
        page.mouse.up()
    expect(chart.locator(".chart-note")).to_contain_text("zoomed")
    over.dblclick()
    expect(chart.locator(".chart-note")).to_have_count(0)
    assert not problems.errors, problems.errors


def test_theme_toggle_is_remembered(
    seeded: tuple[str, list[str]], open_page: Any
) -> None:
    base, _ = seeded
    page, _ = open_page(color_scheme="light")
    page.goto(base + "/")
    html = page.locator("html")
    expect(html).to_have_attribute("data-theme", "light")
    page.get_by_role("button", name="Switch to the dark theme").click()
    expect(html).to_have_attribute("data-theme", "dark")
    page.reload()
    expect(html).to_have_attribute("data-theme", "dark")
    page.screenshot(path=screenshot_path("runs-dark"))


def test_server_down_banner(
    tmp_path: Path, open_page: Any, dashboard_built: None
) -> None:
    store = sqlite_url(tmp_path)
    page, _ = open_page()
    with running_server(store, tmp_path / "server.log") as base:
        page.goto(base + "/")
        expect(page.get_by_role("heading", name="No runs yet")).to_be_visible()
    # The server is gone: the next request (the column picker's) fails.
    page.get_by_role("button", name="Columns").click()
    expect(page.locator(".banner")).to_be_visible(timeout=20_000)
    expect(page.get_by_role("button", name="Retry")).to_be_visible()
