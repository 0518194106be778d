"""The "GIFNet fusion" dock widget.

Two image-layer pickers (first / second input, labelled per task preset), a
swap button, task, the method the task's preset picked and one line on why
(the measurement, tabled in docs/quality.md), method (GIFNet, focus
selection, the focus-guided pyramid, then the classical baselines of
:data:`napari_gifnet.methods.classical.BASELINES`; choosing a task selects its
default method), normalisation, "align second
onto first" (off, translation, translation + scale), "normalise each plane on
its own" (off by default: a Z/T stack gets one range per layer), device,
weights file (which the *Fine-tune GIFNet* widget fills in with the checkpoint
it trained, :meth:`FusionWidget.use_checkpoint`), "add feature layers" and
"keep previous results" options, Run /
Cancel / Reset, a status line (which also reports the normalisation scope
of a stack and the alignment found) and "Compare methods" (:mod:`.compare`:
every method of the task on the shown plane, one layer and one table row each). Device, weights and feature layers only
apply to GIFNet: they are disabled while a baseline is chosen. Every option
but the layers is remembered from one launch to the next (:mod:`._settings`).

The fusion runs in a napari ``thread_worker`` (a generator that yields once
per plane), never on the GUI thread; band-by-band progress is relayed to a
napari progress bar in the activity dock. The worker calls the same core as
:func:`napari_gifnet.fuse_layers`: :func:`napari_gifnet.plugin.layer_fusion.iter_fusion`;
layers are added on the GUI thread by
:func:`napari_gifnet.plugin.layer_fusion.add_fusion_layers`. Cancel stops the engine
between bands (a second or two) and adds nothing.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from magicgui.widgets import CheckBox, ComboBox, Label, PushButton

from ...engine.preprocess import NORMALIZATIONS
from ...methods.presets import QUALITY_DOC, get_preset, preset_choices
from ...methods.registry import task_method_label, task_method_names
from ...util.progress import Progress
from ..layer_fusion import (
    GIFNET_ONLY_OPTIONS,
    FusionOutput,
    FusionPlan,
    add_fusion_layers,
    iter_fusion,
    prepare_fusion,
    status_text,
)
from ..layer_output import display_range
from ._job import JobWidget, gifnet_controls, weights_of
from .compare import CompareJob, add_compare_controls

if TYPE_CHECKING:  # pragma: no cover
    import napari
    from napari.layers import Image

__all__ = [
    "ALIGN_CHOICES", "FusionWidget", "alignment_text", "describe_error", "method_choices",
    "preset_text", "scope_text",
]  # fmt: skip

#: The "align second onto first" choices: label -> ``iter_fusion``'s ``align``.
ALIGN_CHOICES = [
    ("off", None),
    ("translation", "translation"),
    ("translation + scale (focus breathing)", "scale"),
]
_PER_PLANE_TIP = (
    "Off (default): a Z/T stack is normalised with one range per layer, over all its planes, "
    "so brightness compares across planes (no flicker). On: each plane gets its own range."
)


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


def method_choices() -> list[tuple[str, str]]:
    """(label, key) of every method a task may run on a pair: GIFNet, the focus
    methods, then the baselines (:func:`napari_gifnet.methods.registry.task_method_names`)."""
    return [(task_method_label(k), k) for k in task_method_names()]


def preset_text(task: str) -> str:
    """``"Preset method: <Method>: <why> (see docs/quality.md)"`` for a task key."""
    preset = get_preset(task)
    why = preset.reason.replace(f"({QUALITY_DOC})", f"(see {QUALITY_DOC})")
    return f"Preset method: {task_method_label(preset.method)}: {why}"


def describe_error(exc: BaseException, method: str = "gifnet") -> str:
    """A one-line message for a failed fusion, as shown in the notification."""
    from ...model.weights import CheckpointError, WeightsUnavailableError

    if method != "gifnet":
        return f"{task_method_label(method)} fusion failed: {exc}"
    if isinstance(exc, MemoryError):
        return f"GIFNet ran out of memory: {exc}. Try the CPU, or a smaller image or crop."
    if isinstance(exc, CheckpointError):
        return f"Not a usable GIFNet checkpoint: {exc}"
    if isinstance(exc, (WeightsUnavailableError, FileNotFoundError)):
        return str(exc)  # these messages say what is missing and how to get it
    return f"GIFNet fusion failed: {exc}"


def alignment_text(metadata: dict[str, Any]) -> str:
    """``"aligned: shift (+1.2, -3.0) px"`` from ``metadata["alignment"]`` ("" if not aligned).

    For several planes, the largest shift (and the range of scales).
    """
    entries = metadata.get("alignment") or []
    if not entries:
        return ""
    largest = max(entries, key=lambda e: math.hypot(*e["shift"]))
    dy, dx = (float(v) for v in largest["shift"])
    word = "largest shift" if len(entries) > 1 else "shift"
    text = f"aligned: {word} ({dy:+.1f}, {dx:+.1f}) px"
    if any(e.get("mode") == "scale" for e in entries):
        scales = [float(e["scale"]) for e in entries]
        lo, hi = min(scales), max(scales)
        text += f", scale {lo:.4f}" if hi - lo < 5e-5 else f", scales {lo:.4f}-{hi:.4f}"
    return text


def scope_text(metadata: dict[str, Any]) -> str:
    """How a stack was normalised ("" for one plane)."""
    if int(metadata.get("planes") or 1) <= 1:
        return ""
    if metadata.get("normalization_scope") == "plane":
        return "each plane normalised on its own"
    return "normalised with one range per layer"


class FusionWidget(JobWidget):
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

    refusal = "Cannot fuse these layers"

    def __init__(self, napari_viewer: napari.viewer.Viewer) -> None:
        super().__init__(napari_viewer)
        self.task = ComboBox(label="task", choices=preset_choices(), value="ivif")
        self.hint = Label(label="")
        self.first = ComboBox(label="first input", choices=self._image_choices)
        self.second = ComboBox(label="second input", choices=self._image_choices)
        self.swap = PushButton(text="Swap first and second")
        self.preset_note = Label(label="")
        self.preset_note.native.setWordWrap(True)
        self.method = ComboBox(label="method", choices=method_choices(), value="gifnet")
        self.method.tooltip = (
            "GIFNet, focus selection or a classical baseline (these ignore device and "
            "weights); choosing a task selects the method its preset measured best"
        )
        self.normalization = ComboBox(label="normalisation", choices=list(NORMALIZATIONS))
        self.align = ComboBox(label="align second onto first", choices=ALIGN_CHOICES, value=None)
        self.align.tooltip = (
            "Move the second input onto the first before fusing: a translation, or a "
            "translation and a magnification (focus breathing); found per plane"
        )
        self.per_plane = CheckBox(text="normalise each plane on its own", value=False)
        self.per_plane.tooltip = _PER_PLANE_TIP
        gifnet_controls(self)
        self.features = CheckBox(text="add feature layers")
        self.keep_previous = CheckBox(text="keep previous results")
        self.hint.native.setWordWrap(True)
        self._pickers = [self.first, self.second]
        self.extend(
            [
                self.task, self.hint, self.preset_note, self.first, self.second, self.swap,
                self.method,
                self.normalization, self.align, self.per_plane, self.device, self.weights,
                self.features, self.keep_previous, self.buttons, self.status,
            ]
        )  # fmt: skip
        self.last_layers: list[Image] = []
        self._plan: FusionPlan | None = None  # the running (or last) job's plan
        add_compare_controls(self)
        self.task.changed.connect(self._apply_preset)
        self.method.changed.connect(self._apply_method)
        self.swap.changed.connect(self.swap_inputs)
        self._apply_preset()
        self._apply_method()
        self._refresh_layers()
        self.remember(
            "fusion", "task", "normalization", "method", "align", "per_plane", "device",
            "weights", "features", "keep_previous",
        )  # fmt: skip

    @property
    def last_output(self) -> FusionOutput | None:
        """The last successful run's output."""
        return self.last_result

    def use_checkpoint(self, path: str | Path) -> None:
        """Fuse with the checkpoint ``path`` from now on (from the *Fine-tune GIFNet* widget)."""
        self.weights.value = str(path)
        if not self.running:
            self.status.value = f"Weights: {path}"

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
        self.preset_note.value = preset_text(preset.key)
        self.preset_note.tooltip = f"The tables behind each task's default: {QUALITY_DOC}"
        self.method.value = preset.method  # the user may pick another afterwards

    def _apply_method(self, _value: Any = None) -> None:
        """Enable the GIFNet-only controls for GIFNet, disable them for a baseline."""
        gifnet = self.method.value == "gifnet"
        for name in GIFNET_ONLY_OPTIONS:
            getattr(self, name).enabled = gifnet

    # ------------------------------------------------------------------ runs
    def options(self) -> dict[str, Any]:
        """The options :func:`iter_fusion` gets from the widget's controls."""
        return {
            "method": self.method.value,
            "weights": weights_of(self),
            "device": self.device.value,
            "normalization": self.normalization.value,
            "features": bool(self.features.value),
            "task": self.task.value,
            "align": self.align.value,
            "per_plane": bool(self.per_plane.value),
        }

    def prepare(self) -> tuple[Callable, str] | None:
        """Plan the fusion (GUI thread, no pixels read); the work is :func:`iter_fusion`."""
        first, second = self.first.value, self.second.value
        if first is None or second is None:
            self.fail("Choose two image layers to fuse.")
            return None
        plan = prepare_fusion(first, second, self.method.value)
        options = {**self.options(), "show": shown_index(self.viewer, first, plan.leading_shape)}
        self._plan = plan

        def work(progress: Progress) -> Any:
            return (yield from iter_fusion(plan, progress=progress, **options))

        return work, f"{task_method_label(plan.method)}: {plan.output_name}"

    def running_text(self, label: str) -> str:
        where = f" on {self.device_text()}" if self._plan.method == "gifnet" else ""
        return f"Running {task_method_label(self._plan.method)}{where}: {self._plan.output_name} ..."

    def describe(self, exc: BaseException) -> str:
        return describe_error(exc, self._plan.method if self._plan else "gifnet")

    def finish(self, value: FusionOutput) -> list[Image]:
        return add_fusion_layers(self.viewer, value, keep_previous=bool(self.keep_previous.value))

    def summary(self, value: FusionOutput) -> str:
        parts = [status_text(value), scope_text(value.metadata), alignment_text(value.metadata)]
        return "; ".join(p for p in parts if p)

    # --------------------------------------------------------------- compare
    def compare_job(self) -> CompareJob:
        """Every method of the task on the plane shown (GUI thread, no pixels read)."""
        from ..compare_methods import compare_pair

        first, second = self.first.value, self.second.value
        if first is None or second is None or first is second:
            raise ValueError("choose two different image layers to compare methods on")
        plan = prepare_fusion(first, second, "gifnet")
        index = shown_index(self.viewer, first, plan.leading_shape)
        index = tuple(index) if index is not None and plan.leading_shape else ()
        options = {
            "task": self.task.value, "normalization": self.normalization.value,
            "weights": weights_of(self), "device": self.device.value,
        }  # fmt: skip
        methods = self.compare_methods  # None: every method of the task

        def work(progress: Progress) -> Any:
            a = plan.first.read(index)  # worker thread
            b = plan.second.read(index)
            if plan.resampling is not None:
                b = plan.resampling.apply(b, plan.plane_shape)
            return compare_pair(a, b, methods=methods, progress=progress, **options)

        tf = {k: tuple(plan.first.transforms[k])[-2:] for k in ("scale", "translate")}

        def look(result: Any) -> dict[str, Any]:
            rgb = result.image.ndim == 3
            colour = {"rgb": True} if rgb else {"rgb": False, "colormap": "gray"}
            return {**colour, "contrast_limits": display_range(result.image, rgb), **tf}

        base = f"{first.name} + {second.name}"
        if plan.leading_shape:
            base += f" [plane {', '.join(map(str, index))}]"
        return CompareJob(work, f"Compare methods: {base}", base, look)
