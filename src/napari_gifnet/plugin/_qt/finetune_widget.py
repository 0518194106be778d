"""The "Fine-tune GIFNet" dock widget: train on your own pairs without leaving napari.

The training data is a folder of pairs (what ``napari-gifnet train --pairs
DIR`` reads) or the current two image layers (:func:`write_layer_pairs`).
Train calls :func:`napari_gifnet.training.loop.train`, the command's code
path, in the widget's worker (:mod:`._job`; ``workers=0``: no processes
forked from napari) and draws each step's losses. Cancel stops after the
current step and keeps its checkpoint, as Ctrl-C does for the command; the
checkpoint becomes the *GIFNet fusion* widget's weights. torch is imported
only when a job runs; :func:`keep_triton_out` keeps triton's LLVM from
crashing a napari drawn with Mesa's (docs/training.md, "Troubleshooting").
"""

from __future__ import annotations

import math
import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from magicgui.widgets import CheckBox, ComboBox, FileEdit, FloatSpinBox, PushButton, SpinBox
from qtpy.QtCore import QObject, Qt, Signal
from qtpy.QtWidgets import QFrame, QScrollArea

from ...util.progress import Progress
from ._form import box, file_text, level0
from ._job import JobWidget, weights_of
from ._settings import stored_weights

if TYPE_CHECKING:  # pragma: no cover
    import napari

    from .fusion_widget import FusionWidget

__all__ = [
    "FinetuneWidget", "MIN_CROP", "find_fusion_widget", "keep_triton_out", "layer_pixels",
    "write_layer_pairs",
]  # fmt: skip

#: The smallest crop (``napari_gifnet.training.dataset.MIN_CROP``, without importing torch).
MIN_CROP = 29
#: ``napari_gifnet.training.features.DENSENET_ENV``, without importing torch.
DENSENET_ENV = "GIFNET_DENSENET_WEIGHTS"
#: The DenseNet-121 weights control's label (the fallback advice names it).
DENSENET_LABEL = "DenseNet-121 weights"
#: The command's advice in the DenseNet fallback warning, and the widget's words for it.
DENSENET_FLAG_ADVICE = "pass --densenet-weights FILE"
DENSENET_WIDGET_ADVICE = f'choose the file in "{DENSENET_LABEL}" under "more options"'
#: The loss plot's height bounds (pixels) and the settings' smallest height (they scroll).
PLOT_HEIGHT = (110, 240)
FORM_MIN_HEIGHT = 72
SOURCES = [("folder of pairs (first/ + second/)", "folder"), ("two image layers", "layers")]
INITS = [("published checkpoint", "published"), ("the GIFNet widgets' weights", "fusion")]
_CHECKPOINTS = "Checkpoints (*.pth *.pt);;All files (*)"
#: The loss curves drawn: log column -> legend.
CURVES = {"total": "total", "s1_total": "multimodal step", "s2_total": "photographic step"}
FUSION_NAME = "GIFNet fusion"
#: The tooltips of the form's controls and buttons.
TIPS = {
    "run_button": "Start fine-tuning with these settings (in the background)",
    "cancel_button": "Stop after the current step; that step's checkpoint is written and kept",
    "source": (
        "Train on a folder of pairs (many images: a better model), or on the two image "
        "layers chosen below (a quick trial on what is open)"
    ),
    "pairs": (
        "A folder with first/ and second/ subfolders of aligned images with matching "
        "names (as for napari-gifnet train --pairs)"
    ),
    "first": "The image layer of the first modality (e.g. infrared, CT, PET)",
    "second": (
        "The image layer of the second modality, aligned with the first and of its size "
        "(e.g. visible, MRI); it is also the reconstruction target"
    ),
    "steps": (
        "Batches to train on (two optimiser steps each); a few hundred adapt the "
        "published weights, 1-3 only test the set-up"
    ),
    "out": (
        "The checkpoint to write; its .train.pt, .log.csv, .loss.png and .train.json "
        "are written next to it. Choose a new name to keep earlier runs"
    ),
    "advanced": (
        "Show batch size, crop, learning rate, starting weights, device and the "
        "DenseNet-121 weights the loss needs"
    ),
    "batch_size": "Crops per step; lower it if memory runs out, raise it on a large GPU",
    "crop": (
        f"Side of the random square crops, in pixels (at least {MIN_CROP}); at most the "
        "images' smaller side, lower it for small images or little memory"
    ),
    "lr": (
        "Adam learning rate: 1e-4 is safer for fine-tuning; 1e-3 (published) only to "
        "train from scratch"
    ),
    "init": (
        "The published checkpoint, or the weights file the GIFNet widgets share (the "
        "published checkpoint when empty); choose the latter to go on from an earlier "
        "fine-tune"
    ),
    "device": (
        "Where training runs: auto takes the GPU when there is one, else the CPU; "
        "choose cpu to leave the GPU free"
    ),
    "densenet": (
        "ImageNet DenseNet-121 weights (a state_dict file) that weigh the training loss. "
        f"Empty: {DENSENET_ENV}, else timm's download (cached); offline without either, "
        "a random DenseNet-121 is used and the loss is not the published one"
    ),
    "use_button": (
        "Put the output checkpoint into the GIFNet fusion widget's weights (opened if "
        "needed); for a cancelled run or an earlier checkpoint"
    ),
}


class LossRelay(QObject):
    """Carries each step's log row from the training thread to the GUI thread."""

    logged = Signal(object)


def find_fusion_widget(viewer: napari.Viewer, open_it: bool = False) -> FusionWidget | None:
    """The *GIFNet fusion* widget docked in ``viewer`` (opened if ``open_it``), or None."""
    from .fusion_widget import FusionWidget

    window = getattr(viewer, "window", None)
    docked = getattr(window, "dock_widgets", None) or {}
    found = next((w for w in docked.values() if isinstance(w, FusionWidget)), None)
    if found is not None or not open_it or window is None:
        return found
    try:
        _dock, widget = window.add_plugin_dock_widget("napari-gifnet", FUSION_NAME)
    except Exception:  # noqa: BLE001 - e.g. the plugin is not registered; the caller says so
        return None
    return widget if isinstance(widget, FusionWidget) else None


def keep_triton_out(maps: str | Path = "/proc/self/maps") -> bool:
    """Make ``import triton`` fail in this process if an LLVM is loaded and triton is not.

    triton's LLVM loaded after Mesa's (llvmpipe) crashes the process; torch
    and torchvision do without triton (as with CPU-only torch builds). Only
    where the process's memory map can be read (Linux); returns whether
    triton was kept out.
    """
    if "triton" in sys.modules:
        return False
    try:
        text = Path(maps).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    if "libLLVM" not in text:
        return False
    sys.modules["triton"] = None  # type: ignore[assignment]
    return True


def layer_pixels(layer: Any) -> tuple[Any, tuple[int, ...], tuple[int, int]]:
    """A layer's full-resolution data (not read), its leading shape and its (H, W)."""
    data = level0(layer)
    spatial = data.shape[:-1] if layer.rgb else data.shape
    if len(spatial) < 2:
        raise ValueError(f"{layer.name!r} is not an image (shape {tuple(data.shape)})")
    return data, tuple(int(n) for n in spatial[:-2]), (int(spatial[-2]), int(spatial[-1]))


def _plane(data: Any, index: tuple[int, ...], rgb: bool) -> np.ndarray:
    plane = np.asarray(data[index])
    if rgb and plane.shape[-1] == 4:  # the alpha channel is not an image
        plane = plane[..., :3]
    if plane.dtype == np.float64:
        plane = plane.astype(np.float32)
    return plane


def _check_finite(plane: np.ndarray, name: str, index: tuple[int, ...]) -> None:
    """Refuse a plane with NaN or infinite values, naming its layer (and plane)."""
    if plane.dtype.kind not in "fc":
        return
    bad = int(plane.size - np.count_nonzero(np.isfinite(plane)))
    if bad:
        where = f" (plane {index})" if index else ""
        raise ValueError(f"layer {name!r}{where} contains {bad} NaN or infinite value(s); "
                         "fine-tuning needs finite images")  # fmt: skip


def write_layer_pairs(
    root: str | Path, first: Any, second: Any, leading: tuple[int, ...], batch_size: int = 1,
    rgb: tuple[bool, bool] = (False, False), names: tuple[str, str] = ("first", "second"),
) -> int:  # fmt: skip
    """Write two aligned arrays as a pairs folder ``root/first`` + ``root/second`` (TIFF).

    Each plane (index over ``leading``) is a pair, written as it is (the
    training folder's "auto" normalisation applies, as for any file); each
    pair is repeated (hard links where possible) until a batch of
    ``batch_size`` can be filled, so a batch holds that many random crops.
    Returns the number of pairs written.

    Raises
    ------
    ValueError
        A plane holds NaN or infinite values; the message names the array
        by ``names`` (the layers' names), not the temporary file.
    """
    from ...io.images import write_image

    base = Path(root)
    for sub in ("first", "second"):
        (base / sub).mkdir(parents=True, exist_ok=True)
    planes = math.prod(leading)
    copies = max(1, math.ceil(int(batch_size) / max(planes, 1)))
    written = 0
    for k, index in enumerate(np.ndindex(*leading)):
        for sub, data, is_rgb, name in zip(("first", "second"), (first, second), rgb, names):
            plane = _plane(data, index, is_rgb)
            _check_finite(plane, name, index)
            path = write_image(base / sub / f"plane{k:05d}.tif", plane)
            for c in range(1, copies):
                copy = path.with_name(f"plane{k:05d}-{c}.tif")
                try:
                    os.link(path, copy)
                except OSError:
                    shutil.copyfile(path, copy)
        written += copies
    return written


def _existing(path: str, missing: str) -> str:
    """``path`` with ``~`` expanded; ``ValueError(missing)`` when it is no file."""
    if not Path(path).expanduser().is_file():
        raise ValueError(missing)
    return str(Path(path).expanduser())


class FinetuneWidget(JobWidget):
    """Dock widget: fine-tune GIFNet on a pairs folder or two image layers.

    Attributes
    ----------
    losses : list of dict
        The log rows of the running (or last) run, one per step, as drawn.
    last_result : TrainResult or None
        The last finished run's result.
    """

    refusal = "Cannot fine-tune"

    def __init__(self, napari_viewer: napari.viewer.Viewer) -> None:
        super().__init__(napari_viewer)
        self.run_button.text = "Train"
        self._make_controls()
        self._make_scroll_area()
        self.buttons[0].append(self.use_button)
        self._pickers = [self.first, self.second]
        self.extend([self.buttons, self.status])
        self.margins = (4, 4, 4, 4)
        self.native.layout().insertWidget(0, self.form_area)
        self.handed_to: FusionWidget | None = None
        self._total, self._out, self._cancelling = 0, "", False
        self._relay = LossRelay(self.native)
        self._relay.logged.connect(self._on_row, Qt.ConnectionType.QueuedConnection)
        # the fallback advice names this widget's control, not the command's flag
        self.runner.warning_text = self._warning_text
        self._make_plot()
        self.source.changed.connect(self._apply_source)
        self.advanced.changed.connect(self._apply_advanced)
        self.steps.changed.connect(self._idle_plot)
        self.use_button.changed.connect(self.use_checkpoint)
        self._refresh_layers()
        self.remember(
            "finetune", "source", "steps", "batch_size", "crop", "lr", "init", "device", "out",
            "densenet", "advanced",
        )  # fmt: skip
        self._apply_source()
        self._apply_advanced()

    def _make_controls(self) -> None:
        """The form's controls (the ones under *more options* in ``more``), with their tips."""
        from ...engine.devices import available_devices

        self.source = ComboBox(label="training data", choices=SOURCES, value="folder")
        self.pairs = FileEdit(label="pairs folder", mode="d")
        self.first = ComboBox(label="first (modality)", choices=self._image_choices)
        self.second = ComboBox(label="second (reference)", choices=self._image_choices)
        self.steps = SpinBox(label="steps", value=200, min=1, max=10_000_000)
        self.out = FileEdit(label="output checkpoint", mode="w", filter=_CHECKPOINTS)
        self.advanced = CheckBox(text="more options", value=False)
        self.batch_size = SpinBox(label="batch size", value=4, min=1, max=1024)
        self.crop = SpinBox(label="crop", value=128, min=MIN_CROP, max=8192)
        self.lr = FloatSpinBox(label="learning rate", value=1e-4, min=1e-5, max=1.0, step=1e-5)
        self.init = ComboBox(label="start from", choices=INITS, value="published")
        self.device = ComboBox(label="device", choices=["auto", *available_devices()])
        self.densenet = FileEdit(label=DENSENET_LABEL, mode="r", filter=_CHECKPOINTS)
        self.densenet.line_edit.native.setPlaceholderText(f"default ({DENSENET_ENV}, download)")
        self.use_button = PushButton(text="Use in fusion")
        for name, tip in TIPS.items():
            getattr(self, name).tooltip = tip
        more = [self.batch_size, self.crop, self.lr, self.init, self.device, self.densenet]
        self.more = box(more, layout="vertical", labels=True)
        self.form = box(
            [self.source, self.pairs, self.first, self.second, self.steps, self.out,
             self.advanced, self.more], layout="vertical", labels=True,
        )  # fmt: skip

    def _make_scroll_area(self) -> None:
        """The settings scroll when the dock is short; Train, the status and the plot stay."""
        self.form_area = area = QScrollArea()
        area.setWidgetResizable(True)
        area.setFrameShape(QFrame.Shape.NoFrame)
        area.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        area.setMinimumHeight(FORM_MIN_HEIGHT)
        area.setWidget(self.form.native)
        scrollbar = area.verticalScrollBar().sizeHint().width()
        area.setMinimumWidth(self.form.native.minimumSizeHint().width() + scrollbar)

    # ------------------------------------------------------------------ form
    def _apply_source(self, _value: Any = None) -> None:
        """Show the pairs folder or the two layer pickers, as the training data says."""
        layers = self.source.value == "layers"
        self.pairs.visible = not layers
        self.first.visible = self.second.visible = layers

    def _apply_advanced(self, _value: Any = None) -> None:
        self.more.visible = bool(self.advanced.value)

    @staticmethod
    def _warning_text(message: str, category: type) -> str:
        """A job's warning, the DenseNet advice in the widget's words."""
        if category.__name__ == "DenseNetFallbackWarning":
            return message.replace(DENSENET_FLAG_ADVICE, DENSENET_WIDGET_ADVICE)
        return message

    def _make_plot(self) -> None:
        """The loss plot: labelled axes, integer steps, a hint until the first step."""
        from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
        from matplotlib.figure import Figure
        from matplotlib.ticker import MaxNLocator

        self.figure = Figure(figsize=(4.0, 2.0), layout="constrained")
        self.canvas = FigureCanvasQTAgg(self.figure)
        self.canvas.setMinimumHeight(PLOT_HEIGHT[0])
        self.canvas.setMaximumHeight(PLOT_HEIGHT[1])
        self.canvas.setToolTip(
            "The loss of each step: total, and its multimodal and photographic parts "
            "(lower is better; a curve that rises or jumps asks for a lower learning rate)"
        )
        self.axes = self.figure.add_subplot()
        self.axes.set_xlabel("step", fontsize=9)
        self.axes.set_ylabel("loss", fontsize=9)
        self.axes.tick_params(labelsize=8)
        self.axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        self.loss_lines = {key: self.axes.plot([], [], label=name, lw=1.2)[0]
                           for key, name in CURVES.items()}  # fmt: skip
        # one row above the axes: the curves and the hint stay clear of it
        self.figure.legend(loc="outside upper center", ncols=len(CURVES), fontsize=8,
                           frameon=False)  # fmt: skip
        self.hint = self.axes.text(
            0.5, 0.5, "Press Train: the loss of each step is drawn here",
            transform=self.axes.transAxes, ha="center", va="center", color="0.45",
        )  # fmt: skip
        self.native.layout().addWidget(self.canvas)
        self._clear_plot()

    def _idle_plot(self, _value: Any = None) -> None:
        """The empty plot spans the steps to train, while no run has drawn on it."""
        if not self.losses and not self.running:
            self._clear_plot()

    def _clear_plot(self, total: int | None = None) -> None:
        """No curves: the hint, steps 1 to ``total`` (default: the steps control), loss 0-1."""
        self.losses: list[dict[str, float]] = []
        for line in self.loss_lines.values():
            line.set_data([], [])
        steps = int(self.steps.value) if total is None else int(total)
        self.axes.set_xlim(1, max(2, steps))
        self.axes.set_ylim(0.0, 1.0)
        self.hint.set_visible(True)
        self.canvas.draw_idle()

    def _on_row(self, row: dict[str, float]) -> None:
        """A step's log row (GUI thread): extend the curves and the status line."""
        if not self.runner.alive:  # the widget is gone
            return
        self.losses.append(row)
        steps = [r["step"] for r in self.losses]
        for key, line in self.loss_lines.items():
            line.set_data(steps, [r[key] for r in self.losses])
        self.hint.set_visible(False)
        self.axes.set_xlim(1, max(2, self._total, int(row["step"])))
        self.axes.relim()
        self.axes.set_autoscaley_on(True)
        self.axes.autoscale_view(scalex=False)
        self.canvas.draw_idle()
        step = int(row["step"])
        self.runner.cancelled_text = (
            f"Cancelled after step {step} of {self._total}; its checkpoint is kept: {self._out}"
        )
        if self.running and not self._cancelling:
            self.status.value = f"Step {step} of {self._total}: loss {row['total']:.4f}"

    def fusion_widget(self, open_it: bool = False) -> FusionWidget | None:
        """The docked *GIFNet fusion* widget (opened if ``open_it``), or None."""
        return find_fusion_widget(self.viewer, open_it)

    def _init(self) -> str:
        if self.init.value == "fusion":
            fusion = self.fusion_widget()
            path = weights_of(fusion) if fusion is not None else stored_weights()
            if path:
                return _existing(path, f"the GIFNet widgets' weights file {path} does not exist")
        return "published"

    def _densenet(self) -> str | None:
        """The DenseNet-121 weights file, None when empty (the training's own search)."""
        path = file_text(self.densenet)
        if not path:
            return None
        return _existing(path, f'the {DENSENET_LABEL} file {path} does not exist (choose the '
                               f'file in "{DENSENET_LABEL}", or leave it empty)')  # fmt: skip

    # ------------------------------------------------------------------ runs
    def prepare(self) -> tuple[Callable, str]:
        out = file_text(self.out)
        if not out:
            raise ValueError("choose the output checkpoint file")
        out = str(Path(out).expanduser())
        crop, batch = int(self.crop.value), int(self.batch_size.value)
        settings: dict[str, Any] = {
            "out": out, "init": self._init(), "max_steps": int(self.steps.value),
            "batch_size": batch, "crop": crop, "lr": float(self.lr.value),
            "device": self.device.value, "progress": False, "workers": 0, "plot": True,
            "densenet_weights": self._densenet(),
        }  # fmt: skip
        layers: dict[str, Any] | None = None
        if self.source.value == "layers":
            layers = self._layer_source(crop)
            label = f"Fine-tune GIFNet: {layers['names'][0]} + {layers['names'][1]}"
        else:
            pairs = file_text(self.pairs)
            if not pairs or not Path(pairs).expanduser().is_dir():
                raise ValueError("choose a pairs folder (with first/ and second/)")
            settings["pairs"] = str(Path(pairs).expanduser())
            label = f"Fine-tune GIFNet: {Path(pairs).name}"
        self._total, self._out = int(self.steps.value), out
        self.runner.cancelled_text = "Cancelled before the first step; no checkpoint was written."
        self._clear_plot(self._total)
        self.handed_to = None
        self._cancelling = False
        emit = self._relay.logged.emit

        def on_step(row: dict[str, float]) -> None:
            with suppress(RuntimeError):  # the widget is gone; Cancel follows at this step
                emit(row)

        def work(progress: Progress) -> Any:
            from ...training import loop

            keep_triton_out()
            folder = None
            try:
                if layers is not None:
                    folder = tempfile.mkdtemp(prefix="napari-gifnet-pairs-")
                    write_layer_pairs(folder, layers["first"], layers["second"],
                                      layers["leading"], batch, layers["rgb"],
                                      layers["names"])  # fmt: skip
                    settings["pairs"] = folder
                config = loop.TrainConfig(**settings)
                return loop.train(config, progress=progress, on_step=on_step)
            finally:
                if folder is not None:
                    shutil.rmtree(folder, ignore_errors=True)

        return work, label

    def _layer_source(self, crop: int) -> dict[str, Any]:
        """The two layers' data (not read) and layout, checked (GUI thread)."""
        first, second = self.first.value, self.second.value
        if first is None or second is None:
            raise ValueError("choose two image layers")
        if first is second:
            raise ValueError("choose two different image layers")
        a, lead_a, size_a = layer_pixels(first)
        b, lead_b, size_b = layer_pixels(second)
        if (lead_a, size_a) != (lead_b, size_b):
            raise ValueError(
                f"{first.name!r} has shape {(*lead_a, *size_a)} and {second.name!r} "
                f"{(*lead_b, *size_b)}: a pair must be aligned images of one size "
                "(resample one onto the other, or use a pairs folder)"
            )
        if min(size_a) < crop:
            raise ValueError(f"the layers are {size_a[0]} x {size_a[1]} pixels, smaller than "
                             f"the crop ({crop})")  # fmt: skip
        return {"names": (first.name, second.name), "first": a, "second": b, "leading": lead_a,
                "rgb": (bool(first.rgb), bool(second.rgb))}  # fmt: skip

    def cancel(self) -> None:
        """Stop after the current step; its checkpoint is written and kept."""
        if self.running:
            self._cancelling = True
        super().cancel()

    def finish(self, value: Any) -> list[Any]:
        """The run ended: hand its checkpoint to the GIFNet fusion widget."""
        self.handed_to = self._hand_over(value.checkpoint)
        return []

    def summary(self, value: Any) -> str:
        text = f"Trained {value.steps} steps"
        if value.rows:
            text += f"; last loss {value.rows[-1]['total']:.4f}"
        text += f"; checkpoint: {value.checkpoint}"
        if self.handed_to is not None:
            return text + " (now the GIFNet fusion widget's weights)"
        return text + " (open GIFNet fusion and choose it as its weights)"

    def describe(self, exc: BaseException) -> str:
        return f"Fine-tuning failed: {exc}"

    def _hand_over(self, path: str | Path) -> FusionWidget | None:
        fusion = self.fusion_widget(open_it=True)
        if fusion is not None:
            fusion.use_checkpoint(path)
        return fusion

    def use_checkpoint(self) -> FusionWidget | None:
        """The *Use in fusion* button: the output checkpoint into the fusion widget."""
        out = file_text(self.out)
        if not out or not Path(out).expanduser().is_file():
            self.fail(f"No checkpoint to use: {out or 'choose the output checkpoint'}")
            return None
        fusion = self._hand_over(Path(out).expanduser())
        if fusion is None:
            self.fail("Could not open the GIFNet fusion widget")
            return None
        self.status.value = f"GIFNet fusion now uses {Path(out).expanduser()}"
        return fusion
