"""A new user's first session, as README.md's napari section and docs/walkthrough.md tell it.

One napari window (shown, under Xvfb) goes through the steps in order,
pressing the widgets' real buttons and opening every widget the way a user
does (``add_plugin_dock_widget``, ``open_sample``):

1. the CT-like + MRI-like sample; GIFNet fusion with feature layers; a
   missing weights file, then a successful run (the dock keeps its width);
   the README's console lines (``fuse_layers(..., features=True)``) on the
   same layers; Register (rigid, mutual information) with its check view,
   Undo move and back to off (docs/registration.md);
2. Fusion metrics with its default selection, Compute;
3. the focus stack sample, fused with the task's first two methods in turn;
4. Enhance one image with both variants; the offline pansharpening sample,
   pansharpened with the first two methods in turn;
5. Fine-tune GIFNet for one step on the two sample layers (its checkpoint
   goes to the fusion widget); a hand-made task and normalisation are left set;
6. a relaunch: the window closed, a new one with the same settings file,
   the fluorescence sample (12-bit) fused with the remembered settings (the
   alignment left off stays off).

At each step it checks what a user sees: the layers, their order, visibility,
names and contrast limits, the metrics table's rows, the status text and the
dock's width. The samples are made at 96 pixels (their ``size`` option) so the
whole session takes seconds. The checks are soft (:class:`Journey`): the
session goes on after a failed one, and the test fails at the end listing
every check that failed, so one run shows all that a user would meet.
"""

from __future__ import annotations

import functools
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("napari")
pytest.importorskip("pytestqt")

from napari.utils.notifications import notification_manager
from qtpy.QtCore import Qt
from qtpy.QtWidgets import QLabel

pytestmark = pytest.mark.usefixtures("one_torch_thread", "no_timm_hub", "timm_imported")

#: Side of the samples (pixels).
SIZE = 96
DONE_MS = 120_000
#: The sample functions made smaller (napari's Open Sample calls them without arguments).
SMALL_SAMPLES = ("medical_pair", "focus_stack", "fluorescence_pair")


class Journey:
    """The journey's checks: each is recorded; :meth:`verdict` fails listing the failed ones."""

    def __init__(self) -> None:
        self.passed: list[str] = []
        self.failed: list[str] = []
        self.times: list[tuple[str, float]] = [("start", time.perf_counter())]

    def step(self, name: str) -> None:
        """Mark the start of a step (the seconds each took are printed at the end)."""
        self.times.append((name, time.perf_counter()))

    def check(self, ok: Any, what: str, seen: Any = "") -> bool:
        """Record the check ``what``; ``seen`` is shown when it failed."""
        if ok:
            self.passed.append(what)
        else:
            self.failed.append(f"{what} (seen: {seen!r})" if seen != "" else what)
        return bool(ok)

    def verdict(self) -> None:
        self.step("end")
        print(*(f"{a}: {t1 - t0:.1f} s" for (a, t0), (_, t1) in zip(self.times, self.times[1:])))
        print(f"{len(self.passed)} checks passed:", *self.passed, sep="\n  ")
        if self.failed:
            pytest.fail(f"{len(self.failed)} checks failed:\n  " + "\n  ".join(self.failed))


@pytest.fixture(scope="module")
def timm_imported() -> None:
    """timm (the fine-tune's DenseNet) imported on the main thread before the session: the
    fine-tune worker would import it while the GUI thread runs, several times slower."""
    pytest.importorskip("timm")


@pytest.fixture
def small_samples(monkeypatch: pytest.MonkeyPatch) -> None:
    """File > Open Sample makes the offline samples at :data:`SIZE` pixels."""
    from napari_gifnet.data import synthetic

    for name in SMALL_SAMPLES:
        monkeypatch.setattr(synthetic, name, functools.partial(getattr(synthetic, name), size=SIZE))


def _click(qtbot, widget: Any, button: Any) -> str:
    """Press ``button`` (magicgui or Qt) and return the status line right after the press."""
    qtbot.mouseClick(getattr(button, "native", button), Qt.LeftButton)
    return _status(widget)


def _wait(qtbot, widget: Any) -> None:
    qtbot.waitUntil(lambda: not widget.running, timeout=DONE_MS)
    qtbot.wait(30)  # the layout settles


def _status(widget: Any) -> str:
    """The status line's whole text (its tooltip holds it when the line is elided)."""
    label = widget.status if isinstance(widget.status, QLabel) else widget.status.native
    return label.toolTip() or label.text()


def _label_texts(widget: Any) -> list[str]:
    """The texts of the visible labels of a widget (its status line among them)."""
    native = getattr(widget, "native", widget)
    return [w.text() for w in native.findChildren(QLabel) if w.isVisible() and w.text()]


def _covers(layer: Any) -> tuple[bool, str]:
    """Whether a grey layer's contrast limits show its data whole, and not much more."""
    data = np.asarray(layer.data, dtype=np.float64)
    lo, hi = (float(v) for v in layer.contrast_limits)
    dmin, dmax = float(np.nanmin(data)), float(np.nanmax(data))
    tol = 1e-3 * max(dmax - dmin, 1e-6)
    ok = lo <= dmin + tol and hi >= dmax - tol and (hi - lo) <= 1.5 * (dmax - dmin) + tol
    return ok, f"limits ({lo:.4g}, {hi:.4g}), data ({dmin:.4g}, {dmax:.4g})"


def _choices(combo: Any) -> list[tuple[str, Any]]:
    """(label, value) of a magicgui ComboBox, in menu order."""
    native = combo.native
    return [(native.itemText(i), native.itemData(i)) for i in range(native.count())]


def _mentions(name: str, label: str, key: str, *ignore: str) -> bool:
    """Whether a layer name names a method or variant (its key or its label's leading
    words), once the words in ``ignore`` (the input's name, "all-in-focus") are taken out."""
    name = name.lower()
    for words in ignore:
        name = name.replace(words.lower(), " ")
    short = label.lower()
    for sep in (":", " (", " - ", " \u2013 ", " \u2014 ", ";", ","):
        short = short.split(sep)[0]
    short = short.strip().removeprefix("the ")
    return key.lower() in name or (bool(short) and short in name)


def _bar_shown(widget: Any) -> bool:
    """Whether a job runs and its progress bar is shown (right after the press)."""
    return bool(widget.running) and not widget.runner.bar.isHidden()


def _untipped(widget: Any) -> list[str]:
    """The labels of a form's visible input controls (not buttons) that have no tooltip."""
    from magicgui.widgets import Container, Label, PushButton

    missing = []
    for control in widget:
        if not control.visible or isinstance(control, (Label, PushButton)):
            continue
        if isinstance(control, Container) and not hasattr(control, "line_edit"):
            missing += _untipped(control)  # a group of controls (FileEdit is one control)
        elif not (control.tooltip or control.native.toolTip()):
            name = control.label or getattr(control, "text", "") or control.name
            missing.append(name or type(control).__name__)
    return missing


def _dock(viewer, qtbot, widget_name: str) -> tuple[Any, Any]:
    dock, widget = viewer.window.add_plugin_dock_widget("napari-gifnet", widget_name)
    qtbot.waitUntil(lambda: dock.isVisible() and dock.width() > 0, timeout=DONE_MS)
    qtbot.wait(30)
    return dock, widget


def test_a_first_session_through_the_readme_and_the_walkthrough(
    qtbot, make_napari_viewer, gifnet_plugin, reference_weights, small_samples, tmp_path,
    monkeypatch,
):  # fmt: skip
    from napari_gifnet.methods.presets import get_preset
    from napari_gifnet.plugin.layer_output import is_fused_layer

    monkeypatch.setenv("GIFNET_WEIGHTS", str(reference_weights))
    journey = Journey()
    check = journey.check
    viewer = make_napari_viewer(show=True)

    journey.step("fusion")
    # 1. File > Open Sample > CT-like + MRI-like; Layers > Filter > GIFNet fusion --------------
    viewer.open_sample(gifnet_plugin, "medical")
    dock, fusion = _dock(viewer, qtbot, "GIFNet fusion")
    check(fusion.task.value == "medical", "the medical sample selects the Medical task",
          fusion.task.value)  # fmt: skip
    ct, mri = viewer.layers["CT-like"], viewer.layers["MRI-like"]
    check(
        (fusion.first.value, fusion.second.value) == (ct, mri),
        "the pickers offer CT-like first, MRI-like second",
        (getattr(fusion.first.value, "name", None), getattr(fusion.second.value, "name", None)),
    )
    check(fusion.method.value == "gifnet", "Medical runs GIFNet", fusion.method.value)
    check(not _untipped(fusion), "every fusion control has a tooltip", _untipped(fusion))
    fusion.features.value = True
    width, canvas = dock.width(), viewer.window._qt_viewer.canvas.native.width()

    # a weights file that is not there: one short line, the dock as wide as before
    missing = tmp_path / "gifnet_finetuned_on_the_lab_s_own_ct_and_mri_pairs_200_steps.pth"
    fusion.weights.value = str(missing)
    qtbot.wait(30)
    check(
        dock.width() <= width, "a long weights path never widens the dock", (width, dock.width())
    )
    width, canvas = dock.width(), viewer.window._qt_viewer.canvas.native.width()
    _click(qtbot, fusion, fusion.run_button)
    _wait(qtbot, fusion)
    shown = fusion.status.native.text()
    check(
        missing.name in _status(fusion),
        "the error names the missing file (in full)",
        _status(fusion),
    )
    check("\n" not in shown, "the error's status line is one line", shown)
    check(dock.width() <= width, "the error never widens the dock", (width, dock.width()))
    check(viewer.window._qt_viewer.canvas.native.width() == canvas,
          "the error leaves the canvas's width",
          (canvas, viewer.window._qt_viewer.canvas.native.width()))  # fmt: skip
    check(
        not any(is_fused_layer(ly.metadata) for ly in viewer.layers),
        "a failed run adds no layer",
        [ly.name for ly in viewer.layers],
    )
    fusion.weights.line_edit.value = ""  # back to the default search (GIFNET_WEIGHTS)

    running = _click(qtbot, fusion, fusion.run_button)
    check("cpu" in running.lower() and "auto" not in running.lower(),
          "the running status names the CPU", running)  # fmt: skip
    check(_bar_shown(fusion), "a progress bar shows the fusion run")
    _wait(qtbot, fusion)
    check(
        missing.name not in _status(fusion),
        "a successful run clears the earlier error",
        _status(fusion),
    )
    check(dock.width() <= width, "the run never widens the dock", (width, dock.width()))
    layers = fusion.last_layers
    assert layers, _status(fusion)
    fused, features = layers[0], layers[1:]
    names = [ly.name for ly in viewer.layers]
    check(
        "CT-like" in fused.name and "MRI-like" in fused.name and "GIFNet" in fused.name,
        "the fused layer is named by its inputs and method",
        fused.name,
    )
    check(viewer.layers[-1] is fused, "the fused layer is on top", names)
    check(
        viewer.layers.selection.active is fused,
        "the fused layer is selected",
        getattr(viewer.layers.selection.active, "name", None),
    )
    check(fused.visible, "the fused layer is visible")
    check(*_covers(fused)[:1], "the fused layer's contrast limits show its data",
          _covers(fused)[1])  # fmt: skip
    check(len(features) == 6, "three feature stacks and three summaries", len(features))
    top = viewer.layers.index(fused)
    check(all(viewer.layers.index(ly) < top for ly in features),
          "the feature layers are below the fused layer", names)  # fmt: skip
    stacks = [ly for ly in features if not ly.rgb]
    check(
        stacks and not any(ly.visible for ly in stacks),
        "the feature stacks are hidden",
        [(ly.name, ly.visible) for ly in stacks],
    )
    check(
        all("feat" in ly.name[:20].lower() or "pca" in ly.name[:20].lower() for ly in features),
        "the feature layers say what they are in their first 20 characters",
        [ly.name[:20] for ly in features],
    )
    check(ct.visible or mri.visible or fused.visible, "something is shown")
    widths = []
    for task in ("mfif", "meif", "medical"):  # each task's notes fit the dock
        fusion.task.value = task
        qtbot.wait(30)
        widths.append(dock.width())
    check(max(widths) <= width, "choosing other tasks never widens the dock", (width, widths))

    # the README's console lines, on the same layers: the result is updated in place
    from napari_gifnet import fuse_layers

    again, *console_features = fuse_layers(viewer, "CT-like", "MRI-like", features=True)
    check(
        again.name == fused.name and len(viewer.layers) == len(names),
        "the console's fuse_layers updates the widget's layers in place",
        [ly.name for ly in viewer.layers],
    )
    fused, features = again, console_features

    # docs/registration.md, "In napari": rigid (mutual information), Register, the
    # checkerboard, Undo move, back to off (the sample pair is registered: it stays put)
    panel = fusion.registration
    fusion.align.value = "rigid"
    _click(qtbot, fusion, panel.register_button)
    _wait(qtbot, fusion)
    moved = np.asarray(mri.affine.affine_matrix)
    check(panel.registration is not None and np.abs(moved[:2, 2]).max() < 0.5
          and np.allclose(moved[:2, :2], np.eye(2), atol=0.01),
          "Register finds the registered sample pair where it is (under half a pixel)",
          (_status(fusion), moved))  # fmt: skip
    panel.check.value = "checkerboard"
    check(dock.width() <= width, "the registration rows never widen the dock", dock.width())
    inputs = max(viewer.layers.index(ct), viewer.layers.index(mri))
    check(viewer.layers[inputs + 1].name == "check view",
          "the check view is just above the inputs", [ly.name for ly in viewer.layers])  # fmt: skip
    _click(qtbot, fusion, panel.undo_button)
    fusion.align.value = None
    now = [ly.name for ly in viewer.layers]
    check(now == names and np.allclose(mri.affine.affine_matrix, np.eye(3)),
          "Undo move and off leave the layers as they were", now)  # fmt: skip

    journey.step("metrics")
    # 2. Layers > Measure > Fusion metrics: the default selection, Compute ---------------------
    _mdock, metrics = _dock(viewer, qtbot, "Fusion metrics")
    check(
        (metrics.first.currentText(), metrics.second.currentText()) == ("CT-like", "MRI-like"),
        "the metrics widget's inputs are the fused layer's inputs",
        (metrics.first.currentText(), metrics.second.currentText()),
    )
    from qtpy.QtWidgets import QComboBox, QListWidget

    bare = [type(w).__name__ for w in metrics.findChildren((QComboBox, QListWidget))
            if w.isVisible() and not w.toolTip()]  # fmt: skip
    check(not bare, "every metrics control has a tooltip", bare)
    selected = metrics.selected_fused()
    check(selected == [fused.name], "only the fused layer is selected to score", selected)
    _click(qtbot, metrics, metrics.compute_button)
    _wait(qtbot, metrics)
    table = metrics.table
    cells = [table.item(r, c).text() for r in range(table.rowCount())
             for c in range(table.columnCount()) if table.item(r, c) is not None]  # fmt: skip
    headers = [table.horizontalHeaderItem(c).text() for c in range(table.columnCount())
               if table.horizontalHeaderItem(c) is not None]  # fmt: skip
    check(table.rowCount() > 0, "the metrics table has rows", table.rowCount())
    check(fused.name in metrics.results, "the fused layer is scored", list(metrics.results))
    check(
        not any(ly.name in metrics.results for ly in features),
        "no feature layer is scored",
        list(metrics.results),
    )
    check(any(fused.name in t for t in cells + headers), "the table names the fused layer", headers)
    numbers = [t for t in cells if t.replace(".", "", 1).replace("-", "", 1).isdigit()]
    check(numbers, "the table shows values", cells[:8])
    check(
        "no fused layer" not in _status(metrics).lower(),
        "the metrics status reports scores",
        _status(metrics),
    )
    qtbot.wait(30)
    check(
        not table.horizontalScrollBar().isVisible(),
        "the metrics table fits the dock",
        (table.width(), table.horizontalHeader().length()),
    )

    journey.step("focus stack")
    # 3. File > Open Sample > Focus stack; Layers > Project > Focus stack, two methods ---------
    viewer.open_sample(gifnet_plugin, "focus_stack")
    _sdock, stack = _dock(viewer, qtbot, "Focus stack")
    stack.layer.value = viewer.layers["focus stack"]
    check(stack.task.value == "focus", "a focus stack selects the focus task", stack.task.value)
    methods = _choices(stack.method)
    check(
        methods and methods[0][1] == stack.method.value,
        "the task's default method is first in the list",
        (stack.method.value, methods[:2]),
    )
    check(not _untipped(stack), "every focus stack control has a tooltip", _untipped(stack))
    first_method = stack.method.value
    second_method = next(v for _, v in methods if v not in (first_method, "gifnet"))
    runs = []
    for method in (first_method, second_method):
        stack.method.value = method
        _click(qtbot, stack, stack.run_button)
        check(_bar_shown(stack), f"a progress bar shows the {method} run")
        _wait(qtbot, stack)
        assert stack.last_layers, _status(stack)
        runs.append((method, stack.last_layers[0]))
    results = [
        ly for ly in viewer.layers if "all-in-focus" in ly.name and ly.name != "all-in-focus truth"
    ]
    check(
        len(results) == 2, "both methods' all-in-focus layers are kept", [ly.name for ly in results]
    )
    for method, layer in runs:
        label = dict((v, text) for text, v in methods)[method]
        check(
            layer in viewer.layers
            and _mentions(layer.name, label, method, "focus stack", "all-in-focus"),
            f"the {method} result is named by its method",
            layer.name,
        )
        check(
            *_covers(layer)[:1],
            f"the {method} result's contrast limits show its data",
            _covers(layer)[1],
        )
    latest = runs[-1][1]
    check(latest.visible, "the latest all-in-focus layer is visible")
    check(
        viewer.layers.selection.active is latest,
        "the latest all-in-focus layer is the selected one",
        getattr(viewer.layers.selection.active, "name", None),
    )
    extras = [ly for ly in stack.last_layers[1:]]
    check(
        extras and not any(ly.visible for ly in extras),
        "depth and confidence are hidden",
        [(ly.name, ly.visible) for ly in extras],
    )
    above = [ly.name for ly in viewer.layers[viewer.layers.index(latest) + 1 :] if ly.visible]
    check(not above, "nothing visible above the latest result", above)

    journey.step("enhance")
    # 4. Layers > Filter > Enhance one image, both variants ------------------------------------
    _edock, enhance = _dock(viewer, qtbot, "Enhance one image")
    enhance.image.value = mri
    enhanced = []
    variants = _choices(enhance.variant)
    check(not _untipped(enhance), "every enhance control has a tooltip", _untipped(enhance))
    check(len(variants) >= 2, "Enhance offers two variants", variants)
    for label, variant in variants[:2]:
        enhance.variant.value = variant
        running = _click(qtbot, enhance, enhance.run_button)
        check("cpu" in running.lower(), f"enhance ({variant}) says it runs on the CPU", running)
        check(_bar_shown(enhance), f"a progress bar shows the enhance ({variant}) run")
        _wait(qtbot, enhance)
        assert enhance.last_layers, _status(enhance)
        enhanced.append((label, variant, enhance.last_layers[0]))
    kept = [layer for *_, layer in enhanced if layer in viewer.layers]
    check(
        len({ly.name for ly in kept}) == 2,
        "both enhanced images are kept",
        [ly.name for ly in kept],
    )
    for label, variant, layer in enhanced:
        check(
            _mentions(layer.name, label, variant, mri.name),
            f"the {variant} result is named by its variant",
            layer.name,
        )
        check(
            *_covers(layer)[:1],
            f"the {variant} result's contrast limits show its data",
            _covers(layer)[1],
        )
    check(
        viewer.layers[-1] is enhanced[-1][2] and enhanced[-1][2].visible,
        "the latest enhanced image is on top and visible",
        viewer.layers[-1].name,
    )
    check(
        viewer.layers.selection.active is enhanced[-1][2],
        "the latest enhanced image is the selected one",
        getattr(viewer.layers.selection.active, "name", None),
    )

    journey.step("pansharpen")
    # 4b. File > Open Sample > multispectral + panchromatic (offline); Pansharpen, two methods
    viewer.open_sample(gifnet_plugin, "pansharpening")
    _pdock, pan = _dock(viewer, qtbot, "Pansharpen")
    pan.ms.value, pan.pan.value = viewer.layers["multispectral"], viewer.layers["panchromatic"]
    methods = _choices(pan.method)
    check(
        methods and methods[0][1] == pan.method.value,
        "the best measured pansharpening method is first and the default",
        (pan.method.value, methods[:2]),
    )
    sharpened = []
    for method in (methods[0][1], methods[1][1]):
        pan.method.value = method
        _click(qtbot, pan, pan.run_button)
        check(_bar_shown(pan), f"a progress bar shows the pansharpen ({method}) run")
        _wait(qtbot, pan)
        assert pan.last_layers, _status(pan)
        sharpened.append((method, pan.last_layers[0]))
    kept = [layer for _, layer in sharpened if layer in viewer.layers]
    check(
        len({ly.name for ly in kept}) == 2,
        "both pansharpened results are kept",
        [ly.name for ly in kept],
    )
    for method, layer in sharpened:
        label = dict((v, text) for text, v in methods)[method]
        check(
            _mentions(layer.name, label, method, "multispectral", "pansharpened"),
            f"the {method} result is named by its method",
            layer.name,
        )
        check(
            *_covers(layer)[:1],
            f"the {method} result's contrast limits show its data",
            _covers(layer)[1],
        )
    check(
        viewer.layers[-1] is sharpened[-1][1] and sharpened[-1][1].visible,
        "the latest pansharpened image is on top and visible",
        viewer.layers[-1].name,
    )

    journey.step("fine-tune")
    # 5. Plugins > Fine-tune GIFNet: one step on the two sample layers ------------------------
    _tdock, tune = _dock(viewer, qtbot, "Fine-tune GIFNet")
    check(
        tune.axes.get_xlabel() and tune.axes.get_ylabel(),
        "the loss plot has axes before training",
        (tune.axes.get_xlabel(), tune.axes.get_ylabel()),
    )
    tune.source.value = "layers"
    tune.first.value, tune.second.value = ct, mri
    tune.steps.value, tune.batch_size.value, tune.crop.value = 1, 1, 32
    tuned = tmp_path / "tuned" / "ct_mri_tuned.pth"
    tune.out.value = str(tuned)
    check(not _untipped(tune), "every fine-tune control has a tooltip", _untipped(tune))
    count = len(notification_manager.records)
    _click(qtbot, tune, tune.run_button)
    check(_bar_shown(tune), "a progress bar shows the fine-tune run")
    _wait(qtbot, tune)
    advice = [str(n.message) for n in notification_manager.records[count:]]
    advice = [text for text in advice if "DenseNet" in text]
    check(
        advice and not any("--densenet" in text for text in advice),
        "the DenseNet advice names the widget's control, not a command-line flag",
        advice,
    )
    assert tune.last_result is not None, _status(tune)
    check(
        tuned.is_file() and tune.last_result.steps == 1,
        "one step wrote the checkpoint",
        _status(tune),
    )
    check(
        Path(str(fusion.weights.value)) == tuned,
        "the checkpoint went to the fusion widget",
        str(fusion.weights.value),
    )
    tune.canvas.draw()
    lo, hi = tune.axes.get_xlim()
    ticks = [t for t in tune.axes.get_xticks() if lo - 1e-9 <= t <= hi + 1e-9]
    check(
        ticks and all(float(t).is_integer() for t in ticks),
        "the plot's step ticks are integers",
        ticks,
    )
    for other in (stack, enhance):
        check(
            Path(str(other.weights.value)) == tuned,
            f"the {type(other).__name__}'s weights show the plugin-wide checkpoint",
            str(other.weights.value),
        )
    # a hand-made setting for another kind of data, left set at the end of the session
    fusion.task.value = "meif"
    fusion.normalization.value = "dtype"
    qtbot.wait(30)

    journey.step("relaunch")
    # 6. Relaunch: the same settings file, a 12-bit fluorescence sample ------------------------
    viewer.close()
    viewer = make_napari_viewer(show=True)
    viewer.open_sample(gifnet_plugin, "fluorescence")
    _dock2, fusion = _dock(viewer, qtbot, "GIFNet fusion")
    check(
        Path(str(fusion.weights.value)) == tuned,
        "the fine-tuned checkpoint is remembered",
        str(fusion.weights.value),
    )
    check(
        any(tuned.name in t for t in _label_texts(fusion)),
        "the widget shows the remembered checkpoint in words",
        _label_texts(fusion),
    )
    check(
        fusion.task.value != "meif",
        "the 12-bit sample does not keep the exposure task",
        fusion.task.value,
    )
    check(fusion.align.value is None, "the alignment left off is remembered off",
          fusion.align.value)  # fmt: skip
    task = get_preset(fusion.task.value)
    check(
        fusion.normalization.value == task.normalization,
        "the normalisation follows the task",
        (fusion.task.value, fusion.normalization.value),
    )
    fusion.first.value, fusion.second.value = viewer.layers["nuclei"], viewer.layers["membranes"]
    _click(qtbot, fusion, fusion.run_button)
    _wait(qtbot, fusion)
    assert fusion.last_layers, _status(fusion)
    fused = fusion.last_layers[0]
    check(
        tuned.name in fused.name or tuned.name in _status(fusion) or tuned.stem in fused.name,
        "the result or the status names the fine-tuned checkpoint",
        (fused.name, _status(fusion)),
    )
    spread = float(np.ptp(np.asarray(fused.data)))
    check(spread > 0.3, "the fluorescence result uses the display range (not black)", spread)
    check(*_covers(fused)[:1], "its contrast limits show its data", _covers(fused)[1])
    check(
        viewer.layers[-1] is fused and fused.visible,
        "the result is on top and visible",
        [ly.name for ly in viewer.layers],
    )
    _sdock2, stack = _dock(viewer, qtbot, "Focus stack")
    check(
        Path(str(stack.weights.value)) == tuned,
        "the focus stack widget shows the same checkpoint after the relaunch",
        str(stack.weights.value),
    )

    journey.verdict()
