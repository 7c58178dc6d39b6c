"""Pictures on the run page: a step slider per name, pictures inline in notes, the
artifacts list with downloads, and picture names that are HTML payloads shown as text.
Runs are logged through the tracking server, on SQLite and on PostgreSQL."""

from __future__ import annotations

import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from playwright.sync_api import expect

from labnotebook import Notebook, Settings

from .conftest import store_for
from .helpers import running_server, screenshot_path

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(240)]

XSS = '<img src=x onerror="window.__pwned=1">'
#: One colour per step of the "samples" series, so each picture is told apart.
COLOURS = [(255, 0, 0), (0, 255, 0), (0, 0, 255)]
CHECKPOINT = b"\x00weights\xff" * 100


def _picture(colour: tuple[int, int, int], width: int = 8, height: int = 6) -> Any:
    return np.full((height, width, 3), colour, np.uint8)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def pictured(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    dashboard_built: None,
) -> Iterator[tuple[str, str]]:
    """(base URL, run id) of a server holding one run with pictures."""
    folder = tmp_path_factory.mktemp(f"images-{request.param}")
    store = store_for(request, folder)
    with running_server(store, folder / "server.log") as base:
        notebook = Notebook(
            Settings(url=base, home=str(folder / "home"), flush_interval=0.05)
        )
        try:
            with notebook.start("pictures") as run:
                for step, colour in enumerate(COLOURS):
                    run.log(loss=1.0 / (step + 1), step=step)
                    run.image(_picture(colour), "samples")
                run.image(np.zeros((4, 4), np.uint8), XSS)
                run.note(
                    "Look at **this**", images=[("grid", _picture((9, 9, 9), 10, 5))]
                )
                run.note(f"Payload {XSS}", images={XSS: np.ones((3, 3), bool)})
                run.save_checkpoint(CHECKPOINT, name="weights.bin")
                data = folder / "data"
                (data / "sub").mkdir(parents=True)
                (data / "a.txt").write_bytes(b"alpha")
                (data / "sub" / "b.bin").write_bytes(bytes(range(256)) * 4)
                run.attach(data)
        finally:
            notebook.close()
        yield base, run.id


def _shown(page: Any, name: str) -> Any:
    return page.locator(f'figure.series[data-name="{name}"]')


def _pixel(page: Any, img: Any) -> list[int]:
    """The colour of an <img>'s top-left pixel, read through a canvas."""
    handle = img.element_handle()
    return page.evaluate(  # type: ignore[no-any-return]
        """(img) => {
            const canvas = document.createElement('canvas');
            canvas.width = img.naturalWidth; canvas.height = img.naturalHeight;
            const ctx = canvas.getContext('2d');
            ctx.drawImage(img, 0, 0);
            return Array.from(ctx.getImageData(0, 0, 1, 1).data.slice(0, 3));
        }""",
        handle,
    )


def _loaded(img: Any) -> None:
    expect(img).to_have_attribute("src", _blob_url())
    img.evaluate("(img) => img.decode()")


def _blob_url() -> Any:
    import re

    return re.compile(r"^blob:")


def test_the_slider_changes_the_picture(
    pictured: tuple[str, str], open_page: Any
) -> None:
    base, run_id = pictured
    page, problems = open_page()
    page.goto(f"{base}/runs/{run_id}")

    series = _shown(page, "samples")
    img = series.locator("img")
    expect(img).to_have_attribute("data-step", "2")  # the latest first
    _loaded(img)
    assert _pixel(page, img) == list(COLOURS[2])
    expect(series).to_contain_text("step 2")

    slider = series.get_by_role("slider", name="Step of samples")
    slider.focus()
    page.keyboard.press("Home")
    expect(img).to_have_attribute("data-step", "0")
    expect(slider).to_have_attribute("aria-valuetext", "step 0")
    _loaded(img)
    assert _pixel(page, img) == list(COLOURS[0])

    page.keyboard.press("ArrowRight")
    expect(img).to_have_attribute("data-step", "1")
    _loaded(img)
    assert _pixel(page, img) == list(COLOURS[1])

    # Note pictures are shown in their note, not as a series.
    expect(_shown(page, "grid")).to_have_count(0)
    page.screenshot(path=str(screenshot_path("run-images")), full_page=True)
    assert problems.errors == []
    # DOMPurify parses the hostile note in an inert document; Chromium still
    # reports the handler it then removes as blocked by the page's policy.
    assert [m for m in problems.console if "Content Security Policy" not in m] == []


def test_a_note_shows_its_picture(pictured: tuple[str, str], open_page: Any) -> None:
    base, run_id = pictured
    page, problems = open_page()
    page.goto(f"{base}/runs/{run_id}")

    note = page.locator(".note", has_text="Look at this")
    expect(note.locator("strong")).to_have_text("this")
    img = note.locator("img[data-sha256]")
    expect(img).to_have_attribute("alt", "grid")
    _loaded(img)
    assert img.evaluate("(img) => [img.naturalWidth, img.naturalHeight]") == [10, 5]
    assert _pixel(page, img) == [9, 9, 9]
    assert problems.errors == []


def test_artifacts_are_listed_and_download(
    pictured: tuple[str, str], open_page: Any, tmp_path: Path
) -> None:
    base, run_id = pictured
    page, problems = open_page()
    page.goto(f"{base}/runs/{run_id}")

    table = page.locator("section.artifacts table")
    expect(table.locator("tbody tr")).to_have_count(8)
    row = table.locator("tr", has_text="weights.bin")
    expect(row).to_contain_text("checkpoint")
    expect(row).to_contain_text("900 B")
    with page.expect_download() as info:
        row.get_by_role("button", name="Download weights.bin").click()
    download = info.value
    assert download.suggested_filename == "weights.bin"
    target = tmp_path / "weights.bin"
    download.save_as(target)
    assert target.read_bytes() == CHECKPOINT

    # A folder shows its files' total size and downloads as a tar file.
    row = table.locator("tr", has_text="data")
    expect(row).to_contain_text("folder")
    expect(row).to_contain_text("1.0 kB")
    with page.expect_download() as info:
        row.get_by_role("button", name="Download data").click()
    download = info.value
    assert download.suggested_filename == "data.tar"
    archive = tmp_path / "data.tar"
    download.save_as(archive)
    with tarfile.open(archive) as tar:
        assert sorted(tar.getnames()) == ["data/a.txt", "data/sub/b.bin"]
        member = tar.extractfile("data/sub/b.bin")
        assert member is not None
        assert member.read() == bytes(range(256)) * 4
    assert problems.errors == []


def test_picture_names_with_markup_stay_inert(
    pictured: tuple[str, str], open_page: Any
) -> None:
    base, run_id = pictured
    page, problems = open_page()
    page.goto(f"{base}/runs/{run_id}")

    series = page.locator("figure.series").filter(has_text="onerror")
    expect(series.locator(".name")).to_have_text(XSS)
    _loaded(series.locator("img"))
    note = page.locator(".note", has_text="Payload")
    img = note.locator("img[data-sha256]")
    expect(img).to_have_attribute("alt", XSS)
    _loaded(img)
    expect(page.locator("section.artifacts")).to_contain_text(XSS)

    found = page.evaluate(
        """() => ({
            handlers: [...document.querySelectorAll('*')].flatMap((el) =>
                [...el.attributes].filter((a) => a.name.startsWith('on')).map(
                    (a) => el.tagName + ' ' + a.name)),
            pwned: window.__pwned ?? null,
        })"""
    )
    assert found == {"handlers": [], "pwned": None}
    assert problems.dialogs == []
    assert problems.errors == []
