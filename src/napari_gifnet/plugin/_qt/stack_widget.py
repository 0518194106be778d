"""The "Focus stack" dock widget: one layer with a focus axis -> all-in-focus image.

A form over :func:`napari_gifnet.workflows.focus_stack.fuse_stack`, run in
the widget's worker (:mod:`._job`). The task orders the methods by their
measured quality (:data:`MEASURED`); Run adds the all-in-focus image, the
depth map (the plane index of each pixel) and the confidence, named by the
method. "Compare methods" is :mod:`.compare`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
from magicgui.widgets import CheckBox, ComboBox, SpinBox

from ...methods.registry import task_method_label
from ..layer_output import display_range, put_image
from ._form import data_task, image_look, level0, short_combo
from ._job import JobWidget, gifnet_controls, weights_of
from .compare import CompareJob, add_compare_controls

if TYPE_CHECKING:  # pragma: no cover
    import napari

__all__ = ["StackWidget"]


#: (label, ``fuse_stack`` ``task``) of the task menu.
TASK_CHOICES = [("focus stack", "focus"), ("exposure bracket", "exposure")]
#: (label, ``fuse_stack`` ``align`` value) of the align menu; "auto" is the default.
ALIGN_CHOICES = [
    ("auto (align when the planes move)", "auto"),
    ("off", "none"),
    ("translation", "translation"),
    ("translation + focus breathing (scale)", "scale"),
    ("similarity (hand-held: rotation, scale)", "similarity"),
]
#: The stack task of a sample's pair task (:data:`napari_gifnet.data.sample.SAMPLE_TASKS`).
_SAMPLE_STACK_TASKS = {"mfif": "focus", "meif": "exposure"}
#: Each task's stack methods, best measured first: (key, what it is for, score).
#: focus: mean PSNR of the fused luma against the all-in-focus truth over the six
#: stacks of ``benchmarks/evaluate_stacks.py`` (docs/stacks.md; pairwise methods
#: folded as a tree). exposure: mean MEF-SSIM over the five exposure stacks of
#: ``benchmarks/bench_exposure.py`` (docs/quality.md; Laplacian and Mertens with
#: every plane at once, the strategy this widget picks for them; Max not measured).
MEASURED: dict[str, tuple[tuple[str, str, str], ...]] = {
    "focus": (
        ("focus", "best on focus stacks", "43.5 dB"),
        ("guided", "guided-filter blend", "39.6 dB"),
        ("laplacian", "pyramid blend", "37.1 dB"),
        ("dwt", "wavelet blend", "33.8 dB"),
        ("mertens", "for exposure brackets", "29.7 dB"),
        ("mean", "average of the planes", "26.2 dB"),
        ("max", "brightest value per pixel", "24.8 dB"),
        ("gifnet", "for image pairs; posterises stacks", "12.7 dB"),
    ),
    "exposure": (
        ("laplacian", "best on exposure brackets", "MEF-SSIM 0.977"),
        ("mertens", "exposure weights", "MEF-SSIM 0.959"),
        ("guided", "guided-filter blend", "MEF-SSIM 0.952"),
        ("dwt", "wavelet blend", "MEF-SSIM 0.923"),
        ("mean", "average of the planes", "MEF-SSIM 0.885"),
        ("gifnet", "for image pairs", "MEF-SSIM 0.831"),
        ("focus", "for focus stacks, not exposures", "MEF-SSIM 0.631"),
        ("max", "brightest value per pixel", "not measured"),
    ),
}
_MEASURED_BY = {
    "focus": "PSNR against the truth, mean of 6 test stacks (docs/stacks.md)",
    "exposure": "MEF-SSIM, mean of 5 exposure stacks (docs/quality.md)",
}
_TOOLTIPS = {
    "strategy": (
        "How a blending method folds the planes (focus selection ignores it):\n"
        "tree (default): neighbours pairwise, level by level; 1.1 dB above sequential with "
        "Laplacian on focus stacks\n"
        "sequential: the running result with the next plane, in plane order\n"
        "all: every plane at once (Laplacian and Mertens only; holds every plane in memory); "
        "best on exposure brackets, chosen for them"
    ),
    "align": (
        "Register the planes onto the middle one before fusing:\n"
        "auto (default): measure the motion, align only when the planes move "
        "(exposure brackets: never, their brightness misleads the measurement)\n"
        "off: the planes are known to be registered (a fixed microscope stage)\n"
        "translation: shifts only (stage drift)\n"
        "scale: shifts and the magnification change of focus breathing (a camera's focus "
        "bracket)\n"
        "similarity: shifts, scale and rotation (a hand-held bracket)"
    ),
    "layer": "The image layer holding the stack: three spatial axes (planes, Y, X), RGB allowed",
    "axis": (
        "The axis along which the planes differ (0: the layer is planes, Y, X); "
        "change it when the planes lie along another axis"
    ),
    "task": (
        "What the planes differ by: focus (a Z-stack, a focus bracket) or exposure (a "
        "bracket of exposures). Choosing it orders the method list by what was measured "
        "best for it and selects the best"
    ),
    "select": (
        "A blending method only decides: each pixel is copied from the plane its depth map "
        "names, keeping the planes' own values. On focus stacks it raised Laplacian from "
        "37.1 to 41.3 dB and GIFNet from 12.7 to 37.4 dB; leave it off for exposure brackets"
    ),
    "keep_dtype": (
        "Give the all-in-focus image the input's dtype (e.g. 16-bit), to save or measure it in "
        "the original units; off: float32 in [0, 1]"
    ),
    "keep_previous": (
        "Off (default): a rerun with the same method updates its own result layers (another "
        "method's results always stay). On: every run adds new layers, to compare options "
        "such as the alignment or strategy side by side"
    ),
}


def method_choices(task: str = "focus") -> list[tuple[str, str]]:
    """``(label, key)`` of the stack methods for ``task``, best measured first.

    Parameters
    ----------
    task
        ``"focus"`` or ``"exposure"`` (:data:`MEASURED`).

    Returns
    -------
    list of (str, str)
        Labels such as ``"Focus selection — best on focus stacks (43.5 dB)"``.
    """
    return [(f"{task_method_label(k)} — {use} ({score})", k) for k, use, score in MEASURED[task]]


def method_tooltip(task: str) -> str:
    """The method list's tooltip for ``task``: how it is ordered, and every entry."""
    lines = "\n".join(label for label, _ in method_choices(task))
    return f"How the planes are fused, best measured first ({_MEASURED_BY[task]}):\n{lines}"


class StackWidget(JobWidget):
    """Dock widget: fuse a focus stack layer into an all-in-focus image + depth map."""

    def __init__(self, napari_viewer: napari.viewer.Viewer) -> None:
        from ...workflows.focus_stack import DEFAULT_METHOD, DEFAULT_STRATEGY, STRATEGIES

        super().__init__(napari_viewer)
        self.layer = ComboBox(label="stack", choices=self._image_choices)
        self.axis = SpinBox(label="focus axis", value=0, min=0, max=3)
        self.task = ComboBox(label="task", choices=TASK_CHOICES, value="focus")
        self.method = ComboBox(label="method", choices=method_choices(), value=DEFAULT_METHOD)
        self.strategy = ComboBox(label="strategy", choices=list(STRATEGIES), value=DEFAULT_STRATEGY)
        self.select = CheckBox(text="copy pixels from the depth map's plane")
        self.align = ComboBox(label="align", choices=ALIGN_CHOICES, value="auto")
        self.keep_dtype = CheckBox(text="keep the input dtype (e.g. 16-bit)")
        self.keep_previous = CheckBox(text="keep previous results", value=False)
        for name, tip in _TOOLTIPS.items():
            getattr(self, name).tooltip = tip
        self.method.tooltip = method_tooltip("focus")
        short_combo(self.method, 20)
        gifnet_controls(self)
        self._pickers = [self.layer]
        self.extend([
            self.layer, self.axis, self.task, self.method, self.strategy, self.select, self.align,
            self.keep_dtype, self.device, self.weights, self.keep_previous, self.buttons,
            self.status,
        ])  # fmt: skip
        add_compare_controls(self)
        self.method.changed.connect(self._apply_method)
        self.task.changed.connect(self._apply_task)
        self._apply_method()
        self.remember(
            "focus_stack", "axis", "task", "method", "strategy", "select", "align", "keep_dtype",
            "device", "weights", "keep_previous",
        )  # fmt: skip
        self.layer.changed.connect(self._follow_data)
        self._follow_data()  # a remembered task never overrides what the layer says it is

    def _follow_data(self, _value: Any = None) -> None:
        """Select the task the chosen layer says it is (a sample's), saying why."""
        layer = self.layer.value
        pair_task, sample = data_task(layer) or ("", None)
        task = _SAMPLE_STACK_TASKS.get(pair_task)
        if task is None or task == self.task.value:
            return
        self.task.value = task
        label = {key: text for text, key in TASK_CHOICES}[task]
        self.runner.status_line.show(f"Task: {label}, as {layer.name!r} is the {sample!r} sample.")

    def _apply_task(self, _value: Any = None) -> None:
        """Order the methods by their measured quality for the task and select the best."""
        from ...workflows import focus_stack as fs

        self.method.choices = method_choices(self.task.value)
        self.method.tooltip = method_tooltip(self.task.value)
        self.method.value = fs.task_method(self.task.value)
        self._apply_method()

    def _apply_method(self, _value: Any = None) -> None:
        """Enable the options the method uses; its measured strategy for the task."""
        from ...workflows import focus_stack as fs

        method = self.method.value
        self.strategy.enabled = self.select.enabled = method != "focus"
        self.device.enabled = self.weights.enabled = method == "gifnet"
        if self.task.value == "exposure" and method in fs.ALL_AT_ONCE:
            self.strategy.value = fs.EXPOSURE_STRATEGY
        elif self.strategy.value == "all" and method not in fs.ALL_AT_ONCE:
            self.strategy.value = fs.DEFAULT_STRATEGY  # only those two fuse all at once

    def _checked_layer(self) -> tuple[Any, Any, int, dict[str, Any]]:
        """The chosen layer, its level-0 data, the focus axis and the scale and translate of
        a result layer (the input's minus the focus axis)."""
        layer = self.layer.value
        if layer is None:
            raise ValueError("choose an image layer holding a focus stack")
        data = level0(layer)
        axis = int(self.axis.value)
        spatial = data.ndim - int(layer.rgb)
        if spatial != 3:
            raise ValueError(
                f"{layer.name!r} has shape {tuple(data.shape)}: a focus stack layer needs "
                "exactly three spatial axes (Z, Y, X), RGB allowed"
            )
        if axis >= spatial:
            raise ValueError(f"focus axis {axis} is not an axis of {layer.name!r}")
        keep = [i for i in range(spatial) if i != axis]
        tf = {k: tuple(getattr(layer, k)[i] for i in keep) for k in ("scale", "translate")}
        return layer, data, axis, tf

    def prepare(self) -> tuple[Callable, str]:
        from ...workflows.focus_stack import fuse_stack

        layer, data, axis, tf = self._checked_layer()
        options = {
            "method": self.method.value, "task": self.task.value, "strategy": self.strategy.value,
            "select": bool(self.select.value), "align": str(self.align.value),
            "keep_dtype": bool(self.keep_dtype.value), "weights": weights_of(self),
            "device": self.device.value,
        }  # fmt: skip
        label = task_method_label(self.method.value)
        self._target = layer.name, tf, bool(layer.rgb), int(data.shape[axis]), label

        def job(progress: Callable[[int, int], None]) -> Any:
            return fuse_stack(data, axis, progress=progress, **options)

        return job, f"Focus stack: {layer.name}"

    def finish(self, value: Any) -> list[Any]:
        name, tf, rgb, planes, label = self._target
        meta = dict(value.metadata, source_layer=name)
        image = value.image
        keep = self.keep_previous.value
        result = put_image(  # its own range, so a dim result is not shown black
            self.viewer, f"{name} all-in-focus ({label})", image, keep_previous=keep,
            metadata=meta, contrast_limits=display_range(image, rgb), **image_look(rgb), **tf,
        )  # fmt: skip
        maps = [  # hidden, below the result
            put_image(self.viewer, f"{name} {what} ({label})", data, keep_previous=keep,
                      colormap=colormap, contrast_limits=limits, metadata=meta, visible=False,
                      below=result, **tf)
            for what, data, colormap, limits in (
                ("depth", value.depth_map, "viridis", (0, max(1, planes - 1))),
                ("confidence", value.confidence, "magma", (0.0, 1.0)),
            )
        ]  # fmt: skip
        self.viewer.layers.selection.active = result  # the result alone is selected
        return [result, *maps]

    def summary(self, value: Any) -> str:
        text = (
            f"Last run: {value.metadata['method']}, {value.metadata['planes']} planes, "
            f"{value.elapsed:.1f} s"
        )
        if value.metadata.get("aligned"):
            text += (f"; aligned ({value.metadata.get('alignment')}), largest shift "
                     f"{float(np.abs(value.shifts).max()):.2f} px")  # fmt: skip
            if value.metadata.get("alignment") in ("scale", "similarity"):
                text += f", scales {value.scales.min():.4f}-{value.scales.max():.4f}"
            if value.metadata.get("alignment") == "similarity":
                text += f", rotations up to {float(np.abs(value.rotations).max()):.2f} deg"
        elif value.metadata.get("motion") is not None:
            text += "; no motion measured, not aligned"
        return text

    def compare_job(self) -> CompareJob:
        """Every method of the task on the layer (GUI thread, no pixels read)."""
        from ..compare_methods import compare_stack

        layer, data, axis, tf = self._checked_layer()
        options = {
            "task": self.task.value, "align": str(self.align.value), "weights": weights_of(self),
            "device": self.device.value,
        }  # fmt: skip
        methods = self.compare_methods  # None: every method of the task
        rgb = bool(layer.rgb)

        def work(progress: Callable[[int, int], None]) -> Any:
            return compare_stack(data, axis, methods=methods, progress=progress, **options)

        def look(result: Any) -> dict[str, Any]:
            colour = image_look(rgb)
            if result.image.dtype.kind == "f":  # its own range: a dim result is not black
                colour["contrast_limits"] = display_range(result.image, rgb)
            return {**colour, **tf}

        return CompareJob(work, f"Compare methods: {layer.name}", layer.name, look)
