"""Resampling one layer's plane onto another layer's pixel grid (no Qt).

Used by :func:`napari_gifnet.plugin.fusion_plan.prepare_fusion` when two layers' world
transforms differ in their last two axes (:class:`Resampling`), or when two (Z, Y, X)
volumes differ in all three (:class:`VolumeResampling`, plane by plane), and by the check
view (:func:`resample_block`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

#: Tolerance of the pixel-extent tests.
TOL = 1e-6


def _inside(
    m: np.ndarray, off: np.ndarray, coords: list[np.ndarray], shape: tuple[int, ...]
) -> np.ndarray:
    """Which pixels of the grid ``coords[0] x coords[1] x ...`` (one array of pixel
    coordinates per axis) map into the extent of ``shape`` (+-0.5 around its pixels)."""
    grids = np.ix_(*coords)
    inside = np.ones([len(c) for c in coords], bool)
    for ax, n in enumerate(shape):
        c = sum(m[ax, j] * g for j, g in enumerate(grids)) + off[ax]
        inside &= (c >= -0.5 - TOL) & (c <= n - 0.5 + TOL)
    return inside


def resample_block(
    planes: Any,
    box: tuple[slice, ...],
    m: np.ndarray,
    off: np.ndarray,
    start: tuple[int, ...],
    shape: tuple[int, ...],
    source_shape: tuple[int, ...],
    fill: float | None = None,
) -> np.ndarray:
    """The output block ``start`` .. ``start + shape`` resampled linearly from ``planes``,
    the source's slab ``box`` (:func:`napari_gifnet.workflows.registration.affine_slab`),
    keeping their dtype.

    A pixel covers +-0.5 around its centre, as napari draws it; output pixels
    outside the source's extent get ``fill`` (default: the planes' minimum).
    """
    from ..workflows.registration import resample_slab

    src = np.asarray(planes)
    work = np.asarray(src, src.dtype if src.dtype.kind == "f" else np.float64)
    fill = work.min() if fill is None else fill
    if work.size:
        out = resample_slab(work, box, m, off, start, shape, mode="nearest")
        coords = [np.arange(s, s + k, dtype=float) for s, k in zip(start, shape)]
        out[~_inside(m, off, coords, source_shape)] = fill
    else:  # the block samples no plane of the source
        out = np.full((*shape, *work.shape[len(shape) :]), fill, work.dtype)
    if src.dtype.kind == "b":
        return out >= 0.5
    if src.dtype.kind in "ui":
        info = np.iinfo(src.dtype)
        return np.clip(np.rint(out), info.min, info.max).astype(src.dtype)
    return out.astype(src.dtype, copy=False)


@dataclass(frozen=True)
class Resampling:
    """Linear map from the first layer's plane pixels to the second's."""

    matrix: np.ndarray  #: 2 x 2
    offset: np.ndarray  #: 2
    source_shape: tuple[int, int]
    overlap: float  #: fraction of the first's pixels that the second covers

    def apply(self, plane: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
        """Resample ``plane`` onto ``shape`` pixels (:func:`resample_block`; outside its
        extent, its minimum)."""
        return resample_block(plane, (), self.matrix, self.offset, (0, 0), shape,
                              self.source_shape)  # fmt: skip


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
        from ..workflows.registration import affine_slab

        planes = affine_slab(self.matrix, self.offset, (z, 0, 0), (1, *shape),
                             self.source_shape[:1], tol=TOL)[0]  # fmt: skip
        return planes.start, planes.stop

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
        """Resample output plane ``z`` (``shape`` pixels) from ``planes``, the second's
        planes ``start, start + 1, ...`` (:meth:`slab`), by :func:`resample_block`
        (outside the second volume, ``fill``)."""
        box = (slice(start, start + len(planes)),)
        return resample_block(planes, box, self.matrix, self.offset, (z, 0, 0), (1, *shape),
                              self.source_shape, fill)[0]  # fmt: skip
