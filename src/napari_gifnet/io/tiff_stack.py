"""Multi-page TIFF focus stacks read one page at a time: :func:`open_tiff_stack`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .formats import TIFF_EXTENSIONS, PathLike, check_fits_memory
from .images import _decoding, _readable, open_checked_tiff, read_image

__all__ = ["TiffPlanes", "open_tiff_stack"]


class TiffPlanes:
    """The planes of a multi-page TIFF, read one page at a time.

    Indexing with ``planes[i]`` or ``planes[(i,)]`` reads page ``i`` only, so a
    focus stack larger than memory can be streamed through
    :func:`napari_gifnet.workflows.focus_stack.fuse_stack`. Use :func:`open_tiff_stack` to get
    one (it falls back to a memory map or a whole read for other layouts).

    Attributes
    ----------
    shape : tuple of int
        ``(pages, *page_shape)``.
    dtype : numpy.dtype
        The pages' dtype.
    """

    def __init__(self, handle: Any, series: Any) -> None:
        self._handle, self._pages = handle, series.pages
        self.path = Path(handle.filehandle.path)
        self.shape = tuple(int(s) for s in series.shape)
        self.dtype = np.dtype(series.dtype)
        self.ndim = len(self.shape)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, index: Any) -> np.ndarray:
        i = index[0] if isinstance(index, tuple) and len(index) == 1 else index
        if not isinstance(i, (int, np.integer)):
            raise TypeError(f"TiffPlanes reads one page by integer index, got {index!r}")
        if not -self.shape[0] <= i < self.shape[0]:
            raise IndexError(f"page {i} out of range for {self.shape[0]} pages")
        with _decoding(self.path, self.path.suffix.lower()):
            plane = np.asarray(self._pages[int(i) % self.shape[0]].asarray())
            return plane.reshape(self.shape[1:])

    def close(self) -> None:
        """Close the file."""
        self._handle.close()

    def __enter__(self) -> TiffPlanes:
        return self

    def __exit__(self, *_: Any) -> None:
        self.close()


def open_tiff_stack(path: PathLike) -> TiffPlanes | np.ndarray:
    """Open a multi-page TIFF as a stack without reading it whole where possible.

    Parameters
    ----------
    path
        A ``.tif``/``.tiff`` file whose first series is a stack, e.g. (Z, H, W)
        or (Z, H, W, 3) with one plane per page.

    Returns
    -------
    TiffPlanes or numpy.ndarray
        :class:`TiffPlanes` (page by page) when every page is one plane; else a
        read-only memory map when the data are stored uncompressed and
        contiguously (e.g. large ImageJ files); else the whole array.

    Raises
    ------
    FileNotFoundError, ValueError
        As :func:`read_image`: a file that holds no image or is incomplete is
        refused when it is opened, and so is one whose plane (read page by
        page) or whole stack (when read whole) does not fit in memory
        (:func:`napari_gifnet.io.formats.check_fits_memory`).
    """
    p, _ = _readable(path, TIFF_EXTENSIONS, "read a stack from")
    import tifffile

    handle, series = open_checked_tiff(p)
    shape = tuple(series.shape)
    pages = series.pages
    if (
        len(shape) >= 3
        and len(pages) == shape[0]
        and all(page is not None for page in pages)
        and int(np.prod(pages[0].shape)) == int(np.prod(shape[1:]))
    ):
        try:
            check_fits_memory(p, shape[1:], series.dtype, "plane")
        except BaseException:
            handle.close()
            raise
        return TiffPlanes(handle, series)
    handle.close()
    try:
        return tifffile.memmap(p, mode="r")
    except Exception:  # noqa: BLE001 - compressed or scattered: read it whole
        return read_image(p)
