"""Putting a fusion's output into a napari viewer (no Qt): the fused layer,
feature layers and their PCA RGB summaries, and the status line.

Every layer added here says what it is in ``metadata["gifnet_layer"]``
(:data:`FUSED`, :data:`FEATURES` or :data:`FEATURE_SUMMARY`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from .fusion_plan import FusionPlan

if TYPE_CHECKING:  # pragma: no cover
    import napari
    from napari.layers import Image


#: ``metadata["gifnet_layer"]`` of a fused image layer.
FUSED = "fused image"
#: ``metadata["gifnet_layer"]`` of a (C, ...) feature stack.
FEATURES = "feature maps"
#: ``metadata["gifnet_layer"]`` of a feature stack's PCA RGB summary.
FEATURE_SUMMARY = "feature summary"


def is_fused_layer(metadata: Any) -> bool:
    """Whether a layer with this ``metadata`` holds a fused image.

    True for the fused layers of :func:`add_fusion_layers` and for other
    layers that record the ``"method"`` that made them (e.g. read back from
    a file), false for feature stacks, their summaries and anything without
    a method.

    Parameters
    ----------
    metadata : Mapping or None
        The layer's ``metadata``.

    Returns
    -------
    bool
    """
    if not isinstance(metadata, dict) or "method" not in metadata:
        return False
    kind = metadata.get("gifnet_layer", FUSED)
    return kind == FUSED and "feature" not in metadata and "summary" not in metadata


def feature_layer_name(fused: str, key: str, *, summary: bool = False) -> str:
    """Name of the feature stack ``key`` (or its PCA summary) of the fused layer ``fused``.

    What the layer is comes first, so that the layer list's short column
    shows it: ``"shared features: <fused>"``, ``"PCA shared features: <fused>"``.
    """
    return f"{'PCA ' if summary else ''}{key} features: {fused}"


def display_range(image: Any, rgb: bool) -> tuple[float, float]:
    """Contrast limits that show ``image`` whole: its own range, as napari sets for new layers.

    napari's ``calc_data_range`` (min and max, from a few planes of an nD
    array; [0, 1] for a constant image). A lazy (non-numpy) image is not
    read: it gets (0, 1), the range of every fusion result.
    """
    if not isinstance(image, np.ndarray) or image.size == 0:
        return 0.0, 1.0
    from napari.layers.utils.layer_utils import calc_data_range

    lo, hi = calc_data_range(image, rgb=rgb)
    return float(lo), float(hi) if hi > lo else float(lo) + 1.0


@dataclass
class FusionOutput:
    """Result of :func:`~napari_gifnet.plugin.layer_fusion.iter_fusion`, ready for :func:`add_fusion_layers`."""

    plan: FusionPlan
    image: np.ndarray  #: leading + (H, W) or leading + (H, W, 3), float32 in [0, 1]
    features: dict[str, np.ndarray] = field(default_factory=dict)  #: (C,) + leading + (H, W)
    summaries: dict[str, np.ndarray] = field(default_factory=dict)  #: leading + (H, W, 3)
    metadata: dict[str, Any] = field(default_factory=dict)
    device: str = "cpu"
    elapsed: float = 0.0


def pca_rgb(features: np.ndarray, *, samples: int = 20000, seed: int = 0) -> np.ndarray:
    """RGB summary of a (C, ...) feature stack: its first three principal components.

    The components come from a numpy SVD of ``samples`` randomly chosen
    pixels (fixed ``seed``); each is scaled so that the 0.5th..99.5th
    percentiles of the sample span [0, 1], then clipped. Signs are chosen so
    that each component's largest loading is positive.

    Returns
    -------
    numpy.ndarray
        float32, shape ``features.shape[1:] + (3,)``.
    """
    c = features.shape[0]
    flat = features.reshape(c, -1)
    n = flat.shape[1]
    idx = np.sort(np.random.default_rng(seed).choice(n, size=min(samples, n), replace=False))
    sample = flat[:, idx].T.astype(np.float64)
    mean = sample.mean(axis=0)
    _, _, vt = np.linalg.svd(sample - mean, full_matrices=False)
    comps = np.zeros((3, c))
    comps[: min(3, vt.shape[0])] = vt[:3]
    largest = comps[np.arange(3), np.argmax(np.abs(comps), axis=1)]
    comps *= np.where(largest < 0, -1.0, 1.0)[:, None]
    lo, hi = np.percentile((sample - mean) @ comps.T, [0.5, 99.5], axis=0)
    span = np.where(hi > lo, hi - lo, 1.0)
    out = np.empty((n, 3), np.float32)
    for s in range(0, n, 1 << 18):  # in chunks: no full float64 copy of the stack
        part = (flat[:, s : s + (1 << 18)].T.astype(np.float64) - mean) @ comps.T
        out[s : s + part.shape[0]] = np.clip((part - lo) / span, 0.0, 1.0)
    return out.reshape(features.shape[1:] + (3,))


def _with_channel_axis(tf: dict[str, Any]) -> dict[str, Any]:
    """Transforms for a layer with one extra (channel) axis in front."""

    def block(m: np.ndarray) -> np.ndarray:
        out = np.eye(m.shape[0] + 1)
        out[1:, 1:] = m
        return out

    shear = np.asarray(tf["shear"])
    out = dict(tf, scale=(1.0, *tf["scale"]), translate=(0.0, *tf["translate"]))
    out.update(rotate=block(tf["rotate"]), affine=block(tf["affine"]))
    # a shear vector lists the upper triangle row by row: the new first row is zeros
    out["shear"] = block(shear) if shear.ndim == 2 else np.r_[np.zeros(len(tf["scale"])), shear]
    for key, channel in (("units", "pixel"), ("axis_labels", "channel")):
        if key in tf:
            out[key] = (channel, *tf[key])
    return out


#: The transforms an updated layer takes from the new keywords.
_TRANSFORMS = ("scale", "translate", "rotate", "shear", "affine", "units", "axis_labels")


def put_image(
    viewer: napari.Viewer,
    name: str,
    data: Any,
    *,
    keep_previous: bool = False,
    below: Image | None = None,
    **kwargs: Any,
) -> Image:
    """Update the image layer called ``name`` in place, or add one; GUI thread.

    The one way every widget puts a result layer. An image layer called
    ``name`` takes the new data in place, with the transforms, contrast
    limits and metadata among ``kwargs``; it keeps its place in the layer
    list and what the user set on it (visibility, colormap, opacity). A new
    layer goes on top, or just below the layer ``below``.

    Parameters
    ----------
    viewer
        The napari viewer.
    name
        The layer's name.
    data
        The image (numpy or lazy).
    keep_previous
        Add a new layer even when one called ``name`` exists (napari then
        suffixes the new name, e.g. ``" [1]"``).
    below
        Where a new layer goes: just below this layer (default: on top).
    **kwargs
        Keywords of :class:`napari.layers.Image` (``rgb``, ``colormap``,
        ``contrast_limits``, transforms, ``metadata``, ``visible``, ...).

    Returns
    -------
    napari.layers.Image
        The updated or added layer.
    """
    from napari.layers import Image

    old = next((ly for ly in viewer.layers if ly.name == name and isinstance(ly, Image)), None)
    if keep_previous or old is None:
        layer = Image(data, name=name, **kwargs)
        if below is None:
            viewer.add_layer(layer)
        else:
            viewer.layers.insert(viewer.layers.index(below), layer)
        return layer
    rgb = bool(kwargs.get("rgb", False))
    if old.rgb != rgb or old.data.ndim != data.ndim:
        layer = Image(data, name=name, **kwargs)  # cannot become RGB / change ndim in place
        index = viewer.layers.index(old)
        viewer.layers.remove(old)
        viewer.layers.insert(index, layer)
        return layer
    old.data = data
    for key in _TRANSFORMS:
        if key in kwargs and hasattr(old, key):
            setattr(old, key, kwargs[key])
    if "contrast_limits" in kwargs:
        lo, hi = kwargs["contrast_limits"]
        full = display_range(data, rgb)  # as for a new layer
        old.contrast_limits_range = (min(lo, full[0]), max(hi, full[1]))
        old.contrast_limits = (lo, hi)
    if "metadata" in kwargs:
        old.metadata = kwargs["metadata"]
    return old


def add_fusion_layers(
    viewer: napari.Viewer, output: FusionOutput, *, keep_previous: bool = False
) -> list[Image]:
    """Add the fused image (and any feature layers) to ``viewer``; GUI thread.

    The fused layer is named ``"<first> + <second> (<Method>)"`` and takes the
    first input's transforms, gray colormap (grey output), contrast limits
    from its own range (:func:`display_range`, so a dim result is not shown
    black) and the provenance as ``metadata``. A layer of that name is
    updated in place unless ``keep_previous`` (napari then suffixes the new
    one, e.g. ``" [1]"``). Feature layers (:func:`feature_layer_name`) are
    (C, ...) stacks and their RGB summaries (first three principal
    components), all hidden and put just below the fused layer, which stays
    on top of them and is the selected layer.

    Returns
    -------
    list of napari.layers.Image
        The fused layer, then the feature stacks, then the PCA summaries.
    """
    tf, keep = output.plan.first.transforms, keep_previous
    rgb = output.image.ndim == len(output.plan.leading_shape) + 3
    look = {"rgb": True} if rgb else {"rgb": False, "colormap": "gray"}
    fused_kw = {**look, **tf, "contrast_limits": display_range(output.image, rgb)}
    fused_kw["metadata"] = {**output.metadata, "gifnet_layer": FUSED}
    image, name = output.image, output.plan.output_name
    fused = put_image(viewer, name, image, keep_previous=keep, **fused_kw)
    stacks, summaries = [], []
    keys = ("method", "weights_sha256", "device", "created")
    base = {k: output.metadata[k] for k in keys if k in output.metadata}
    for key, feat in output.features.items():
        lo, hi = np.percentile(feat.reshape(-1)[:: max(1, feat.size // 200_000)], [0.5, 99.5])
        meta = {**base, "feature": key, "source_layer": fused.name, "channels": feat.shape[0]}
        stack_kw = {"colormap": "viridis", "visible": False, **_with_channel_axis(tf)}
        stack_kw["metadata"] = {**meta, "gifnet_layer": FEATURES}
        stack_kw["contrast_limits"] = (float(lo), float(hi) if hi > lo else float(lo) + 1.0)
        name = feature_layer_name(fused.name, key)
        stacks.append(put_image(viewer, name, feat, keep_previous=keep, below=fused, **stack_kw))
        pca_kw = {"rgb": True, "visible": False, "contrast_limits": (0.0, 1.0), **tf}
        pca_kw["metadata"] = {**meta, "summary": "PCA RGB", "gifnet_layer": FEATURE_SUMMARY}
        name = feature_layer_name(fused.name, key, summary=True)
        pca = output.summaries[key]
        summaries.append(put_image(viewer, name, pca, keep_previous=keep, below=fused, **pca_kw))
    if output.features:
        viewer.layers.selection.active = fused  # selects it alone
    return [fused, *stacks, *summaries]


def status_text(output: FusionOutput) -> str:
    """One line on a finished fusion: device, size, planes, time, resampling."""
    plan = output.plan
    planes = f" x {plan.n_planes} planes" if plan.n_planes > 1 else ""
    text = f"Last run: {output.device}, {plan.plane_shape[0]} x {plan.plane_shape[1]}{planes}"
    text += f", {output.elapsed:.1f} s"
    if plan.resampling is not None:
        text += f"; {plan.second.name!r} resampled onto {plan.first.name!r}'s grid"
        text += f" ({plan.resampling.overlap:.0%} overlap)"
    return text
