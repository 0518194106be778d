"""Putting a fusion's output into a napari viewer (no Qt): the fused layer,
feature layers and their PCA RGB summaries, and the status line.

Part of :mod:`napari_gifnet.plugin.layer_fusion` (which re-exports these names).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from .fusion_plan import FusionPlan

if TYPE_CHECKING:  # pragma: no cover
    import napari
    from napari.layers import Image


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
    if "units" in tf:
        out["units"] = ("pixel", *tf["units"])
    if "axis_labels" in tf:
        out["axis_labels"] = ("channel", *tf["axis_labels"])
    return out


def _put(viewer: napari.Viewer, name: str, data: np.ndarray, replace: bool, **kw: Any) -> Image:
    """Update the image layer called ``name`` in place (if ``replace``), or add one."""
    from napari.layers import Image

    old = next((ly for ly in viewer.layers if ly.name == name and isinstance(ly, Image)), None)
    if not replace or old is None:
        layer = Image(data, name=name, **kw)
        viewer.add_layer(layer)
        return layer
    if old.rgb != bool(kw.get("rgb", False)) or old.data.ndim != data.ndim:
        layer = Image(data, name=name, **kw)  # cannot become RGB / change ndim in place
        index = viewer.layers.index(old)
        viewer.layers.remove(old)
        viewer.layers.insert(index, layer)
        return layer
    old.data = data
    for key in ("scale", "translate", "rotate", "shear", "affine", "units", "axis_labels"):
        if key in kw and hasattr(old, key):
            setattr(old, key, kw[key])
    old.contrast_limits, old.metadata = kw["contrast_limits"], kw["metadata"]
    return old


def add_fusion_layers(
    viewer: napari.Viewer, output: FusionOutput, *, keep_previous: bool = False
) -> list[Image]:
    """Add the fused image (and any feature layers) to ``viewer``; GUI thread.

    The fused layer is named ``"<first> + <second> (<Method>)"`` and takes the
    first input's transforms, gray colormap (grey output), contrast limits
    0..1 and the provenance as ``metadata``. A layer of that name is updated
    in place unless ``keep_previous`` (napari then suffixes the new one,
    e.g. ``" [1]"``). Feature layers ``"<name> features: <key>"`` are
    (C, ...) stacks and ``"<name> features: <key> (PCA RGB)"`` their hidden
    RGB summaries.

    Returns
    -------
    list of napari.layers.Image
        The fused layer, then the feature stacks, then the PCA summaries.
    """
    tf, replace = output.plan.first.transforms, not keep_previous
    rgb = output.image.ndim == len(output.plan.leading_shape) + 3
    look = {"rgb": True} if rgb else {"rgb": False, "colormap": "gray"}
    fused_kw = {**look, **tf, "contrast_limits": (0.0, 1.0), "metadata": dict(output.metadata)}
    fused = _put(viewer, output.plan.output_name, output.image, replace, **fused_kw)
    stacks, summaries = [], []
    keys = ("method", "weights_sha256", "device", "created")
    base = {k: output.metadata[k] for k in keys if k in output.metadata}
    for key, feat in output.features.items():
        lo, hi = np.percentile(feat.reshape(-1)[:: max(1, feat.size // 200_000)], [0.5, 99.5])
        meta = {**base, "feature": key, "source_layer": fused.name, "channels": feat.shape[0]}
        name = f"{fused.name} features: {key}"
        stack_kw = {"colormap": "viridis", "metadata": meta, **_with_channel_axis(tf)}
        stack_kw["contrast_limits"] = (float(lo), float(hi) if hi > lo else float(lo) + 1.0)
        stacks.append(_put(viewer, name, feat, replace, **stack_kw))
        pca_kw = {"rgb": True, "visible": False, "contrast_limits": (0.0, 1.0), **tf}
        pca_kw["metadata"] = {**meta, "summary": "PCA RGB"}
        summaries.append(
            _put(viewer, f"{name} (PCA RGB)", output.summaries[key], replace, **pca_kw)
        )
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
