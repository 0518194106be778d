"""Aligning the second image of a pair onto the first, before fusing.

Hand-held multi-focus and multi-exposure pairs are rarely registered.
:func:`align_pair` estimates the translation (phase correlation) and, for
focus breathing, the magnification of the second image relative to the
first (:func:`napari_gifnet.workflows.alignment.estimate_transform`), and
resamples the second image once onto the first's grid. The resampled image
keeps the second input's dtype and range (integers rounded), so the
engine's normalisation treats it as it would the original. Used by
``napari-gifnet fuse --align`` and :func:`napari_gifnet.fuse_layers`
(``align=``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..engine.preprocess import PERCENTILES, check_finite
from ._dtype_cast import cast_to_dtype
from .alignment import align_mode, apply_transform, estimate_transform
from .focus import luma_of

__all__ = ["PairAlignment", "align_pair"]


@dataclass(frozen=True)
class PairAlignment:
    """How the second image was moved onto the first.

    Attributes
    ----------
    mode
        ``"translation"`` or ``"scale"`` (translation and magnification).
    shift
        (dy, dx) in pixels, applied after the magnification was undone.
    scale
        The second image's magnification relative to the first (1.0 for
        ``"translation"``).
    """

    mode: str
    shift: tuple[float, float]
    scale: float

    def provenance(self) -> dict[str, Any]:
        """The ``metadata["alignment"]`` entry of an aligned fusion."""
        return {"mode": self.mode, "moved": "second onto first",
                "shift": [round(v, 4) for v in self.shift], "scale": round(self.scale, 6)}  # fmt: skip

    def describe(self) -> str:
        """One line for a status bar: ``aligned second onto first: shift (dy, dx) px[, scale s]``."""
        text = f"aligned second onto first: shift ({self.shift[0]:+.2f}, {self.shift[1]:+.2f}) px"
        return text + (f", scale {self.scale:.4f}" if self.mode == "scale" else "")


def _unit_luma(image: np.ndarray) -> np.ndarray:
    """A float luma on a common scale for estimating the transform (not for fusing)."""
    luma = luma_of(np.asarray(image, dtype=np.float64)[..., :3] if np.ndim(image) == 3
                   else np.asarray(image, dtype=np.float64))  # fmt: skip
    lo, hi = np.percentile(luma, PERCENTILES)
    return np.clip((luma - lo) / (hi - lo), 0.0, 1.0) if hi > lo else np.zeros_like(luma)


def align_pair(
    first: Any, second: Any, mode: Any = "translation", *, names: tuple[str, str] = ("a", "b")
) -> tuple[np.ndarray, PairAlignment]:
    """Move ``second`` onto ``first``; returns the moved image and the transform.

    Parameters
    ----------
    first, second
        (H, W) grey or (H, W, 3|4) colour images of the same height and width
        (any dtype the engine takes); never modified.
    mode
        ``"translation"`` (or True), or ``"scale"`` (translation and
        magnification, for focus breathing).
    names
        What messages call the two inputs (the engine's ``"a"`` and ``"b"``
        by default).

    Returns
    -------
    moved : numpy.ndarray
        ``second`` resampled once (linear, edges repeated) onto ``first``'s
        grid, in ``second``'s dtype and range.
    alignment : PairAlignment
        The shift and scale that were undone.

    Raises
    ------
    ValueError
        An unknown mode, images whose height and width differ, or NaN or
        infinite values (counted in the input as given, before any
        resampling could spread them).
    """
    kind = align_mode(mode)
    if kind is None:
        raise ValueError(f"align must be 'translation' or 'scale', not {mode!r}")
    a, b = np.asarray(first), np.asarray(second)
    if a.shape[:2] != b.shape[:2]:
        raise ValueError(f"cannot align images of different sizes: first {a.shape[:2]}, "
                         f"second {b.shape[:2]}")  # fmt: skip
    for image, name in zip((a, b), names):
        check_finite(image, name)
    shift, scale = estimate_transform(_unit_luma(a), _unit_luma(b), mode=kind)
    moved = apply_transform(b.astype(np.float64), shift, scale)
    lo, hi = (float(b.min()), float(b.max())) if b.dtype.kind == "f" else (None, None)
    moved = cast_to_dtype(moved, b.dtype, within=None if lo is None else (lo, hi))
    return moved, PairAlignment(kind, (float(shift[0]), float(shift[1])), float(scale))
