"""Aligning the planes of a focus stack: translation, optionally scale and rotation (no torch).

Each plane's luma is registered to a reference plane (by default the middle
one). The modes (the ``align`` option of :func:`napari_gifnet.fuse_stack`;
``docs/stacks.md``, "Alignment", tells how each works and was tuned):

``"translation"`` (``align=True``)
    Phase correlation (:func:`estimate_shift`, subpixel, on blurred,
    mean-removed, Hann-windowed planes).
``"scale"``
    Also corrects **focus breathing**, a magnification about the centre
    (:func:`estimate_scale`): the scale whose undoing maximises the whitened
    cross-correlation peak (:class:`_PhasePeak`).
``"similarity"``
    Rotation, magnification and translation, for hand-held stacks
    (:func:`estimate_similarity`: a log-polar guess and a grid of small
    motions, refined by Nelder-Mead); planes under
    :data:`MIN_SIMILARITY_SIZE` px a side fall back to translation
    (:func:`similarity_fallback` says why).
``"auto"`` (``fuse_stack``'s default)
    The data decide (:func:`measure_motion`): ``"similarity"``,
    ``"translation"`` or nothing (then bit for bit the result of no
    alignment); ``fuse_stack`` keeps ``"similarity"`` only if the estimated
    similarity moves a corner by more than :data:`AUTO_TURN` px.

Resampling: :func:`apply_transform` (and :func:`apply_shift`) interpolate
linearly unless told ``order``; :func:`resample` (cubic, clamped to the local
range) is what :func:`fuse_stack` moves pixels with.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import ndimage

__all__ = [
    "ALIGN_MODES", "AUTO", "Motion", "corner_motion", "measure_motion", "align_mode", "apply_shift",
    "apply_transform", "estimate_alignment", "estimate_scale", "estimate_shift",
    "estimate_similarity", "estimate_transform", "resample", "similarity_fallback",
]  # fmt: skip

#: The alignment modes; ``align=True`` means ``"translation"``.
ALIGN_MODES = ("translation", "scale", "similarity")
#: ``align="auto"`` (:func:`measure_motion`).
AUTO = "auto"
#: ``"auto"``: a translation above this (px) is corrected (docs/stacks.md tells how
#: this and AUTO_TURN were chosen).
AUTO_SHIFT = 0.25
#: ``"auto"``: a rotation / magnification moving a corner by more than this (px)
#: takes ``"similarity"``.
AUTO_TURN = 1.0
_MOTION_SIZE = 256  # the motion is measured on planes of at most this many pixels a side
#: ``"auto"``: a plane whose correlation peak with the reference (blurred, windowed,
#: normalised) is under this matches nothing and is not moved. Defocused planes of a
#: stack match at 0.3 (a texture and its blur by 3 px) to 0.95; unrelated noise
#: planes 0.02-0.03 at 64 px (up to 0.27 at 16 px).
AUTO_MATCH = 0.2
#: Magnifications outside [1 / MAX_SCALE, MAX_SCALE] are not searched.
MAX_SCALE = 1.25
_SCALE_SIZE = 384  # the scale is estimated on planes of at most this many pixels a side
_SPAN = 0.015  # the fine search: within this fraction of the coarse scale
_WEIGHT_SIGMA = 0.15  # Gaussian weight (cycles / px) on the whitened cross-power spectrum
_COARSE_SIZE = 96  # the coarse search: planes of at most this many pixels a side
_COARSE_STEP = 0.01  # the coarse search: scales exp(k * step)
_TUKEY = ("tukey", 0.4)
_POLAR_SIZE = 256  # the log-polar first guess: planes of at most this many pixels a side
_POLAR_ANGLES = 720  # rows of the log-polar spectra (0.5 degree each)
_SIM_BLUR = 1.5  # Gaussian blur (px of the reduced planes) before the rotation search
_GRID_ANGLES = np.arange(-8.0, 8.5, 1.0)  # the coarse grid of small rotations (degrees)
_GRID_SCALES = np.exp(np.arange(-5, 6) * 0.02)  # ... and magnifications (0.90 to 1.11)
#: The smallest plane side (px) on which ``"similarity"`` estimates a rotation
#: and a magnification; smaller planes are aligned by translation alone (the
#: errors measured on smaller crops: docs/stacks.md, "Explicit modes").
MIN_SIMILARITY_SIZE = 96


def align_mode(align: Any, *, auto: bool = False) -> str | None:
    """Normalise an ``align`` option.

    Parameters
    ----------
    align : bool, None or str
        ``False`` / ``None``: no alignment; ``True`` or ``"translation"``:
        translation only; ``"scale"``: magnification and translation;
        ``"similarity"``: rotation, magnification and translation; with
        ``auto``, also ``"auto"`` (:func:`measure_motion` decides) and
        ``"none"`` (no alignment).
    auto : bool
        Whether the caller decides ``"auto"`` (``fuse_stack`` does).

    Returns
    -------
    str or None
        ``None``, ``"translation"``, ``"scale"``, ``"similarity"`` or
        (``auto``) ``"auto"``.

    Raises
    ------
    ValueError
        Any other value.
    """
    if align is None or isinstance(align, (bool, np.bool_)):
        return "translation" if align else None
    key = align.strip().lower() if isinstance(align, str) else None
    if key in ALIGN_MODES:
        return key
    if auto and key in (AUTO, "none"):
        return None if key == "none" else AUTO
    valid = "False, True (= 'translation'), 'translation', 'scale', 'similarity'"
    raise ValueError(
        f"unknown align option {align!r}; valid: " + ("'auto', 'none', " if auto else "") + valid
    )


@dataclass(frozen=True)
class Motion:
    """What :func:`measure_motion` found.

    Attributes
    ----------
    mode : str or None
        The alignment the motion calls for: None (static), ``"translation"``
        or ``"similarity"``.
    shifts : numpy.ndarray
        float64 (N,): each plane's translation against the reference (px).
    turns : numpy.ndarray
        float64 (N,): how far (px) the rotation and magnification fitted to
        the quadrants' translations move the plane's corners (0 where the
        planes are too small to measure it).
    unmatched : tuple of int
        The planes that did not match the reference (correlation peak under
        :data:`AUTO_MATCH`): nothing was measured on them, they count as static.
    """

    mode: str | None
    shifts: np.ndarray
    turns: np.ndarray
    unmatched: tuple[int, ...] = ()

    def metadata(self) -> dict[str, Any]:
        """The measurement for a result's metadata (px, rounded)."""
        return {
            "largest_shift_px": round(float(self.shifts.max(initial=0.0)), 4),
            "largest_turn_px": round(float(self.turns.max(initial=0.0)), 4),
            "shifts_px": self.shifts.round(4).tolist(),
            "turns_px": self.turns.round(4).tolist(),
            "unmatched_planes": list(self.unmatched),
            "thresholds_px": {"shift": AUTO_SHIFT, "turn": AUTO_TURN},
        }


def _quadrant_turn(reference: np.ndarray, moving: np.ndarray) -> float:
    """Corner motion (px) of the similarity fitted to the four quadrants' translations.

    Each quadrant's translation ``d_k`` (phase correlation) at its centre
    ``c_k`` (relative to the plane's centre) is fitted in the least-squares
    sense by ``d = t + [[a, -b], [b, a]] c`` (a small rotation and
    magnification); the rotation and magnification move the corners by
    ``hypot(a, b)`` times the half diagonal.
    """
    h, w = reference.shape
    qh, qw = h // 2, w // 2
    rows, values = [], []
    for y0 in (0, h - qh):
        for x0 in (0, w - qw):
            tile = np.s_[y0 : y0 + qh, x0 : x0 + qw]
            dy, dx = estimate_shift(reference[tile], moving[tile], upsample_factor=10)
            cy, cx = y0 + (qh - 1) / 2 - (h - 1) / 2, x0 + (qw - 1) / 2 - (w - 1) / 2
            rows += [[1.0, 0.0, cy, -cx], [0.0, 1.0, cx, cy]]
            values += [dy, dx]
    fit = np.linalg.lstsq(np.array(rows), np.array(values), rcond=None)[0]
    return float(np.hypot(fit[2], fit[3]) * np.hypot((h - 1) / 2, (w - 1) / 2))


def corner_motion(shape: tuple[int, ...], scale: float, rotation: float) -> float:
    """How far (px) a rotation (degrees) and magnification about the centre move the
    farthest corner of a plane of ``shape`` (H, W[, ...])."""
    h, w = shape[:2]
    corner = np.array([(h - 1) / 2, (w - 1) / 2])
    m = _matrix(float(scale), float(rotation)) - np.eye(2)
    corners = corner * np.array([[1, 1], [1, -1], [-1, 1], [-1, -1]])
    return float(np.hypot(*(corners @ m.T).T).max())


def measure_motion(
    read_luma: Callable[[int], np.ndarray],
    n_planes: int,
    reference: int | None = None,
    *,
    progress: Callable[[int], None] | None = None,
) -> Motion:
    """Measure how the planes move against the reference and choose the alignment.

    Parameters
    ----------
    read_luma : callable
        ``read_luma(i)`` returns plane ``i`` as a 2-D float luma.
    n_planes : int
        Number of planes.
    reference : int, optional
        The reference plane; default the middle one.
    progress : callable, optional
        Called with the plane index after each plane.

    Returns
    -------
    Motion
        ``mode`` None where every translation is at most :data:`AUTO_SHIFT`
        px and every corner motion at most :data:`AUTO_TURN` px;
        ``"similarity"`` where a corner motion exceeds it (planes of at
        least :data:`MIN_SIMILARITY_SIZE` px a side; smaller planes are not
        measured for it); else ``"translation"``. Measured on planes reduced
        to at most 256 px a side, reported in full-resolution pixels.
    """
    ref_index = n_planes // 2 if reference is None else int(reference)
    if not 0 <= ref_index < n_planes:
        raise ValueError(f"reference plane {reference} is outside 0..{n_planes - 1}")
    full = np.asarray(read_luma(ref_index), np.float64)
    ref = _reduce(full, _MOTION_SIZE)
    factor = max(1, int(np.ceil(max(full.shape) / _MOTION_SIZE)))  # _reduce's block size
    turning = min(full.shape[:2]) >= MIN_SIMILARITY_SIZE
    shifts, turns, unmatched = np.zeros(n_planes), np.zeros(n_planes), []
    for i in range(n_planes):
        if i != ref_index:
            mov = _reduce(np.asarray(read_luma(i), np.float64), _MOTION_SIZE)
            shift, peak = _matched_shift(ref, mov, 20)
            if peak >= AUTO_MATCH:  # else nothing was measured: the plane stays
                shifts[i] = factor * float(np.hypot(*shift))
                turns[i] = factor * _quadrant_turn(ref, mov) if turning else 0.0
            else:
                unmatched.append(i)
        if progress is not None:
            progress(i)
    if turns.max(initial=0.0) > AUTO_TURN:
        mode: str | None = "similarity"
    elif shifts.max(initial=0.0) > AUTO_SHIFT:
        mode = "translation"
    else:
        mode = None
    return Motion(mode, shifts, turns, tuple(unmatched))


def _centre(shape: tuple[int, ...]) -> np.ndarray:
    return (np.asarray(shape[:2], dtype=np.float64) - 1.0) / 2.0


def _unzoom(image: np.ndarray, scale: float, order: int = 1) -> np.ndarray:
    """Undo a magnification ``scale`` about the centre of a 2-D image."""
    c = _centre(image.shape)
    return ndimage.affine_transform(
        image, np.full(2, scale), offset=c * (1.0 - scale), order=order, mode="nearest"
    )


def _matrix(scale: float, rotation: float) -> np.ndarray:
    """``scale`` times the rotation by ``rotation`` degrees, in (row, col) coordinates.

    Positive angles turn counter-clockwise on screen (rows pointing down), as
    :func:`skimage.transform.rotate` does.
    """
    t = np.deg2rad(rotation)
    return scale * np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])


def _undo(image: np.ndarray, scale: float, rotation: float, order: int = 1) -> np.ndarray:
    """Undo a rotation and magnification about the centre of a 2-D image."""
    c = _centre(image.shape)
    m = _matrix(scale, rotation)
    return ndimage.affine_transform(image, m, offset=c - m @ c, order=order, mode="nearest")


def _reduce(image: np.ndarray, size: int) -> np.ndarray:
    """Block mean by the smallest integer factor that brings both sides to <= ``size``."""
    f = int(np.ceil(max(image.shape) / size))
    if f <= 1:
        return image
    h, w = (image.shape[0] // f) * f, (image.shape[1] // f) * f
    y0, x0 = (image.shape[0] - h) // 2, (image.shape[1] - w) // 2
    crop = image[y0 : y0 + h, x0 : x0 + w]
    return crop.reshape(h // f, f, w // f, f).mean(axis=(1, 3))


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
    return _matched_shift(reference, moving, upsample_factor)[0]


def _matched_shift(
    reference: np.ndarray, moving: np.ndarray, upsample_factor: int
) -> tuple[np.ndarray, float]:
    """:func:`estimate_shift` and how well the planes match there: the normalised
    cross-correlation peak of the prepared planes (1: identical; 0 with nothing to
    register on)."""
    from skimage.filters import window
    from skimage.registration import phase_cross_correlation

    ref = ndimage.gaussian_filter(np.asarray(reference, np.float64), 1.0)
    mov = ndimage.gaussian_filter(np.asarray(moving, np.float64), 1.0)
    if ref.std() == 0 or mov.std() == 0:  # nothing to register on
        return np.zeros(2), 0.0
    hann = window("hann", ref.shape)  # tapers the borders: no wrap-around edges
    ref, mov = (ref - ref.mean()) * hann, (mov - mov.mean()) * hann
    shift, error, _phase = phase_cross_correlation(
        ref, mov, upsample_factor=int(upsample_factor), normalization=None
    )
    return np.asarray(shift, dtype=np.float64), float(1.0 - error)


class _PhasePeak:
    """Height of the whitened cross-correlation peak of a reference and a moving plane.

    The cross-power spectrum is whitened (phase only), so a symmetric blur of
    either plane, which changes magnitudes but not phases, does not lower the
    peak, then weighted by fixed weights ``sqrt(|R| |M|)`` (``R``: the
    reference's spectrum, ``M``: that of a first guess ``guess`` of the moving
    plane; frequencies where both planes carry signal count most, noise-only
    ones little) times a Gaussian of sigma 0.15 cycles / px. The weights sum
    to 1: a peak of 1 means identical phases.
    """

    def __init__(self, reference: np.ndarray, guess: np.ndarray) -> None:
        from skimage.filters import window

        h, w = reference.shape
        self.taper = window(_TUKEY, reference.shape)
        self.ref = np.fft.fft2(self._prepare(reference))
        fy, fx = np.fft.fftfreq(h)[:, None], np.fft.fftfreq(w)[None, :]
        weight = np.sqrt(np.abs(self.ref) * np.abs(np.fft.fft2(self._prepare(guess))))
        weight *= np.exp(-(fy**2 + fx**2) / (2 * _WEIGHT_SIGMA**2))
        weight[0, 0] = 0.0
        self.weight = weight / max(weight.sum(), 1e-300)
        self.ky = 2j * np.pi * np.fft.fftfreq(h)[:, None]
        self.kx = 2j * np.pi * np.fft.fftfreq(w)[None, :]

    def _prepare(self, x: np.ndarray) -> np.ndarray:
        return (x - x.mean()) * self.taper

    def __call__(self, moving: np.ndarray) -> float:
        """The peak height for ``moving`` (subpixel: Newton steps from the best pixel)."""
        cross = self.ref * np.fft.fft2(self._prepare(moving)).conj()
        cross = cross / (np.abs(cross) + 1e-12 * np.abs(cross).max()) * self.weight
        corr = np.fft.ifft2(cross).real
        size = np.array(corr.shape)
        p = np.array(np.unravel_index(np.argmax(corr), corr.shape), dtype=np.float64)
        p[p > size / 2] -= size[p > size / 2]
        ky, kx = self.ky, self.kx
        for _ in range(3):
            c = cross * np.exp(ky * p[0] + kx * p[1])
            grad = np.array([(ky * c).sum().real, (kx * c).sum().real])
            hxy = (ky * kx * c).sum().real
            hess = np.array([[(ky * ky * c).sum().real, hxy], [hxy, (kx * kx * c).sum().real]])
            if np.linalg.det(hess) <= 0 or hess[0, 0] >= 0:  # not at a maximum
                break
            step = np.linalg.solve(hess, grad)
            if np.abs(step).max() > 1.0:
                break
            p = p - step
        return float((cross * np.exp(ky * p[0] + kx * p[1])).sum().real)


def estimate_scale(reference: np.ndarray, moving: np.ndarray) -> float:
    """The magnification of ``moving`` relative to ``reference`` (about the centre).

    Parameters
    ----------
    reference, moving : numpy.ndarray
        2-D float images of the same shape.

    Returns
    -------
    float
        ``s`` > 1 where ``moving`` shows the scene larger; 1.0 where the
        planes have no structure or a scale change does not fit better than
        none. Within [1 / MAX_SCALE, MAX_SCALE].
    """
    from scipy.optimize import minimize_scalar

    ref = _reduce(np.asarray(reference, np.float64), _SCALE_SIZE)
    mov = _reduce(np.asarray(moving, np.float64), _SCALE_SIZE)
    if ref.std() == 0 or mov.std() == 0 or min(ref.shape) < 16:
        return 1.0
    small_ref, small_mov = _reduce(ref, _COARSE_SIZE), _reduce(mov, _COARSE_SIZE)
    peak = _PhasePeak(small_ref, small_mov)
    reach = int(np.ceil(np.log(MAX_SCALE) / _COARSE_STEP))
    grid = np.exp(np.arange(-reach, reach + 1) * _COARSE_STEP)
    grid = grid[(grid >= 1 / MAX_SCALE) & (grid <= MAX_SCALE)]
    coarse = float(grid[np.argmax([peak(_unzoom(small_mov, s)) for s in grid])])
    peak = _PhasePeak(ref, _unzoom(mov, coarse))

    def cost(s: float) -> float:
        return -peak(_unzoom(mov, s, order=3))

    lo, hi = max(coarse * (1 - _SPAN), 1 / MAX_SCALE), min(coarse * (1 + _SPAN), MAX_SCALE)
    best = minimize_scalar(cost, bounds=(lo, hi), method="bounded", options={"xatol": 2e-5})
    return float(best.x) if best.fun < cost(1.0) else 1.0


def _square(image: np.ndarray) -> np.ndarray:
    n = min(image.shape)
    y0, x0 = (image.shape[0] - n) // 2, (image.shape[1] - n) // 2
    return image[y0 : y0 + n, x0 : x0 + n]


def _log_polar(image: np.ndarray) -> tuple[np.ndarray, float]:
    """The log-polar Fourier magnitude of a square image, and its columns per unit log radius."""
    from skimage.filters import window
    from skimage.transform import warp_polar

    n = image.shape[0]
    x = ndimage.gaussian_filter(image, 1.0)
    x = (x - x.mean()) * window("hann", x.shape)
    mag = np.log1p(np.abs(np.fft.fftshift(np.fft.fft2(x))))
    radius = n // 2
    polar = warp_polar(mag, radius=radius, output_shape=(_POLAR_ANGLES, radius), scaling="log")
    return polar, radius / np.log(radius)


def _polar_guess(reference: np.ndarray, moving: np.ndarray) -> tuple[float, float]:
    """First guess (rotation in (-90, 90] degrees, scale) from the log-polar magnitude spectra."""
    from skimage.registration import phase_cross_correlation

    ref, mov = _square(reference), _square(moving)
    pr, k = _log_polar(ref)
    pm, _ = _log_polar(mov)
    n_r = pr.shape[1]
    lo, hi = int(np.ceil(k * np.log(3.0))), int(k * np.log(0.7 * n_r))  # an annulus of radii
    band = np.s_[:, lo:hi]
    (d_angle, d_radius), _e, _p = phase_cross_correlation(
        pr[band], pm[band], upsample_factor=10, normalization="phase"
    )
    rotation = float(d_angle) * 360.0 / _POLAR_ANGLES
    rotation = (rotation + 90.0) % 180.0 - 90.0  # the magnitude spectrum repeats every 180
    scale = float(np.exp(float(d_radius) / k))
    return rotation, float(np.clip(scale, 1 / MAX_SCALE, MAX_SCALE))


def _wrap(angle: float) -> float:
    """An angle in degrees brought into (-180, 180]."""
    return float(-((-angle + 180.0) % 360.0 - 180.0))


def similarity_fallback(mode: str | None, shape: tuple[int, ...]) -> str | None:
    """Why an alignment in ``mode`` of planes of ``shape`` (H, W[, ...]) is done
    by translation alone, or None when it is done as asked.

    Only ``"similarity"`` falls back, on planes under
    :data:`MIN_SIMILARITY_SIZE` px a side.
    """
    h, w = shape[:2]
    if mode != "similarity" or min(h, w) >= MIN_SIMILARITY_SIZE:
        return None
    return (
        f"similarity alignment needs planes of at least {MIN_SIMILARITY_SIZE} x "
        f"{MIN_SIMILARITY_SIZE} px to estimate a rotation and a magnification; these are "
        f"{h} x {w} px, so they were aligned by translation only"
    )


def estimate_similarity(reference: np.ndarray, moving: np.ndarray, *,
                        upsample_factor: int = 20) -> tuple[np.ndarray, float, float]:  # fmt: skip
    """The shift, magnification and rotation that bring ``moving`` onto ``reference``.

    Parameters
    ----------
    reference, moving : numpy.ndarray
        2-D float images of the same shape.
    upsample_factor : int
        As for :func:`estimate_shift`.

    Returns
    -------
    shift : numpy.ndarray
        float64 (2,) (dy, dx), applied after the rotation and magnification
        are undone.
    scale : float
        The magnification of ``moving`` (> 1: it shows the scene larger),
        within [1 / MAX_SCALE, MAX_SCALE].
    rotation : float
        Degrees in (-180, 180] by which ``moving`` shows the scene turned
        counter-clockwise about the centre;
        ``apply_transform(moving, shift, scale, rotation)`` lines up with
        ``reference``. 0 and 1 where the planes have no structure, are
        under :data:`MIN_SIMILARITY_SIZE` px a side, or no rotation and
        magnification fit better.
    """
    from scipy.optimize import minimize

    reference = np.asarray(reference, np.float64)
    moving = np.asarray(moving, np.float64)
    if similarity_fallback("similarity", reference.shape) is not None:
        return estimate_shift(reference, moving, upsample_factor=upsample_factor), 1.0, 0.0
    ref, mov = _reduce(reference, _SCALE_SIZE), _reduce(moving, _SCALE_SIZE)
    if ref.std() == 0 or mov.std() == 0 or min(ref.shape) < 16:  # flat, or a thin strip
        return estimate_shift(reference, moving, upsample_factor=upsample_factor), 1.0, 0.0
    # the same blur on both: planes sharp in different places agree better
    ref, mov = ndimage.gaussian_filter(ref, _SIM_BLUR), ndimage.gaussian_filter(mov, _SIM_BLUR)
    angle, scale = _polar_guess(_reduce(ref, _POLAR_SIZE), _reduce(mov, _POLAR_SIZE))
    small_ref, small_mov = _reduce(ref, _COARSE_SIZE), _reduce(mov, _COARSE_SIZE)
    peak = _PhasePeak(small_ref, small_mov)  # |spectrum| (the weights): about the same for all
    # the log-polar guess and its 180-degree twin, and a grid of small hand-held motions
    # (the log-polar guess fails where the planes are sharp in different places)
    candidates = [(angle, scale), (_wrap(angle + 180.0), scale)]
    candidates += [(float(a), float(z)) for a in _GRID_ANGLES for z in _GRID_SCALES]
    angle, scale = max(candidates, key=lambda c: peak(_undo(small_mov, c[1], c[0])))
    peak = _PhasePeak(ref, _undo(mov, scale, angle))

    def cost(p: np.ndarray) -> float:  # p: (degrees, 100 log scale)
        s = float(np.clip(np.exp(p[1] / 100.0), 1 / MAX_SCALE, MAX_SCALE))
        return -peak(_undo(mov, s, float(p[0]), order=3))

    start = np.array([angle, 100.0 * np.log(scale)])
    simplex = np.array([start, start + [0.5, 0.0], start + [0.0, 0.5]])
    best = minimize(cost, start, method="Nelder-Mead",
                    options={"initial_simplex": simplex, "xatol": 2e-3, "fatol": 1e-7})  # fmt: skip
    if best.fun < cost(np.zeros(2)):
        angle = _wrap(float(best.x[0]))
        scale = float(np.clip(np.exp(best.x[1] / 100.0), 1 / MAX_SCALE, MAX_SCALE))
    else:
        angle, scale = 0.0, 1.0
    undone = _undo(moving, scale, angle) if (angle, scale) != (0.0, 1.0) else moving
    return estimate_shift(reference, undone, upsample_factor=upsample_factor), scale, angle


def estimate_transform(
    reference: np.ndarray,
    moving: np.ndarray,
    *,
    mode: Any = "scale",
    upsample_factor: int = 20,
) -> tuple[np.ndarray, float]:
    """The shift and magnification that bring ``moving`` onto ``reference``.

    Parameters
    ----------
    reference, moving : numpy.ndarray
        2-D float images of the same shape.
    mode : {"scale", "translation"} or True
        ``"translation"`` (or ``True``): the scale is 1.
    upsample_factor : int
        As for :func:`estimate_shift`.

    Returns
    -------
    shift : numpy.ndarray
        float64 (2,) (dy, dx), applied after the magnification is undone.
    scale : float
        The magnification of ``moving``; ``apply_transform(moving, shift, scale)``
        lines up with ``reference``.
    """
    mode = align_mode(mode)
    if mode is None:
        raise ValueError("estimate_transform needs mode 'translation' or 'scale'")
    if mode == "similarity":
        raise ValueError(
            "estimate_transform returns no rotation: use estimate_similarity for 'similarity'"
        )
    moving = np.asarray(moving, np.float64)
    scale = estimate_scale(reference, moving) if mode == "scale" else 1.0
    if scale != 1.0:
        moving = _unzoom(moving, scale)
    return estimate_shift(reference, moving, upsample_factor=upsample_factor), scale


def estimate_alignment(
    read_luma: Callable[[int], np.ndarray],
    n_planes: int,
    reference: int | None = None,
    *,
    mode: Any = "translation",
    upsample_factor: int = 20,
    progress: Callable[[int], None] | None = None,
    with_rotations: bool = False,
) -> tuple[np.ndarray, ...]:
    """Shifts and scales of every plane onto a reference plane, one plane read at a time.

    Parameters
    ----------
    read_luma : callable
        ``read_luma(i)`` returns plane ``i`` as a 2-D float luma.
    n_planes : int
        Number of planes.
    reference : int, optional
        Index of the reference plane; default the middle one (``n_planes // 2``).
    mode : {"translation", "scale", "similarity"} or True
        What is estimated (see :func:`align_mode`).
    upsample_factor : int
        As for :func:`estimate_shift`.
    progress : callable, optional
        Called with the plane index after each plane.
    with_rotations : bool
        Also return the rotations (needed to apply a ``"similarity"``
        alignment).

    Returns
    -------
    shifts : numpy.ndarray
        float64 (n_planes, 2) of (dy, dx); the reference's row is zero.
    scales : numpy.ndarray
        float64 (n_planes,) magnifications; all 1.0 for ``"translation"``.
    rotations : numpy.ndarray
        Only with ``with_rotations=True``: float64 (n_planes,) degrees (see
        :func:`estimate_similarity`); all 0.0 but for ``"similarity"``.
        ``"similarity"`` on planes under :data:`MIN_SIMILARITY_SIZE` px a
        side is translation only (see :func:`similarity_fallback`).
    """
    mode = align_mode(mode)
    if mode is None:
        raise ValueError("estimate_alignment needs mode 'translation', 'scale' or 'similarity'")
    if mode == "similarity" and not with_rotations:
        raise ValueError("a 'similarity' alignment needs with_rotations=True (it rotates)")
    ref_index = n_planes // 2 if reference is None else int(reference)
    if not 0 <= ref_index < n_planes:
        raise ValueError(f"reference plane {reference} is outside 0..{n_planes - 1}")
    ref = read_luma(ref_index)
    if similarity_fallback(mode, np.shape(ref)) is not None:
        mode = "translation"
    shifts, scales, rotations = np.zeros((n_planes, 2)), np.ones(n_planes), np.zeros(n_planes)
    for i in range(n_planes):
        if i != ref_index and mode == "similarity":
            shifts[i], scales[i], rotations[i] = estimate_similarity(
                ref, read_luma(i), upsample_factor=upsample_factor
            )
        elif i != ref_index:
            shifts[i], scales[i] = estimate_transform(
                ref, read_luma(i), mode=mode, upsample_factor=upsample_factor
            )
        if progress is not None:
            progress(i)
    return (shifts, scales, rotations) if with_rotations else (shifts, scales)


def apply_transform(
    plane: np.ndarray, shift: np.ndarray, scale: float = 1.0, rotation: float = 0.0, *,
    order: int = 1,
) -> np.ndarray:  # fmt: skip
    """Undo a magnification (and rotation) about the centre, then shift by (dy, dx), in one
    resampling.

    Parameters
    ----------
    plane : numpy.ndarray
        (H, W) or (H, W, C) float plane; never modified.
    shift : numpy.ndarray
        (dy, dx) as estimated by :func:`estimate_transform`.
    scale : float
        The plane's magnification (1 and no rotation: translation only,
        :func:`apply_shift`).
    rotation : float
        Degrees the plane shows the scene turned counter-clockwise (see
        :func:`estimate_similarity`); 0: none.
    order : int
        Spline order of the interpolation (1: linear, the default; 3: cubic,
        see :func:`resample`).

    Returns
    -------
    numpy.ndarray
        Edges repeated; ``plane`` itself when there is nothing to do.
    """
    scale, rotation = float(scale), float(rotation)
    if not np.isfinite(rotation):
        raise ValueError(f"rotation must be a finite number of degrees, got {rotation}")
    if scale == 1.0 and rotation == 0.0:
        return apply_shift(plane, shift, order=order)
    if not scale > 0:
        raise ValueError(f"scale must be positive, got {scale}")
    shift, centre = np.asarray(shift, dtype=np.float64), _centre(plane.shape)
    if rotation != 0.0:
        m = _matrix(scale, rotation)
        offset = centre - m @ (centre + shift)
    else:  # a diagonal matrix: scipy's zoom-and-shift path
        m, offset = np.full(2, scale), centre * (1.0 - scale) - scale * shift

    def one(x: np.ndarray) -> np.ndarray:
        return ndimage.affine_transform(x, m, offset=offset, order=order, mode="nearest")

    if plane.ndim == 2:
        return one(plane)
    return np.stack([one(c) for c in np.moveaxis(plane, -1, 0)], axis=-1)  # the same per channel


def apply_shift(plane: np.ndarray, shift: np.ndarray, *, order: int = 1) -> np.ndarray:
    """Shift a (H, W) or (H, W, C) float plane by (dy, dx) (edges repeated; default linear)."""
    shift = np.asarray(shift, dtype=np.float64)
    if not shift.any():
        return plane
    full = (*shift, *([0.0] * (plane.ndim - 2)))
    return ndimage.shift(plane, full, order=order, mode="nearest")


def resample(
    plane: np.ndarray, shift: np.ndarray, scale: float = 1.0, rotation: float = 0.0
) -> np.ndarray:
    """:func:`apply_transform` with cubic splines, clamped to the local value range.

    Linear interpolation is a blur of up to a quarter of the local contrast at
    half-pixel shifts, enough to make a moved plane look less in focus than
    an unmoved one; cubic splines keep the detail. Their overshoot is clamped
    to the range of the 3 x 3 neighbourhood (its minimum and maximum,
    resampled linearly), so no value leaves the plane's own local range
    (and an integer shift returns the plane's own values).

    Returns
    -------
    numpy.ndarray
        float64 or float32 like ``plane``; ``plane`` itself when there is
        nothing to do.
    """
    shift = np.asarray(shift, dtype=np.float64)
    if float(scale) == 1.0 and float(rotation) == 0.0 and not shift.any():
        return plane
    size = (3, 3, 1)[: plane.ndim] if plane.ndim == 3 else 3
    t = (shift, scale, rotation)
    cubic = apply_transform(plane, *t, order=3)
    lo = apply_transform(ndimage.minimum_filter(plane, size=size, mode="nearest"), *t)
    hi = apply_transform(ndimage.maximum_filter(plane, size=size, mode="nearest"), *t)
    return np.clip(cubic, lo, hi)
