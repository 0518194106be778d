"""The "GIFNet fusion" dock widget: two image layers in, the fused layer out.

The task's preset labels the inputs, sets the normalisation and picks the
method (docs/quality.md); the task follows layers that say what they are
(:func:`~._form.data_task`). Run calls
:func:`napari_gifnet.plugin.layer_fusion.iter_fusion` (the core of
:func:`napari_gifnet.fuse_layers`) in the widget's worker (:mod:`._job`);
with a registration mode of "align second onto first"
(:class:`~.registration_panel.RegistrationPanel`) it registers first unless
the registration is current. "Compare methods" is :mod:`.compare`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from magicgui.widgets import CheckBox, ComboBox, Label, PushButton

from ...engine.preprocess import NORMALIZATIONS
from ...methods.presets import QUALITY_DOC, get_preset, preset_choices, task_keys
from ...methods.registry import METHODS, task_method_label, task_method_names
from ...util.progress import Progress
from ..check_view import is_check_layer
from ..fusion_plan import FusionPlan, prepare_fusion
from ..layer_fusion import iter_fusion
from ..layer_output import FusionOutput, add_fusion_layers, display_range, status_text
from ._form import data_task, image_look, never_widen
from ._job import JobWidget, StatusLine, device_text, gifnet_controls, weights_of, weights_state
from .compare import CompareJob, add_compare_controls
from .registration_panel import REGISTRATION_CHOICES, REGISTRATION_MODES, RegistrationPanel

if TYPE_CHECKING:  # pragma: no cover
    import napari
    from napari.layers import Image

__all__ = [
    "ALIGN_CHOICES", "MIN_DTYPE_SHARE", "FusionWidget", "alignment_text", "bit_depth_range",
    "describe_error", "method_choices", "preset_text", "registration_text", "scope_text",
]  # fmt: skip

#: The controls of the options a method may not take: control -> option
#: (:class:`~napari_gifnet.engine.options.FusionOptions`).
_OPTION_CONTROLS = {"weights": "weights", "device": "device", "features": "return_features"}
#: The "align second onto first" choices by phase correlation: label -> ``iter_fusion``'s
#: ``align``; the menu then lists the registration modes (:data:`REGISTRATION_CHOICES`).
ALIGN_CHOICES = [
    ("off", None),
    ("translation", "translation"),
    ("translation + scale (focus breathing)", "scale"),
]
#: Below this share of an integer type's range, ``"dtype"`` gives way to :func:`bit_depth_range`.
MIN_DTYPE_SHARE = 0.10
#: The tooltips of the form's controls (the device and weights ones: :func:`gifnet_controls`).
TIPS = {
    "task": (
        "What the two images are. It sets the input labels, the normalisation and the "
        "method its preset measured best; it follows the layers when they say what they "
        "are (a sample). Change it when your images are another kind of pair."
    ),
    "first": "The first input (the modality named in brackets: the order GIFNet was trained on)",
    "second": "The second input (the modality named in brackets), registered to the first",
    "swap": "Exchange the first and the second input, when they were picked the wrong way round",
    "method": (
        "How to fuse. GIFNet: the published network (uses device and weights). Focus "
        "selection / focus-guided pyramid: sharpest pixels of a focus pair. Classical "
        "baselines (mean, max, Laplacian pyramid, ...): fast rules that ignore device and "
        "weights. Choosing a task selects the method its preset measured best; change it "
        "to compare, or with 'Compare methods'"
    ),
    "normalization": (
        "How each input's values are mapped to 0-1 before fusing. auto: uint8 / 255, other "
        "integers and floats outside 0-1 by their 0.1-99.9th percentiles. dtype: the data "
        "type's full range, both inputs alike (keeps relative brightness of one sensor; 12-bit "
        "data in uint16 then uses its bit depth instead). minmax: each image's min..max. "
        "percentile: each image's 0.1-99.9th percentiles (ignores outliers). Set by the task; "
        "change it for this session when the result looks too dark or too flat."
    ),
    "align": (
        "Move the second input onto the first before fusing: a translation, or a "
        "translation and a magnification (focus breathing); found per plane. Off when the "
        "images are registered; translation when one is shifted; + scale for a focus pair "
        "whose magnification changes with focus. Rigid, similarity or affine (mutual "
        "information): for two modalities (CT and MRI, infrared and visible) that are "
        "rotated, scaled or sheared; from landmarks: from matched points of two Points "
        "layers. These move the second layer by its affine (Register, Undo move) and "
        "offer a check view of the fit"
    ),
    "per_plane": (
        "Off (default): a Z/T stack is normalised with one range per layer, over all its "
        "planes, so brightness compares across planes (no flicker). On: each plane gets its "
        "own range."
    ),
    "features": (
        "Also add GIFNet's feature maps (three 98-channel stacks, hidden, and their PCA "
        "colour summaries) below the result: to look at what the network sees. Slower."
    ),
    "keep_previous": (
        "Keep earlier results: a new run adds a numbered layer instead of replacing the "
        "result of the same inputs and method"
    ),
    "run_button": (
        "Fuse the two inputs with the chosen method; the result is added above the inputs"
    ),
    "cancel_button": "Stop the running fusion at the next band or plane; nothing is added",
}


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


def registration_text(metadata: dict[str, Any]) -> str:
    """``"registered (rigid), the second moved by its affine"`` from ``metadata["registration"]``
    ("" if none)."""
    entry = metadata.get("registration")
    if not isinstance(entry, dict):
        return ""
    return f"registered ({entry.get('kind', '?')}), the second moved by its affine"


def scope_text(metadata: dict[str, Any]) -> str:
    """How a stack was normalised ("" for one plane)."""
    if int(metadata.get("planes") or 1) <= 1:
        return ""
    if metadata.get("normalization_scope") == "plane":
        return "each plane normalised on its own"
    return "normalised with one range per layer"


def bit_depth_range(dtypes: list[np.dtype], peak: float) -> tuple[tuple[int, int], str] | None:
    """The range to use instead of ``"dtype"`` for data using little of its type's range.

    Parameters
    ----------
    dtypes
        The inputs' data types.
    peak
        The largest value of the inputs (a plane of each).

    Returns
    -------
    ((0, 2**bits - 1), str) or None
        For unsigned integers wider than 8 bits whose ``peak`` is below
        :data:`MIN_DTYPE_SHARE` of the type's maximum: the data's bit depth
        (at least 8 bits) as a fixed range for both inputs, and a sentence
        saying so. None otherwise (``"dtype"`` is used as asked).
    """
    kinds = [np.dtype(d) for d in dtypes]
    if not all(d.kind == "u" and d.itemsize > 1 for d in kinds) or not peak > 0:
        return None
    top = max(np.iinfo(d).max for d in kinds)
    share = float(peak) / top
    if share >= MIN_DTYPE_SHARE:
        return None
    bits = max(8, int(math.ceil(peak)).bit_length())
    hi = 2**bits - 1
    widest = max(kinds, key=lambda d: d.itemsize)
    text = (
        f"normalisation: the data's {bits}-bit range 0-{hi}, not 'dtype' (it would use "
        f"{share:.1%} of {widest.name})"
    )
    return (0, hi), text


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
        self.method = ComboBox(label="method", choices=method_choices(), value="gifnet")
        self.normalization = ComboBox(label="normalisation", choices=list(NORMALIZATIONS))
        self.align = ComboBox(
            label="align second onto first", choices=[*ALIGN_CHOICES, *REGISTRATION_CHOICES],
            value=None,
        )  # fmt: skip
        self.per_plane = CheckBox(text="normalise each plane on its own", value=False)
        gifnet_controls(self)
        self.features = CheckBox(text="add feature layers")
        self.keep_previous = CheckBox(text="keep previous results")
        for name, tip in TIPS.items():
            getattr(self, name).tooltip = tip
        self.hint.native.setWordWrap(True)
        never_widen(self.hint.native)  # wrapped to the dock
        # the method's reason on one line (the form stays short), all of it in the tooltip
        self._preset_line = StatusLine(self.preset_note)
        self._pickers = [self.first, self.second]
        self.registration = RegistrationPanel(self)
        self.extend([
            self.task, self.hint, self.preset_note, self.first, self.second, self.swap, self.method,
            self.normalization, self.align, *self.registration.controls, self.per_plane,
            self.device, self.weights, self.features, self.keep_previous, self.buttons, self.status,
        ])  # fmt: skip
        self._plan: FusionPlan | None = None  # the running (or last) job's plan
        add_compare_controls(self)
        self.task.changed.connect(self._apply_preset)
        self.method.changed.connect(self._apply_method)
        self.swap.changed.connect(self.swap_inputs)
        # the Qt signal: magicgui's ``changed`` is silent when the value becomes None ("off")
        self.align.native.currentIndexChanged.connect(self._align_changed)
        self._apply_preset()
        self._apply_method()
        self._pin_width()
        self._refresh_layers()
        self.remember(
            "fusion", "task", "method", "align", "per_plane", "device", "weights", "features",
            "keep_previous",
        )  # fmt: skip
        for picker in (self.first, self.second):
            picker.changed.connect(self.follow_layers)
            picker.changed.connect(self.registration.layers_changed)
        self.registration.set_mode(self.align.value)
        self.follow_layers()

    def _align_changed(self, _index: int) -> None:
        """Show the registration rows of the mode chosen; remember "off" too (magicgui's
        ``changed``, which stores the other choices, is silent for None)."""
        self.registration.set_mode(self.align.value)
        if self.align.value is None and self.settings is not None:
            self.settings.save("align")

    def _image_choices(self, _widget: Any = None) -> list[tuple[str, Any]]:
        """The viewer's image layers but the check view."""
        return [(name, ly) for name, ly in super()._image_choices() if not is_check_layer(ly)]

    def _refresh_layers(self) -> None:
        super()._refresh_layers()
        if hasattr(self, "registration"):  # the layer watcher may call before it is built
            self.registration.refresh_layers()

    def use_checkpoint(self, path: str | Path) -> None:
        """Fuse with the checkpoint ``path`` from now on (from the *Fine-tune GIFNet* widget).

        It becomes the plugin-wide weights setting: every GIFNet widget uses it,
        now and in the next launch.
        """
        self.weights.value = str(path)
        if not self.running:
            self.status.value = f"Weights: {path}"

    def follow_layers(self, _value: Any = None) -> str | None:
        """Select the task the chosen layers say they are (a sample's); returns its key.

        The task's preset sets the normalisation and the method; the status
        line says why the task changed.
        """
        found = data_task(self.first.value, self.second.value)
        if found is None or self.running:
            return None
        task, sample = found
        if self.task.value != task:
            self.task.value = task
            label = get_preset(task).label
            self.status.value = (
                f"Task: {label}, as the layers are the {sample!r} sample (normalisation "
                f"{self.normalization.value}, method {task_method_label(self.method.value)})"
            )
        return task

    def swap_inputs(self) -> None:
        """Exchange the first and the second input."""
        self.first.value, self.second.value = self.second.value, self.first.value

    def _input_labels(self, key: str) -> None:
        preset = get_preset(key)
        custom = preset.key == "custom"
        self.first.label = "first input" if custom else f"first input ({preset.first})"
        self.second.label = "second input" if custom else f"second input ({preset.second})"

    def _pin_width(self) -> None:
        """Keep the form as wide as the widest task's input labels need, so choosing
        another task never widens the dock."""
        widths = []
        for key in task_keys():
            self._input_labels(key)
            widths.append(self.native.minimumSizeHint().width())
        self.native.setMinimumWidth(max(widths))
        self._input_labels(self.task.value or "custom")

    def _apply_preset(self, _value: Any = None) -> None:
        preset = get_preset(self.task.value or "custom")
        self._input_labels(preset.key)
        self.hint.value = preset.hint
        self.hint.tooltip = preset.note
        self.normalization.value = preset.normalization
        self._preset_line.show(preset_text(preset.key))
        self.method.value = preset.method  # the user may pick another afterwards

    def _apply_method(self, _value: Any = None) -> None:
        """Enable the controls of the options the method takes (the method table's
        :attr:`~napari_gifnet.methods.registry.Method.options`), disable the others."""
        method = METHODS[self.method.value]
        for control, option in _OPTION_CONTROLS.items():
            getattr(self, control).enabled = method.takes(option)

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
            "align": None if self.align.value in REGISTRATION_MODES else self.align.value,
            "per_plane": bool(self.per_plane.value),
        }

    def run(self) -> Any:
        """Start the fusion; with a registration mode and no current registration, register
        (and move the second layer) first. Returns the worker (None if refused)."""
        if self.running:
            return None
        if self.registration.mode is not None and not self.registration.is_current():
            return self.registration.register(then=super().run)
        return super().run()

    def prepare(self) -> tuple[Callable, str] | None:
        """Plan the fusion (GUI thread, no pixels read); the work is :func:`iter_fusion`."""
        first, second = self.first.value, self.second.value
        if first is None or second is None:
            self.fail("Choose two image layers to fuse.")
            return None
        plan = prepare_fusion(first, second, self.method.value)
        registration = self.registration.provenance()
        options = {**self.options(), "show": shown_index(self.viewer, first, plan.leading_shape)}
        self._plan = plan
        dtypes = [np.dtype(plan.first.data.dtype), np.dtype(plan.second.data.dtype)]
        # whether the bit-depth rule may apply (wide unsigned integers), before reading pixels
        check = options["normalization"] == "dtype" and bit_depth_range(dtypes, 1) is not None

        def work(progress: Progress) -> Any:
            note = None
            if check:  # a plane of each input (worker thread)
                index = options["show"] or next(iter(plan.plane_indices()))
                peak = max(float(np.max(x.read(index))) for x in (plan.first, plan.second))
                rescue = bit_depth_range(dtypes, peak)
                if rescue is not None:
                    options["normalization"], note = rescue
            output = yield from iter_fusion(plan, progress=progress, **options)
            if note is not None:
                output.metadata["normalization_note"] = note
            if registration is not None:
                output.metadata["registration"] = registration
            return output

        return work, f"{task_method_label(plan.method)}: {plan.output_name}"

    def running_text(self, label: str) -> str:
        where = f" on {device_text(self.device.value)}" if self._plan.method == "gifnet" else ""
        method = task_method_label(self._plan.method)
        return f"Running {method}{where}: {self._plan.output_name} ..."

    def describe(self, exc: BaseException) -> str:
        return describe_error(exc, self._plan.method if self._plan else "gifnet")

    def finish(self, value: FusionOutput) -> list[Image]:
        if value.plan.method == "gifnet":  # the weights, when not the published ones
            text, custom = weights_state(weights_of(self), self.shared_weights.remembered)
            if custom:
                value.metadata["weights_note"] = text
        return add_fusion_layers(self.viewer, value, keep_previous=bool(self.keep_previous.value))

    def summary(self, value: FusionOutput) -> str:
        meta = value.metadata
        parts = [status_text(value), meta.get("weights_note"), meta.get("normalization_note"),
                 scope_text(meta), alignment_text(meta), registration_text(meta)]  # fmt: skip
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
        keys = ("task", "normalization", "weights", "device")
        options = {key: value for key, value in self.options().items() if key in keys}
        methods = self.compare_methods  # None: every method of the task

        def work(progress: Progress) -> Any:
            a = plan.first.read(index)  # worker thread
            b = plan.second_on_first(index)  # resampled onto the first's grid when planned
            return compare_pair(a, b, methods=methods, progress=progress, **options)

        tf = {k: tuple(plan.first.transforms[k])[-2:] for k in ("scale", "translate")}

        def look(result: Any) -> dict[str, Any]:
            rgb = result.image.ndim == 3
            return {**image_look(rgb), "contrast_limits": display_range(result.image, rgb), **tf}

        base = f"{first.name} + {second.name}"
        if plan.leading_shape:
            base += f" [plane {', '.join(map(str, index))}]"
        return CompareJob(work, f"Compare methods: {base}", base, look)
