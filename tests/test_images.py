"""Pictures: encoding figures, PIL images and arrays as PNG, and run.image()."""

from __future__ import annotations

import io
import sys
import types
from typing import Any

import matplotlib
import numpy as np
import pytest
from matplotlib.figure import Figure
from PIL import Image

from labnotebook import LabnotebookError, Notebook, ValidationError
from labnotebook._images import to_png
from labnotebook._values import MAX_NOTE_LENGTH


def _decode(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


@pytest.mark.parametrize(
    ("array", "mode", "pixel"),
    [
        (np.full((4, 6), 7, np.uint8), "L", 7),
        (np.full((4, 6, 1), 9, np.uint8), "L", 9),
        (np.full((4, 6, 3), (1, 2, 3), np.uint8), "RGB", (1, 2, 3)),
        (np.full((4, 6, 4), (1, 2, 3, 4), np.uint8), "RGBA", (1, 2, 3, 4)),
        (np.full((4, 6), 0.5, np.float32), "L", 128),
        (np.full((4, 6, 3), (0.0, 1.0, 0.2), np.float64), "RGB", (0, 255, 51)),
        (np.full((4, 6), 1.0, np.float16), "L", 255),
        (np.ones((4, 6), bool), "L", 255),
        (np.full((4, 6), 200, np.int64), "L", 200),
    ],
)
def test_arrays(array: Any, mode: str, pixel: Any) -> None:
    data, width, height = to_png(array)
    image = _decode(data)
    assert (width, height) == (6, 4) == image.size
    assert image.mode == mode
    assert image.getpixel((5, 3)) == pixel


def test_array_orientation_is_rows_by_columns() -> None:
    array = np.zeros((2, 3), np.uint8)
    array[0, 2] = 255  # first row, last column
    image = _decode(to_png(array)[0])
    assert image.getpixel((2, 0)) == 255
    assert image.getpixel((0, 1)) == 0


def test_non_contiguous_array() -> None:
    array = np.arange(48, dtype=np.uint8).reshape(4, 4, 3)[:, ::2, :]
    image = _decode(to_png(array)[0])
    assert np.array_equal(np.asarray(image), array)


@pytest.mark.parametrize(
    ("array", "message"),
    [
        (np.zeros((4, 6, 2), np.uint8), r"shape \(4, 6, 2\)"),
        (np.zeros((3, 32, 32)), r"channels first.*transpose\(1, 2, 0\)"),
        (np.zeros((1, 4, 6, 3), np.uint8), r"shape \(1, 4, 6, 3\)"),
        (np.zeros(5, np.uint8), r"shape \(5,\)"),
        (np.zeros((4, 6), np.complex64), "dtype complex64"),
        (np.zeros((4, 6), object), "dtype object"),
        (np.zeros((0, 6), np.uint8), "empty"),
        (np.zeros((4, 0, 3), np.uint8), "empty"),
        (np.full((4, 6), 1.5), r"values from 1\.5 to 1\.5.*0\.0-1\.0"),
        (np.full((4, 6), -0.1), "np.clip"),
        (np.full((4, 6), 300, np.int32), "values from 300 to 300.*0-255"),
        (
            np.array([[0.1, np.nan]]),
            r"1 NaN or infinite values \(the first at \(0, 1\)\)",
        ),
        (np.array([[np.inf, 0.1]]), "NaN or infinite"),
    ],
)
def test_bad_arrays(array: Any, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        to_png(array)


def test_bad_array_message_lists_what_is_accepted() -> None:
    with pytest.raises(ValidationError) as caught:
        to_png(np.zeros((4, 6, 2), np.uint8))
    assert "HxW, HxWx1, HxWx3 or HxWx4" in str(caught.value)
    assert "uint8" in str(caught.value)


@pytest.mark.parametrize("value", ["picture.png", [[0, 1]], None, 3])
def test_other_objects_are_refused(value: Any) -> None:
    with pytest.raises(ValidationError, match="as an image; give a matplotlib Figure"):
        to_png(value)


def test_torch_tensors_are_read_channels_first() -> None:
    import torch

    rgb = torch.zeros(3, 4, 6)
    rgb[0] = 1.0  # red
    image = _decode(to_png(rgb.requires_grad_())[0])
    assert (image.mode, image.size, image.getpixel((5, 3))) == (
        "RGB",
        (6, 4),
        (255, 0, 0),
    )

    grey = torch.full((1, 2, 5), 7, dtype=torch.uint8)
    image = _decode(to_png(grey)[0])
    assert (image.mode, image.size, image.getpixel((0, 0))) == ("L", (5, 2), 7)

    half = torch.full((2, 2), 0.5, dtype=torch.bfloat16)
    assert _decode(to_png(half)[0]).getpixel((1, 1)) == 128
    rgba = torch.ones(4, 2, 2, dtype=torch.float16)
    assert _decode(to_png(rgba)[0]).mode == "RGBA"


@pytest.mark.parametrize(
    ("shape", "message"),
    [
        ((6, 6, 3), r"read as CxHxW .* got shape \(6, 6, 3\).*permute\(2, 0, 1\)"),
        ((8, 3, 4, 4), r"shape \(8, 3, 4, 4\).*make_grid"),
        ((5,), r"shape \(5,\)"),
    ],
)
def test_other_tensor_shapes_are_refused(shape: tuple[int, ...], message: str) -> None:
    import torch

    with pytest.raises(ValidationError, match=message):
        to_png(torch.zeros(shape))
    with pytest.raises(ValidationError, match="values from -1 to 1"):
        to_png(torch.linspace(-1, 1, 4).reshape(2, 2))


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("1", "1"),
        ("L", "L"),
        ("LA", "LA"),
        ("P", "P"),
        ("RGB", "RGB"),
        ("RGBA", "RGBA"),
        ("CMYK", "RGB"),
        ("YCbCr", "RGB"),
        ("HSV", "RGB"),
        ("I;16", "I;16"),
        ("PA", "RGBA"),
    ],
)
def test_pil_modes(mode: str, expected: str) -> None:
    image = Image.new(mode, (5, 3))
    data, width, height = to_png(image)
    decoded = _decode(data)
    assert (width, height) == (5, 3)
    assert decoded.mode == expected


def test_closed_or_truncated_pil_images_are_refused(notebook: Notebook) -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (40, 30), (1, 2, 3)).save(buffer, format="PNG")
    closed = Image.open(io.BytesIO(buffer.getvalue()))
    closed.close()
    truncated = Image.open(io.BytesIO(buffer.getvalue()[:60]))
    with notebook.start() as run:
        for image in (closed, truncated):
            with pytest.raises(
                ValidationError, match=r"cannot read the PIL image \(RGB"
            ):
                run.image(image, "sample", step=0)
        with pytest.raises(ValidationError, match="holds values from"):
            run.image(Image.fromarray(np.full((2, 2), 2.0, np.float32)), "f", step=0)
        run.image(Image.open(io.BytesIO(buffer.getvalue())), "sample", step=0)
    assert [a.meta for a in notebook.artifacts(run.id)] == [{"width": 40, "height": 30}]


def test_pil_float_image_follows_the_float_rule() -> None:
    image = Image.fromarray(np.full((3, 5), 0.5, np.float32))
    assert image.mode == "F"
    assert _decode(to_png(image)[0]).getpixel((0, 0)) == 128
    with pytest.raises(ValidationError, match=r"0\.0-1\.0"):
        to_png(Image.fromarray(np.full((3, 5), 2.0, np.float32)))


def test_figure_without_pyplot() -> None:
    figure = Figure(figsize=(2, 1), dpi=50)
    figure.add_subplot().plot([0, 1], [1, 0])
    data, width, height = to_png(figure)
    assert (width, height) == (100, 50) == _decode(data).size


def test_pictures_without_pixels_are_refused(notebook: Notebook) -> None:
    import torch

    sparse = torch.eye(3).to_sparse()
    meta = torch.ones(2, 2, device="meta")
    with notebook.start() as run:
        for size in ((0, 0), (2, 0)):
            with pytest.raises(ValidationError, match="at least one pixel"):
                run.image(Figure(figsize=size), "empty", step=0)
        with pytest.raises(ValidationError, match=r"layout torch\.sparse_coo"):
            run.image(sparse, "sparse", step=0)
        with pytest.raises(ValidationError, match="device meta"):
            run.image(meta, "meta", step=0)
        run.image(sparse.to_dense(), "dense", step=0)
    assert [a.name for a in notebook.artifacts(run.id)] == ["dense"]


def test_figure_from_pyplot_leaves_pyplot_alone() -> None:
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    first = plt.figure(figsize=(1, 1), dpi=40)
    second = plt.figure(figsize=(2, 2), dpi=40)
    before = (plt.get_fignums(), plt.gcf(), matplotlib.get_backend())
    try:
        _, width, height = to_png(first)
        assert (width, height) == (40, 40)
        assert (plt.get_fignums(), plt.gcf(), matplotlib.get_backend()) == before
    finally:
        plt.close(first)
        plt.close(second)


# ------------------------------------------------------------ run.image, notes


def test_run_image_is_stored_as_png(notebook: Notebook) -> None:
    picture = np.zeros((3, 5, 3), np.uint8)
    picture[1, 2] = (10, 20, 30)
    with notebook.start() as run:
        run.log(loss=1.0, step=7)
        run.image(picture, "sample")
        run.image(np.ones((2, 2)), "sample", step=9)
    stored = notebook.get_run(run.id).artifacts(kind="image")
    assert [(a.name, a.step) for a in stored] == [("sample", 7), ("sample", 9)]
    first = stored[0]
    assert first.media_type == "image/png"
    assert first.meta == {"width": 5, "height": 3}
    data = notebook.read_artifact(run.id, "sample", step=7)
    assert np.array_equal(np.asarray(_decode(data)), picture)


def test_images_while_another_thread_imports_pil_matplotlib_or_torch(
    notebook: Notebook, monkeypatch: pytest.MonkeyPatch
) -> None:
    # While a thread imports a module, sys.modules holds it half initialised:
    # the classes a picture is compared with are not defined yet.
    for name in ("PIL.Image", "matplotlib.figure", "torch"):
        monkeypatch.setitem(sys.modules, name, types.ModuleType(name))
    with notebook.start() as run:
        run.image(np.full((2, 2), 0.5), "array", step=0)
        with pytest.raises(ValidationError, match=r"cannot store a builtins\.list"):
            run.image([[0.5]], "list", step=0)
        run.save_checkpoint({"w": np.ones(2)}, step=0)
    assert [a.name for a in notebook.artifacts(run.id)] == ["array", "model"]


def test_image_step_defaults_to_none_before_anything_is_logged(
    notebook: Notebook,
) -> None:
    with notebook.start() as run:
        run.image(np.zeros((2, 2), np.uint8), "first")
        run.log(a=1)
        run.log(a=2)
        run.image(np.zeros((2, 2), np.uint8), "after")
    steps = {a.name: a.step for a in notebook.artifacts(run.id)}
    assert steps == {"first": None, "after": 1}


def test_resumed_run_images_default_to_the_last_step(notebook: Notebook) -> None:
    with notebook.start() as run:
        run.log(a=1, step=4)
    with notebook.get_run(run.id).resume() as again:
        again.image(np.zeros((2, 2), np.uint8), "x")
    assert notebook.artifacts(run.id)[0].step == 4


@pytest.mark.parametrize(
    ("name", "message"), [("a/b", "name"), ("", "name"), ("..", "name")]
)
def test_bad_image_names_store_nothing(
    notebook: Notebook, name: str, message: str
) -> None:
    with notebook.start() as run:
        with pytest.raises(ValidationError, match=message):
            run.image(np.zeros((2, 2), np.uint8), name)
        with pytest.raises(ValidationError, match="HxWx4"):
            run.image(np.zeros((2, 2, 2), np.uint8), "ok")
    assert notebook.artifacts(run.id) == []


def test_image_on_a_finished_run_is_refused(notebook: Notebook) -> None:
    with notebook.start() as run:
        pass
    with pytest.raises(LabnotebookError, match="resume"):
        run.image(np.zeros((2, 2), np.uint8), "late")


def test_note_with_images(notebook: Notebook) -> None:
    figure = Figure(figsize=(1, 1), dpi=20)
    with notebook.start() as run:
        run.log(loss=0.5, step=3)
        run.note("Samples", images=[np.zeros((2, 2), np.uint8), ("grid", figure)])
        run.note("At ten", step=10, images={"a[1]": np.ones((1, 1), bool)})
    images = notebook.artifacts(run.id, kind="image")
    assert [(a.name, a.step) for a in images] == [
        ("note-1", 3),
        ("grid", 3),
        ("a[1]", 10),
    ]
    assert all(a.meta["note"] is True for a in images)
    notes = notebook.get_run(run.id).notes()
    sha = {a.name: a.sha256 for a in images}
    assert notes[0].text == (
        f"Samples\n\n![note-1](sha256:{sha['note-1']})\n![grid](sha256:{sha['grid']})"
    )
    assert notes[1].text == f"At ten\n\n![a\\[1\\]](sha256:{sha['a[1]']})"
    assert notes[1].step == 10


def test_note_with_a_bad_image_stores_nothing(notebook: Notebook) -> None:
    with notebook.start() as run:
        with pytest.raises(ValidationError, match="dtype complex"):
            run.note("x", images=[np.zeros((2, 2)), np.zeros((2, 2), np.complex64)])
        with pytest.raises(ValidationError, match="name"):
            run.note("x", images={"bad/name": np.zeros((2, 2))})
        with pytest.raises(ValidationError, match="images must be a list"):
            run.note("x", images=np.zeros((2, 2)))
        with pytest.raises(ValidationError, match="note"):
            run.note("x" * (MAX_NOTE_LENGTH - 10), images=[np.zeros((2, 2))])
    assert notebook.artifacts(run.id) == []
    assert notebook.get_run(run.id).notes() == []
