"""Pictures as PNG: matplotlib figures, PIL images and numpy arrays.

Arrays are read as height x width (grey), or height x width x 1, 3 or 4 channels
(grey, RGB, RGBA). Values must already be in range: uint8 as is, other integers
0-255, floats 0.0-1.0 (scaled by 255 and rounded), bools black and white. NaN,
infinities and out-of-range values are refused rather than clipped, so a bug in a
normalisation step shows up as an error instead of a quietly saturated picture.
"""

from __future__ import annotations

import io
import struct
import sys
from typing import Any

from ._errors import ValidationError

#: What :func:`to_png` accepts, for error messages.
ACCEPTED = (
    "a matplotlib Figure, a PIL Image, a numpy array of shape HxW, HxWx1, HxWx3 "
    "or HxWx4 or a torch tensor of shape HxW, 1xHxW, 3xHxW or 4xHxW, with dtype "
    "uint8, bool, another integer type (values 0-255) or a float type (values "
    "0.0-1.0)"
)

#: PIL modes stored as they are; others are converted (see :func:`_pil_png`).
_PNG_MODES = {"1", "L", "LA", "P", "RGB", "RGBA", "I;16"}
_PIL_CONVERT = {
    "PA": "RGBA",
    "La": "LA",
    "RGBa": "RGBA",
    "RGBX": "RGB",
    "CMYK": "RGB",
    "YCbCr": "RGB",
    "LAB": "RGB",
    "HSV": "RGB",
    "I;16B": "I;16",
    "I;16L": "I;16",
}
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def to_png(obj: object) -> tuple[bytes, int, int]:
    """Encode a picture as PNG; returns the bytes, the width and the height."""
    if _is_figure(obj):
        data = _figure_png(obj)
    elif _is_pil_image(obj):
        data = _pil_png(obj)
    elif _is_ndarray(obj):
        data = _array_png(obj)
    elif _is_tensor(obj):
        data = _array_png(_tensor_array(obj))
    else:
        raise ValidationError(
            f"cannot store a {type(obj).__module__}.{type(obj).__qualname__} as an "
            f"image; give {ACCEPTED}"
        )
    width, height = png_size(data)
    return data, width, height


def png_size(data: bytes) -> tuple[int, int]:
    """Width and height from a PNG's header."""
    if data[:8] != _PNG_SIGNATURE or data[12:16] != b"IHDR":
        raise ValidationError("the encoded picture is not a PNG file")
    width, height = struct.unpack(">II", data[16:24])
    return width, height


# ---------------------------------------------------------------- matplotlib


def loaded_class(module_name: str, class_name: str) -> type | None:
    """A class of a module that is already imported, else None.

    A module that another thread is importing is in ``sys.modules`` before its
    classes are defined; it counts as not loaded (the object cannot be one of
    its instances yet).
    """
    found = getattr(sys.modules.get(module_name), class_name, None)
    return found if isinstance(found, type) else None


def _is_instance(obj: object, module_name: str, class_name: str) -> bool:
    cls = loaded_class(module_name, class_name)
    return cls is not None and isinstance(obj, cls)


def _is_figure(obj: object) -> bool:
    return _is_instance(obj, "matplotlib.figure", "Figure")


def _figure_png(figure: Any) -> bytes:
    # Figure.savefig draws on the figure's own canvas (Agg for PNG whatever the
    # interactive backend), so pyplot's current figure and backend are untouched.
    width, height = figure.get_size_inches() * figure.dpi
    if round(width) < 1 or round(height) < 1:
        raise ValidationError(
            f"the matplotlib figure is {width:g}x{height:g} pixels; an image needs "
            "at least one pixel: give it a size, e.g. figure.set_size_inches(6, 4)"
        )
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


# ----------------------------------------------------------------------- PIL


def _is_pil_image(obj: object) -> bool:
    return _is_instance(obj, "PIL.Image", "Image")


def _pil_png(image: Any) -> bytes:
    try:
        return _pil_encode(image)
    except ValidationError:
        raise
    except (ValueError, OSError) as exc:
        # A closed image ("Operation on closed image"), or one opened lazily
        # from a file that turns out truncated or damaged.
        raise ValidationError(
            f"cannot read the PIL image ({image.mode}, {image.width}x"
            f"{image.height}) to store it: {exc}; store it before closing it, or "
            "open its file again"
        ) from None


def _pil_encode(image: Any) -> bytes:
    mode = image.mode
    if mode in ("I", "F"):
        # 32-bit integer and float pictures follow the array rules.
        import numpy as np

        return _array_png(np.asarray(image))
    if mode not in _PNG_MODES:
        target = _PIL_CONVERT.get(mode, "RGBA")
        try:
            image = image.convert(target)
        except ValueError as exc:
            raise ValidationError(
                f"cannot convert the PIL image of mode {mode!r} to {target} ({exc}); "
                "convert it yourself, e.g. image.convert('RGB')"
            ) from None
    if image.width == 0 or image.height == 0:
        raise ValidationError(
            f"the PIL image is {image.width}x{image.height} pixels; an image needs "
            "at least one pixel"
        )
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


# --------------------------------------------------------------------- numpy


def _is_ndarray(obj: object) -> bool:
    return _is_instance(obj, "numpy", "ndarray")


def _is_tensor(obj: object) -> bool:
    return _is_instance(obj, "torch", "Tensor")


def _tensor_array(tensor: Any) -> Any:
    """A torch tensor as an HxW or HxWxC array: channels first, as torch has them
    (torchvision's ``make_grid`` and TensorBoard's ``add_image`` read them so).
    """
    import torch

    shape = tuple(tensor.shape)
    if tensor.ndim == 3:
        if shape[0] not in (1, 3, 4):
            raise ValidationError(
                f"a 3-D tensor is read as CxHxW (channels first, as in torch) with "
                f"1, 3 or 4 channels, got shape {shape}; for an HxWxC tensor pass "
                "t.permute(2, 0, 1)"
            )
        tensor = tensor.permute(1, 2, 0)
    elif tensor.ndim != 2:
        raise ValidationError(
            f"cannot store a tensor of shape {shape} as an image; give one picture "
            "of shape HxW or CxHxW (for a batch, torchvision.utils.make_grid(t))"
        )
    tensor = tensor.detach()
    if tensor.dtype == torch.bfloat16:
        tensor = tensor.float()  # numpy has no bfloat16
    try:
        return tensor.cpu().numpy()
    except (TypeError, RuntimeError, NotImplementedError) as exc:
        # Sparse, quantized and meta tensors have no numpy form.
        raise ValidationError(
            f"cannot read the {tensor.dtype} tensor of shape {shape} (layout "
            f"{tensor.layout}, device {tensor.device}) as pixels: {exc}; convert "
            "it to a dense tensor with data first, e.g. t.to_dense() or "
            "t.dequantize()"
        ) from None


def _array_png(array: Any) -> bytes:
    import numpy as np
    from PIL import Image

    shape = array.shape
    described = f"shape {shape} and dtype {array.dtype}"
    if array.ndim == 3 and shape[2] == 1:
        array = array[:, :, 0]
    if not (array.ndim == 2 or (array.ndim == 3 and shape[2] in (3, 4))):
        hint = ""
        if array.ndim == 3 and shape[0] in (1, 3, 4):
            hint = (
                "; this looks like channels first (CxHxW): pass "
                "a.transpose(1, 2, 0) for HxWxC"
            )
        raise ValidationError(
            f"cannot store an array of {described} as an image; give {ACCEPTED}{hint}"
        )
    if 0 in shape:
        raise ValidationError(
            f"the array of {described} is empty; an image needs at least one pixel"
        )

    kind = array.dtype.kind
    if kind == "b":
        pixels = array.astype(np.uint8) * np.uint8(255)
    elif kind == "u" and array.dtype.itemsize == 1:
        pixels = array
    elif kind in "iu":
        low, high = int(array.min()), int(array.max())
        if low < 0 or high > 255:
            raise ValidationError(
                f"the {array.dtype} array of shape {shape} holds values from {low} "
                f"to {high}; integer pictures need values 0-255 (scale or clip "
                "them, e.g. np.clip(a, 0, 255).astype(np.uint8))"
            )
        pixels = array.astype(np.uint8)
    elif kind == "f":
        pixels = _float_pixels(array, described)
    else:
        raise ValidationError(
            f"cannot store an array of {described} as an image; give {ACCEPTED}"
        )

    image = Image.fromarray(np.ascontiguousarray(pixels))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _float_pixels(array: Any, described: str) -> Any:
    import numpy as np

    # float32 and float64 as they are (no copy of a large picture); float16
    # widened, since 255 times its values is computed in its own type.
    values = array if array.dtype.itemsize >= 4 else array.astype(np.float32)
    finite = np.isfinite(values)
    if not finite.all():
        bad = int(values.size - np.count_nonzero(finite))
        where = tuple(int(i) for i in np.argwhere(~finite)[0])
        raise ValidationError(
            f"the float array of {described} holds {bad} NaN or infinite values "
            f"(the first at {where}); replace them, e.g. np.nan_to_num(a)"
        )
    low, high = float(values.min()), float(values.max())
    if low < 0.0 or high > 1.0:
        raise ValidationError(
            f"the float array of {described} holds values from {low:g} to {high:g}; "
            "float pictures need values 0.0-1.0 (scale them, or clip them with "
            "np.clip(a, 0, 1))"
        )
    return np.rint(values * 255.0).astype(np.uint8)


# --------------------------------------------------------------------- notes


def note_images(images: object) -> list[tuple[str, object]]:
    """The (name, picture) pairs of a note's ``images=`` argument.

    Accepted: a dict of names to pictures, or a list whose items are pictures
    (named ``note-1``, ``note-2``, ...) or (name, picture) pairs.
    """
    if isinstance(images, dict):
        return list(images.items())
    if not isinstance(images, (list, tuple)):
        raise ValidationError(
            f"images must be a list of pictures or (name, picture) pairs, or a dict "
            f"of names to pictures, got {type(images).__name__}"
        )
    pairs: list[tuple[str, object]] = []
    for n, item in enumerate(images, 1):
        if isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str):
            pairs.append((item[0], item[1]))
        else:
            pairs.append((f"note-{n}", item))
    return pairs


def markdown_image(name: str, sha256: str) -> str:
    """A note's Markdown reference to a stored picture: ``![name](sha256:<hex>)``."""
    caption = name.replace("\\", "\\\\").replace("[", "\\[").replace("]", "\\]")
    return f"![{caption}](sha256:{sha256})"
