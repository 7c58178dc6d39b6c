"""Fixtures of the browser tests: a built dashboard, a real server, headless Chromium.

Chromium is Debian's (``scripts/ensure-chromium`` installs it); no browser is
downloaded. Each test module gets its own store and server; pages record console
errors, page errors and dialogs so tests can assert that none happened.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from .helpers import CHROMIUM, CHROMIUM_ARGS, build_dashboard, running_server

playwright_api = pytest.importorskip("playwright.sync_api")

# The machines that run these tests are small and busy: give assertions time.
playwright_api.expect.set_options(timeout=15_000)


@pytest.fixture(scope="session")
def dashboard_built() -> None:
    build_dashboard()


@pytest.fixture(scope="session")
def browser(dashboard_built: None) -> Iterator[Any]:
    if not os.path.exists(CHROMIUM):
        pytest.fail(
            f"Chromium is not installed at {CHROMIUM}; run scripts/ensure-chromium "
            "(or set LABNOTEBOOK_CHROMIUM)",
            pytrace=False,
        )
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


class PageProblems:
    """What went wrong on a page: console errors, uncaught errors, dialogs."""

    def __init__(self) -> None:
        self.console: list[str] = []
        self.errors: list[str] = []
        self.dialogs: list[str] = []


@pytest.fixture
def open_page(browser: Any) -> Iterator[Callable[..., tuple[Any, PageProblems]]]:
    """Open a page in a fresh browser context: ``open_page(color_scheme="dark")``."""
    contexts: list[Any] = []

    def make(color_scheme: str = "light", **options: Any) -> tuple[Any, PageProblems]:
        context = browser.new_context(
            viewport={"width": 1400, "height": 900},
            color_scheme=color_scheme,
            **options,
        )
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(15_000)
        problems = PageProblems()
        page.on(
            "console",
            lambda m: problems.console.append(m.text) if m.type == "error" else None,
        )
        page.on("pageerror", lambda e: problems.errors.append(str(e)))

        def on_dialog(dialog: Any) -> None:
            problems.dialogs.append(f"{dialog.type}: {dialog.message}")
            dialog.dismiss()

        page.on("dialog", on_dialog)
        return page, problems

    yield make
    for context in contexts:
        context.close()


def sqlite_url(folder: Path) -> str:
    return f"sqlite:///{folder / 'lab.db'}"


def store_for(request: pytest.FixtureRequest, folder: Path) -> str:
    """The store a test parametrized by store name runs on: a SQLite file in
    ``folder`` or a new PostgreSQL database."""
    if request.param == "sqlite":
        return sqlite_url(folder)
    return str(request.getfixturevalue("make_pg_database")())


@pytest.fixture(scope="module")
def sqlite_server(
    tmp_path_factory: pytest.TempPathFactory, dashboard_built: None
) -> Iterator[tuple[str, str]]:
    """A server on a new SQLite store: (base URL, store URL)."""
    folder = tmp_path_factory.mktemp("browser")
    store = sqlite_url(folder)
    with running_server(store, folder / "server.log") as base:
        yield base, store
