"""The run page's Environment panel: the git state and a highlighted diff captured
from a real repository, and hostile strings in every part of an environment shown
as text."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from labnotebook import Notebook, Settings
from labnotebook._store import open_store
from labnotebook._store.base import Batch, RunCreate

from .conftest import sqlite_url
from .helpers import running_server, screenshot_path
from .test_xss import IMG, SCRIPT, SVG, assert_inert

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(240)]

HOSTILE_ID = "f" * 32


def _git(repo: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=Lab", "-c", "user.email=lab@example.com", *args],
        cwd=repo,
        check=True,
        capture_output=True,
    )


def _captured_run(folder: Path, store: str) -> str:
    """Start a run from a script in a dirty repository, capturing its diff."""
    repo = folder / "project"
    repo.mkdir()
    _git(repo, "init", "-q", "-b", "main")
    (repo / "train.py").write_text("lr = 0.1\nepochs = 10\n")
    _git(repo, "add", "train.py")
    _git(repo, "commit", "-q", "-m", "first")
    _git(repo, "remote", "add", "origin", "https://bob:tok3n@example.com/lab.git")
    (repo / "train.py").write_text(f"lr = 0.01\nepochs = 10\n# {IMG}{SCRIPT}\n")

    notebook = Notebook(Settings(url=store, home=str(folder / "home")))
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(sys, "argv", [str(repo / "train.py")])
            with notebook.start("captured") as run:
                run.log(loss=1.0)
    finally:
        notebook.close()
    return run.id


def _hostile_run(store_url: str) -> None:
    """A run whose environment, as a foreign client could send it, is all payloads."""
    diff = (
        f"diff --git a/{IMG} b/{IMG}\n--- a/{IMG}\n+++ b/{IMG}\n"
        f"@@ -1 +1 @@ {SVG}\n-{SCRIPT}\n+{IMG}\n"
    )
    environment = {
        "code": {
            "script": IMG,
            "argv": [IMG, SCRIPT],
            "notebook": {"path": SVG, "kernel": IMG},
            "commit": SCRIPT,
            "branch": IMG,
            "remote": "javascript:window.__pwned=9",
            "dirty": True,
            "untracked": [SVG],
            "diff": diff,
            "diff_truncated": True,
            "error": IMG,
        },
        "python": {"version": IMG, "implementation": SCRIPT, "executable": SVG},
        "platform": {"platform": IMG, "distribution": SCRIPT},
        "packages": {IMG: SCRIPT, SVG: IMG},
        "host": {"hostname": IMG, "cpu": SCRIPT, "gpus": [{"name": SVG}]},
    }
    store = open_store(store_url)
    try:
        store.write(
            Batch(
                run_id=HOSTILE_ID,
                create=RunCreate(
                    experiment="hostile",
                    name="hostile",
                    params={},
                    tags=[],
                    started_at=time.time(),
                    environment=environment,
                ),
            )
        )
    finally:
        store.close()


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, dashboard_built: None
) -> Iterator[tuple[str, str]]:
    folder = tmp_path_factory.mktemp("environment")
    store = sqlite_url(folder)
    run_id = _captured_run(folder, store)
    _hostile_run(store)
    with running_server(store, folder / "server.log") as base:
        yield base, run_id


def test_the_code_section_shows_a_highlighted_diff(
    server: tuple[str, str], open_page: Any
) -> None:
    base, run_id = server
    page, problems = open_page()
    page.goto(f"{base}/runs/{run_id}")

    panel = page.locator("section.environment")
    expect(panel).to_be_visible()
    panel.locator("details.code > summary").click()
    code = panel.locator("details.code")
    expect(code).to_contain_text("https://example.com/lab.git")
    expect(code).not_to_contain_text("tok3n")
    expect(code).to_contain_text("uncommitted changes")
    expect(code.locator(".file summary .path")).to_have_text("train.py")

    added = code.locator(".line.add")
    removed = code.locator(".line.del")
    expect(added).to_have_count(2)
    expect(added.nth(1)).to_have_text(f"+# {IMG}{SCRIPT}")
    expect(removed).to_have_text("-lr = 0.1")
    background = "el => getComputedStyle(el).backgroundColor"
    context = code.locator(".line.context").first.evaluate(background)
    assert added.first.evaluate(background) != context
    assert removed.first.evaluate(background) not in (
        context,
        added.first.evaluate(background),
    )

    panel.locator("details.packages > summary").click()
    panel.locator(".packages input").fill("sqlalchemy")
    expect(panel.locator(".packages td").first).to_have_text("sqlalchemy")
    page.screenshot(path=screenshot_path("environment"), full_page=True)
    assert_inert(page, problems)
    assert problems.console == []


def test_hostile_environment_renders_as_text(
    server: tuple[str, str], open_page: Any
) -> None:
    base, _ = server
    page, problems = open_page()
    page.goto(f"{base}/runs/{HOSTILE_ID}")

    panel = page.locator("section.environment")
    summaries = panel.locator(":scope > details > summary")
    # The run is read after the page loads: wait for its four sections.
    expect(summaries).to_have_count(4)
    for summary in summaries.all():
        summary.click()
    expect(panel.locator(".line.add")).to_have_text(f"+{IMG}")
    expect(panel.locator(".line.del")).to_have_text(f"-{SCRIPT}")
    expect(panel.locator(".line.hunk")).to_contain_text(SVG)
    expect(panel.locator(".packages")).to_contain_text(IMG)
    expect(panel).to_contain_text("javascript:window.__pwned=9")
    page.screenshot(path=screenshot_path("environment-xss"), full_page=True)
    assert_inert(page, problems)
