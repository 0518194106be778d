"""Registering the second image of a pair onto the first by mutual information (no torch).

:func:`register` estimates a rigid, similarity or affine transform between
two 2-D images or two 3-D volumes, each with its own pixel spacing, by
maximising their Mattes mutual information with SimpleITK (imported inside
the functions). Mutual information needs no common contrast: bone bright in
CT and dark in MRI registers as well as two photographs of one sensor, where
the project's phase correlation (:mod:`.alignment`) fails.

Coordinates
-----------
Arrays are in numpy axis order, ``(y, x)`` or ``(z, y, x)``. A pixel's WORLD
position is its index times the spacing of its image (both images have their
origin at index 0). A :class:`Transform` maps a point of the FIXED image to
the point of the MOVING image that lands there (the resampling direction, as
ITK does): ``moving_world = matrix @ [*fixed_world, 1]``.

How :func:`register` works
--------------------------
1. Each input becomes a float intensity (:func:`_intensity`: luma for
   colour, its robust range rescaled to 0..1).
2. Start: the images' centres matched and, on one grid, the phase-correlation
   translation; the better by mutual information is kept (:func:`_best_start`).
3. Multi-resolution gradient descent on a fixed random sample of the fixed
   image's pixels (:data:`SEED`; SimpleITK on one thread, so results are
   reproducible bit for bit): rigid first, then the asked kind
   (:func:`_optimise_stages`), each level with its own first step
   (:func:`_optimise`). The better of the start and the end is kept.
4. Refusals (:class:`RegistrationError`, naming the inputs): see
   :func:`register`.

:func:`apply_registration` resamples the moving image onto the fixed grid,
a volume one output plane at a time.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import ndimage

from ..engine.colour import LUMA_WEIGHTS
from ..engine.preprocess import PERCENTILES
from ._dtype_cast import cast_to_dtype

__all__ = [
    "KINDS",
    "MAX_SCALE",
    "MAX_SHEAR",
    "MIN_OVERLAP",
    "MIN_SCALE",
    "MIN_SIDE",
    "SEED",
    "TRANSFORMS",
    "Registration",
    "RegistrationError",
    "RegistrationReport",
    "Transform",
    "affine_slab",
    "apply_registration",
    "check_overlap",
    "check_spacing",
    "check_transform",
    "overlap_fraction",
    "register",
    "resample_slab",
    "spatial_ndim",
]

#: What :func:`register` estimates by mutual information.
TRANSFORMS = ("rigid", "similarity", "affine")
#: Every kind a :class:`Transform` can have.
KINDS = ("translation", *TRANSFORMS)
#: A recovered scale (singular value of the matrix) outside MIN_SCALE..MAX_SCALE is refused.
MIN_SCALE, MAX_SCALE = 0.5, 2.0
#: An affine transform whose shear (QR decomposition: off-diagonal over diagonal) exceeds
#: this is refused; rigid and similarity transforms allow none (up to 1e-6).
MAX_SHEAR = 0.5
#: After registration, at least this fraction of the fixed grid must be covered.
MIN_OVERLAP = 0.10
#: The seed of the metric's random sample of pixels.
SEED = 20251
#: Images with a spatial side under this many px are refused.
MIN_SIDE = 4
#: The coarsest level of the multi-resolution pyramid keeps at least this many px a side.
MIN_LEVEL_SIZE = 16
_RANGE_SAMPLES = 1 << 20  # the robust range of an image comes from at most this many values
_PHASE_VOXELS = 1 << 18  # the 3-D phase-correlation start runs on at most about this many
_EXACT = 1 << 53  # float64 holds every integer up to this
_SPLINE_MARGIN = 12  # extra planes a spline prefilter (order > 1) of a slab sees on each side
_BINS = 32  # histogram bins of the Mattes mutual information
_SAMPLES = 40_000  # about this many pixels sample the metric at each level
_ITERATIONS = 300  # most iterations per level
_FIRST_STEP = 2.0  # the first step of a level: at most this many px of the finest level
_CHANCE = 2.0  # the final mutual information must exceed this many times its chance level


#: How :meth:`RegistrationReport.describe` names each ``method``.
_METHOD_WORDS = {"mattes": "mutual information (Mattes)", "transform file": "a transform file"}


class RegistrationError(ValueError):
    """An input that cannot be registered, or a registration that failed; the message
    names the input(s)."""


# -- transforms ---------------------------------------------------------------------


def _linear_parts(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``matrix``'s linear part A = Q @ R (Q a rotation, R upper triangular with a positive
    diagonal where det A > 0): returns (Q, scales = diag R, shear = R / diag R - I)."""
    n = matrix.shape[0] - 1
    a = np.asarray(matrix, np.float64)[:n, :n]
    q, r = np.linalg.qr(a)
    signs = np.sign(np.diag(r))
    signs[signs == 0] = 1.0
    q, r = q * signs, signs[:, None] * r
    scales = np.diag(r).copy()
    shear = r / scales[:, None] - np.eye(n)
    return q, scales, shear


@dataclass(frozen=True, eq=False)
class Transform:
    """A transform between two images, in world coordinates.

    Attributes
    ----------
    kind
        ``"translation"``, ``"rigid"``, ``"similarity"`` or ``"affine"``.
    matrix
        (ndim + 1, ndim + 1) float64 homogeneous matrix in numpy axis order
        ((z,) y, x) and world units (index times spacing); maps a point of the
        FIXED image to the point of the MOVING image that lands there:
        ``moving_world = matrix @ [*fixed_world, 1]``.
    """

    kind: str
    matrix: np.ndarray

    def __post_init__(self) -> None:
        m = np.array(self.matrix, dtype=np.float64)  # a copy: never the caller's array
        if m.ndim != 2 or m.shape[0] != m.shape[1] or m.shape[0] not in (3, 4):
            raise ValueError(f"a transform matrix is 3 x 3 (2-D) or 4 x 4 (3-D), not {m.shape}")
        if not np.all(np.isfinite(m)):
            raise ValueError("a transform matrix must hold finite numbers")
        n = m.shape[0] - 1
        if not np.allclose(m[n], np.eye(n + 1)[n]):
            raise ValueError(f"a homogeneous matrix ends with the row {[0] * n + [1]}")
        if self.kind not in KINDS:
            raise ValueError(f"transform kind must be one of {', '.join(KINDS)}, not {self.kind!r}")
        m.setflags(write=False)
        object.__setattr__(self, "matrix", m)

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, Transform) and self.kind == other.kind
                and np.array_equal(self.matrix, other.matrix))  # fmt: skip

    __hash__ = None  # type: ignore[assignment]

    @property
    def ndim(self) -> int:
        """2 or 3."""
        return self.matrix.shape[0] - 1

    def parameters(self) -> dict[str, Any]:
        """The matrix's parts, in numpy axis order and world units.

        Returns
        -------
        dict
            ``translation`` (the moving point of the fixed origin), ``scales``
            (per axis, from the QR decomposition of the linear part),
            ``scale`` (their geometric mean), ``shear`` (the upper off-diagonal
            terms over the diagonal); 2-D: ``angle_deg`` (the rotation of the
            (y, x) plane, positive from y towards x as
            ``[[cos, -sin], [sin, cos]]``); 3-D: ``euler_deg`` (the rotation as
            intrinsic angles about the numpy axes 0, 1, 2 in turn,
            :meth:`scipy.spatial.transform.Rotation.as_euler` ``"XYZ"``) and
            ``angle_deg`` (the size of the rotation).
        """
        q, scales, shear = _linear_parts(self.matrix)
        n = self.ndim
        out: dict[str, Any] = {
            "translation": [float(v) for v in self.matrix[:n, n]],
            "scales": [float(v) for v in scales],
            "scale": float(np.prod(np.abs(scales)) ** (1.0 / n)),
            "shear": [float(shear[i, j]) for i in range(n) for j in range(i + 1, n)],
        }
        if n == 2:
            out["angle_deg"] = float(np.degrees(np.arctan2(q[1, 0], q[0, 0])))
        else:
            from scipy.spatial.transform import Rotation

            rot = Rotation.from_matrix(q if np.linalg.det(q) > 0 else q * [1, 1, -1])
            out["euler_deg"] = [float(v) for v in rot.as_euler("XYZ", degrees=True)]
            out["angle_deg"] = float(np.degrees(rot.magnitude()))
        return out

    def inverse(self) -> Transform:
        """The transform from the moving image to the fixed one."""
        return Transform(self.kind, np.linalg.inv(self.matrix))

    def map_points(self, points: Any) -> np.ndarray:
        """(N, ndim) fixed world points -> the (N, ndim) moving world points."""
        p = np.asarray(points, np.float64).reshape(-1, self.ndim)
        return p @ self.matrix[: self.ndim, : self.ndim].T + self.matrix[: self.ndim, self.ndim]

    def napari_affine(self, moving_spacing: Sequence[float] | None = None) -> np.ndarray:
        """The data-to-world affine that puts the MOVING layer onto the fixed layer.

        The fixed layer shows its data with ``scale=fixed_spacing`` (world =
        index times spacing); the moving layer given this ``affine`` (and no
        ``scale``) lands on it.

        Parameters
        ----------
        moving_spacing
            The moving image's spacing (default 1 per axis).

        Returns
        -------
        numpy.ndarray
            (ndim + 1, ndim + 1) float64: ``inverse(matrix) @ diag(*moving_spacing, 1)``.
        """
        spacing = check_spacing(moving_spacing, self.ndim, "moving")
        return np.linalg.inv(self.matrix) @ np.diag([*spacing, 1.0])

    def to_dict(self) -> dict[str, Any]:
        """JSON-able: ``kind``, ``ndim``, ``matrix`` (nested lists) and ``parameters``."""
        return {"kind": self.kind, "ndim": self.ndim,
                "matrix": [[float(v) for v in row] for row in self.matrix],
                "parameters": self.parameters()}  # fmt: skip

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Transform:
        """The transform of :meth:`to_dict` (``parameters`` are ignored: the matrix rules)."""
        try:
            kind, matrix = data["kind"], np.asarray(data["matrix"], dtype=np.float64)
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"not a transform: {exc}") from None
        if "ndim" in data and int(data["ndim"]) != matrix.shape[0] - 1:
            raise ValueError(f"a transform of ndim {data['ndim']} has a {matrix.shape} matrix")
        return cls(str(kind), matrix)

    @classmethod
    def load(cls, path: Any) -> Transform:
        """The transform of a transform file (:func:`napari_gifnet.io.transform_file.load_transform`
        reads and checks it, and gives the spacings stored with it)."""
        from ..io.transform_file import load_transform

        return cls.from_dict(load_transform(path))


# -- reports and results --------------------------------------------------------------


@dataclass(frozen=True)
class RegistrationReport:
    """How a registration went.

    Attributes
    ----------
    method
        ``"mattes"`` (mutual information), ``"phase"`` or ``"landmarks"``.
    metric_before, metric_after
        The Mattes mutual information with ITK's sign (lower is better) at
        the start and at the end; None for landmarks.
    iterations
        Optimiser iterations, all levels together.
    converged
        The optimiser stopped on a small step or gradient, not on its limit.
    stop_reason
        The optimiser's words.
    overlap
        The fraction of the fixed grid covered by the moved image (0..1); NaN
        where unknown (landmarks without the images).
    residuals
        Landmarks: per pair, the distance (world units) between the moving
        point and the fitted transform's image of the fixed point; else None.
    """

    method: str
    metric_before: float | None
    metric_after: float | None
    iterations: int
    converged: bool
    stop_reason: str
    overlap: float
    residuals: np.ndarray | None = field(default=None)

    def describe(self) -> str:
        """One line for a status bar or the command line."""
        parts = [f"registered by {_METHOD_WORDS.get(self.method, self.method)}"]
        if self.metric_before is not None and self.metric_after is not None:  # ITK's sign
            parts[0] += f" {-self.metric_before:.3f} -> {-self.metric_after:.3f}"
        if self.method == "mattes":
            parts.append(f"{self.iterations} iterations"
                         + ("" if self.converged else " (not converged)"))  # fmt: skip
        if self.residuals is not None and len(self.residuals):
            parts.append(f"residual mean {float(np.mean(self.residuals)):.3g}, "
                         f"max {float(np.max(self.residuals)):.3g}")  # fmt: skip
        if np.isfinite(self.overlap):
            parts.append(f"overlap {100 * self.overlap:.0f} %")
        return ", ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able fields."""
        return {"method": self.method, "metric_before": self.metric_before,
                "metric_after": self.metric_after, "iterations": int(self.iterations),
                "converged": bool(self.converged), "stop_reason": self.stop_reason,
                "overlap": float(self.overlap) if np.isfinite(self.overlap) else None,
                "residuals": None if self.residuals is None
                else [float(v) for v in self.residuals]}  # fmt: skip


@dataclass(frozen=True)
class Registration:
    """The result of :func:`register` (or landmarks): the transform, the moved image, the report.

    Attributes
    ----------
    transform
        Fixed world -> moving world (see the module's coordinates).
    moved
        The moving image resampled onto the fixed grid, in the moving
        image's dtype and range (integers rounded; colour per channel;
        outside the moving image: its minimum); None with ``resample=False``.
    report
        :class:`RegistrationReport`.
    fixed_spacing, moving_spacing
        The spacings used, numpy axis order.
    """

    transform: Transform
    moved: np.ndarray | None
    report: RegistrationReport
    fixed_spacing: tuple[float, ...]
    moving_spacing: tuple[float, ...]

    def provenance(self) -> dict[str, Any]:
        """The JSON-able metadata entry: the transform, the report and the spacings."""
        return {**self.transform.to_dict(), "moved": "second onto first",
                "report": self.report.to_dict(), "fixed_spacing": list(self.fixed_spacing),
                "moving_spacing": list(self.moving_spacing)}  # fmt: skip


# -- inputs ---------------------------------------------------------------------------


def check_spacing(spacing: Any, ndim: int, name: str) -> tuple[float, ...]:
    """A spacing per axis (numpy order; default 1, one number for all axes), checked
    positive and finite; else RegistrationError naming ``name``."""
    if spacing is None:
        return (1.0,) * ndim
    values = np.atleast_1d(np.asarray(spacing, dtype=np.float64))
    if values.size == 1:
        values = np.repeat(values, ndim)
    if values.shape != (ndim,) or not np.all(np.isfinite(values)) or np.any(values <= 0):
        raise RegistrationError(
            f"the spacing of {name} must be {ndim} positive numbers (numpy axis order), "
            f"not {spacing!r}"
        )
    return tuple(float(v) for v in values)


def _check_kind(transform: Any) -> None:
    """Refuse a transform kind that is not one of :data:`TRANSFORMS`."""
    if transform not in TRANSFORMS:
        raise RegistrationError(
            f"transform must be one of {', '.join(TRANSFORMS)}, not {transform!r}"
        )


def _is_colour(arr: np.ndarray) -> bool:
    return arr.ndim == 3 and arr.shape[2] in (3, 4)


def spatial_ndim(image: Any, name: str, colour: bool = True) -> int:
    """2 for (H, W) or colour (H, W, 3|4), 3 for a (Z, Y, X) volume; else RegistrationError."""
    arr = np.asarray(image)
    if arr.dtype.kind not in "buif":
        raise RegistrationError(f"{name} has dtype {arr.dtype}: registration needs numbers")
    if arr.ndim == 2 or (colour and _is_colour(arr)):
        return 2
    if arr.ndim == 3 and min(arr.shape) >= 2:
        return 3
    raise RegistrationError(
        f"{name} has shape {arr.shape}: registration takes (H, W) grey, (H, W, 3|4) colour "
        "images or (Z, Y, X) volumes"
    )


def _intensity(image: Any, name: str) -> np.ndarray:
    """The float32 intensity that is registered: luma for colour, rescaled to the robust
    range 0..1; refuses non-finite values and constant images.

    Memory: the float32 result and, per slab of planes, the finiteness check; the
    percentiles come from at most :data:`_RANGE_SAMPLES` evenly spaced values.
    """
    arr = np.asarray(image)
    if arr.dtype.kind == "f":
        step = max(1, (1 << 22) // max(1, arr[0].size))  # about 4 M values per slab
        bad = sum(int(part.size - np.count_nonzero(np.isfinite(part)))
                  for part in (arr[i : i + step] for i in range(0, len(arr), step)))  # fmt: skip
        if bad:
            raise RegistrationError(
                f"{name} (shape {arr.shape}) contains {bad} non-finite value(s) (NaN or inf)"
            )
    if _is_colour(arr):
        x = arr[..., 0].astype(np.float32) * np.float32(LUMA_WEIGHTS[0])
        for c in (1, 2):
            x += arr[..., c].astype(np.float32) * np.float32(LUMA_WEIGHTS[c])
    else:
        x = arr.astype(np.float32)  # a copy: rescaled in place below
    flat = x.reshape(-1)
    sample = flat[:: max(1, -(-flat.size // _RANGE_SAMPLES))]
    lo, hi = (float(v) for v in np.percentile(sample, PERCENTILES))
    if not hi > lo:
        lo, hi = float(x.min()), float(x.max())
    if not hi > lo:
        raise RegistrationError(f"{name} is constant (every value {lo:g}): nothing to register on")
    x -= np.float32(lo)
    x *= np.float32(1.0 / (hi - lo))
    return np.clip(x, 0.0, 1.0, out=x)


# -- geometry -------------------------------------------------------------------------


def _index_affine(
    matrix: np.ndarray, fixed_spacing: Sequence[float], moving_spacing: Sequence[float]
) -> tuple[np.ndarray, np.ndarray]:
    """(A, offset) mapping a fixed INDEX to the moving INDEX: ``A @ i + offset``."""
    n = matrix.shape[0] - 1
    fs, ms = np.asarray(fixed_spacing), np.asarray(moving_spacing)
    a = matrix[:n, :n] * fs[None, :] / ms[:, None]
    return a, matrix[:n, n] / ms


def overlap_fraction(
    transform: Transform,
    fixed_shape: Sequence[int],
    moving_shape: Sequence[int],
    *,
    fixed_spacing: Sequence[float] | None = None,
    moving_spacing: Sequence[float] | None = None,
) -> float:
    """The fraction of the fixed grid whose mapped point lies inside the moving image.

    Measured on at most 64 evenly spread positions per axis of the fixed
    grid (shapes are the spatial ones: no colour axis).
    """
    n = transform.ndim
    fs, ms = check_spacing(fixed_spacing, n, "first"), check_spacing(moving_spacing, n, "second")
    axes = [np.linspace(0, s - 1, min(int(s), 64)) for s in fixed_shape[:n]]
    grid = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, n)
    a, off = _index_affine(transform.matrix, fs, ms)
    q = grid @ a.T + off
    hi = np.asarray(moving_shape[:n], np.float64) - 1.0
    inside = np.all((q >= -0.5) & (q <= hi + 0.5), axis=1)
    return float(np.mean(inside))


def check_overlap(
    transform: Transform,
    fixed_shape: Sequence[int],
    moving_shape: Sequence[int],
    *,
    fixed_spacing: Sequence[float] | None = None,
    moving_spacing: Sequence[float] | None = None,
    names: tuple[str, str] = ("first", "second"),
) -> float:
    """The overlap (:func:`overlap_fraction`), refused under :data:`MIN_OVERLAP`.

    Parameters
    ----------
    transform
        Fixed world -> moving world.
    fixed_shape, moving_shape
        The spatial shapes (no colour axis).
    fixed_spacing, moving_spacing
        Per axis, numpy order (default 1).
    names
        What the message calls the fixed and the moving input.

    Returns
    -------
    float
        The fraction of the fixed grid covered by the moved image (0..1).

    Raises
    ------
    RegistrationError
        When the moved image covers under :data:`MIN_OVERLAP` of the fixed
        grid, naming both inputs.
    """
    overlap = overlap_fraction(transform, fixed_shape, moving_shape,
                               fixed_spacing=fixed_spacing, moving_spacing=moving_spacing)  # fmt: skip
    if overlap < MIN_OVERLAP:
        raise RegistrationError(
            f"moved by this transform, {names[1]} covers {100 * overlap:.0f} % of {names[0]} "
            f"(under {100 * MIN_OVERLAP:.0f} %): refused"
        )
    return overlap


def check_transform(transform: Transform, names: tuple[str, str] = ("first", "second")) -> None:
    """Refuse a transform that collapses: a scale outside MIN_SCALE..MAX_SCALE, a
    reflection, a shear for a rigid or similarity transform, or one above MAX_SHEAR.

    Raises
    ------
    RegistrationError
        Naming the inputs and the offending value.
    """
    _q, scales, shear = _linear_parts(transform.matrix)
    what = f"registering {names[1]} onto {names[0]}"
    if np.linalg.det(transform.matrix[:-1, :-1]) <= 0:
        raise RegistrationError(f"{what} gave a mirrored or collapsed transform: refused")
    if np.any(scales < MIN_SCALE) or np.any(scales > MAX_SCALE):
        raise RegistrationError(
            f"{what} gave scales {', '.join(f'{s:.3g}' for s in scales)}, outside "
            f"{MIN_SCALE}..{MAX_SCALE}: the transform collapses; refused"
        )
    largest = float(np.max(np.abs(shear))) if shear.size else 0.0
    limit = MAX_SHEAR if transform.kind == "affine" else 1e-6
    if largest > limit:
        raise RegistrationError(
            f"{what} gave a shear of {largest:.3g} (a {transform.kind} transform allows "
            f"{'at most ' + str(MAX_SHEAR) if transform.kind == 'affine' else 'none'}): refused"
        )


def affine_slab(
    matrix: np.ndarray,
    offset: np.ndarray,
    start: Sequence[int],
    shape: Sequence[int],
    source_shape: Sequence[int],
    *,
    margin: int = 0,
    tol: float | None = None,
) -> tuple[slice, ...]:
    """The slab of source planes that a block of output planes samples under an affine map.

    Output index ``i`` of the block ``start`` .. ``start + shape`` samples source
    index ``matrix @ i + offset``. On each axis of ``source_shape`` (the first
    axes of the source), the slab runs from the plane below the block's lowest
    point to the one above its highest (an affine map: its extremes are at the
    block's corners), ``margin`` planes more on each side, clipped to the source.

    Parameters
    ----------
    tol
        None: the block misses the source where all its points lie more than
        one plane beyond it (linear interpolation against a constant outside).
        A number: where they lie beyond its pixel extent (+-0.5 around the
        planes, as napari draws them), with ``tol`` of slack there and at the
        slab's ends.

    Returns
    -------
    tuple of slice
        One per axis of ``source_shape``; empty (start == stop) on an axis
        the block misses.
    """
    origin = offset + matrix @ np.asarray(start, float)
    corners = np.array(list(itertools.product(*(sorted({0, k - 1}) for k in shape))), float)
    slack, reach = (0.0, 1.0) if tol is None else (tol, 0.5 + tol)
    box = []
    for k, size in enumerate(source_shape):
        mapped = corners @ matrix[k] + origin[k]
        lo = int(np.clip(np.floor(mapped.min() - slack) - margin, 0, size))
        hi = int(np.clip(np.ceil(mapped.max() + slack) + 1 + margin, lo + 1, size))
        missed = mapped.max() < -reach or mapped.min() > size - 1 + reach
        box.append(slice(lo, lo if missed else hi))
    return tuple(box)


def resample_slab(
    planes: np.ndarray,
    box: Sequence[slice],
    matrix: np.ndarray,
    offset: np.ndarray,
    start: Sequence[int],
    shape: Sequence[int],
    *,
    order: int = 1,
    mode: str = "constant",
    cval: float = 0.0,
) -> np.ndarray:
    """The output block ``start`` .. ``start + shape`` (see :func:`affine_slab`) resampled
    from ``planes``, the source's slab ``box`` (whole on the axes after it).

    :func:`scipy.ndimage.affine_transform` with ``order``, ``mode`` and ``cval``,
    in the planes' dtype, without a spline prefilter (for an order above 1,
    ``planes`` holds the spline's coefficients). A last axis beyond the
    matrix's holds channels, resampled one at a time.
    """
    if planes.ndim > len(matrix):
        return np.stack([resample_slab(planes[..., c], box, matrix, offset, start, shape,
                                       order=order, mode=mode, cval=cval)
                         for c in range(planes.shape[-1])], axis=-1)  # fmt: skip
    corner = np.zeros(len(matrix))
    corner[: len(box)] = [s.start for s in box]
    shift = offset + matrix @ np.asarray(start, float) - corner
    return ndimage.affine_transform(planes, matrix, shift, tuple(shape), order=order,
                                    mode=mode, cval=cval, prefilter=False)  # fmt: skip


def apply_registration(
    transform: Transform,
    moving: Any,
    fixed_shape: Sequence[int],
    *,
    fixed_spacing: Sequence[float] | None = None,
    moving_spacing: Sequence[float] | None = None,
    order: int = 1,
) -> np.ndarray:
    """Resample ``moving`` onto the fixed grid.

    Parameters
    ----------
    transform
        Fixed world -> moving world.
    moving
        (H, W), (H, W, 3|4) colour or (Z, Y, X); never modified.
    fixed_shape
        The fixed grid's spatial shape (a colour axis, if given, is ignored).
    fixed_spacing, moving_spacing
        Per axis, numpy order (default 1).
    order
        Spline order (1: linear).

    Returns
    -------
    numpy.ndarray
        The fixed grid's shape (plus the colour axis), ``moving``'s dtype and
        range (integers rounded); outside the moving image its minimum. A
        volume is resampled one output plane at a time from the slab of moving
        planes that plane samples (memory: the output, one float64 slab and
        one float64 plane; never a copy of the whole moving volume).

    Raises
    ------
    RegistrationError
        A transform of another dimension than the image, or 64-bit integers
        beyond 2**53 (float64 arithmetic would change them).
    """
    arr = np.asarray(moving)
    n = transform.ndim
    if spatial_ndim(arr, "the moving image") != n:
        raise RegistrationError(f"a {n}-D transform cannot move an image of shape {arr.shape}")
    fs, ms = check_spacing(fixed_spacing, n, "first"), check_spacing(moving_spacing, n, "second")
    shape = tuple(int(s) for s in fixed_shape[:n])
    a, off = _index_affine(transform.matrix, fs, ms)
    lo, hi = (arr.min(), arr.max()) if arr.size else (arr.dtype.type(0), arr.dtype.type(0))
    largest = max(abs(int(lo)), abs(int(hi))) if arr.dtype.kind in "iu" else 0
    if arr.dtype.itemsize == 8 and largest > _EXACT:
        raise RegistrationError(
            f"the moving image ({arr.dtype}) holds values up to {largest}, beyond 2**53: "
            "resampling in float64 would change them; convert it to float64 (accepting the "
            "rounding) or scale it down first"
        )
    lo, hi = float(lo), float(hi)
    colour = _is_colour(arr) and n == 2
    channels = np.moveaxis(arr, -1, 0) if colour else arr[None]
    out = np.full((len(channels), *shape), lo, dtype=arr.dtype)
    block = shape if n == 2 else (1, *shape[1:])  # a volume: one output plane at a time
    starts = [(0, 0)] if n == 2 else [(z, 0, 0) for z in range(shape[0])]
    margin = order + (_SPLINE_MARGIN if order > 1 else 0)
    for c, channel in enumerate(channels):
        for start in starts:
            box = affine_slab(a, off, start, block, channel.shape[: n - 2], margin=margin)
            if any(s.start == s.stop for s in box):
                continue  # the plane misses the volume: its minimum
            data = np.asarray(channel[box], np.float64)
            if order > 1:
                data = ndimage.spline_filter(data, order=order)
            values = resample_slab(data, box, a, off, start, block, order=order, cval=lo)
            del data  # one slab in memory at a time
            into = out[c, start[0] : start[0] + block[0]]
            if arr.dtype.kind == "f":  # linear interpolation stays in range; higher orders may not
                into[...] = np.clip(values, lo, hi)
            else:
                into[...] = cast_to_dtype(values, arr.dtype)
    return np.moveaxis(out, 0, -1) if colour else out[0]


# -- SimpleITK ------------------------------------------------------------------------


def _sitk_image(x: np.ndarray, spacing: tuple[float, ...]) -> Any:
    import SimpleITK as sitk

    img = sitk.GetImageFromArray(np.ascontiguousarray(x, dtype=np.float32))
    img.SetSpacing([float(s) for s in reversed(spacing)])  # ITK: (x, y, z)
    return img


def _numpy_matrix(tx: Any, n: int) -> np.ndarray:
    """The homogeneous numpy-order matrix of an ITK transform (evaluated on n + 1 points)."""
    origin = np.asarray(tx.TransformPoint([0.0] * n))
    m = np.eye(n + 1)
    for j, e in enumerate(np.eye(n).tolist()):
        m[:n, j] = np.asarray(tx.TransformPoint(e)) - origin
    m[:n, n] = origin
    p = np.eye(n + 1)
    p[:n, :n] = p[:n, :n][::-1]  # numpy order <-> ITK order
    return p @ m @ p


def _new_transform(kind: str, n: int) -> Any:
    import SimpleITK as sitk

    if kind == "rigid":
        return sitk.Euler2DTransform() if n == 2 else sitk.Euler3DTransform()
    if kind == "similarity":
        return sitk.Similarity2DTransform() if n == 2 else sitk.Similarity3DTransform()
    return sitk.AffineTransform(n)


def _pyramid(shape: tuple[int, ...]) -> tuple[list[int], list[float]]:
    """Shrink factors (halving while the coarsest keeps MIN_LEVEL_SIZE px a side) and
    smoothing sigmas (in shrunk pixels of the finest level: half the factor)."""
    factors = [1]
    while min(shape) // (factors[0] * 2) >= MIN_LEVEL_SIZE and len(factors) < 4:
        factors.insert(0, factors[0] * 2)
    return factors, [f / 2.0 if f > 1 else 0.0 for f in factors]


def _method(n_pixels: int, *, levels: tuple[list[int], list[float]] | None = None) -> Any:
    import SimpleITK as sitk

    r = sitk.ImageRegistrationMethod()
    r.SetMetricAsMattesMutualInformation(numberOfHistogramBins=_BINS)
    r.SetMetricSamplingStrategy(r.RANDOM)
    r.SetMetricSamplingPercentage(min(1.0, _SAMPLES / max(n_pixels, 1)), SEED)
    r.SetInterpolator(sitk.sitkLinear)
    if levels is not None:
        r.SetShrinkFactorsPerLevel(levels[0])
        r.SetSmoothingSigmasPerLevel(levels[1])
        r.SmoothingSigmasAreSpecifiedInPhysicalUnitsOff()
    return r


def _metric(fixed: Any, moving: Any, tx: Any, n_pixels: int, names: tuple[str, str]) -> float:
    """The Mattes mutual information (ITK's sign) of ``moving`` through ``tx`` on ``fixed``;
    SimpleITK's errors become a RegistrationError naming the inputs."""
    r = _method(n_pixels)
    r.SetInitialTransform(tx, inPlace=False)
    try:
        return float(r.MetricEvaluate(fixed, moving))
    except RuntimeError as exc:  # e.g. too few samples inside both images
        raise RegistrationError(
            f"measuring how {names[1]} matches {names[0]} failed: "
            f"{str(exc).strip().splitlines()[-1]}"
        ) from None


def _optimise(
    fixed: Any, moving: Any, tx: Any, shape: tuple[int, ...], step: float,
    tick: Callable[[], bool], names: tuple[str, str], finest: int | None = None,
) -> str:  # fmt: skip
    """Optimise ``tx`` in place (multi-resolution, regular step gradient descent of Mattes
    mutual information); returns the optimiser's stop condition at the finest level.

    The levels run one at a time, each with its own first step, measured as the largest
    shift of a pixel it causes (the learning rate estimated from it): half a pixel of
    that level, between 1 and :data:`_FIRST_STEP` pixels of the finest. The optimiser's
    first move has this length whatever the gradient (it only shrinks where the
    gradient turns): a fixed learning rate in parameter units throws an exact start off
    (2 units of an affine matrix entry are a shift of hundreds of pixels), and a step of
    the coarse levels' size at the finest level, where the unsmoothed metric is rugged,
    leaves it with no way back. ``finest``: run only that many of the finest levels.
    ``tick`` is called after each iteration; when it returns False the registration
    stops (an exception raised in SimpleITK's callback would go to ``sys.excepthook``,
    napari's error dialog).
    """
    import SimpleITK as sitk

    n_pixels = int(np.prod(shape))
    stop = ""
    levels = list(zip(*_pyramid(shape)))
    for factor, sigma in levels[-finest:] if finest else levels:
        r = _method(n_pixels // factor ** len(shape), levels=([factor], [sigma]))
        first = step * float(np.clip(factor / 2.0, 1.0, _FIRST_STEP))
        r.SetOptimizerAsRegularStepGradientDescent(
            learningRate=first, minStep=1e-4 * step, numberOfIterations=_ITERATIONS,
            relaxationFactor=0.5, gradientMagnitudeTolerance=1e-8,
            estimateLearningRate=r.Once, maximumStepSizeInPhysicalUnits=first,
        )  # fmt: skip
        r.SetOptimizerScalesFromPhysicalShift()
        r.SetInitialTransform(tx, inPlace=True)
        stopped = False

        def on_iteration(r: Any = r) -> None:
            nonlocal stopped
            if not tick():
                stopped = True
                r.StopRegistration()

        r.AddCommand(sitk.sitkIterationEvent, on_iteration)
        try:
            r.Execute(fixed, moving)
        except RuntimeError as exc:  # e.g. every sample mapped outside the moving image
            raise RegistrationError(
                f"registering {names[1]} onto {names[0]} failed: "
                f"{str(exc).strip().splitlines()[-1]}"
            ) from None
        stop = str(r.GetOptimizerStopConditionDescription())
        if stopped:
            break
    return stop


def _phase_start(fx: np.ndarray, mv: np.ndarray, spacing: tuple[float, ...]) -> np.ndarray | None:
    """The world translation (fixed -> moving) measured by phase correlation, for images on
    one grid; None otherwise. Volumes are measured on block means of at most about
    :data:`_PHASE_VOXELS` voxels (a start: the optimiser refines it)."""
    if fx.shape != mv.shape:
        return None
    if fx.ndim == 2:
        from .alignment import estimate_shift

        shift = estimate_shift(fx, mv, upsample_factor=10)
    else:
        from skimage.registration import phase_cross_correlation

        k = max(1, int(np.ceil((fx.size / _PHASE_VOXELS) ** (1.0 / 3.0))))
        a = ndimage.gaussian_filter(_block_mean(fx, k), 1.0)
        b = ndimage.gaussian_filter(_block_mean(mv, k), 1.0)
        shift = k * phase_cross_correlation(a - a.mean(), b - b.mean(), upsample_factor=10,
                                            normalization=None)[0]  # fmt: skip
    return -np.asarray(shift, np.float64) * np.asarray(spacing)


def _block_mean(x: np.ndarray, k: int) -> np.ndarray:
    """``x`` reduced by the mean of k^ndim blocks (a trailing part of under k dropped), as
    float32 whose sample i is centred on index ``k * i + (k - 1) / 2``; ``x`` itself
    (float32) for k = 1."""
    if k == 1:
        return np.asarray(x, np.float32)
    cut = x[tuple(slice(0, (s // k) * k) for s in x.shape)]
    blocks = cut.reshape([v for s in cut.shape for v in (s // k, k)])
    return blocks.mean(axis=tuple(range(1, 2 * x.ndim, 2)), dtype=np.float64).astype(np.float32)


def register(
    fixed: Any,
    moving: Any,
    transform: str = "rigid",
    *,
    fixed_spacing: Sequence[float] | None = None,
    moving_spacing: Sequence[float] | None = None,
    initialise: str = "phase",
    resample: bool = True,
    fixed_name: str = "first",
    moving_name: str = "second",
    progress: Callable[[int], None] | None = None,
) -> Registration:
    """Register ``moving`` onto ``fixed`` by Mattes mutual information.

    Parameters
    ----------
    fixed, moving
        (H, W) grey or (H, W, 3|4) colour images (registered on their luma),
        or two (Z, Y, X) volumes; any shapes, never modified.
    transform
        ``"rigid"`` (rotation and translation), ``"similarity"`` (also one
        scale) or ``"affine"``.
    fixed_spacing, moving_spacing
        Each image's pixel spacing in numpy axis order (a number for all
        axes; default 1): a 4 mm PET volume onto a 1 mm MRI takes
        ``moving_spacing=4, fixed_spacing=1``.
    initialise
        ``"phase"``: also try the translation by phase correlation as the
        start where both images share one grid, keeping the better start;
        ``"centre"``: the centres of the images' extents only.
    resample
        Also return the moving image resampled onto the fixed grid.
    fixed_name, moving_name
        What messages call the inputs.
    progress
        Called with the number of iterations done, after each iteration; what
        it raises (a cancellation) stops the registration and is raised as it is.

    Returns
    -------
    Registration
        ``transform.matrix`` maps fixed world points to moving world points.

    Raises
    ------
    RegistrationError
        Naming the input(s): an unknown transform; a shape that is not 2-D,
        colour or 3-D, or a 2-D image with a volume; a bad spacing; NaN or
        infinite values; a constant image; no overlap at the start or under
        :data:`MIN_OVERLAP` at the end; a transform that collapses
        (:func:`check_transform`); a metric under twice its chance level (the
        metric of the fixed image and the moving image's pixels shuffled, at
        the kept transform): the images share no structure.

    Notes
    -----
    Where the optimiser ends with a worse metric than its start (an exact
    start: the metric of the end is a hair lower from interpolation), the
    start is kept: ``report.metric_after`` is the kept transform's metric and
    ``report.stop_reason`` says so.
    """
    import SimpleITK as sitk

    _check_kind(transform)
    if initialise not in ("phase", "centre"):
        raise RegistrationError(f"initialise must be 'phase' or 'centre', not {initialise!r}")
    names = (fixed_name, moving_name)
    fixed_arr, moving_arr = np.asarray(fixed), np.asarray(moving)
    n = _common_ndim(fixed_arr, moving_arr, names)
    fs = check_spacing(fixed_spacing, n, fixed_name)
    ms = check_spacing(moving_spacing, n, moving_name)
    fx, mv = _intensity(fixed_arr, fixed_name), _intensity(moving_arr, moving_name)

    threads = sitk.ProcessObject.GetGlobalDefaultNumberOfThreads()
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(1)  # sums in one order: reproducible
    try:
        f_img, m_img = _sitk_image(fx, fs), _sitk_image(mv, ms)
        start, before = _best_start(f_img, m_img, fx, mv, fs, ms, initialise, names)
        counter = _Iterations(progress)
        kept = sitk.Transform(start)  # a copy: the optimiser moves ``start`` in place
        final, stop = _optimise_stages(f_img, m_img, start, transform, fx.shape,
                                       min(*fs, *ms), counter, names)  # fmt: skip
        after = _metric(f_img, m_img, final, fx.size, names)
        if after <= before:  # ITK's sign: lower is better
            kept = final
        else:  # an exact start ends a hair worse (interpolation): the start is kept
            stop = f"{stop}; the start kept (its metric is better)"
        # the chance level: the same measure with the moving pixels shuffled (no structure)
        shuffled = np.random.default_rng(SEED).permutation(mv.ravel()).reshape(mv.shape)
        chance = _metric(f_img, _sitk_image(shuffled, ms), kept, fx.size, names)
    finally:
        sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(threads)

    result = Transform(transform, _numpy_matrix(kept, n))
    check_transform(result, names)
    overlap = check_overlap(result, fx.shape, mv.shape, fixed_spacing=fs, moving_spacing=ms,
                            names=names)  # fmt: skip
    _refuse_chance(min(before, after), chance, names)
    report = RegistrationReport(
        method="mattes", metric_before=before, metric_after=min(before, after),
        iterations=counter.done,
        converged="Maximum number of iterations" not in stop, stop_reason=stop, overlap=overlap,
    )  # fmt: skip
    moved = (apply_registration(result, moving_arr, fx.shape, fixed_spacing=fs,
                                moving_spacing=ms) if resample else None)  # fmt: skip
    return Registration(result, moved, report, fs, ms)


def _common_ndim(fixed: np.ndarray, moving: np.ndarray, names: tuple[str, str]) -> int:
    """The spatial dimensionality both images share (2 or 3), or a refusal naming them
    (also for a spatial side under :data:`MIN_SIDE`)."""
    n_fixed, n_moving = spatial_ndim(fixed, names[0]), spatial_ndim(moving, names[1])
    if n_fixed != n_moving:
        raise RegistrationError(
            f"cannot register {names[1]} ({n_moving}-D, shape {moving.shape}) onto "
            f"{names[0]} ({n_fixed}-D, shape {fixed.shape}): both must be 2-D or both 3-D"
        )
    for arr, name in zip((fixed, moving), names):
        if min(arr.shape[:n_fixed]) < MIN_SIDE:
            raise RegistrationError(
                f"{name} has shape {arr.shape}: registration needs at least {MIN_SIDE} px "
                "along each spatial axis"
            )
    return n_fixed


def _best_start(
    f_img: Any, m_img: Any, fx: np.ndarray, mv: np.ndarray, fs: tuple[float, ...],
    ms: tuple[float, ...], initialise: str, names: tuple[str, str],
) -> tuple[Any, float]:  # fmt: skip
    """The rigid start with the better metric, the images' centres matched or (``"phase"``,
    one grid) the phase-correlation translation, and its metric; refused without overlap."""
    import SimpleITK as sitk

    n = fx.ndim
    centred = sitk.CenteredTransformInitializer(
        f_img, m_img, _new_transform("rigid", n), sitk.CenteredTransformInitializerFilter.GEOMETRY
    )
    starts = [centred]
    shift = _phase_start(fx, mv, fs) if initialise == "phase" and fs == ms else None
    if shift is not None:
        phased = _new_transform("rigid", n)
        phased.SetFixedParameters(centred.GetFixedParameters())  # the same centre
        phased.SetTranslation([float(v) for v in shift[::-1]])
        starts.append(phased)
    before, best = min((_metric(f_img, m_img, t, fx.size, names), i) for i, t in enumerate(starts))
    start = Transform("rigid", _numpy_matrix(starts[best], n))
    if overlap_fraction(start, fx.shape, mv.shape, fixed_spacing=fs, moving_spacing=ms) == 0:
        raise RegistrationError(f"{names[1]} and {names[0]} do not overlap")
    return starts[best], before


class _Iterations:
    """Counts the optimiser's iterations for ``progress``; what ``progress`` raises (a
    cancellation) is kept, the run stopped, and raised as it is by :meth:`raise_kept`."""

    def __init__(self, progress: Callable[[int], None] | None) -> None:
        self.progress, self.done = progress, 0
        self.raised: BaseException | None = None

    def tick(self) -> bool:
        """Count an iteration; False once ``progress`` has raised (the run stops)."""
        if self.raised is not None:
            return False
        self.done += 1
        if self.progress is not None:
            try:
                self.progress(self.done)
            except BaseException as exc:  # raised after SimpleITK has stopped
                self.raised = exc
                return False
        return True

    def raise_kept(self) -> None:
        if self.raised is not None:
            raise self.raised


def _optimise_stages(
    f_img: Any, m_img: Any, start: Any, transform: str, shape: tuple[int, ...], step: float,
    counter: _Iterations, names: tuple[str, str],
) -> tuple[Any, str]:  # fmt: skip
    """Optimise the rigid ``start``, then (similarity, affine) the asked transform from where
    the rigid stage ended, on the two finest levels only (the coarse ones would first move
    it off the rigid optimum); the final SimpleITK transform and the stop condition."""
    stop = _optimise(f_img, m_img, start, shape, step, counter.tick, names)
    counter.raise_kept()
    if transform == "rigid":
        return start, stop
    stage = _new_transform(transform, len(shape))
    stage.SetCenter(start.GetCenter())  # starts where the rigid stage ended
    stage.SetMatrix(start.GetMatrix())
    stage.SetTranslation(start.GetTranslation())
    stop = _optimise(f_img, m_img, stage, shape, step, counter.tick, names, finest=2)
    counter.raise_kept()
    return stage, stop


def _refuse_chance(metric: float, chance: float, names: tuple[str, str]) -> None:
    """Refuse a registration whose mutual information (ITK's sign) stays under
    :data:`_CHANCE` times its chance level: the images share no structure."""
    if -metric < -_CHANCE * chance:
        raise RegistrationError(
            f"registering {names[1]} onto {names[0]} found a mutual information of "
            f"{-metric:.4f}, under {_CHANCE:g} x its chance level ({-chance:.4f}): "
            "the images share no structure it can use; try landmarks"
        )
