"""Per-pixel focus measures and plane selection for focus stacks (no torch).

Everything here streams over the planes of a stack: it keeps the best and
the second-best score per pixel and the index of the best plane, so memory
holds a few full-size planes whatever the number of planes.

* :func:`focus_measure`: local focus energy of a luma plane, the squared
  Laplacian (3 x 3, mirrored borders) smoothed by a Gaussian of ``sigma``.
* :func:`dissimilarity`: local mean squared difference of two lumas, the same
  Gaussian smoothing.
* :class:`BestPlane`: running argmax (or argmin) over planes, giving the
  index map and a confidence in [0, 1]: the normalised margin between the
  best and the second-best score.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

__all__ = ["BestPlane", "dissimilarity", "focus_measure", "luma_of"]

#: Gaussian sigma (pixels) of the local averaging of the focus measure.
FOCUS_SIGMA = 2.0
_BT601 = np.array([0.299, 0.587, 0.114], dtype=np.float32)
_EPS = 1e-12


def luma_of(plane: np.ndarray) -> np.ndarray:
    """Float32 (H, W) luma of a grey (H, W) or RGB (H, W, 3) float plane (BT.601)."""
    plane = np.asarray(plane, dtype=np.float32)
    return plane @ _BT601 if plane.ndim == 3 else plane


def focus_measure(luma: np.ndarray, sigma: float = FOCUS_SIGMA) -> np.ndarray:
    """Local focus energy: Gaussian-smoothed squared Laplacian of ``luma``.

    Parameters
    ----------
    luma : numpy.ndarray
        2-D float image (values in [0, 1]).
    sigma : float
        Standard deviation (pixels) of the Gaussian window.

    Returns
    -------
    numpy.ndarray
        float32, same shape; larger is sharper.
    """
    lap = ndimage.laplace(np.asarray(luma, dtype=np.float32), mode="mirror")
    return ndimage.gaussian_filter(lap * lap, sigma, mode="mirror")


def dissimilarity(x: np.ndarray, y: np.ndarray, sigma: float = FOCUS_SIGMA) -> np.ndarray:
    """Local mean squared difference of two 2-D images (Gaussian window ``sigma``)."""
    d = np.asarray(x, dtype=np.float32) - np.asarray(y, dtype=np.float32)
    return ndimage.gaussian_filter(d * d, sigma, mode="mirror")


class BestPlane:
    """Running per-pixel selection of the best plane by a score.

    Parameters
    ----------
    shape : tuple of int
        (H, W) of the planes.
    larger_is_better : bool
        True for a focus measure (argmax), False for a dissimilarity (argmin).

    Attributes
    ----------
    index : numpy.ndarray
        int32 (H, W), the index of the best plane so far (ties: the first).
    """

    def __init__(self, shape: tuple[int, int], larger_is_better: bool = True) -> None:
        self.sign = 1.0 if larger_is_better else -1.0
        self.best = np.full(shape, -np.inf, dtype=np.float32)
        self.second = np.full(shape, -np.inf, dtype=np.float32)
        self.index = np.zeros(shape, dtype=np.int32)
        self.count = 0

    def update(self, i: int, score: np.ndarray) -> np.ndarray:
        """Offer plane ``i`` with its per-pixel ``score``.

        Returns
        -------
        numpy.ndarray
            bool (H, W): the pixels where plane ``i`` is now the best (ties
            keep the earlier plane), so a caller can carry per-pixel values of
            the best plane along.
        """
        s = self.sign * np.asarray(score, dtype=np.float32)
        better = s > self.best
        self.second = np.where(better, self.best, np.maximum(self.second, s))
        self.best = np.where(better, s, self.best)
        self.index[better] = i
        self.count += 1
        return better

    def confidence(self) -> np.ndarray:
        """Normalised margin between the best and second-best score, in [0, 1].

        For scores where larger is better (focus): ``(best - second) / best``;
        for dissimilarities: ``(second - best) / second`` (both 0 where the
        two are equal, e.g. flat regions; 1 where only one plane fits). With a
        single plane offered: all ones.
        """
        if self.count < 2:
            return np.ones(self.best.shape, np.float32)
        best, second = self.sign * self.best, self.sign * self.second
        if self.sign > 0:
            margin, scale = best - second, best
        else:
            margin, scale = second - best, second
        out = np.where(scale > _EPS, margin / np.maximum(scale, _EPS), 0.0)
        return np.clip(out, 0.0, 1.0).astype(np.float32)
