"""A server with tokens: the dashboard asks for one, keeps it for the tab's session
and sends it as a bearer token on every request, the live stream included."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from .conftest import sqlite_url
from .helpers import running_server, screenshot_path, seed_runs

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(120)]

TOKEN = "write-token-for-the-browser-test"


def test_token_dialog(tmp_path: Path, open_page: Any, dashboard_built: None) -> None:
    store = sqlite_url(tmp_path)
    seed_runs(store, tmp_path / "home", [{"name": "guarded", "metrics": {"x": [1.0]}}])
    with running_server(store, tmp_path / "server.log", token=TOKEN) as base:
        page, problems = open_page()
        page.goto(base + "/")
        dialog = page.get_by_role("dialog", name="A token is needed")
        expect(dialog).to_be_visible()
        page.screenshot(path=screenshot_path("token-dialog"))

        page.get_by_role("textbox", name="Token").fill("wrong")
        page.get_by_role("button", name="Use token").click()
        expect(dialog).to_be_visible()
        expect(dialog).to_contain_text("refused the token")

        page.get_by_role("textbox", name="Token").fill(TOKEN)
        page.get_by_role("button", name="Use token").click()
        expect(dialog).to_be_hidden()
        expect(page.locator(".body .row", has_text="guarded")).to_be_visible()
        expect(page.locator(".live")).to_have_text("live")

        page.reload()
        expect(page.locator(".body .row", has_text="guarded")).to_be_visible()
        assert not problems.errors, problems.errors
