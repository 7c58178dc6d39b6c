"""Every user-supplied string is rendered inert: a run whose name, experiment, tags,
params (keys and values), metric keys, fields, error and notes are HTML and script
payloads is shown on every page, and nothing executes or lands in the DOM as markup."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import expect

from .conftest import sqlite_url
from .helpers import running_server, screenshot_path, seed_runs

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(240)]

IMG = '<img src=x onerror="window.__pwned=1;alert(1)">'
SCRIPT = "<script>window.__pwned=2;alert(2)</script>"
JS = "javascript:window.__pwned=3;alert(3)"
SVG = '<svg onload="window.__pwned=4;alert(4)"><circle r=5></circle></svg>'
NOTE = "\n\n".join(
    [
        f"Payloads: {IMG} {SCRIPT} {SVG}",
        f"[markdown link]({JS})",
        f'<a href="{JS}">raw link</a> <a href=" JaVaScRiPt:alert(5)">spaced</a>',
        f'<iframe src="{JS}"></iframe><object data="{JS}"></object>',
        f'<form action="{JS}"><button formaction="{JS}">go</button></form>',
        '<p style="position:fixed;inset:0" onmouseover="window.__pwned=6">cover</p>',
        '<details open ontoggle="window.__pwned=7"><summary>x</summary></details>',
    ]
)

# Markup that must not exist anywhere on the page once user strings are shown.
CHECK_DOM = """() => {
  const urlAttrs = ['href', 'src', 'action', 'formaction', 'data', 'xlink:href'];
  const bad = [];
  for (const el of document.querySelectorAll('*')) {
    for (const attr of el.attributes) {
      const name = el.tagName + ' ' + attr.name;
      if (attr.name.startsWith('on')) bad.push(name);
      const js = /^\\s*javascript:/i.test(attr.value);
      if (js && urlAttrs.includes(attr.name)) bad.push(name);
    }
  }
  for (const el of document.querySelectorAll('script')) {
    const path = el.src ? new URL(el.src).pathname : '';
    if (!path.startsWith('/assets/')) bad.push('script');
  }
  const banned = ['iframe', 'object', 'embed', 'form[action]', 'p[style]',
                  'img[src="x"][onerror]', 'svg[onload]', 'details[ontoggle]'];
  for (const sel of banned) {
    if (document.querySelector(sel)) bad.push(sel);
  }
  return { bad, pwned: window.__pwned ?? null };
}"""


@pytest.fixture(scope="module")
def hostile(
    tmp_path_factory: pytest.TempPathFactory, dashboard_built: None
) -> Iterator[tuple[str, list[str]]]:
    folder = tmp_path_factory.mktemp("xss")
    store = sqlite_url(folder)
    ids = seed_runs(
        store,
        folder / "home",
        [
            {
                "name": IMG + SCRIPT,
                "experiment": SVG + IMG,
                "tags": [IMG, SCRIPT, JS],
                "params": {
                    IMG: SCRIPT,
                    "link": JS,
                    "nested": {SVG: [IMG, JS]},
                    "lr": 0.1,
                },
                "metrics": {IMG: [1.0, 0.5, 0.25], "loss": [3.0, 2.0, 1.0]},
                "fields": [{IMG: 1.0, "text": SCRIPT}, {IMG: 2.0}, {IMG: 3.0}],
                "notes": [NOTE],
                "status": "failed",
                "error": f"Traceback: {IMG}{SCRIPT}",
            },
            {
                "name": "plain",
                "experiment": "plain",
                "params": {"lr": 0.2, IMG: "other"},
                "metrics": {IMG: [2.0, 1.0], "loss": [1.0, 0.5]},
            },
        ],
    )
    with running_server(store, folder / "server.log") as base:
        yield base, ids


def assert_inert(page: Any, problems: Any) -> None:
    result = page.evaluate(CHECK_DOM)
    assert result["pwned"] is None, f"a payload ran: window.__pwned={result['pwned']}"
    assert result["bad"] == [], result["bad"]
    assert problems.dialogs == [], problems.dialogs
    assert problems.errors == [], problems.errors


def test_payloads_render_as_text_on_every_page(
    hostile: tuple[str, list[str]], open_page: Any
) -> None:
    base, (bad_id, plain_id) = hostile
    page, problems = open_page()

    page.goto(base + "/")
    row = page.locator(".body .row", has_text="<img src=x")
    expect(row).to_be_visible()
    expect(row.locator(".name")).to_have_text(IMG + SCRIPT)
    page.get_by_role("button", name="Columns").click()
    options = page.locator("#column-panel input[type=checkbox]")
    expect(options.first).to_be_visible()
    for box in options.all():
        box.check()
    page.get_by_role("button", name="Done").click()
    expect(page.locator(".head")).to_contain_text("<img src=x")
    page.select_option('select[aria-label="Experiment"]', SVG + IMG)
    expect(page.locator(".summary")).to_contain_text("1 runs")
    page.fill("#filter-input", f"name = {IMG}")
    page.keyboard.press("Enter")
    expect(page.locator(".filter-error")).to_be_visible()
    page.screenshot(path=screenshot_path("xss-runs"))
    assert_inert(page, problems)

    page.goto(f"{base}/runs/{bad_id}")
    expect(page.locator(".run-name")).to_have_text(IMG + SCRIPT)
    expect(page.locator(".note .markdown")).to_contain_text("raw link")
    fields = page.locator(".field-picker input[type=checkbox]")
    expect(fields.first).to_be_visible()
    for box in fields.all():
        box.check()
    expect(page.locator("figure.chart")).to_have_count(3)
    for link in page.locator(".note .markdown a").all():
        link.click(modifiers=["Alt"])
    page.locator(".note .markdown").hover()
    page.screenshot(path=screenshot_path("xss-run"), full_page=True)
    assert_inert(page, problems)

    page.goto(f"{base}/compare?runs={bad_id},{plain_id}")
    expect(page.locator("figure.chart")).to_have_count(2)
    page.locator("select").nth(0).select_option(index=1)
    page.locator("select").nth(1).select_option(index=1)
    page.screenshot(path=screenshot_path("xss-compare"), full_page=True)
    assert_inert(page, problems)
