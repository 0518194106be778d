"""Resampling one layer's plane onto another layer's pixel grid (no Qt).

Used by :func:`napari_gifnet.plugin.fusion_plan.prepare_fusion` when two layers' world
transforms differ in their last two axes.
"""

from __future__ import annotations

from dataclasses import dataclass

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
