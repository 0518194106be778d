"""The "Focus stack" dock widget: one layer with a focus axis -> all-in-focus image.

Pick an image layer, its focus axis, what the planes differ by (``task``:
focus, or exposure, whose default method is the Laplacian pyramid over all
planes), a method (GIFNet, focus selection or a classical baseline; the task
selects its default), the pair-folding strategy, the alignment (``auto`` by default: the planes'
measured motion decides; off, translation, scale or similarity) and options
(copy pixels from the depth map's plane, keep the input dtype); Run
calls :func:`napari_gifnet.workflows.focus_stack.fuse_stack`, the function a console user
calls, in a napari worker thread. It adds (or updates) three layers:
``"<name> all-in-focus"``, ``"<name> depth"`` (the plane index of each
pixel) and ``"<name> confidence"``, with the input's scale and translate
minus the focus axis. Cancel stops between planes (or GIFNet bands).
"Compare methods" (:mod:`.compare`) runs every method of the task on the
layer, one ``"compare: <name> (<Method>)"`` layer and one table row each.

:class:`~._job.JobWidget` (in :mod:`._job`) holds the worker, progress and
cancel plumbing every job widget shares. torch is imported only when a job runs.
The options (not the layer) are remembered across launches (:mod:`._settings`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
from magicgui.widgets import CheckBox, ComboBox, SpinBox

from ...util.progress import Cancelled
from ..layer_output import display_range
from ._job import JobWidget, gifnet_controls, put_layer, weights_of
from .compare import CompareJob, add_compare_controls

if TYPE_CHECKING:  # pragma: no cover
    import napari

__all__ = ["JobCancelled", "JobWidget", "StackWidget", "put_layer"]


#: Raised in a job's progress callback when Cancel was pressed (the package's one
#: cancellation exception).
JobCancelled = Cancelled
#: (label, ``fuse_stack`` ``align`` value) of the align menu; "auto" is the default.
#: (label, ``fuse_stack`` ``task``) of the task menu.
TASK_CHOICES = [("focus stack", "focus"), ("exposure bracket", "exposure")]
ALIGN_CHOICES = [
    ("auto (align when the planes move)", "auto"),
    ("off", "none"),
    ("translation", "translation"),
    ("translation + focus breathing (scale)", "scale"),
    ("similarity (hand-held: rotation, scale)", "similarity"),
]


def method_choices() -> list[tuple[str, str]]:
    """(label, key) of the stack methods: GIFNet, focus selection, baselines."""
    from ..layer_fusion import method_choices as pair_methods

    gifnet, *rest = pair_methods()
    return [gifnet, ("Focus selection", "focus"), *rest]


class StackWidget(JobWidget):
    """Dock widget: fuse a focus stack layer into an all-in-focus image + depth map."""

    def __init__(self, napari_viewer: napari.viewer.Viewer) -> None:
        from ...workflows.focus_stack import DEFAULT_METHOD, DEFAULT_STRATEGY, STRATEGIES

        super().__init__(napari_viewer)
        self.layer = ComboBox(label="stack", choices=self._image_choices)
        self.axis = SpinBox(label="focus axis", value=0, min=0, max=3)
        self.task = ComboBox(label="task", choices=TASK_CHOICES, value="focus")
        self.task.tooltip = (
            "What the planes differ by: focus (default: focus selection) or exposure "
            "(default: the Laplacian pyramid over all planes; never focus selection)"
        )
        self.method = ComboBox(label="method", choices=method_choices(), value=DEFAULT_METHOD)
        self.strategy = ComboBox(label="strategy", choices=list(STRATEGIES), value=DEFAULT_STRATEGY)
        self.select = CheckBox(text="copy pixels from the depth map's plane")
        self.align = ComboBox(label="align", choices=ALIGN_CHOICES, value="auto")
        self.keep_dtype = CheckBox(text="keep the input dtype (e.g. 16-bit)")
        gifnet_controls(self)
        self._pickers = [self.layer]
        self.extend(
            [
                self.layer, self.axis, self.task, self.method, self.strategy, self.select, self.align,
                self.keep_dtype, self.device, self.weights, self.buttons, self.status,
            ]
        )  # fmt: skip
        add_compare_controls(self)
        self.method.changed.connect(self._apply_method)
        self.task.changed.connect(self._apply_task)
        self._apply_method()
        self.remember(
            "focus_stack", "axis", "task", "method", "strategy", "select", "align", "keep_dtype",
            "device", "weights",
        )  # fmt: skip

    def _apply_task(self, _value: Any = None) -> None:
        """Select the task's default method and strategy (the user may pick others)."""
        from ...workflows import focus_stack as fs

        method = fs.task_method(self.task.value)
        self.method.value = method
        exposure = self.task.value == "exposure" and method in fs.ALL_AT_ONCE
        self.strategy.value = fs.EXPOSURE_STRATEGY if exposure else fs.DEFAULT_STRATEGY

    def _apply_method(self, _value: Any = None) -> None:
        pairwise = self.method.value != "focus"
        self.strategy.enabled = self.select.enabled = pairwise
        self.device.enabled = self.weights.enabled = self.method.value == "gifnet"

    def _align_option(self) -> str:
        """``fuse_stack``'s ``align``: "auto", "none", "translation", "scale" or "similarity"."""
        return str(self.align.value)

    def _checked_layer(self) -> tuple[Any, Any, int, int]:
        """The chosen layer, its level-0 data, focus axis and number of spatial axes."""
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
        return layer, data, axis, spatial

    def _look(self, layer: Any, axis: int, spatial: int) -> dict[str, Any]:
        """The scale and translate of a result layer: the input's minus the focus axis."""
        keep = [i for i in range(spatial) if i != axis]
        return {
            "scale": tuple(layer.scale[i] for i in keep),
            "translate": tuple(layer.translate[i] for i in keep),
        }

    def prepare(self) -> tuple[Callable, str]:
        from ...workflows.focus_stack import fuse_stack

        layer, data, axis, spatial = self._checked_layer()
        options = {
            "method": self.method.value, "task": self.task.value, "strategy": self.strategy.value,
            "select": bool(self.select.value), "align": self._align_option(),
            "keep_dtype": bool(self.keep_dtype.value), "weights": weights_of(self),
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
        if image.dtype.kind == "f":  # its own range, so a dim result is not shown black
            look["contrast_limits"] = display_range(image, rgb)
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

        layer, data, axis, spatial = self._checked_layer()
        options = {
            "task": self.task.value, "align": self._align_option(), "weights": weights_of(self),
            "device": self.device.value,
        }  # fmt: skip
        methods = self.compare_methods  # None: every method of the task
        tf, rgb = self._look(layer, axis, spatial), bool(layer.rgb)

        def work(progress: Callable[[int, int], None]) -> Any:
            return compare_stack(data, axis, methods=methods, progress=progress, **options)

        def look(result: Any) -> dict[str, Any]:
            colour: dict[str, Any] = {"rgb": True} if rgb else {"rgb": False, "colormap": "gray"}
            if result.image.dtype.kind == "f":
                colour["contrast_limits"] = (0.0, 1.0)
            return {**colour, **tf}

        return CompareJob(work, f"Compare methods: {layer.name}", layer.name, look)
