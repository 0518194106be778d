"""Registering one napari image layer onto another, and moving it there (no Qt):
:func:`register_layers`, :func:`move_layer` and :func:`registered_plan` (a fusion
through the registration, the layer untouched).

Coordinates: a registration's world is each image's index times its spacing,
both origins at index 0 (:mod:`napari_gifnet.workflows.registration`); a
layer's napari world adds its translate, rotate, shear and affine. The
conversions between the two go through each layer's whole data-to-world
matrix. napari, SimpleITK and scipy are imported only inside functions.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import numpy as np

from .fusion_plan import FusionPlan, LayerInput, _capture, _world_matrix, is_volume, plan_inputs

if TYPE_CHECKING:  # pragma: no cover
    from napari.layers import Image, Layer

    from ..workflows.registration import Registration, Transform

__all__ = [
    "layer_points", "move_layer", "register_layers", "registered_matrix", "registered_plan",
    "restore_layer",
]  # fmt: skip

#: The report method of a transform given rather than estimated.
GIVEN = "given transform"


def _spacing(inp: LayerInput, ndim: int) -> tuple[float, ...]:
    """A layer's pixel spacing along its last ``ndim`` spatial axes: its ``scale``."""
    return tuple(abs(float(s)) for s in inp.transforms["scale"][-ndim:])


def _array(inp: LayerInput, ndim: int, index: tuple[int, ...] | None) -> np.ndarray:
    """What registers of a layer: the whole volume (``ndim`` 3) or one plane, ``index``
    over the leading axes (clipped; None: the first plane)."""
    if ndim == 3:
        return np.asarray(inp.data)
    lead = inp.leading_shape
    if index is None:
        return inp.read((0,) * len(lead))
    return inp.read(tuple(int(np.clip(i, 0, n - 1)) for i, n in zip(index, lead)))


def _current_index(layer: Layer) -> tuple[int, ...] | None:
    """The leading (data) index of the plane the viewer shows of ``layer``, if known."""
    point = getattr(getattr(layer, "_data_slice", None), "point", None)
    if point is None:
        return None
    lead = [float(v) for v in point[: max(0, len(point) - 2)]]
    return tuple(int(round(v)) if np.isfinite(v) else 0 for v in lead)


def _embed(small: np.ndarray, ndim: int) -> np.ndarray:
    """A (k + 1) homogeneous matrix acting on the last k of ``ndim`` axes, the others kept."""
    k = small.shape[0] - 1
    out = np.eye(ndim + 1)
    out[ndim - k : ndim, ndim - k : ndim] = small[:k, :k]
    out[ndim - k : ndim, ndim] = small[:k, k]
    return out


def _index_map(registration: Registration) -> np.ndarray:
    """The (k + 1) matrix mapping a MOVING index to the FIXED index it lands on."""
    fs = np.diag([*registration.fixed_spacing, 1.0])
    ms = np.diag([*registration.moving_spacing, 1.0])
    return np.linalg.inv(fs) @ np.linalg.inv(registration.transform.matrix) @ ms


def registered_matrix(first_matrix: np.ndarray, registration: Registration) -> np.ndarray:
    """The second layer's data-to-world matrix that puts it on the first layer.

    Parameters
    ----------
    first_matrix
        The first (fixed) layer's whole data-to-world matrix, (ndim + 1) square.
    registration
        The second onto the first; its transform acts on the last 2 or 3 axes.

    Returns
    -------
    numpy.ndarray
        ``first_matrix @ (moving index -> fixed index)``: napari then draws each
        pixel of the second where the registration puts it on the first.
    """
    ndim = first_matrix.shape[0] - 1
    if registration.transform.ndim > ndim:
        raise ValueError(f"a {registration.transform.ndim}-D registration cannot move a "
                         f"{ndim}-D layer")  # fmt: skip
    return np.asarray(first_matrix, float) @ _embed(_index_map(registration), ndim)


def _to_world(points: Any, which: str) -> np.ndarray:
    """(N, D) napari world coordinates of a Points layer (its data through its whole
    transform) or of an array (taken as world coordinates already)."""
    from napari.layers import Points

    if isinstance(points, Points):
        data = np.asarray(points.data, float).reshape(-1, points.ndim)
        m = _world_matrix(points, points.ndim)
        return data @ m[:-1, :-1].T + m[:-1, -1]
    try:
        arr = np.asarray(points, float)
    except (TypeError, ValueError):
        raise TypeError(f"the {which} points must be a Points layer or an (N, D) array, "
                        f"got {type(points).__name__}") from None  # fmt: skip
    if arr.ndim != 2:
        raise ValueError(f"the {which} points must be (N, D) coordinates, not shape {arr.shape}")
    return arr


def layer_points(points: Any, image: LayerInput, ndim: int, which: str) -> np.ndarray:
    """Landmarks in the registration world of ``image``: (N, ``ndim``).

    ``points`` is a Points layer (its data in its own data coordinates,
    taken to napari's world by its transform) or an (N, D) array of napari
    world coordinates; they are taken to ``image``'s data coordinates (its
    inverse transform) and scaled by its spacing, so that they match the
    image's pixels as napari draws them.
    """
    world = _to_world(points, which)
    n = image.matrix.shape[0] - 1
    if world.shape[1] > n:
        world = world[:, -n:]
    elif world.shape[1] < n:
        world = np.hstack([np.zeros((len(world), n - world.shape[1])), world])
    inv = np.linalg.inv(image.matrix)
    data = world @ inv[:-1, :-1].T + inv[:-1, -1]
    return data[:, -ndim:] * np.asarray(_spacing(image, ndim))


def _given(transform: Transform, first: LayerInput, second: LayerInput, ndim: int) -> Registration:
    """A Registration for a transform given as it is (no estimation)."""
    from ..workflows.registration import Registration, RegistrationReport, overlap_fraction

    if transform.ndim != ndim:
        raise ValueError(
            f"a {transform.ndim}-D transform cannot register {second.name!r} onto "
            f"{first.name!r}, which register in {ndim}-D"
        )
    fs, ms = _spacing(first, ndim), _spacing(second, ndim)
    shapes = [(*inp.leading_shape, *inp.plane_shape)[-ndim:] for inp in (first, second)]
    overlap = overlap_fraction(transform, *shapes, fixed_spacing=fs, moving_spacing=ms)
    report = RegistrationReport(GIVEN, None, None, 0, True, GIVEN, overlap)
    return Registration(transform, None, report, fs, ms)


def register_inputs(
    first: LayerInput,
    second: LayerInput,
    transform: Any = "rigid",
    *,
    fixed_points: Any = None,
    moving_points: Any = None,
    index: tuple[int, ...] | None = None,
    progress: Callable[[int], None] | None = None,
) -> Registration:
    """:func:`register_layers` for captured layers (``index``: the leading index of the
    plane that registers, for layers that are neither 2-D nor volumes)."""
    from ..workflows.registration import Registration, Transform, register

    ndim = 3 if is_volume(first) and is_volume(second) else 2  # else one plane of each
    if isinstance(transform, Registration):
        return transform
    if isinstance(transform, Transform):
        return _given(transform, first, second, ndim)
    fs, ms = _spacing(first, ndim), _spacing(second, ndim)
    if (fixed_points is None) != (moving_points is None):
        raise ValueError("landmarks need points on both layers: give fixed_points and "
                         "moving_points, or neither")  # fmt: skip
    if fixed_points is not None:
        from ..workflows.landmarks import register_landmarks

        return register_landmarks(
            layer_points(fixed_points, first, ndim, "fixed"),
            layer_points(moving_points, second, ndim, "moving"),
            transform, fixed=_array(first, ndim, index), moving=_array(second, ndim, index),
            fixed_spacing=fs, moving_spacing=ms, resample=False,
        )  # fmt: skip
    return register(
        _array(first, ndim, index), _array(second, ndim, index), transform,
        fixed_spacing=fs, moving_spacing=ms, resample=False,
        fixed_name=repr(first.name), moving_name=repr(second.name), progress=progress,
    )  # fmt: skip


def register_layers(
    first: Image,
    second: Image,
    transform: str = "rigid",
    *,
    fixed_points: Any = None,
    moving_points: Any = None,
    progress: Callable[[int], None] | None = None,
) -> Registration:
    """Register the ``second`` image layer onto the ``first``.

    Parameters
    ----------
    first, second
        Image layers. Each one's ``scale`` is its pixel spacing. Two (Z, Y, X)
        layers register as volumes; 2-D layers as images; layers with other
        leading axes (time, or more than three) by the plane the viewer shows.
        Neither is modified.
    transform
        ``"rigid"``, ``"similarity"`` or ``"affine"``.
    fixed_points, moving_points
        Landmarks instead of intensities: two Points layers (or (N, D) arrays
        of napari world coordinates), the n-th point of each marking the same
        feature on the first and on the second layer as napari draws them.
    progress
        Called with the optimiser's iteration count (raise in it to stop).

    Returns
    -------
    Registration
        ``moved`` is None: :func:`move_layer` shows the result, a fusion
        resamples it.

    Raises
    ------
    TypeError
        A layer is not an image layer, or points neither a Points layer nor an array.
    ValueError
        :class:`napari_gifnet.workflows.registration.RegistrationError` (naming
        the layers): constant layers, no overlap, a transform that collapses,
        too few points, ...
    """
    a, b = _capture(first, "first"), _capture(second, "second")
    return register_inputs(
        a, b, transform, fixed_points=fixed_points, moving_points=moving_points,
        index=_current_index(first), progress=progress,
    )  # fmt: skip


def move_layer(layer: Image, registration: Registration, fixed: Image | None = None) -> np.ndarray:
    """Set ``layer``'s ``affine`` so that napari draws it where ``registration`` puts it.

    Parameters
    ----------
    layer
        The second (moving) layer of the registration; its data are untouched.
    registration
        From :func:`register_layers` (or any Registration of its data onto the
        first layer's, with the layers' spacings).
    fixed
        The first layer, whose whole world transform the moved layer follows;
        None takes it as drawn with ``scale = registration.fixed_spacing``, at
        the origin.

    Returns
    -------
    numpy.ndarray
        The previous affine matrix, for :func:`restore_layer`.
    """
    previous = np.array(layer.affine.affine_matrix, dtype=float)
    current = _world_matrix(layer, previous.shape[0] - 1)
    if fixed is not None:
        first_matrix = _capture(fixed, "first").matrix
    else:
        n, k = current.shape[0] - 1, registration.transform.ndim
        first_matrix = current.copy()  # leading axes as the layer has them
        first_matrix[:, n - k : n] = 0.0
        first_matrix[n - k : n, :] = 0.0
        first_matrix[n - k : n, n - k : n] = np.diag(registration.fixed_spacing)
    if first_matrix.shape != current.shape:
        raise ValueError(f"cannot move {layer.name!r} ({current.shape[0] - 1}-D) onto a "
                         f"{first_matrix.shape[0] - 1}-D layer")  # fmt: skip
    target = registered_matrix(first_matrix, registration)
    layer.affine = target @ np.linalg.inv(current) @ previous
    return previous


def restore_layer(layer: Image, previous_affine: np.ndarray) -> None:
    """Undo :func:`move_layer`: give ``layer`` back the affine it returned."""
    layer.affine = np.asarray(previous_affine, dtype=float)


def registered_plan(
    plan: FusionPlan,
    register: Any,
    *,
    index: tuple[int, ...] | None = None,
    progress: Callable[[int], None] | None = None,
) -> tuple[FusionPlan, Registration]:
    """The plan of a registered fusion: the second layer taken where the registration
    puts it, resampled once onto the first's grid (plane by plane for volumes).

    ``register`` is ``"rigid"``, ``"similarity"`` or ``"affine"`` (estimated
    now, on the plane ``index`` for layers that are neither 2-D nor volumes),
    a Registration or a Transform (taken as it is, with the layers' scales as
    spacings). The result equals fusing after :func:`move_layer` on the same
    registration.
    """
    registration = register_inputs(plan.first, plan.second, register, index=index,
                                   progress=progress)  # fmt: skip
    matrix = registered_matrix(plan.first.matrix, registration)
    if matrix.shape != plan.second.matrix.shape:
        raise ValueError(
            f"cannot register {plan.second.name!r} onto {plan.first.name!r}: they have "
            "different numbers of dimensions"
        )
    moved = replace(plan.second, matrix=matrix)
    return plan_inputs(plan.first, moved, plan.method), registration
