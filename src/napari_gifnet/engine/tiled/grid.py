"""Tiles for the piece-by-piece evaluation: how big, where, and the
convolutions that read their neighbourhood exactly.

A tile is a rectangle of a feature map. Tiles are laid on the 8 x 8 window
grid of the pass that uses them (:func:`tiles`), so no attention window is
split between two tiles, and every convolution of a tile reads its input
through the reflections whole-map evaluation uses
(:func:`~napari_gifnet.model.windows.conv_region`).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ...model.windows import WINDOW, reflect_indices, row_bands

#: The smallest tile edge: one attention window.
MIN_TILE = WINDOW
#: Full-width bands are used while they are at least this many rows high;
#: narrower budgets give square tiles (less halo per pixel).
_MIN_BAND_ROWS = 32

Range = tuple[int, int]


def pixel_count(
    name: str,
    value: Any,
    minimum: int,
    too_small: str = "{name} must be at least {minimum} pixels, not {value}",
) -> int:
    """``value`` as an int of at least ``minimum`` pixels.

    Any integer type is accepted (NumPy's included); a bool or a float is
    not. Raises a ValueError naming ``name``: ``too_small`` (formatted with
    ``name``, ``minimum`` and ``value``) is its message for a value under
    ``minimum``.
    """
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be an integer number of pixels, not {value!r}")
    if value < minimum:
        raise ValueError(too_small.format(name=name, minimum=minimum, value=value))
    return int(value)


@dataclass(frozen=True)
class TileShape:
    """Tile height and width in pixels (multiples of 8, or the whole extent)."""

    rows: int
    cols: int

    def describe(self) -> str:
        return f"{self.rows} x {self.cols}"


def tile_shape(
    height: int, width: int, *, tile_size: int | None = None, tile_pixels: int = 1 << 17
) -> TileShape:
    """The tile shape for a ``height`` x ``width`` map.

    Parameters
    ----------
    height, width
        The map's extent.
    tile_size
        The tile edge in pixels (any integer type, NumPy's included; not a
        bool or a float), rounded down to a multiple of 8 (the attention
        window); a tile edge that covers an extent takes all of it, so a
        ``tile_size`` at least the image size means whole-image evaluation.
        None: chosen from ``tile_pixels``.
    tile_pixels
        About how many pixels a tile may hold when ``tile_size`` is None:
        full-width bands while they are at least 32 rows high, else square
        tiles of that area.

    Raises
    ------
    ValueError
        ``tile_size`` below 8 or not an integer.
    """
    if tile_size is not None:
        too_small = "{name} {value} is too small: the smallest tile is {minimum} pixels"
        edge = pixel_count("tile_size", tile_size, MIN_TILE, too_small) // WINDOW * WINDOW
        return TileShape(min(height, edge), min(width, edge))
    rows = tile_pixels // max(width, 1) // WINDOW * WINDOW
    if rows >= _MIN_BAND_ROWS or rows >= height:
        return TileShape(min(rows, height), width)
    side = max(MIN_TILE, math.isqrt(max(tile_pixels, 1)) // WINDOW * WINDOW)
    return TileShape(min(height, side), min(width, side))


def smaller_tile(shape: TileShape, height: int, width: int) -> int:
    """A tile edge whose tiles of a ``height`` x ``width`` map hold at most a
    quarter of the pixels of ``shape``'s (square tiles, or bands across the
    short side of a thin map), rounded down to the window grid, at least 8.
    Only at that floor can they be as big as ``shape``."""
    target = shape.rows * shape.cols // 4
    short = min(height, width)
    edge = math.isqrt(target) if short * short >= target else target // max(short, 1)
    return max(MIN_TILE, edge // WINDOW * WINDOW)


def tiles(height: int, width: int, shift: int, shape: TileShape) -> Iterator[tuple[Range, Range]]:
    """(rows, cols) ranges covering the map, edges on the grid ``8 k - shift``."""
    col_ranges = list(row_bands(width, shift, shape.cols if shape.cols < width else 0))
    for rows in row_bands(height, shift, shape.rows if shape.rows < height else 0):
        for cols in col_ranges:
            yield rows, cols


def count_tiles(height: int, width: int, shift: int, shape: TileShape) -> int:
    """How many tiles :func:`tiles` gives."""
    n_rows = len(list(row_bands(height, shift, shape.rows if shape.rows < height else 0)))
    n_cols = len(list(row_bands(width, shift, shape.cols if shape.cols < width else 0)))
    return n_rows * n_cols


def hull(start: int, stop: int, length: int, halo: int = 1) -> Range:
    """Positions read by ``halo`` stacked reflect-padded 3x3 convolutions."""
    for _ in range(halo):
        idx = reflect_indices(start - 1, stop + 1, length)
        start, stop = int(idx.min()), int(idx.max()) + 1
    return start, stop


def crop(x: torch.Tensor, origin: tuple[int, int], rows: Range, cols: Range) -> torch.Tensor:
    """The ``rows`` x ``cols`` part of ``x``, which starts at ``origin``."""
    return x[..., rows[0] - origin[0] : rows[1] - origin[0], cols[0] - origin[1] : cols[1] - origin[1]]
