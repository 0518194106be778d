"""The "Focus stack" dock widget: one layer with a focus axis -> all-in-focus image.

Pick an image layer, its focus axis, a method (GIFNet, focus selection or a
classical baseline), the pair-folding strategy, and options (copy pixels from
the depth map's plane, align the planes first, keep the input dtype); Run
calls :func:`napari_gifnet.workflows.focus_stack.fuse_stack`, the function a console user
calls, in a napari worker thread. It adds (or updates) three layers:
``"<name> all-in-focus"``, ``"<name> depth"`` (the plane index of each
pixel) and ``"<name> confidence"``, with the input's scale and translate
minus the focus axis. Cancel stops between planes (or GIFNet bands).

:class:`JobWidget` holds the worker, progress and cancel plumbing shared
with the "Pansharpen" widget. torch is imported only when a job runs.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from magicgui.widgets import CheckBox, ComboBox, Container, FileEdit, Label, PushButton, SpinBox
from qtpy.QtCore import Qt

from ._progress import ProgressRelay, advance_bar

if TYPE_CHECKING:  # pragma: no cover
    import napari

__all__ = ["JobCancelled", "JobWidget", "StackWidget", "put_layer"]


class JobCancelled(Exception):
    """Raised in a job's progress callback when Cancel was pressed."""


@dataclass
class _Outcome:
    value: Any = None
    error: BaseException | None = None
    cancelled: bool = False


def put_layer(viewer: napari.Viewer, name: str, data: np.ndarray, **kwargs: Any) -> Any:
    """Update the image layer ``name`` in place, or add it (GUI thread)."""
    from napari.layers import Image

    old = next((ly for ly in viewer.layers if ly.name == name and isinstance(ly, Image)), None)
    rgb = bool(kwargs.get("rgb", False))
    if old is not None and old.rgb == rgb and old.data.ndim == data.ndim:
        old.data = data
        for key, value in kwargs.items():
            if key not in ("rgb", "name"):
                setattr(old, key, value)
        return old
    if old is not None:
        viewer.layers.remove(old)
    return viewer.add_image(data, name=name, **kwargs)


def method_choices() -> list[tuple[str, str]]:
    """(label, key) of the stack methods: GIFNet, focus selection, baselines."""
    from ..layer_fusion import method_choices as pair_methods

    gifnet, *rest = pair_methods()
    return [gifnet, ("Focus selection", "focus"), *rest]


class JobWidget(Container):
    """Base of the job widgets: image-layer pickers, Run / Cancel, status, worker."""

    def __init__(self, napari_viewer: napari.viewer.Viewer) -> None:
        super().__init__(labels=True)
        self.viewer = napari_viewer
        self.run_button = PushButton(text="Run")
        self.cancel_button = PushButton(text="Cancel", enabled=False)
        self.buttons = Container(
            widgets=[self.run_button, self.cancel_button], layout="horizontal", labels=False
        )
        self.buttons.margins = (0, 0, 0, 0)
        self.status = Label(label="", value="Ready.")
        self.status.native.setWordWrap(True)
        self.last_layers: list[Any] = []
        self.last_result: Any = None
        self.progress_bar: Any = None
        self._worker: Any = None
        self._cancel = threading.Event()
        self._outcome: _Outcome | None = None
        self._relay = ProgressRelay(self.native)
        self._relay.progressed.connect(self._on_progress, Qt.ConnectionType.QueuedConnection)
        self.run_button.changed.connect(self.run)
        self.cancel_button.changed.connect(self.cancel)
        self._pickers: list[ComboBox] = []
        events = self.viewer.layers.events
        for sig in (events.inserted, events.removed, events.moved, events.reordered):
            sig.connect(self._refresh_layers)

    def _image_choices(self, _widget: Any = None) -> list[tuple[str, Any]]:
        from napari.layers import Image

        return [(ly.name, ly) for ly in self.viewer.layers if isinstance(ly, Image)]

    def _refresh_layers(self, _event: Any = None) -> None:
        for picker in self._pickers:
            picker.reset_choices()

    @property
    def running(self) -> bool:
        """Whether a job is running."""
        return self._worker is not None

    # subclasses: prepare() -> (job(progress) -> value, label); finish(value) -> layers
    def prepare(self) -> tuple[Callable[[Callable[[int, int], None]], Any], str]:
        raise NotImplementedError

    def finish(self, value: Any) -> list[Any]:
        raise NotImplementedError

    def run(self) -> Any:
        """Start the job in a worker thread; returns the worker (None if refused)."""
        from napari.qt.threading import create_worker
        from napari.utils import progress

        if self.running:
            return None
        try:
            job, label = self.prepare()
        except (TypeError, ValueError) as exc:
            self._fail(f"Cannot run: {exc}")
            return None
        self._cancel = cancel = threading.Event()
        self._outcome = None
        emit = self._relay.progressed.emit

        def report(done: int, total: int) -> None:
            if cancel.is_set():
                raise JobCancelled("cancelled")
            emit(done, total)

        def body() -> _Outcome:
            try:
                return _Outcome(value=job(report))
            except JobCancelled:
                return _Outcome(cancelled=True)
            except Exception as exc:  # noqa: BLE001 - shown as a notification
                return _Outcome(error=exc)

        self.progress_bar = progress(total=0, desc=label)
        worker = create_worker(body, _ignore_errors=True)
        worker.returned.connect(self._on_returned)
        worker.errored.connect(lambda exc: self._on_returned(_Outcome(error=exc)))
        worker.finished.connect(self._on_finished)
        self._worker = worker
        self.run_button.enabled, self.cancel_button.enabled = False, True
        self.status.value = f"Running: {label} ..."
        worker.start()
        return worker

    def cancel(self) -> None:
        """Stop the running job at the next plane or band; adds no layer."""
        if self._worker is not None:
            self._cancel.set()
            self.status.value = "Cancelling ..."

    def _on_progress(self, done: int, total: int) -> None:
        if self.progress_bar is not None and self.running:
            advance_bar(self.progress_bar, done, total)

    def _on_returned(self, outcome: _Outcome) -> None:
        if self._outcome is None:
            self._outcome = outcome

    def _on_finished(self) -> None:
        outcome = self._outcome or _Outcome(cancelled=True)
        if self.progress_bar is not None:
            self.progress_bar.close()
            self.progress_bar = None
        self._worker = None
        self.run_button.enabled, self.cancel_button.enabled = True, False
        self.status.value = "Ready."
        if outcome.cancelled or self._cancel.is_set():
            self.status.value = "Cancelled; no layer was added."
        elif outcome.error is not None:
            self._fail(f"Failed: {outcome.error}")
        else:
            try:
                self.last_layers = self.finish(outcome.value)
            except Exception as exc:  # noqa: BLE001 - shown to the user
                self._fail(f"Could not add the result layers: {exc}")
                return
            self.last_result = outcome.value
            self.status.value = self.summary(outcome.value)

    def summary(self, value: Any) -> str:
        return f"Done in {getattr(value, 'elapsed', 0.0):.1f} s."

    def _fail(self, message: str) -> None:
        from napari.utils.notifications import show_error

        self.status.value = message
        show_error(message)


def _gifnet_controls(widget: JobWidget) -> None:
    from ...engine.devices import available_devices

    widget.device = ComboBox(label="device", choices=["auto", *available_devices()])
    widget.weights = FileEdit(label="weights", mode="r")
    widget.weights.tooltip = "GIFNet checkpoint file; empty: GIFNET_WEIGHTS, cache, download"


def _weights(widget: Any) -> str | None:
    return str(widget.weights.line_edit.value).strip() or None


class StackWidget(JobWidget):
    """Dock widget: fuse a focus stack layer into an all-in-focus image + depth map."""

    def __init__(self, napari_viewer: napari.viewer.Viewer) -> None:
        from ...workflows.focus_stack import DEFAULT_METHOD, DEFAULT_STRATEGY, STRATEGIES

        super().__init__(napari_viewer)
        self.layer = ComboBox(label="stack", choices=self._image_choices)
        self.axis = SpinBox(label="focus axis", value=0, min=0, max=3)
        self.method = ComboBox(label="method", choices=method_choices(), value=DEFAULT_METHOD)
        self.strategy = ComboBox(label="strategy", choices=list(STRATEGIES), value=DEFAULT_STRATEGY)
        self.select = CheckBox(text="copy pixels from the depth map's plane")
        self.align = CheckBox(text="align planes (translation)")
        self.align_scale = CheckBox(text="also correct focus breathing (scale)")
        self.keep_dtype = CheckBox(text="keep the input dtype (e.g. 16-bit)")
        _gifnet_controls(self)
        self._pickers = [self.layer]
        self.extend(
            [
                self.layer, self.axis, self.method, self.strategy, self.select, self.align,
                self.align_scale, self.keep_dtype, self.device, self.weights, self.buttons,
                self.status,
            ]
        )  # fmt: skip
        self.method.changed.connect(self._apply_method)
        self.align.changed.connect(self._apply_align)
        self._apply_method()
        self._apply_align()

    def _apply_align(self, _value: Any = None) -> None:
        self.align_scale.enabled = bool(self.align.value)

    def _apply_method(self, _value: Any = None) -> None:
        pairwise = self.method.value != "focus"
        self.strategy.enabled = self.select.enabled = pairwise
        self.device.enabled = self.weights.enabled = self.method.value == "gifnet"

    def _align_option(self) -> bool | str:
        """``fuse_stack``'s ``align``: False, True (translation) or "scale"."""
        if not self.align.value:
            return False
        return "scale" if self.align_scale.value else True

    def prepare(self) -> tuple[Callable, str]:
        from ...workflows.focus_stack import fuse_stack

        layer = self.layer.value
        if layer is None:
            raise ValueError("choose an image layer holding a focus stack")
        data = layer.data[0] if layer.multiscale else layer.data
        axis = int(self.axis.value)
        spatial = data.ndim - int(layer.rgb)
        if spatial != 3:
            raise ValueError(
                f"{layer.name!r} has shape {tuple(data.shape)}: a focus stack layer needs "
                "exactly three spatial axes (Z, Y, X), RGB allowed"
            )
        if axis >= spatial:
            raise ValueError(f"focus axis {axis} is not an axis of {layer.name!r}")
        options = {
            "method": self.method.value, "strategy": self.strategy.value,
            "select": bool(self.select.value), "align": self._align_option(),
            "keep_dtype": bool(self.keep_dtype.value), "weights": _weights(self),
            "device": self.device.value,
        }  # fmt: skip
        keep = [i for i in range(spatial) if i != axis]
        self._target = (
            layer.name,
            tuple(layer.scale[i] for i in keep),
            tuple(layer.translate[i] for i in keep),
            bool(layer.rgb),
            int(data.shape[axis]),
        )

        def job(progress: Callable[[int, int], None]) -> Any:
            return fuse_stack(data, axis, progress=progress, **options)

        return job, f"Focus stack: {layer.name}"

    def finish(self, value: Any) -> list[Any]:
        name, scale, translate, rgb, planes = self._target
        tf = {"scale": scale, "translate": translate}
        meta = dict(value.metadata, source_layer=name)
        image = value.image
        look: dict[str, Any] = {"rgb": True} if rgb else {"colormap": "gray"}
        if image.dtype.kind == "f":
            look["contrast_limits"] = (0.0, 1.0)
        return [
            put_layer(self.viewer, f"{name} all-in-focus", image, metadata=meta, **look, **tf),
            put_layer(
                self.viewer, f"{name} depth", value.depth_map, colormap="viridis",
                contrast_limits=(0, max(1, planes - 1)), metadata=meta, visible=False, **tf,
            ),
            put_layer(
                self.viewer, f"{name} confidence", value.confidence, colormap="magma",
                contrast_limits=(0.0, 1.0), metadata=meta, visible=False, **tf,
            ),
        ]  # fmt: skip

    def summary(self, value: Any) -> str:
        text = (
            f"Last run: {value.metadata['method']}, {value.metadata['planes']} planes, "
            f"{value.elapsed:.1f} s"
        )
        if value.metadata.get("aligned"):
            text += f"; largest shift {float(np.abs(value.shifts).max()):.2f} px"
            if value.metadata.get("alignment") == "scale":
                text += f", scales {value.scales.min():.4f}-{value.scales.max():.4f}"
        return text
