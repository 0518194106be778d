"""What the "Fusion metrics" widget computes, without Qt widgets: the plane the
viewer shows (:func:`displayed_plane`, GUI thread) and the worker's body
(:func:`metrics_job`). Re-exported by :mod:`napari_gifnet.plugin._qt.metrics_widget`.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from ..metrics.fusion import fusion_metrics, outside_unit_range

if TYPE_CHECKING:  # pragma: no cover
    import napari
    from napari.layers import Image

__all__ = [
    "MetricsOutcome", "displayed_index", "displayed_plane", "metrics_job", "unusable_reason",
]  # fmt: skip


def displayed_index(
    layer: Any, viewer: Any, leading: tuple[int, ...], *, clip: bool = False
) -> tuple[int, ...]:
    """The index along ``layer``'s ``leading`` axes of the viewer's current position.

    The viewer's world position (``viewer.dims.point``) mapped to ``layer``'s
    data coordinates, rounded. A position outside the layer raises a
    ValueError, or with ``clip`` is moved to the nearest plane. Reads no
    pixels.

    Raises
    ------
    ValueError
        The layer has fewer dimensions than ``leading`` names, or (without
        ``clip``) the position is outside it.
    """
    coords = np.asarray(layer.world_to_data(list(viewer.dims.point)), dtype=float)
    if len(coords) < len(leading):
        raise ValueError(f"{layer.name!r} has no position along {len(leading)} leading axes")
    index = tuple(round(float(c)) for c in coords[: len(leading)])
    if clip:
        return tuple(min(max(i, 0), n - 1) for i, n in zip(index, leading))
    if any(not 0 <= i < n for i, n in zip(index, leading)):
        raise ValueError(
            f"the current position {index} is outside {layer.name!r} (leading shape {leading})"
        )
    return index


def displayed_plane(layer: Image, viewer: napari.viewer.Viewer) -> tuple[Any, tuple[int, ...]]:
    """The data and leading index of the 2-D plane of ``layer`` the viewer shows.

    Returns ``(data, index)``: ``data`` the layer's array (level 0 if
    multiscale) and ``index`` a tuple over its leading axes (empty for a
    2-D grey or RGB layer); ``np.asarray(data[index])`` is the plane. Reads
    no pixels.

    Raises
    ------
    ValueError
        An nD layer while the viewer does not show a 2-D view of the last
        two axes, or a position outside the layer.
    """
    data = layer.data[0] if layer.multiscale else layer.data
    spatial = data.ndim - (1 if layer.rgb else 0)
    if spatial < 2:
        raise ValueError(f"{layer.name!r} has shape {tuple(data.shape)}: not an image")
    if spatial == 2:
        return data, ()
    dims = viewer.dims
    if dims.ndisplay != 2 or tuple(dims.displayed) != (dims.ndim - 2, dims.ndim - 1):
        raise ValueError(
            f"{layer.name!r} has {spatial} dimensions: show a 2-D view of its last two axes "
            "(Y, X) to compute metrics on the displayed plane"
        )
    lead = tuple(int(s) for s in data.shape[: spatial - 2])
    return data, displayed_index(layer, viewer, lead)


@dataclass(frozen=True)
class MetricsSource:
    """One layer's plane to read in the worker."""

    name: str
    data: Any
    index: tuple[int, ...]

    def read(self) -> np.ndarray:
        return np.asarray(self.data[self.index] if self.index else self.data)


@dataclass
class MetricsOutcome:
    """What :func:`metrics_job` returns (errors are returned, never raised)."""

    rows: dict[str, dict[str, float]] = field(default_factory=dict)
    #: fused layer name -> why it was not scored (words for a GUI user)
    skipped: dict[str, str] = field(default_factory=dict)
    error: BaseException | None = None
    thread_id: int = 0  #: ``threading.get_ident()`` of the thread that computed


def unusable_reason(plane: np.ndarray) -> str | None:
    """Why the metrics cannot take this displayed plane as an image, in words; None if they can.

    Float data must lie in [0, 1] (the range of a fused image and of
    normalised inputs), and be finite; integer data is scaled by its type.
    """
    if plane.dtype.kind != "f" or plane.size == 0:
        return None
    if not np.isfinite(plane).all():
        return "it has missing (NaN) or infinite values"
    outside = outside_unit_range(plane)  # the metrics' own rule, worded for the GUI
    if outside is not None:
        lo, hi = outside
        return (
            f"its values run from {lo:.3g} to {hi:.3g}, outside the 0-1 range of an image "
            "(feature maps and other measurements are not fused images)"
        )
    return None


def metrics_job(
    first: MetricsSource, second: MetricsSource, fused: list[MetricsSource]
) -> MetricsOutcome:
    """Worker body: :func:`fusion_metrics` of each fused plane against the inputs.

    A fused plane that :func:`unusable_reason` refuses, or that
    :func:`fusion_metrics` refuses, goes into ``skipped`` with the reason;
    the others are scored. Unusable inputs (nothing can be scored) are the
    outcome's ``error``.
    """
    out = MetricsOutcome(thread_id=threading.get_ident())
    try:
        a, b = first.read(), second.read()
        for src, plane in ((first, a), (second, b)):
            reason = unusable_reason(plane)
            if reason is not None:
                raise ValueError(f"the input {src.name!r} cannot be measured: {reason}")
        for src in fused:
            plane = src.read()
            reason = unusable_reason(plane)
            if reason is not None:
                out.skipped[src.name] = reason
                continue
            try:
                out.rows[src.name] = fusion_metrics(plane, a, b)
            except ValueError as exc:
                out.skipped[src.name] = str(exc)
    except Exception as exc:  # noqa: BLE001 - shown to the user as a notification
        out.error = exc
    return out
