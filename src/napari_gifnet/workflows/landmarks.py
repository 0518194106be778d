"""Registering from point pairs (landmarks): least squares rigid, similarity or affine.

For pairs whose intensities cannot be trusted (parallax, different fields of
view), the user marks the same features in both images. The points are WORLD
coordinates in numpy axis order (index times spacing, see
:mod:`.registration`); the fitted :class:`~.registration.Transform` maps a
fixed point to its moving point, ``moving ~ matrix @ [*fixed, 1]``:

``"rigid"``
    Rotation and translation (Kabsch: the SVD of the centred points' cross
    covariance, with the reflection removed).
``"similarity"``
    Also one scale (Umeyama: the scale that minimises the squared residuals
    of the rotated, centred points).
``"affine"``
    Any linear map and translation (linear least squares).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .registration import (
    Registration,
    RegistrationError,
    RegistrationReport,
    Transform,
    _check_kind,
    apply_registration,
    check_overlap,
    check_spacing,
    check_transform,
    spatial_ndim,
)

__all__ = ["MIN_PAIRS", "fit_points", "register_landmarks"]

#: The fewest point pairs per transform, for 2-D and 3-D.
MIN_PAIRS = {2: {"rigid": 2, "similarity": 2, "affine": 3},
             3: {"rigid": 3, "similarity": 3, "affine": 4}}  # fmt: skip
_TINY = 1e-9  # relative size below which point spreads count as degenerate


def _points(points: Any, name: str) -> np.ndarray:
    try:
        p = np.array(points, dtype=np.float64)
    except (TypeError, ValueError):
        raise RegistrationError(f"the points of {name} are not numbers") from None
    if p.ndim != 2 or p.shape[1] not in (2, 3):
        raise RegistrationError(
            f"the points of {name} have shape {p.shape}: expected (N, 2) or (N, 3) world "
            "coordinates in numpy axis order"
        )
    if not np.all(np.isfinite(p)):
        raise RegistrationError(f"the points of {name} contain NaN or infinite values")
    return p


def _rank(centred: np.ndarray) -> int:
    """The number of independent directions the centred points span."""
    sv = np.linalg.svd(centred, compute_uv=False)
    return int(np.sum(sv > _TINY * max(float(sv[0]) if sv.size else 0.0, 1.0)))


def fit_points(fixed: np.ndarray, moving: np.ndarray, kind: str) -> np.ndarray:
    """The homogeneous matrix that maps ``fixed`` (N, ndim) onto ``moving`` in least squares.

    No checks: see :func:`register_landmarks`.
    """
    n = fixed.shape[1]
    m = np.eye(n + 1)
    if kind == "affine":
        design = np.hstack([fixed, np.ones((len(fixed), 1))])
        solution, *_ = np.linalg.lstsq(design, moving, rcond=None)
        m[:n, :] = solution.T
        return m
    cf, cm = fixed.mean(axis=0), moving.mean(axis=0)
    f, g = fixed - cf, moving - cm
    u, s, vt = np.linalg.svd(g.T @ f)  # cross covariance moving x fixed
    d = np.ones(n)
    d[-1] = np.sign(np.linalg.det(u @ vt)) or 1.0  # a rotation, never a reflection
    rot = u @ np.diag(d) @ vt
    scale = float(np.sum(s * d) / np.sum(f * f)) if kind == "similarity" else 1.0
    m[:n, :n] = scale * rot
    m[:n, n] = cm - scale * rot @ cf
    return m


def register_landmarks(
    fixed_points: Any,
    moving_points: Any,
    transform: str = "rigid",
    *,
    fixed: Any = None,
    moving: Any = None,
    fixed_spacing: Sequence[float] | None = None,
    moving_spacing: Sequence[float] | None = None,
    resample: bool = True,
    fixed_name: str = "first",
    moving_name: str = "second",
) -> Registration:
    """The transform that maps the fixed points onto the moving points, in least squares.

    Parameters
    ----------
    fixed_points, moving_points
        (N, ndim) WORLD coordinates (index times spacing, numpy axis order),
        pair i in row i; at least :data:`MIN_PAIRS` pairs (2-D: 2 rigid,
        2 similarity, 3 affine; 3-D: 3, 3, 4).
    transform
        ``"rigid"``, ``"similarity"`` or ``"affine"``.
    fixed, moving
        Optional images: with both, the overlap is measured, and with
        ``resample`` the moving image is resampled onto the fixed grid.
    fixed_spacing, moving_spacing
        The images' spacings (default 1 per axis).
    resample
        Return the moved image (needs ``fixed`` and ``moving``).
    fixed_name, moving_name
        What messages call the inputs.

    Returns
    -------
    Registration
        ``report.method == "landmarks"``, ``report.residuals`` the distance
        of each pair after the fit (world units); ``report.overlap`` is NaN
        without the images.

    Raises
    ------
    RegistrationError
        Naming the input(s): points that are not (N, 2|3) finite numbers,
        different counts or dimensions, too few pairs, coincident points,
        collinear points for an affine fit (or for any fit in 3-D), points
        whose dimension differs from the images', a fit that collapses
        (:func:`~.registration.check_transform`), or (with both images) a
        moved image covering under :data:`~.registration.MIN_OVERLAP` of the
        fixed grid (:func:`~.registration.check_overlap`).
    """
    _check_kind(transform)
    names = (fixed_name, moving_name)
    fp, mp = _points(fixed_points, fixed_name), _points(moving_points, moving_name)
    if fp.shape != mp.shape:
        raise RegistrationError(
            f"{fixed_name} has points of shape {fp.shape} and {moving_name} {mp.shape}: "
            "landmarks come in pairs of the same dimension"
        )
    n = fp.shape[1]
    need = MIN_PAIRS[n][transform]
    if len(fp) < need:
        raise RegistrationError(
            f"a {n}-D {transform} fit needs at least {need} point pairs; {fixed_name} and "
            f"{moving_name} have {len(fp)}"
        )
    least = n if transform == "affine" else n - 1  # the directions the fit needs
    for p, name in zip((fp, mp), names):
        rank = _rank(p - p.mean(axis=0))
        if rank == 0:
            raise RegistrationError(f"the points of {name} all coincide: nothing to fit")
        if rank < least:
            raise RegistrationError(
                f"the points of {name} are collinear: a {n}-D {transform} fit needs points "
                f"spanning {'a plane' if least == 2 else 'a volume'}"
            )
    for image, name in zip((fixed, moving), names):
        if image is not None and spatial_ndim(image, name) != n:
            raise RegistrationError(f"{name} is not {n}-D like its points")
    fs = check_spacing(fixed_spacing, n, fixed_name)
    ms = check_spacing(moving_spacing, n, moving_name)
    result = Transform(transform, fit_points(fp, mp, transform))
    check_transform(result, names)
    residuals = np.linalg.norm(result.map_points(fp) - mp, axis=1)
    overlap, moved = float("nan"), None
    if fixed is not None and moving is not None:
        fixed_shape = np.shape(fixed)[:n]
        overlap = check_overlap(result, fixed_shape, np.shape(moving)[:n], fixed_spacing=fs,
                                moving_spacing=ms, names=names)  # fmt: skip
        if resample:
            moved = apply_registration(result, moving, fixed_shape, fixed_spacing=fs,
                                       moving_spacing=ms)  # fmt: skip
    report = RegistrationReport(
        method="landmarks", metric_before=None, metric_after=None, iterations=0,
        converged=True, stop_reason=f"least squares fit of {len(fp)} point pairs",
        overlap=overlap, residuals=residuals,
    )  # fmt: skip
    return Registration(result, moved, report, fs, ms)
