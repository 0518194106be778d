"""Resampling one layer's plane onto another layer's pixel grid (no Qt).

Used by :func:`napari_gifnet.plugin.fusion_plan.prepare_fusion` when two layers' world
transforms differ in their last two axes (:class:`Resampling`), or when two (Z, Y, X)
volumes differ in all three (:class:`VolumeResampling`, plane by plane).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

#: Tolerance of the pixel-extent tests.
TOL = 1e-6


def _inside(
    m: np.ndarray, off: np.ndarray, rows: np.ndarray, cols: np.ndarray, shape: tuple[int, int]
) -> np.ndarray:
    """Which of the (rows x cols) pixels map into the extent of a ``shape`` plane."""
    inside = np.ones((rows.size, cols.size), bool)
    for ax in range(2):
        c = m[ax, 0] * rows[:, None] + m[ax, 1] * cols[None, :] + off[ax]
        inside &= (c >= -0.5 - TOL) & (c <= shape[ax] - 0.5 + TOL)
    return inside


@dataclass(frozen=True)
class Resampling:
    """Linear map from the first layer's plane pixels to the second's."""

    matrix: np.ndarray  #: 2 x 2
    offset: np.ndarray  #: 2
    source_shape: tuple[int, int]
    overlap: float  #: fraction of the first's pixels that the second covers

    def apply(self, plane: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
        """Resample ``plane`` linearly onto ``shape`` pixels, keeping its dtype.

        A pixel covers +-0.5 around its centre, as napari draws it; target
        pixels outside the plane's extent get the plane's minimum.
        """
        from scipy import ndimage

        src = np.asarray(plane)
        work = src.astype(src.dtype if src.dtype.kind == "f" else np.float64)
        chans = work[..., None] if work.ndim == 2 else work
        out = np.stack(
            [
                ndimage.affine_transform(
                    chans[..., i], self.matrix, self.offset, shape, order=1, mode="nearest"
                )
                for i in range(chans.shape[-1])
            ],
            axis=-1,
        )
        out = out[..., 0] if work.ndim == 2 else out
        rows, cols = np.arange(shape[0], dtype=float), np.arange(shape[1], dtype=float)
        out[~_inside(self.matrix, self.offset, rows, cols, self.source_shape)] = work.min()
        if src.dtype.kind == "b":
            return out >= 0.5
        if src.dtype.kind in "ui":
            info = np.iinfo(src.dtype)
            return np.clip(np.rint(out), info.min, info.max).astype(src.dtype)
        return out.astype(src.dtype, copy=False)


def _inside_nd(
    m: np.ndarray, off: np.ndarray, points: np.ndarray, shape: tuple[int, ...]
) -> np.ndarray:
    """Which of ``points`` ((N, nd) pixel coordinates) map into the extent of ``shape``."""
    mapped = points @ m.T + off
    extent = np.asarray(shape, dtype=float)
    return np.all((mapped >= -0.5 - TOL) & (mapped <= extent - 0.5 + TOL), axis=1)


@dataclass(frozen=True)
class VolumeResampling:
    """Affine map from the first layer's (Z, Y, X) voxels to the second's.

    The second volume is resampled onto the first's grid one output plane at a
    time: :meth:`slab` says which of the second's planes an output plane needs
    (a few for a small tilt) and :meth:`apply` resamples them, so memory holds
    those planes and one output plane, never a resampled volume.
    """

    matrix: np.ndarray  #: 3 x 3
    offset: np.ndarray  #: 3
    source_shape: tuple[int, int, int]
    overlap: float  #: fraction of the first's voxels that the second covers

    def slab(self, z: int, shape: tuple[int, int]) -> tuple[int, int]:
        """The second's planes ``[start, stop)`` that output plane ``z`` of ``shape``
        pixels samples (empty, ``start == stop``, when it lies outside the volume)."""
        h, w = shape
        corners = np.array([[z, y, x] for y in (0, h - 1) for x in (0, w - 1)], dtype=float)
        depth = corners @ self.matrix[0] + self.offset[0]
        n = self.source_shape[0]
        start = int(np.clip(np.floor(depth.min() - TOL), 0, n))
        stop = int(np.clip(np.ceil(depth.max() + TOL) + 1, 0, n))
        lo, hi = depth.min(), depth.max()
        if hi < -0.5 - TOL or lo > n - 0.5 + TOL:
            return start, start
        return start, max(stop, start + 1)

    def plane(
        self,
        data: Any,
        z: int,
        shape: tuple[int, int],
        prepare: Callable[[np.ndarray], np.ndarray] | None = None,
    ) -> np.ndarray:
        """Output plane ``z`` (``shape`` pixels) of the second volume ``data`` (any array
        sliced along Z), reading only the planes :meth:`slab` names, ``prepare``d (e.g.
        mapped to 0..1) before resampling; outside the volume, the minimum of those
        planes (of the nearest plane when it samples none)."""
        start, stop = self.slab(z, shape)
        edge = min(start, self.source_shape[0] - 1)
        planes = np.asarray(data[start:stop] if stop > start else data[edge : edge + 1])
        if prepare is not None:
            planes = prepare(planes)
        fill = float(planes.min())
        return self.apply(planes if stop > start else planes[:0], start, z, shape, fill)

    def apply(
        self, planes: np.ndarray, start: int, z: int, shape: tuple[int, int], fill: float
    ) -> np.ndarray:
        """Resample output plane ``z`` (``shape`` pixels) linearly from ``planes``, the
        second's planes ``start, start + 1, ...`` (:meth:`slab`), keeping their dtype.

        A voxel covers +-0.5 around its centre, as napari draws it; output
        pixels outside the second volume's extent get ``fill``.
        """
        from scipy import ndimage

        src = np.asarray(planes)
        work = src.astype(src.dtype if src.dtype.kind == "f" else np.float64)
        colour = work.ndim == 4
        h, w = shape
        rows, cols = np.meshgrid(np.arange(h, dtype=float), np.arange(w, dtype=float),
                                 indexing="ij")  # fmt: skip
        points = np.stack([np.full(h * w, float(z)), rows.ravel(), cols.ravel()], axis=1)
        inside = _inside_nd(self.matrix, self.offset, points, self.source_shape)
        coords = (points @ self.matrix.T + self.offset).T
        coords[0] -= start
        chans = work[..., None] if not colour else work
        out = np.full((h * w, chans.shape[-1]), fill, dtype=work.dtype)
        if work.shape[0] and inside.any():
            for i in range(chans.shape[-1]):
                out[inside, i] = ndimage.map_coordinates(
                    chans[..., i], coords[:, inside], order=1, mode="nearest"
                )
        result = out.reshape(h, w, -1)
        result = result if colour else result[..., 0]
        if src.dtype.kind == "b":
            return result >= 0.5
        if src.dtype.kind in "ui":
            info = np.iinfo(src.dtype)
            return np.clip(np.rint(result), info.min, info.max).astype(src.dtype)
        return result.astype(src.dtype, copy=False)
