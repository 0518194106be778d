"""Planning the fusion of two napari image layers; reads no pixels.

:func:`prepare_fusion` captures each layer as a :class:`LayerInput` and checks
the pair, returning a :class:`FusionPlan`: plane by plane over the leading axes,
the second layer resampled onto the first's grid where their world transforms
differ. Used by :mod:`napari_gifnet.plugin.layer_fusion` (the run),
:mod:`.layer_registration` and :mod:`.check_view`; napari is imported only inside
functions.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ..methods.registry import output_name, task_method_key
from .resampling import TOL as _TOL
from .resampling import Resampling, VolumeResampling, _inside

if TYPE_CHECKING:  # pragma: no cover
    from napari.layers import Image, Layer

__all__ = ["FusionPlan", "LayerInput", "is_volume", "plan_inputs", "prepare_fusion"]

#: Axis labels that name time rather than depth.
_TIME_LABELS = ("t", "time", "frame", "frames")


@dataclass(frozen=True)
class LayerInput:
    """What a fusion needs of one image layer, captured on the GUI thread."""

    name: str
    data: Any  #: the layer's array (level 0 if multiscale), read a plane at a time
    rgb: bool
    leading_shape: tuple[int, ...]
    plane_shape: tuple[int, int]
    matrix: np.ndarray  #: (ndim + 1) square data-to-world matrix
    transforms: dict[str, Any]  #: scale, translate, rotate, shear, affine, units, axis_labels

    def read(self, index: tuple[int, ...]) -> np.ndarray:
        """One plane, (H, W) or (H, W, C), as a numpy array."""
        return np.asarray(self.data[index] if index else self.data)


@dataclass(frozen=True)
class FusionPlan:
    """Two checked layers and how to fuse them (see :func:`prepare_fusion`)."""

    first: LayerInput
    second: LayerInput
    resampling: Resampling | VolumeResampling | None
    method: str = "gifnet"  #: a key of :func:`napari_gifnet.methods.registry.task_method_names`

    @property
    def leading_shape(self) -> tuple[int, ...]:
        """Shape of the axes fused plane by plane (``()`` for 2-D layers)."""
        return self.first.leading_shape

    @property
    def plane_shape(self) -> tuple[int, int]:
        """(H, W) of the output: the first layer's."""
        return self.first.plane_shape

    @property
    def resamples_volume(self) -> bool:
        """Whether the second volume is resampled in 3-D (:class:`VolumeResampling`)."""
        return isinstance(self.resampling, VolumeResampling)

    @property
    def n_planes(self) -> int:
        """Number of planes fused."""
        return int(np.prod(self.leading_shape, dtype=np.int64))

    @property
    def output_name(self) -> str:
        """Name of the fused layer."""
        return output_name(self.first.name, self.second.name, self.method)

    def second_on_first(
        self, index: tuple[int, ...], prepare: Callable[[np.ndarray], np.ndarray] | None = None
    ) -> np.ndarray:
        """Plane ``index`` of the second layer as it is fused: read, ``prepare``d (e.g.
        mapped to 0..1) and resampled onto the first's grid when planned (a volume in
        3-D, reading only the planes that plane samples)."""
        if isinstance(self.resampling, VolumeResampling):
            return self.resampling.plane(self.second.data, index[0], self.plane_shape, prepare)
        plane = self.second.read(index)
        if prepare is not None:
            plane = prepare(plane)
        if self.resampling is not None:
            plane = self.resampling.apply(plane, self.plane_shape)
        return plane

    def plane_indices(self) -> Iterator[tuple[int, ...]]:
        """Indices over the leading axes (one empty tuple for a 2-D pair)."""
        return np.ndindex(*self.leading_shape)


def _world_matrix(layer: Layer, ndim: int) -> np.ndarray:
    """The layer's data-to-world transform (all of it) as a matrix."""
    origin = np.asarray(layer.data_to_world(np.zeros(ndim)), dtype=float)
    m = np.eye(ndim + 1)
    for i in range(ndim):
        m[:ndim, i] = np.asarray(layer.data_to_world(np.eye(ndim)[i]), dtype=float) - origin
    m[:ndim, ndim] = origin
    return m


def _transforms(layer: Any) -> dict[str, Any]:
    """The layer's scale, translate, rotate, shear and affine (copies)."""
    return {
        "scale": tuple(float(s) for s in layer.scale),
        "translate": tuple(float(t) for t in layer.translate),
        "rotate": np.array(layer.rotate, dtype=float),
        "shear": np.array(layer.shear, dtype=float),
        "affine": np.array(layer.affine.affine_matrix, dtype=float),
    }


def _capture(layer: Any, which: str) -> LayerInput:
    from napari.layers import Image

    if not isinstance(layer, Image):
        kind = type(layer).__name__
        name = getattr(layer, "name", None)
        what = f"{name!r} is a {kind}" if isinstance(name, str) else f"is a {kind}"
        shape = getattr(layer, "shape", None)
        if name is None and isinstance(shape, tuple):
            what += f" of shape {shape}"  # an array: named by type and shape, never dumped
        raise TypeError(f"the {which} input {what}, not an image layer")
    data = layer.data[0] if layer.multiscale else layer.data
    shape, rgb = tuple(int(s) for s in data.shape), bool(layer.rgb)
    spatial = shape[:-1] if rgb else shape
    if len(spatial) < 2:
        raise ValueError(f"the {which} input {layer.name!r} has shape {shape}: not an image")
    tf = _transforms(layer)
    for key in ("units", "axis_labels"):
        if hasattr(layer, key):
            tf[key] = tuple(getattr(layer, key))
    matrix = _world_matrix(layer, len(spatial))
    return LayerInput(layer.name, data, rgb, spatial[:-2], spatial[-2:], matrix, tf)


def _extent(inp: LayerInput, lead: int) -> str:
    h, w = inp.plane_shape
    pts = np.array([[*[0.0] * lead, y, x, 1.0] for y in (-0.5, h - 0.5) for x in (-0.5, w - 0.5)])
    world = (pts @ inp.matrix.T)[:, lead : lead + 2]
    lo, hi = world.min(axis=0), world.max(axis=0)
    return f"y {lo[0]:g}..{hi[0]:g}, x {lo[1]:g}..{hi[1]:g}"


def prepare_fusion(
    first: Image, second: Image, method: str = "gifnet", *, register: bool = False
) -> FusionPlan:
    """Check two image layers and plan their fusion; reads no pixel data.

    ``method`` is ``"gifnet"`` (default), a baseline of
    :data:`napari_gifnet.methods.classical.BASELINES` or a focus method of the
    tasks (:func:`napari_gifnet.methods.registry.task_method_names`); it names
    the output layer. Two (Z, Y, X) volumes (:func:`is_volume`) whose world
    transforms differ along Z (another Z step or offset, a tilt: a registered or
    moved second volume) are resampled in 3-D onto the first's grid, one output
    plane at a time, whatever their numbers of planes.

    ``register=True``: the second layer is to be registered onto the first
    (``iter_fusion(..., register=...)``), which plans the pair once it knows
    where the second goes; here the layers are only captured (checked to be
    image layers) and the plan has no resampling yet.

    Raises
    ------
    TypeError
        A layer is not an image layer.
    ValueError
        An unknown method; different numbers of dimensions or leading (Z / time) shapes; leading
        axes placed differently in world space; equal transforms but
        different sizes; no overlap in world space.
    """
    a, b = _capture(first, "first"), _capture(second, "second")
    if register:
        return FusionPlan(a, b, None, task_method_key(method))
    return plan_inputs(a, b, method)


def is_volume(inp: LayerInput) -> bool:
    """Whether a captured layer is one (Z, Y, X) volume: three spatial axes, the
    first not labelled as time."""
    if len(inp.leading_shape) != 1:
        return False
    labels = inp.transforms.get("axis_labels") or ("",)
    return str(labels[0]).strip().lower() not in _TIME_LABELS


def plan_inputs(a: LayerInput, b: LayerInput, method: str = "gifnet") -> FusionPlan:
    """:func:`prepare_fusion` for layers already captured (e.g. the second with the
    world transform a registration gives it); same checks and errors."""
    method = task_method_key(method)
    if is_volume(a) and is_volume(b):
        volume = _volume_plan(a, b, method)
        if volume is not None:
            return volume
    if a.leading_shape != b.leading_shape:
        same_nd = len(a.leading_shape) == len(b.leading_shape)
        what = "leading (Z / time) shapes" if same_nd else "numbers of dimensions"
        raise ValueError(
            f"the layers have different {what}: {a.name!r} is {a.leading_shape + a.plane_shape} "
            f"and {b.name!r} is {b.leading_shape + b.plane_shape}; each plane of the first is "
            "fused with the same plane of the second"
        )
    lead = len(a.leading_shape)
    nd = lead + 2
    t = np.linalg.inv(b.matrix) @ a.matrix  # first's data coordinates -> second's
    lead_ok = np.allclose(t[:lead], np.eye(nd + 1)[:lead], atol=_TOL)
    if not (lead_ok and np.allclose(t[lead:nd, :lead], 0, atol=_TOL)):
        raise ValueError(
            f"{a.name!r} and {b.name!r} differ in scale, offset or orientation along their "
            "leading (Z / time) axes; only the last two axes (Y, X) can be resampled, or all "
            "three of two (Z, Y, X) volumes"
        )
    m, off = t[lead:nd, lead:nd], t[lead:nd, nd]
    if np.allclose(m, np.eye(2), atol=_TOL) and np.allclose(off, 0, atol=1e-4):
        if a.plane_shape != b.plane_shape:
            (h1, w1), (h2, w2) = a.plane_shape, b.plane_shape
            raise ValueError(
                f"the layers differ in size: {a.name!r} is {h1} x {w1} and {b.name!r} is "
                f"{h2} x {w2} pixels at the same pixel size and position; crop or resize one, "
                "or set their scale / translate so that they line up in world space"
            )
        return FusionPlan(a, b, None, method)
    rows, cols = (np.arange(0, n, max(1, n // 512), dtype=float) for n in a.plane_shape)
    overlap = float(_inside(m, off, [rows, cols], b.plane_shape).mean())  # <= ~512 x 512 samples
    if overlap == 0:
        raise ValueError(
            f"the layers do not overlap in world space: {a.name!r} covers {_extent(a, lead)} "
            f"and {b.name!r} covers {_extent(b, lead)}; check their scale and translate"
        )
    return FusionPlan(a, b, Resampling(m.copy(), off.copy(), b.plane_shape, overlap), method)


def _volume_plan(a: LayerInput, b: LayerInput, method: str) -> FusionPlan | None:
    """The plan of two (Z, Y, X) volumes whose world transforms differ along Z (the
    second resampled in 3-D onto the first's grid), or None when they differ only in
    Y and X (the plane by plane plan applies)."""
    t = np.linalg.inv(b.matrix) @ a.matrix  # first's voxel coordinates -> second's
    if np.allclose(t[0], np.eye(4)[0], atol=_TOL) and np.allclose(t[1:3, 0], 0, atol=_TOL):
        return None
    m, off = t[:3, :3], t[:3, 3]
    source = (*b.leading_shape, *b.plane_shape)
    grid = [np.arange(0, n, max(1, n // 64), dtype=float) for n in (*a.leading_shape,
                                                                     *a.plane_shape)]  # fmt: skip
    overlap = float(_inside(m, off, grid, source).mean())  # <= ~64^3 samples
    if overlap == 0:
        raise ValueError(
            f"the volumes do not overlap in world space: {a.name!r} and {b.name!r}; "
            "check their scale and translate"
        )
    resampling = VolumeResampling(m.copy(), off.copy(), source, overlap)  # type: ignore[arg-type]
    return FusionPlan(a, b, resampling, method)
