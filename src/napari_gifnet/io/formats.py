"""The file formats: which extensions are read and written, and what each can hold.

The writers' rules (:func:`check_writable`) and the readers' (:func:`check_fits_memory`,
:func:`check_tiff`), checked before any pixel is computed or read.
"""

from __future__ import annotations

import math
import os
import struct
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


class UnreadableFileError(ValueError):
    """A file that cannot be read safely: no image, incomplete, or too large.

    Its message names the file and the problem in plain words; the readers
    (:mod:`napari_gifnet.io.images`) pass it on as it is.
    """


def _size(nbytes: float) -> str:
    """``nbytes`` in words: "3.35 GiB", "16 KiB", "512 bytes"."""
    for unit, power in zip(("EiB", "PiB", "TiB", "GiB", "MiB", "KiB"), range(60, 0, -10)):
        if nbytes >= 2**power:
            return f"{nbytes / 2**power:.3g} {unit}"
    return f"{int(nbytes)} bytes"


def available_memory() -> int:
    """Bytes of memory the system can give now without swapping (:mod:`psutil`)."""
    import psutil

    return int(psutil.virtual_memory().available)


def check_fits_memory(path: PathLike, shape: tuple[int, ...], dtype: Any,
                      what: str = "image") -> None:
    """Refuse, before anything is allocated, a read larger than the memory available.

    The one size rule of every reader: the array the header declares
    (``shape``, ``dtype``) must fit in :func:`available_memory`.

    Raises
    ------
    UnreadableFileError
        The declared array is larger than the memory available.
    """
    nbytes = math.prod(int(s) for s in shape) * np.dtype(dtype).itemsize
    free = available_memory()
    if nbytes > free:
        size = " x ".join(str(int(s)) for s in shape)
        raise UnreadableFileError(
            f"cannot read {path}: its header declares a {size} {np.dtype(dtype)} {what} "
            f"({_size(nbytes)}), more than the {_size(free)} of memory available"
        )


def _incomplete(path: PathLike, why: str) -> UnreadableFileError:
    return UnreadableFileError(f"cannot read {path}: the TIFF is incomplete or corrupted ({why})")


def _page_chain_ends(tif: Any) -> bool:
    """The last page's link to a next page is 0 (the file's list of pages ends there)."""
    tiff, fh = tif.tiff, tif.filehandle
    fh.seek(tif.pages[-1].offset)
    raw = fh.read(tiff.tagnosize)
    if len(raw) < tiff.tagnosize:
        return False
    tags = struct.unpack(tiff.tagnoformat, raw)[0]
    fh.seek(tif.pages[-1].offset + tiff.tagnosize + tags * tiff.tagsize)
    raw = fh.read(tiff.offsetsize)
    return len(raw) == tiff.offsetsize and struct.unpack(tiff.offsetformat, raw)[0] == 0


def check_tiff(path: PathLike, tif: Any) -> Any:
    """The first series of an open :class:`tifffile.TiffFile`, checked before reading it.

    The file must hold at least one page; its list of pages must end
    properly (a truncated multi-page file loses its last pages); every page
    of the series must be there with its data inside the file; and an
    ImageJ file's header must match its pages. Only headers are read.

    Returns
    -------
    tifffile.TiffPageSeries
        ``tif.series[0]``.

    Raises
    ------
    UnreadableFileError
        No image, or the file is incomplete or corrupted.
    """
    if len(tif.pages) == 0 or not tif.series:
        raise UnreadableFileError(f"cannot read {path}: the TIFF holds no image (no pages)")
    if not _page_chain_ends(tif):
        raise _incomplete(path, "its list of pages breaks off, the file may be truncated")
    series = tif.series[0]
    if tif.is_imagej and series.kind != "imagej":
        declared = (tif.imagej_metadata or {}).get("images", "?")
        raise _incomplete(path, f"its ImageJ header declares {declared} images that "
                                f"the file does not hold")
    size = tif.filehandle.size
    if any(page is None for page in series.pages):
        raise _incomplete(path, "a page of the image is missing")
    for index, page in enumerate(series.pages):
        ends = [int(o) + int(n) for o, n in zip(page.dataoffsets, page.databytecounts)]
        if max(ends, default=0) > size:
            raise _incomplete(path, f"page {index + 1} of {len(series.pages)} needs "
                                    f"{max(ends)} bytes, the file has {size}")
    if series.dataoffset is not None and series.dataoffset + series.nbytes > size:
        raise _incomplete(path, f"the image needs {series.dataoffset + series.nbytes} bytes, "
                                f"the file has {size}")
    return series
