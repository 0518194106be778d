"""Aligning the planes of a focus stack by translation (no torch).

Each plane's luma is registered to a reference plane (by default the middle
one) by phase correlation (:func:`skimage.registration.phase_cross_correlation`,
subpixel with ``upsample_factor``), after a Gaussian blur of sigma 1 that
makes the differently defocused planes look more alike, mean removal and a
Hann window (which keeps the image borders from biasing the subpixel peak). The shift that
brings a plane onto the reference is then applied with
:func:`scipy.ndimage.shift` (linear interpolation, nearest-edge filling).

Only translation is corrected; focus breathing (a small magnification change
between planes) is not.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy import ndimage

__all__ = ["apply_shift", "estimate_shift", "estimate_shifts"]


def estimate_shift(
    reference: np.ndarray, moving: np.ndarray, *, upsample_factor: int = 20
) -> np.ndarray:
    """The (dy, dx) shift that moves ``moving`` onto ``reference``.

    Parameters
    ----------
    reference, moving : numpy.ndarray
        2-D float images of the same shape.
    upsample_factor : int
        Subpixel precision of the phase correlation: 1 / upsample_factor px.

    Returns
    -------
    numpy.ndarray
        float64 (2,): ``apply_shift(moving, shift)`` lines up with ``reference``.
    """
    from skimage.filters import window
    from skimage.registration import phase_cross_correlation

    ref = ndimage.gaussian_filter(np.asarray(reference, np.float64), 1.0)
    mov = ndimage.gaussian_filter(np.asarray(moving, np.float64), 1.0)
    if ref.std() == 0 or mov.std() == 0:  # nothing to register on
        return np.zeros(2)
    hann = window("hann", ref.shape)  # tapers the borders: no wrap-around edges
    ref, mov = (ref - ref.mean()) * hann, (mov - mov.mean()) * hann
    shift, _error, _phase = phase_cross_correlation(
        ref, mov, upsample_factor=int(upsample_factor), normalization=None
    )
    return np.asarray(shift, dtype=np.float64)


def estimate_shifts(
    read_luma: Callable[[int], np.ndarray],
    n_planes: int,
    reference: int | None = None,
    *,
    upsample_factor: int = 20,
    progress: Callable[[int], None] | None = None,
) -> np.ndarray:
    """Shifts of every plane onto a reference plane, reading one plane at a time.

    Parameters
    ----------
    read_luma : callable
        ``read_luma(i)`` returns plane ``i`` as a 2-D float luma.
    n_planes : int
        Number of planes.
    reference : int, optional
        Index of the reference plane; default the middle one (``n_planes // 2``).
    upsample_factor : int
        As for :func:`estimate_shift`.
    progress : callable, optional
        Called with the plane index after each plane.

    Returns
    -------
    numpy.ndarray
        float64 (n_planes, 2) of (dy, dx); the reference's row is zero.
    """
    ref_index = n_planes // 2 if reference is None else int(reference)
    if not 0 <= ref_index < n_planes:
        raise ValueError(f"reference plane {reference} is outside 0..{n_planes - 1}")
    ref = read_luma(ref_index)
    shifts = np.zeros((n_planes, 2))
    for i in range(n_planes):
        if i != ref_index:
            shifts[i] = estimate_shift(ref, read_luma(i), upsample_factor=upsample_factor)
        if progress is not None:
            progress(i)
    return shifts


def apply_shift(plane: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """Shift a (H, W) or (H, W, C) float plane by (dy, dx) (linear, edges repeated)."""
    shift = np.asarray(shift, dtype=np.float64)
    if not shift.any():
        return plane
    full = (*shift, *([0.0] * (plane.ndim - 2)))
    return ndimage.shift(plane, full, order=1, mode="nearest")
