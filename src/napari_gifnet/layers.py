"""Fusing napari image layers with GIFNet, without Qt.

The dock widget and the console helper :func:`fuse_layers` share this code:

1. :func:`prepare_fusion` (GUI thread, reads no pixels) checks two image
   layers and plans the job: plane by plane over leading axes (Z, time), RGB
   layers as colour, and resampling of the second layer onto the first's
   grid when their world transforms differ in the last two axes.
2. :func:`iter_fusion` (any thread) reads one plane of each layer at a time
   (``np.asarray`` per plane, so dask data is never loaded whole), fuses it
   with :func:`napari_gifnet.engine.fuse`, yields ``(planes done, planes)``
   and returns a :class:`FusionOutput`; :func:`run_fusion` runs it through.
3. :func:`add_fusion_layers` (GUI thread) adds or updates the layers.

napari, scipy and torch are imported only inside functions.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from dataclasses import replace as _replace
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import numpy as np

from ._layer_output import add_fusion_layers, pca_rgb, status_text
from ._resampling import TOL as _TOL
from ._resampling import Resampling, _inside

if TYPE_CHECKING:  # pragma: no cover
    import napari
    from napari.layers import Image, Layer

__all__ = [
    "FusionCancelled", "FusionOutput", "FusionPlan", "LayerInput", "Resampling",
    "add_fusion_layers", "fuse_layers", "iter_fusion", "method_choices", "method_key",
    "method_label", "output_name", "pca_rgb", "prepare_fusion", "run_fusion", "status_text",
]  # fmt: skip

#: Feature maps turned into layers, in order.
FEATURE_KEYS = ("shared", "multimodal", "photographic")
#: ``progress(done, total)``, counting bands over all planes.
Progress = Callable[[int, int], None]


class FusionCancelled(Exception):
    """Raised by a progress callback to stop a fusion (the widget's Cancel)."""


#: Display names of the fusion methods, GIFNet first, then the baselines.
METHOD_LABELS: dict[str, str] = {
    "gifnet": "GIFNet",
    "mean": "Mean",
    "max": "Max",
    "laplacian": "Laplacian",
    "dwt": "DWT",
    "guided": "Guided",
    "mertens": "Mertens",
}
#: Options that only GIFNet understands (ignored by the baselines).
GIFNET_ONLY_OPTIONS = ("weights", "device", "features")


def method_key(method: str) -> str:
    """The canonical (lower-case) key of a fusion method; ValueError if unknown.

    ``"gifnet"`` or a key of :data:`napari_gifnet.baselines.BASELINES`
    (case-insensitive; display names such as ``"GIFNet"`` work too).
    """
    from .baselines import BASELINES

    key = str(method).strip().lower()
    if key != "gifnet" and key not in BASELINES:
        raise ValueError(f"unknown fusion method {method!r}; valid: {['gifnet', *BASELINES]}")
    return key


def method_label(method: str) -> str:
    """Display name of a fusion method, e.g. ``"GIFNet"``, ``"Laplacian"``."""
    key = method_key(method)
    return METHOD_LABELS.get(key, key.capitalize())


def method_choices() -> list[tuple[str, str]]:
    """``(display name, key)`` of every method: GIFNet, then the baselines."""
    from .baselines import BASELINES

    return [(method_label(k), k) for k in ("gifnet", *BASELINES)]


def output_name(first: str, second: str, method: str = "gifnet") -> str:
    """Name of the fused layer: ``"<first> + <second> (<Method>)"``, e.g. ``(GIFNet)``."""
    return f"{first} + {second} ({method_label(method)})"


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
    resampling: Resampling | None
    method: str = "gifnet"  #: ``"gifnet"`` or a key of :data:`napari_gifnet.baselines.BASELINES`

    @property
    def leading_shape(self) -> tuple[int, ...]:
        """Shape of the axes fused plane by plane (``()`` for 2-D layers)."""
        return self.first.leading_shape

    @property
    def plane_shape(self) -> tuple[int, int]:
        """(H, W) of the output: the first layer's."""
        return self.first.plane_shape

    @property
    def n_planes(self) -> int:
        """Number of planes fused."""
        return int(np.prod(self.leading_shape, dtype=np.int64))

    @property
    def output_name(self) -> str:
        """Name of the fused layer."""
        return output_name(self.first.name, self.second.name, self.method)

    def plane_indices(self) -> Iterator[tuple[int, ...]]:
        """Indices over the leading axes (one empty tuple for a 2-D pair)."""
        return np.ndindex(*self.leading_shape)


@dataclass
class FusionOutput:
    """Result of :func:`iter_fusion`, ready for :func:`add_fusion_layers`."""

    plan: FusionPlan
    image: np.ndarray  #: leading + (H, W) or leading + (H, W, 3), float32 in [0, 1]
    features: dict[str, np.ndarray] = field(default_factory=dict)  #: (C,) + leading + (H, W)
    summaries: dict[str, np.ndarray] = field(default_factory=dict)  #: leading + (H, W, 3)
    metadata: dict[str, Any] = field(default_factory=dict)
    device: str = "cpu"
    elapsed: float = 0.0


def _world_matrix(layer: Layer, ndim: int) -> np.ndarray:
    """The layer's data-to-world transform (all of it) as a matrix."""
    origin = np.asarray(layer.data_to_world(np.zeros(ndim)), dtype=float)
    m = np.eye(ndim + 1)
    for i in range(ndim):
        m[:ndim, i] = np.asarray(layer.data_to_world(np.eye(ndim)[i]), dtype=float) - origin
    m[:ndim, ndim] = origin
    return m


def _capture(layer: Any, which: str) -> LayerInput:
    from napari.layers import Image

    if not isinstance(layer, Image):
        name, kind = getattr(layer, "name", layer), type(layer).__name__
        raise TypeError(f"the {which} input {name!r} is a {kind}, not an image layer")
    data = layer.data[0] if layer.multiscale else layer.data
    shape, rgb = tuple(int(s) for s in data.shape), bool(layer.rgb)
    spatial = shape[:-1] if rgb else shape
    if len(spatial) < 2:
        raise ValueError(f"the {which} input {layer.name!r} has shape {shape}: not an image")
    tf: dict[str, Any] = {
        "scale": tuple(float(s) for s in layer.scale),
        "translate": tuple(float(t) for t in layer.translate),
        "rotate": np.array(layer.rotate, dtype=float),
        "shear": np.array(layer.shear, dtype=float),
        "affine": np.array(layer.affine.affine_matrix, dtype=float),
    }
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


def prepare_fusion(first: Image, second: Image, method: str = "gifnet") -> FusionPlan:
    """Check two image layers and plan their fusion; reads no pixel data.

    ``method`` is ``"gifnet"`` (default) or a baseline of
    :data:`napari_gifnet.baselines.BASELINES`; it names the output layer.

    Raises
    ------
    TypeError
        A layer is not an image layer.
    ValueError
        An unknown method; different numbers of dimensions or leading (Z / time) shapes; leading
        axes placed differently in world space; equal transforms but
        different sizes; no overlap in world space.
    """
    method = method_key(method)
    a, b = _capture(first, "first"), _capture(second, "second")
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
            "leading (Z / time) axes; only the last two axes (Y, X) can be resampled"
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
    overlap = float(_inside(m, off, rows, cols, b.plane_shape).mean())  # <= ~512 x 512 samples
    if overlap == 0:
        raise ValueError(
            f"the layers do not overlap in world space: {a.name!r} covers {_extent(a, lead)} "
            f"and {b.name!r} covers {_extent(b, lead)}; check their scale and translate"
        )
    return FusionPlan(a, b, Resampling(m.copy(), off.copy(), b.plane_shape, overlap), method)


def iter_fusion(
    plan: FusionPlan,
    *,
    weights: Any = None,
    device: str = "auto",
    normalization: Any = "auto",
    features: bool = False,
    progress: Progress | None = None,
    task: str | None = None,
    method: str | None = None,
    lazy: bool | None = None,
    show: tuple[int, ...] | None = None,
) -> Generator[tuple[int, int], None, FusionOutput]:
    """Fuse a planned pair plane by plane, yielding ``(planes done, planes)``.

    The core of both the widget (in a napari ``thread_worker``) and
    :func:`fuse_layers`. Each plane is read with ``np.asarray`` (the second
    resampled when planned), normalised on its own and fused by
    :func:`napari_gifnet.baselines.fuse_with` with the plan's method
    (``method``, when given, replaces it): GIFNet gets ``weights``,
    ``device``, ``normalization`` and ``features``; a baseline only
    ``normalization`` (the GIFNet-only options are ignored). ``progress(done, total)`` counts
    bands over all planes; an exception raised in it (e.g.
    :class:`FusionCancelled`) stops the fusion. ``task`` is recorded in the
    provenance. Returns a :class:`FusionOutput` (via ``StopIteration``).

    ``lazy``: return the fused image as a Dask array computed chunk by chunk
    when it is viewed or saved (:func:`napari_gifnet.lazy.fuse_dask`), reading
    no pixel here. None (default): lazily when a layer holds a Dask or zarr
    array, the method is GIFNet, no feature layers are asked for and no
    resampling is needed; otherwise plane by plane now.

    ``show``: for a lazy result, the leading index of one plane to compute
    now (progress then counts its Dask tasks), so that the plane a viewer
    shows first is ready; the other planes stay lazy. Ignored otherwise.
    """
    from .baselines import fuse_with

    if method is not None and method_key(method) != plan.method:
        plan = _replace(plan, method=method_key(method))
    gifnet = plan.method == "gifnet"
    features = bool(features) and gifnet
    if lazy is None:
        from .lazy import is_lazy

        lazy = gifnet and not features and plan.resampling is None and (
            is_lazy(plan.first.data) or is_lazy(plan.second.data)
        )
    if lazy:
        yield 0, 1
        output = _lazy_output(plan, weights, device, normalization, task)
        if show is not None:
            from .lazy import compute_plane

            output.image, _ = compute_plane(output.image, show, progress)
            output.metadata["computed_plane"] = list(show)
        yield 1, 1
        return output
    start, n, lead = time.perf_counter(), plan.n_planes, plan.leading_shape
    options: dict[str, Any] = {"normalization": normalization}
    if gifnet:
        options.update(weights=weights, device=device, return_features=features)
    image: np.ndarray | None = None
    feats: dict[str, np.ndarray] = {}
    meta: dict[str, Any] = {}
    for i, idx in enumerate(plan.plane_indices()):
        a, b = plan.first.read(idx), plan.second.read(idx)
        if plan.resampling is not None:
            b = plan.resampling.apply(b, plan.plane_shape)

        def report(done: int, total: int, i: int = i) -> None:
            if progress is not None:
                progress(i * total + done, n * total)

        res = fuse_with(plan.method, a, b, progress=report, **options)
        if image is None:
            image, meta = np.empty(lead + res.image.shape, np.float32), res.metadata
        image[idx] = res.image
        for key in FEATURE_KEYS if features else ():
            f = res.features[key]
            if key not in feats:  # channels first, so the leading axes align with the image's
                feats[key] = np.empty((f.shape[0], *lead, *f.shape[1:]), np.float32)
            feats[key][(slice(None), *idx)] = f
        yield i + 1, n
    assert image is not None
    summaries = {key: pca_rgb(f) for key, f in feats.items()}
    elapsed = time.perf_counter() - start
    names = {"first": plan.first.name, "second": plan.second.name}
    inputs = {
        k: {**meta["inputs"][ab], "name": names[k]} for k, ab in (("first", "a"), ("second", "b"))
    }
    resampled = plan.resampling and {
        "layer": plan.second.name,
        "onto": plan.first.name,
        "order": 1,
        **{k: np.round(v, 9).tolist() for k, v in vars(plan.resampling).items()},
    }
    meta = {
        **meta,
        "method": method_label(plan.method),
        "inputs": inputs,
        "first_layer": plan.first.name,
        "second_layer": plan.second.name,
        "task": task,
        "shape": list(image.shape),
        "planes": n,
        "normalized_per_plane": n > 1,
        "resampled": resampled,
        "features": list(feats),
        "elapsed_s": round(elapsed, 4),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    return FusionOutput(plan, image, feats, summaries, meta, str(meta["device"]), elapsed)


def _lazy_output(
    plan: FusionPlan, weights: Any, device: str, normalization: Any, task: str | None
) -> FusionOutput:
    """The lazy branch of :func:`iter_fusion`: a Dask graph, nothing computed."""
    from .engine import _origin
    from .lazy import as_dask, fuse_dask
    from .weights import load_model

    if plan.method != "gifnet":
        raise ValueError(f"lazy fusion is only for GIFNet, not {method_label(plan.method)}")
    start = time.perf_counter()
    image = fuse_dask(
        as_dask(plan.first.data), as_dask(plan.second.data), weights=weights, device=device,
        normalization=normalization, rgb=(plan.first.rgb, plan.second.rgb),
    )  # fmt: skip
    from .devices import resolve_device

    dev = str(resolve_device(device))
    _, info = load_model(weights, device=dev)
    meta = {
        **_origin(info, dev),
        "method": method_label(plan.method),
        "lazy": True,
        "inputs": {"first": {"name": plan.first.name}, "second": {"name": plan.second.name}},
        "first_layer": plan.first.name,
        "second_layer": plan.second.name,
        "task": task,
        "shape": list(image.shape),
        "planes": plan.n_planes,
        "normalization": normalization if isinstance(normalization, str) else list(normalization),
        "normalized_per_plane": True,
        "resampled": None,
        "features": [],
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    elapsed = time.perf_counter() - start
    return FusionOutput(plan, image, {}, {}, meta, dev, elapsed)


def run_fusion(plan: FusionPlan, **options: Any) -> FusionOutput:
    """Run :func:`iter_fusion` (same options) to the end and return its output."""
    gen = iter_fusion(plan, **options)
    while True:
        try:
            next(gen)
        except StopIteration as stop:
            return stop.value


def _layer(viewer: napari.Viewer, layer: Any) -> Any:
    if not isinstance(layer, str):
        return layer
    if layer not in viewer.layers:
        names = ", ".join(repr(ly.name) for ly in viewer.layers) or "none"
        raise ValueError(f"no layer named {layer!r} in the viewer (layers: {names})")
    return viewer.layers[layer]


def fuse_layers(
    viewer: napari.Viewer,
    first: str | Image,
    second: str | Image,
    *,
    weights: Any = None,
    device: str = "auto",
    normalization: Any = "auto",
    features: bool = False,
    keep_previous: bool = False,
    progress: Progress | None = None,
    task: str | None = None,
    method: str = "gifnet",
) -> list[Image]:
    """Fuse two image layers of ``viewer`` (names or layers) and add the result.

    The dock widget's code path, run synchronously on the calling (GUI)
    thread: :func:`prepare_fusion` (``method``: ``"gifnet"`` or a baseline of
    :data:`napari_gifnet.baselines.BASELINES`, e.g. ``"laplacian"``; the
    baselines ignore ``weights``, ``device`` and ``features``),
    :func:`iter_fusion` (``weights``,
    ``device``, ``normalization``, ``features``, ``progress``, ``task``;
    raising in ``progress`` stops it) and :func:`add_fusion_layers`
    (``keep_previous``).

    >>> napari_gifnet.fuse_layers(viewer, "PET", "MRI", features=True)  # doctest: +SKIP

    Returns
    -------
    list of napari.layers.Image
        The fused layer, then any feature layers.
    """
    plan = prepare_fusion(_layer(viewer, first), _layer(viewer, second), method)
    output = run_fusion(
        plan,
        weights=weights,
        device=device,
        normalization=normalization,
        features=features,
        progress=progress,
        task=task,
    )
    return add_fusion_layers(viewer, output, keep_previous=keep_previous)
