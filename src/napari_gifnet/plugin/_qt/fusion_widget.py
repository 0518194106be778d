"""The "GIFNet fusion" dock widget.

Two image-layer pickers (first / second input, labelled per task preset), a
swap button, task, method (GIFNet, then the classical baselines of
:data:`napari_gifnet.methods.classical.BASELINES`), normalisation, device, weights
file, "add feature layers" and "keep previous results" options, Run /
Cancel, and a status line. Device, weights and feature layers only apply to
GIFNet: they are disabled while a baseline is chosen.

The fusion runs in a napari ``thread_worker`` (a generator that yields once
per plane), never on the GUI thread; band-by-band progress is relayed to a
napari progress bar in the activity dock. The worker calls the same core as
:func:`napari_gifnet.fuse_layers`: :func:`napari_gifnet.plugin.layer_fusion.iter_fusion`;
layers are added on the GUI thread by
:func:`napari_gifnet.plugin.layer_fusion.add_fusion_layers`. Cancel stops the engine
between bands (a second or two) and adds nothing.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from magicgui.widgets import CheckBox, ComboBox, Container, FileEdit, Label, PushButton
from qtpy.QtCore import Qt

from ...engine.preprocess import NORMALIZATIONS
from ...methods.presets import get_preset, preset_choices
from ..layer_fusion import (
    GIFNET_ONLY_OPTIONS,
    FusionCancelled,
    FusionOutput,
    FusionPlan,
    add_fusion_layers,
    iter_fusion,
    method_choices,
    method_label,
    prepare_fusion,
    status_text,
)
from ._progress import ProgressRelay, advance_bar

if TYPE_CHECKING:  # pragma: no cover
    import napari
    from napari.layers import Image
    from napari.qt.threading import GeneratorWorker

__all__ = ["FusionWidget", "describe_error"]

_WEIGHT_FILTER = "Checkpoints (*.pth *.pt *.model *.ckpt);;All files (*)"


@dataclass
class _Outcome:
    output: FusionOutput | None = None
    error: BaseException | None = None
    cancelled: bool = False


def _fusion_job(
    plan: FusionPlan,
    options: dict[str, Any],
    cancel: threading.Event,
    report: Callable[[int, int], None],
) -> Generator[tuple[int, int], None, _Outcome]:
    """Worker body: :func:`iter_fusion`, with Cancel checked after each band.

    Every exception is returned as an :class:`_Outcome`: napari's generator
    workers would mistake a ``RuntimeError`` (e.g. missing weights) for a
    deleted worker and drop it.
    """

    def progress(done: int, total: int) -> None:
        if cancel.is_set():
            raise FusionCancelled("cancelled")
        report(done, total)

    try:
        output = yield from iter_fusion(plan, progress=progress, **options)
    except FusionCancelled:
        return _Outcome(cancelled=True)
    except Exception as exc:  # noqa: BLE001 - shown to the user as a notification
        return _Outcome(error=exc)
    return _Outcome(output=output, cancelled=cancel.is_set())


def shown_index(viewer: Any, layer: Any, leading: tuple[int, ...]) -> tuple[int, ...] | None:
    """The leading index of ``layer``'s plane the viewer shows now (None if unknown).

    :func:`~napari_gifnet.plugin.layer_metrics.displayed_index`, a position
    outside the layer moved to its nearest plane. A lazy fusion computes that
    plane in the worker, so adding the layer does not make the GUI thread
    compute it.
    """
    from ..layer_metrics import displayed_index  # at run time: not on widget import

    try:
        return displayed_index(layer, viewer, leading, clip=True)
    except Exception:  # noqa: BLE001 - only an optimisation; the layer stays lazy
        return None


def describe_error(exc: BaseException, method: str = "gifnet") -> str:
    """A one-line message for a failed fusion, as shown in the notification."""
    from ...model.weights import CheckpointError, WeightsUnavailableError

    if method != "gifnet":
        return f"{method_label(method)} fusion failed: {exc}"
    if isinstance(exc, MemoryError):
        return f"GIFNet ran out of memory: {exc}. Try the CPU, or a smaller image or crop."
    if isinstance(exc, CheckpointError):
        return f"Not a usable GIFNet checkpoint: {exc}"
    if isinstance(exc, (WeightsUnavailableError, FileNotFoundError)):
        return str(exc)  # these messages say what is missing and how to get it
    return f"GIFNet fusion failed: {exc}"


class FusionWidget(Container):
    """Dock widget that fuses two image layers of a napari viewer with GIFNet.

    Parameters
    ----------
    napari_viewer
        The viewer whose image layers are fused.

    Attributes
    ----------
    last_layers : list of napari.layers.Image
        Layers added or updated by the last successful run.
    last_output : FusionOutput or None
        The last successful run's output (arrays and provenance).
    """

    def __init__(self, napari_viewer: napari.viewer.Viewer) -> None:
        from ...engine.devices import available_devices

        super().__init__(labels=True)
        self.viewer = napari_viewer
        self.task = ComboBox(label="task", choices=preset_choices(), value="ivif")
        self.hint = Label(label="")
        self.first = ComboBox(label="first input", choices=self._image_choices)
        self.second = ComboBox(label="second input", choices=self._image_choices)
        self.swap = PushButton(text="Swap first and second")
        self.method = ComboBox(label="method", choices=method_choices(), value="gifnet")
        self.method.tooltip = "GIFNet, or a classical baseline (ignores device and weights)"
        self.normalization = ComboBox(label="normalisation", choices=list(NORMALIZATIONS))
        self.device = ComboBox(label="device", choices=["auto", *available_devices()])
        self.weights = FileEdit(label="weights", mode="r", filter=_WEIGHT_FILTER)
        self.weights.tooltip = "GIFNet checkpoint file; empty: GIFNET_WEIGHTS, cache, download"
        self.weights.line_edit.native.setPlaceholderText(
            "default (GIFNET_WEIGHTS, cache, download)"
        )
        self.features = CheckBox(text="add feature layers")
        self.keep_previous = CheckBox(text="keep previous results")
        self.run_button = PushButton(text="Run")
        self.cancel_button = PushButton(text="Cancel", enabled=False)
        buttons = Container(
            widgets=[self.run_button, self.cancel_button], layout="horizontal", labels=False
        )
        buttons.margins = (0, 0, 0, 0)
        self.status = Label(label="", value="Ready.")
        self.status.native.setWordWrap(True)
        self.hint.native.setWordWrap(True)
        self.extend(
            [
                self.task,
                self.hint,
                self.first,
                self.second,
                self.swap,
                self.method,
                self.normalization,
                self.device,
                self.weights,
                self.features,
                self.keep_previous,
                buttons,
                self.status,
            ]
        )
        self.last_layers: list[Image] = []
        self.last_output: FusionOutput | None = None
        self.progress_bar: Any = None
        self._worker: GeneratorWorker | None = None
        self._cancel = threading.Event()
        self._outcome: _Outcome | None = None
        self._method = "gifnet"  # the running (or last) job's method
        self._relay = ProgressRelay(self.native)
        self._relay.progressed.connect(self._on_progress, Qt.ConnectionType.QueuedConnection)
        self.task.changed.connect(self._apply_preset)
        self.method.changed.connect(self._apply_method)
        self.swap.changed.connect(self.swap_inputs)
        self.run_button.changed.connect(self.run)
        self.cancel_button.changed.connect(self.cancel)
        self._watched: set[Any] = set()
        self._alive = True
        events = self.viewer.layers.events
        for sig in (events.inserted, events.removed, events.moved, events.reordered):
            sig.connect(self._refresh_layers)
        self.native.destroyed.connect(self._teardown_callback())
        self._apply_preset()
        self._apply_method()
        self._refresh_layers()

    # ----------------------------------------------------------- layer pickers
    def _image_choices(self, _widget: Any = None) -> list[tuple[str, Any]]:
        from napari.layers import Image

        return [(ly.name, ly) for ly in self.viewer.layers if isinstance(ly, Image)]

    def _refresh_layers(self, _event: Any = None) -> None:
        """Re-list image layers (added, removed, moved or renamed ones)."""
        if not self._alive:
            return
        current = set(self.viewer.layers)
        for layer in current - self._watched:
            layer.events.name.connect(self._refresh_layers)
        for layer in self._watched - current:
            layer.events.name.disconnect(self._refresh_layers)
        self._watched = current
        self.first.reset_choices()
        self.second.reset_choices()
        images = [layer for _, layer in self._image_choices()]
        if self.first.value is None and images:
            self.first.value = images[0]
        if len(images) > 1 and self.second.value in (None, self.first.value):
            self.second.value = next(ly for ly in images if ly != self.first.value)

    def _teardown_callback(self) -> Callable[..., None]:
        """Disconnects from the viewer and cancels any run when the widget dies."""

        def teardown(*_: Any) -> None:
            self._alive = False
            self._cancel.set()
            events = self.viewer.layers.events
            for sig in (events.inserted, events.removed, events.moved, events.reordered):
                sig.disconnect(self._refresh_layers)
            for layer in self._watched:
                layer.events.name.disconnect(self._refresh_layers)
            self._watched = set()

        return teardown

    def swap_inputs(self) -> None:
        """Exchange the first and the second input."""
        first, second = self.first.value, self.second.value
        self.first.value, self.second.value = second, first

    def _apply_preset(self, _value: Any = None) -> None:
        preset = get_preset(self.task.value or "custom")
        custom = preset.key == "custom"
        self.first.label = "first input" if custom else f"first input ({preset.first})"
        self.second.label = "second input" if custom else f"second input ({preset.second})"
        self.hint.value = preset.hint
        self.hint.tooltip = preset.note
        self.normalization.value = preset.normalization

    def _apply_method(self, _value: Any = None) -> None:
        """Enable the GIFNet-only controls for GIFNet, disable them for a baseline."""
        gifnet = self.method.value == "gifnet"
        for name in GIFNET_ONLY_OPTIONS:
            getattr(self, name).enabled = gifnet

    # ------------------------------------------------------------------ runs
    @property
    def running(self) -> bool:
        """Whether a fusion is running."""
        return self._worker is not None

    def options(self) -> dict[str, Any]:
        """The options :func:`iter_fusion` gets from the widget's controls."""
        text = str(self.weights.line_edit.value).strip()
        return {
            "method": self.method.value,
            "weights": text or None,
            "device": self.device.value,
            "normalization": self.normalization.value,
            "features": bool(self.features.value),
            "task": self.task.value,
        }

    def run(self) -> GeneratorWorker | None:
        """Start a fusion in a worker thread; returns the worker (None if refused)."""
        from napari.qt.threading import create_worker
        from napari.utils import progress

        if self.running:
            return None
        first, second = self.first.value, self.second.value
        if first is None or second is None:
            self._fail("Choose two image layers to fuse.")
            return None
        try:
            plan = prepare_fusion(first, second, self.method.value)
        except (TypeError, ValueError) as exc:
            self._fail(f"Cannot fuse these layers: {exc}")
            return None
        self._cancel = threading.Event()
        self._outcome = None
        label = method_label(plan.method)
        self.progress_bar = progress(total=0, desc=f"{label}: {plan.output_name}")
        options = {**self.options(), "show": shown_index(self.viewer, first, plan.leading_shape)}
        worker = create_worker(
            _fusion_job,
            plan,
            options,
            self._cancel,
            self._relay.progressed.emit,
            _ignore_errors=True,
        )
        worker.returned.connect(self._on_returned)
        worker.errored.connect(lambda exc: self._on_returned(_Outcome(error=exc)))
        worker.warned.connect(self._on_warned)
        worker.finished.connect(self._on_finished)
        self._worker = worker
        where = f" on {self.device.value}" if plan.method == "gifnet" else ""
        self._set_running(True, f"Running {label}{where}: {plan.output_name} ...")
        self._method = plan.method
        worker.start()
        return worker

    def cancel(self) -> None:
        """Stop the running fusion (after the current band); adds no layer."""
        if self._worker is not None:
            self._cancel.set()
            self._worker.quit()
            self.status.value = "Cancelling ..."

    def _set_running(self, running: bool, text: str) -> None:
        self.run_button.enabled = not running
        self.cancel_button.enabled = running
        self.status.value = text

    def _on_progress(self, done: int, total: int) -> None:
        if self.progress_bar is not None and self.running:
            advance_bar(self.progress_bar, done, total)

    def _on_warned(self, args: tuple) -> None:
        """Show the worker's user warnings (e.g. an ignored alpha channel)."""
        from napari.utils.notifications import show_warning

        if isinstance(args[1], type) and issubclass(args[1], UserWarning):
            show_warning(f"GIFNet: {args[0]}")

    def _on_returned(self, outcome: _Outcome) -> None:
        if self._outcome is None:
            self._outcome = outcome

    def _on_finished(self) -> None:
        outcome = self._outcome or _Outcome(cancelled=True)  # aborted between planes
        if self.progress_bar is not None:
            self.progress_bar.close()
            self.progress_bar = None
        self._worker = None
        if not self._alive:  # the widget was closed while the job ran
            return
        self._set_running(False, "Ready.")
        if outcome.cancelled or self._cancel.is_set():
            self.status.value = "Cancelled; no layer was added."
        elif outcome.error is not None:
            self._fail(describe_error(outcome.error, self._method))
        elif outcome.output is not None:
            try:
                self.last_layers = add_fusion_layers(
                    self.viewer, outcome.output, keep_previous=bool(self.keep_previous.value)
                )
            except Exception as exc:  # noqa: BLE001 - shown to the user
                self._fail(f"Could not add the fused layer: {exc}")
                return
            self.last_output = outcome.output
            self.status.value = status_text(outcome.output)

    def _fail(self, message: str) -> None:
        from napari.utils.notifications import show_error

        self.status.value = message
        show_error(message)
