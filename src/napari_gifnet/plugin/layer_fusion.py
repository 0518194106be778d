"""Fusing napari image layers with GIFNet, without Qt.

The dock widget and the console helper :func:`fuse_layers` share this code:

1. :func:`~napari_gifnet.plugin.fusion_plan.prepare_fusion` (GUI thread,
   reads no pixels) checks two image layers and plans the job;
2. :func:`iter_fusion` (any thread) fuses the plan plane by plane (dask data
   is never loaded whole) and returns a :class:`FusionOutput`;
   :func:`run_fusion` runs it through;
3. :func:`~napari_gifnet.plugin.layer_output.add_fusion_layers` (GUI thread)
   adds or updates the layers.

napari, scipy and torch are imported only inside functions.
"""

from __future__ import annotations

import time
from collections.abc import Generator
from contextlib import nullcontext
from dataclasses import replace as _replace
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import numpy as np

from ..engine.options import FusionOptions
from ..methods.registry import (
    FOCUS_PYRAMID,
    FOCUS_SELECTION,
    task_method_key,
    task_method_label,
)
from ..util.progress import Progress
from .fusion_plan import FusionPlan, prepare_fusion
from .layer_output import FusionOutput, add_fusion_layers, pca_rgb

if TYPE_CHECKING:  # pragma: no cover
    import napari
    from napari.layers import Image

__all__ = ["fuse_layers", "iter_fusion", "run_fusion"]

#: Feature maps turned into layers, in order.
FEATURE_KEYS = ("shared", "multimodal", "photographic")


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
    show: tuple[int, ...] | None = None,
    per_plane: bool = False,
    align: str | None = None,
    register: Any = None,
) -> Generator[tuple[int, int], None, FusionOutput]:
    """Fuse a planned pair plane by plane, yielding ``(planes done, planes)``.

    The core of both the widget (in a napari ``thread_worker``) and
    :func:`fuse_layers`; returns a :class:`FusionOutput` (via ``StopIteration``).
    Each plane is read with ``np.asarray`` (the second resampled when planned),
    normalised and fused by :func:`napari_gifnet.workflows.tasks.fuse_method`
    with the plan's method (``method``, when given, replaces it). ``weights``,
    ``device``, ``normalization`` and ``features`` are checked here, once; each
    method takes of them what the method table says
    (:data:`napari_gifnet.methods.registry.METHODS`: GIFNet all, the others only
    ``normalization``). ``progress(done, total)`` counts bands over all planes;
    an exception raised in it (e.g. :class:`napari_gifnet.util.progress.Cancelled`)
    stops the fusion. ``task`` is recorded in the provenance, and for GIFNet
    ``weights_published`` (whether the checkpoint is the published one, by sha256).

    Normalisation of a layer with several planes (Z, T, ...): by default one
    range for the whole layer, each input its own (the rule of
    :func:`napari_gifnet.fuse_stack`: :func:`~napari_gifnet.workflows.planes.stack_range`,
    a pass reading one plane at a time), so a dimmer plane stays dimmer and
    intensities compare across planes; ``per_plane=True`` normalises every
    plane on its own. ``metadata["normalization_scope"]`` says which
    (``"layer"`` or ``"plane"``); ``normalized_per_plane`` is True only for
    the latter.

    ``align``: ``"translation"`` or ``"scale"`` moves each plane of the second
    layer onto the first's (:func:`napari_gifnet.workflows.pair_alignment.align_pair`),
    one entry per plane in ``metadata["alignment"]``. ``register``: as for
    :func:`fuse_layers` (layers that are neither 2-D nor volumes register on the
    plane ``show``, or the first); ``metadata["registration"]`` records the
    transform and its report.

    The fused image is a Dask array computed chunk by chunk when it is viewed
    or saved (:func:`napari_gifnet.engine.lazy.fuse_dask`), reading no pixel
    here, when a layer holds a Dask or zarr array, the method is GIFNet, no
    feature layers are asked for and no resampling, alignment or registration
    is needed; otherwise the planes are fused now. ``show``: for a lazy result,
    the leading index of one plane to compute now (progress then counts its
    Dask tasks), so that the plane a viewer shows first is ready; the other
    planes stay lazy. Ignored otherwise.
    """
    _refuse_empty_layers(plan)
    if method is not None and task_method_key(method) != plan.method:
        plan = _replace(plan, method=task_method_key(method))
    gifnet = plan.method == "gifnet"
    features = bool(features) and gifnet
    options = FusionOptions(weights=weights, device=device, normalization=normalization,
                            return_features=features)  # fmt: skip
    if align is not None:
        from ..workflows.alignment import align_mode

        if align_mode(align) is None:
            raise ValueError(f"align must be None, 'translation' or 'scale', not {align!r}")
    registration = None
    if register is not None:
        plan, registration = _register_plan(plan, register, align, show, progress)
    from ..engine.lazy import is_lazy

    lazy = (
        gifnet
        and not features
        and plan.resampling is None
        and align is None
        and registration is None
        and (is_lazy(plan.first.data) or is_lazy(plan.second.data))
    )
    scope = "plane" if per_plane or plan.n_planes == 1 else "layer"
    ranges = _layer_ranges(plan, normalization) if scope == "layer" else None
    if lazy:
        return (yield from _lazy_fusion(plan, options, task, ranges, scope, show, progress))
    start, n = time.perf_counter(), plan.n_planes
    if ranges is not None:  # the planes come in [0, 1], the layer's range applied
        options = options.but(normalization="auto")
    indices = list(plan.plane_indices())
    group = _planes_per_pass(plan, gifnet and not features, options.device, n)
    out = _Planes(plan.leading_shape, features)
    alignments: list[dict[str, Any]] = []  # one entry per plane moved by ``align``
    from ..engine import fusion_run

    with fusion_run() if gifnet else nullcontext():  # one heap, one set of maps for all planes
        for first in range(0, n, group):
            chunk = indices[first : first + group]
            pairs = [_read_pair(plan, idx, ranges, align, alignments) for idx in chunk]
            results = _fuse_group(plan.method, pairs, options, group, progress, first, n)
            for i, (idx, res) in enumerate(zip(chunk, results), start=first):
                out.put(idx, res)
                yield i + 1, n
    assert out.image is not None
    summaries = {key: pca_rgb(f) for key, f in out.feats.items()}
    elapsed = time.perf_counter() - start
    meta = _output_metadata(plan, out, task, scope, ranges, alignments, elapsed)
    meta["registration"] = None if registration is None else registration.provenance()
    return FusionOutput(plan, out.image, out.feats, summaries, meta, str(meta["device"]), elapsed)


def _register_plan(
    plan: FusionPlan,
    register: Any,
    align: str | None,
    show: tuple[int, ...] | None,
    progress: Progress | None,
) -> tuple[FusionPlan, Any]:
    """:func:`iter_fusion`'s registration: the registered plan and the Registration."""
    if align is not None:
        raise ValueError(
            f"register={register if isinstance(register, str) else type(register).__name__!r} "
            f"and align={align!r} both move the second layer: give one of them"
        )
    from .layer_registration import registered_plan

    def tick(iterations: int) -> None:  # lets a progress that raises stop the registration
        if progress is not None:
            progress(0, plan.n_planes)

    return registered_plan(plan, register, index=show, progress=tick)


def _lazy_fusion(
    plan: FusionPlan,
    options: FusionOptions,
    task: str | None,
    ranges: dict[str, dict[str, Any]] | None,
    scope: str,
    show: tuple[int, ...] | None,
    progress: Progress | None,
) -> Generator[tuple[int, int], None, FusionOutput]:
    """:func:`iter_fusion`'s lazy GIFNet result: a Dask graph, nothing computed but
    the plane ``show`` when given."""
    from ..engine.devices import resolve_device
    from ..engine.lazy import as_dask, compute_plane, fuse_dask
    from ..engine.result import provenance
    from ..model.weights import load_model

    yield 0, 1
    start = time.perf_counter()
    normalization = options.normalization
    first, second = plan.first, plan.second  # the layers say which axis is colour
    a, b = as_dask(first.data, first.rgb), as_dask(second.data, second.rgb)
    if ranges is not None:  # one range per layer, applied chunk by chunk
        a = a.map_blocks(_to_unit, ranges["first"], dtype=np.float32)
        b = b.map_blocks(_to_unit, ranges["second"], dtype=np.float32)
    image = fuse_dask(
        a, b, weights=options.weights, device=options.device,
        normalization="auto" if ranges is not None else normalization,
        rgb=(first.rgb, second.rgb),
    )  # fmt: skip
    dev = str(resolve_device(options.device))
    _, info = load_model(options.weights, device=dev)
    meta = {
        **provenance(info, dev),
        "method": task_method_label(plan.method),
        "lazy": True,
        "inputs": {"first": {"name": first.name}, "second": {"name": second.name}},
        "first_layer": first.name,
        "second_layer": second.name,
        "task": task,
        "shape": list(image.shape),
        "planes": plan.n_planes,
        "normalization": normalization if isinstance(normalization, str) else list(normalization),
        **_scope_metadata(scope, ranges, plan.n_planes),
        "resampled": None,
        "features": [],
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    meta.update(_weights_published(meta))
    elapsed = time.perf_counter() - start
    if show is not None:
        image, _ = compute_plane(image, show, progress)
        meta["computed_plane"] = list(show)
    yield 1, 1
    return FusionOutput(plan, image, {}, {}, meta, dev, elapsed)


def _read_pair(
    plan: FusionPlan,
    idx: tuple[int, ...],
    ranges: dict[str, dict[str, Any]] | None,
    align: str | None,
    alignments: list[dict[str, Any]],
) -> tuple[np.ndarray, np.ndarray]:
    """The planes ``idx`` of both layers, as fused: read, mapped by the layers' ranges
    (when given), the second resampled onto the first's grid (when planned) and
    aligned to it (``align``, its provenance appended to ``alignments``)."""
    a = plan.first.read(idx)
    if ranges is not None:
        a = _to_unit(a, ranges["first"])
    spec = None if ranges is None else ranges["second"]
    b = plan.second_on_first(idx, None if spec is None else lambda x: _to_unit(x, spec))
    if align is not None:
        from ..workflows.pair_alignment import align_pair

        b, moved = align_pair(a, b, align)
        alignments.append({"plane": list(idx), **moved.provenance()})
    return a, b


def _fuse_group(
    method: str,
    pairs: list[tuple[np.ndarray, np.ndarray]],
    options: FusionOptions,
    group: int,
    progress: Progress | None,
    first: int,
    planes: int,
) -> list[Any]:
    """The results of ``pairs``, planes ``first``, ``first + 1``, ... of ``planes``:
    one by one through the method table (``group`` 1, progress in its units), or
    GIFNet's batches of ``group`` planes (progress in planes)."""
    if group == 1:

        def report(done: int, total: int) -> None:
            if progress is not None:
                progress(first * total + done, planes * total)

        return [_fuse_plane(method, *pairs[0], options, report)]
    from ..engine.batch import fuse_planes

    results = fuse_planes(
        [p[0] for p in pairs], [p[1] for p in pairs], weights=options.weights,
        device=options.device, normalization=options.normalization, batch=group,
    )  # fmt: skip
    if progress is not None:
        progress(first + len(pairs), planes)
    return results


class _Planes:
    """The fused planes of a layer (and its feature maps), filled plane by plane.

    ``image`` has the layer's leading axes then the plane's; each feature map
    its channels first, so that its leading axes align with the image's.
    ``meta`` is the first plane's metadata.
    """

    def __init__(self, lead: tuple[int, ...], features: bool) -> None:
        self.lead, self.features = lead, features
        self.image: np.ndarray | None = None
        self.feats: dict[str, np.ndarray] = {}
        self.meta: dict[str, Any] = {}

    def put(self, idx: tuple[int, ...], res: Any) -> None:
        """Store the result ``res`` of the planes ``idx``."""
        if self.image is None:
            self.image = np.zeros(self.lead + res.image.shape, np.float32)
            self.meta = res.metadata
        self.image[idx] = res.image
        for key in FEATURE_KEYS if self.features else ():
            f = res.features[key]
            if key not in self.feats:
                self.feats[key] = np.zeros((f.shape[0], *self.lead, *f.shape[1:]), np.float32)
            self.feats[key][(slice(None), *idx)] = f


def _output_metadata(
    plan: FusionPlan,
    out: _Planes,
    task: str | None,
    scope: str,
    ranges: dict[str, dict[str, Any]] | None,
    alignments: list[dict[str, Any]],
    elapsed: float,
) -> dict[str, Any]:
    """The fused layer's provenance: the first plane's, with the layers' names, the
    method, the scope of the normalisation, the alignment and resampling."""
    meta, image = out.meta, out.image
    assert image is not None
    layers = (("first", "a", plan.first), ("second", "b", plan.second))
    inputs = {k: {**meta["inputs"][ab], "name": layer.name} for k, ab, layer in layers}
    resampled = plan.resampling and {
        "layer": plan.second.name,
        "onto": plan.first.name,
        "order": 1,
        **{k: np.round(v, 9).tolist() for k, v in vars(plan.resampling).items()},
    }
    return {
        **meta,
        "method": task_method_label(plan.method),
        "inputs": inputs,
        "first_layer": plan.first.name,
        "second_layer": plan.second.name,
        "task": task,
        "shape": list(image.shape),
        "planes": plan.n_planes,
        **_scope_metadata(scope, ranges, plan.n_planes),
        "alignment": alignments or None,
        "resampled": resampled,
        "features": list(out.feats),
        **_weights_published(meta),
        "elapsed_s": round(elapsed, 4),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def _weights_published(meta: dict[str, Any]) -> dict[str, bool]:
    """``{"weights_published": ...}``: whether a GIFNet result's checkpoint is the
    published one (by sha256); nothing for other methods."""
    if "weights_sha256" not in meta:
        return {}
    from ..model.weights import OFFICIAL_SHA256

    return {"weights_published": meta["weights_sha256"] == OFFICIAL_SHA256}


def _fuse_plane(
    method: str, a: np.ndarray, b: np.ndarray, options: FusionOptions, progress: Progress
) -> Any:
    """Fuse one plane with any method of the table
    (:func:`napari_gifnet.workflows.tasks.fuse_method`).

    A focus method's metadata gains the ``"device"`` and per-input
    ``"inputs"`` entries the layer output reads, and the reason it ran.
    """
    from ..workflows.tasks import fuse_method, resolve_method

    res = fuse_method(method, a, b, options, progress)
    if method in (FOCUS_SELECTION, FOCUS_PYRAMID):
        res.metadata.setdefault("method_reason", resolve_method(None, method)[1])
        res.metadata.setdefault("device", str(res.device))
        res.metadata.setdefault("inputs", {
            k: {"shape": list(x.shape), "dtype": str(x.dtype)} for k, x in (("a", a), ("b", b))
        })  # fmt: skip
    return res


def _refuse_empty_layers(plan: FusionPlan) -> None:
    """Refuse, before any work, a layer with an axis of length 0 (no plane or no pixel to
    fuse): a ValueError naming the layer, its shape and the empty axis."""
    for layer in (plan.first, plan.second):
        shape = tuple(int(n) for n in np.shape(layer.data))
        if 0 in shape:
            axis = shape.index(0)
            raise ValueError(
                f"layer {layer.name!r} has shape {shape}: axis {axis} has length 0, so there "
                "is nothing to fuse; give the layer at least one plane of at least one pixel"
            )


def _planes_per_pass(plan: FusionPlan, batchable: bool, device: str, planes: int) -> int:
    """How many planes go through the network together: a GPU batch for
    GIFNet without feature layers (:func:`napari_gifnet.engine.batch.batch_size`),
    else 1."""
    if not batchable or planes <= 1:
        return 1
    from ..engine.batch import batch_size
    from ..engine.devices import resolve_device

    return batch_size(*plan.plane_shape[:2], planes, resolve_device(device))


def _layer_ranges(plan: FusionPlan, normalization: Any) -> dict[str, dict[str, Any]] | None:
    """Each input layer's one normalisation range (None: the engine's per-image rule
    already gives every plane the same range: uint8/bool, ``"dtype"`` or fixed)."""
    from ..workflows.planes import stack_range

    out = {}
    for key, layer in (("first", plan.first), ("second", plan.second)):
        indices = list(np.ndindex(*layer.leading_shape))  # each layer's own planes
        dtype = np.dtype(layer.data.dtype)
        lo, hi, rule = stack_range(lambda i, layer=layer: layer.read(indices[i]), len(indices),
                                   dtype, normalization)  # fmt: skip
        out[key] = {"layer": layer.name, "rule": rule, "range": [lo, hi], "dtype": str(dtype)}
    if all(r["rule"] in ("dtype", "fixed") for r in out.values()):
        return None  # the engine maps every plane alike already
    return out


def _to_unit(plane: np.ndarray, spec: dict[str, Any]) -> np.ndarray:
    """A plane mapped by its layer's range to float32 [0, 1] (clipped)."""
    lo, hi = spec["range"]
    x = np.asarray(plane, dtype=np.float32)
    if x.ndim == 3 and x.shape[-1] == 4:
        x = x[..., :3]  # alpha dropped, as the engine does
    return np.clip((x - np.float32(lo)) / np.float32(hi - lo), 0.0, 1.0) if hi > lo else x * 0


def _scope_metadata(scope: str, ranges: dict[str, Any] | None, planes: int) -> dict[str, Any]:
    """``normalization_scope``, ``normalized_per_plane`` and the layers' ranges."""
    meta = {"normalization_scope": scope, "normalized_per_plane": scope == "plane" and planes > 1}
    return meta if ranges is None else {**meta, "layer_normalization": ranges}


def run_fusion(plan: FusionPlan, **options: Any) -> FusionOutput:
    """Run :func:`iter_fusion` (same options) to the end and return its output."""
    gen = iter_fusion(plan, **options)
    while True:
        try:
            next(gen)
        except StopIteration as stop:
            return stop.value


def _type_name(value: Any) -> str:
    """``"numpy.ndarray"``, ``"int"``: a value's type, for messages (never its contents)."""
    kind = type(value)
    module = kind.__module__
    return kind.__qualname__ if module == "builtins" else f"{module}.{kind.__qualname__}"


def _layer(viewer: napari.Viewer, layer: Any, which: str) -> Any:
    """The layer named ``layer`` in ``viewer``, or ``layer`` itself when it is a layer.

    Raises
    ------
    TypeError
        Neither a name nor a napari layer (the message gives the type and any
        shape, never the data).
    ValueError
        No layer of that name.
    """
    from napari.layers import Layer

    if isinstance(layer, Layer):
        return layer  # an Image layer, or another kind refused by prepare_fusion
    if not isinstance(layer, str):
        try:
            of = f" of shape {tuple(int(n) for n in layer.shape)}"
        except (AttributeError, TypeError, ValueError):  # no shape, or not one of sizes
            of = ""
        raise TypeError(
            f"the {which} layer must be a layer name or an Image layer, got "
            f"{_type_name(layer)}{of} (add an array with viewer.add_image first)"
        )
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
    per_plane: bool = False,
    align: str | None = None,
    register: Any = None,
) -> list[Image]:
    """Fuse two image layers of ``viewer`` (names or layers) and add the result.

    The dock widget's code path, run synchronously on the calling (GUI)
    thread: :func:`prepare_fusion` (``method``: ``"gifnet"``, a baseline of
    :data:`napari_gifnet.methods.classical.BASELINES`, e.g. ``"laplacian"``, or
    ``"focus"`` / ``"focus_pyramid"``, the multi-focus task's methods; all but
    GIFNet ignore ``weights``, ``device`` and ``features``),
    :func:`iter_fusion` (``weights``,
    ``device``, ``normalization``, ``features``, ``progress``, ``task``,
    ``per_plane`` (normalise each plane of a Z/T stack on its own instead of
    one range per layer), ``align`` (``"translation"`` or ``"scale"``: move
    the second layer onto the first first), ``register`` (see below); raising
    in ``progress`` stops it) and :func:`add_fusion_layers` (``keep_previous``).

    ``register``: ``"rigid"``, ``"similarity"`` or ``"affine"`` registers the
    second layer onto the first by mutual information
    (:func:`napari_gifnet.plugin.layer_registration.register_layers`: each
    layer's ``scale`` its spacing; 2-D layers as images, (Z, Y, X) layers as
    volumes, other layers by the plane the viewer shows), or give a
    ``Registration`` or ``Transform`` to use as it is; the second layer is
    resampled once onto the first's grid and the fused layer's
    ``metadata["registration"]`` records the transform. The layers are not
    changed (:func:`~napari_gifnet.plugin.layer_registration.move_layer` moves
    the second in the viewer; fusing then gives the same result). Not with
    ``align``.

    >>> napari_gifnet.fuse_layers(viewer, "PET", "MRI", features=True)  # doctest: +SKIP

    Returns
    -------
    list of napari.layers.Image
        The fused layer, then any feature layers.
    """
    fixed, moving = _layer(viewer, first, "first"), _layer(viewer, second, "second")
    plan = prepare_fusion(fixed, moving, method, register=register is not None)
    if isinstance(register, str) and align is None:  # the plane the viewer shows
        from .layer_registration import register_layers

        register = register_layers(fixed, moving, register)
    output = run_fusion(
        plan, weights=weights, device=device, normalization=normalization, features=features,
        progress=progress, task=task, per_plane=per_plane, align=align, register=register,
    )  # fmt: skip
    return add_fusion_layers(viewer, output, keep_previous=keep_previous)
