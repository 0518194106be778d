"""The file formats: which extensions are read and written, and what each can hold.

:func:`check_writable` holds the rules :func:`napari_gifnet.io.images.write_image`
follows, for callers that check an output before computing it. Everything
here is re-exported by :mod:`napari_gifnet.io.images`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Union

import numpy as np

PathLike = Union[str, "os.PathLike[str]"]

#: Extensions :func:`~napari_gifnet.io.images.read_image` accepts.
READ_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff")
#: Extensions :func:`~napari_gifnet.io.images.write_image` accepts.
WRITE_EXTENSIONS = (".tif", ".tiff", ".png", ".jpg", ".jpeg")
#: Extensions of TIFF files, which hold any dtype.
TIFF_EXTENSIONS = (".tif", ".tiff")


def _extension(path: Path, allowed: tuple[str, ...], action: str) -> str:
    ext = path.suffix.lower()
    if ext not in allowed:
        raise ValueError(
            f"cannot {action} {path}: unsupported extension {ext or '(none)'!r}; "
            f"supported: {', '.join(allowed)}"
        )
    return ext


def output_format(path: PathLike) -> str:
    """Return the lower-case extension of ``path``.

    Raises ValueError if it is not one of :data:`WRITE_EXTENSIONS`.
    """
    return _extension(Path(path), WRITE_EXTENSIONS, "write")


class FormatError(ValueError):
    """An output format that cannot hold the image's data (:func:`check_writable`).

    ``needs`` is the end of the message, the formats that can, e.g.
    ``"needs .tif or .png (JPEG is 8-bit)"``, for callers that describe the
    data in their own words.
    """

    def __init__(self, path: Path, what: str, needs: str) -> None:
        super().__init__(f"cannot write {path}: {what} {needs}")
        self.needs = needs


def check_writable(
    path: PathLike,
    dtype: Any,
    shape: tuple[int, ...] | None = None,
    *,
    bit_depth: int | None = 8,
    unit_floats: bool = True,
) -> int:
    """Check that :func:`~napari_gifnet.io.images.write_image` can write such an image to ``path``.

    Call it before computing the image, so that an impossible output fails
    first. The rules: every format takes (H, W), (H, W, 3) or (H, W, 4)
    images; TIFF holds any dtype; PNG and JPEG hold floats in [0, 1] (scaled),
    bool (0 / top value) and the unsigned integers of the bit depth, 8, or 16
    for grey PNG only; JPEG has no alpha channel.

    Parameters
    ----------
    path, dtype, shape
        The output file (its extension picks the format) and the image's
        dtype and shape; ``shape`` None: not known yet (the rules that need it
        are left to :func:`~napari_gifnet.io.images.write_image`).
    bit_depth
        8 or 16 as for :func:`~napari_gifnet.io.images.write_image`, or None: 16 for grey PNG of uint16
        or float data, else 8.
    unit_floats
        False: float data are not in [0, 1], so only TIFF keeps them.

    Returns
    -------
    int
        The bit depth of a PNG or JPEG (8 for TIFF, written as it is).

    Raises
    ------
    FormatError
        The format cannot hold the dtype.
    ValueError
        Unsupported extension, shape or bit depth.
    """
    p = Path(path)
    ext = output_format(p)
    dt = np.dtype(dtype)
    if shape is not None and not (len(shape) == 2 or (len(shape) == 3 and shape[-1] in (3, 4))):
        raise ValueError(
            f"cannot write {p}: expected an (H, W), (H, W, 3) or (H, W, 4) image, "
            f"got shape {tuple(shape)}"
        )
    if bit_depth not in (8, 16, None) or (bit_depth == 16 and ext != ".png"):
        raise ValueError(f"cannot write {p}: bit_depth {bit_depth!r}; 16 is for .png, else 8")
    if ext in TIFF_EXTENSIONS:
        return 8
    grey = shape is None or len(shape) == 2
    if ext == ".png" and bit_depth == 16 and not grey:
        raise ValueError(f"cannot write {p}: 16-bit PNG is for grey images only; use .tif")
    if ext != ".png" and not grey and shape is not None and shape[-1] == 4:
        raise ValueError(f"cannot write {p}: JPEG has no alpha channel; use .png or .tif")
    floats = dt.kind == "f" and unit_floats
    depth = bit_depth or (16 if ext == ".png" and grey and (floats or dt == np.uint16) else 8)
    if floats or dt.kind == "b" or dt == np.dtype(f"uint{depth}"):
        return depth
    if bit_depth is not None:
        needs = f"needs floats in [0, 1] or uint{depth} data, got {dt}"
        raise FormatError(p, f"a {depth}-bit image", needs)
    what = f"a {dt} {'grey' if grey else 'colour'} image"
    if dt == np.uint16:
        why = [text for text, bad in (("JPEG is 8-bit", ext != ".png"),
                                      ("16-bit PNG is grey only", not grey)) if bad]  # fmt: skip
        raise FormatError(p, what, f"needs .tif{' or .png' if grey else ''} ({', '.join(why)})")
    also = ", or floats in [0, 1]" if dt.kind == "f" else " only"
    raise FormatError(p, what, f"needs .tif (PNG and JPEG hold unsigned 8- or 16-bit data{also})")
