"""Render the screenshots of docs/walkthrough.md: napari with the fusion widget.

Run on a machine with a display or under Xvfb, with the checkpoint reachable
(``GIFNET_WEIGHTS`` or the cache)::

    xvfb-run -a python docs/make_screenshots.py

Each offline sample is opened from File > Open Sample's plugin entry, the
"GIFNet fusion" dock widget is opened and run on the sample's two inputs
exactly as a user would, and the window is saved to ``docs/images/``. Then:
the Layers > Filter menu with the plugin's entries (``walkthrough_menu.png``);
a hand-held multi-focus pair (the far-focus photo moved by a few pixels)
fused with "align second onto first" (``walkthrough_align.png``); and a
fluorescence Z-stack whose planes dim with depth, fused with one range per
layer beside per-plane normalisation, both at the deepest plane
(``walkthrough_zstack.png``). Screenshots go through the running Qt settings
of a temporary INI file (``NAPARI_GIFNET_SETTINGS``), not the user's.

Then every dock widget (fusion, metrics, focus stack, pansharpen, enhance,
fine-tune) alone in the window, at rest and after a run, as
``widget_<name>_rest.png`` and ``widget_<name>_run.png``: each opened from
the plugin's menu entry on an offline sample and run by pressing its button.
Then registration (docs/registration.md): the CT-like + MRI-like sample with
the MRI-like image rotated and shifted by a known transform, the check view
(checkerboard) of the unregistered pair (``registration_before.png``), the
same after *Register* (rigid, mutual information) has moved the second
layer by its affine (``registration_after.png``), and the fusion dock with
its registration rows (``registration_widget.png``).
``--only widgets`` makes only the widget screenshots, ``--only registration`` only the
registration ones, ``--only walkthrough`` the walkthrough's;
``--size N`` makes the samples at N pixels (a quick check on a slow machine;
the published screenshots use the samples' own sizes); ``--out DIR`` writes
them elsewhere. Notifications
(toasts) are closed before each screenshot.
"""

from __future__ import annotations

import argparse
import functools
import os
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("NAPARI_GIFNET_SETTINGS", str(Path(tempfile.mkdtemp()) / "widgets.ini"))

import napari
from qtpy.QtCore import Qt
from qtpy.QtTest import QTest
from qtpy.QtWidgets import QApplication

OUT = Path(__file__).resolve().parent / "images"

#: (sample key, task preset, first layer, second layer, features)
WALKTHROUGH = [
    ("medical", "medical", "CT-like", "MRI-like", True),
    ("multifocus", "mfif", "near focus", "far focus", False),
    ("exposure", "meif", "over-exposed", "under-exposed", False),
    ("fluorescence", "custom", "nuclei", "membranes", False),
]


def _wait(widget, timeout: float = 600.0) -> None:
    end = time.time() + timeout
    while widget.running and time.time() < end:
        QApplication.processEvents()
        time.sleep(0.05)
    for _ in range(20):
        QApplication.processEvents()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--only", choices=("all", "walkthrough", "widgets", "registration"), default="all"
    )
    parser.add_argument("--size", type=int, default=None, help="sample side in pixels")
    parser.add_argument("--out", type=Path, default=None, help="folder (default docs/images)")
    args = parser.parse_args(argv)
    global OUT
    OUT = args.out or OUT
    if args.size is not None:
        _small_samples(args.size)
    OUT.mkdir(exist_ok=True)
    viewer = napari.Viewer(title="napari-gifnet")
    viewer.window.resize(1400, 850)
    if args.only in ("all", "walkthrough"):
        _walkthrough(viewer)
    if args.only in ("all", "widgets"):
        _widgets(viewer)
    if args.only in ("all", "registration"):
        _registration(viewer)
    viewer.close()


def _small_samples(size: int) -> None:
    """The offline samples that have a size, made at ``size`` pixels."""
    from napari_gifnet.data import synthetic

    for name in ("medical_pair", "multifocus_pair", "focus_stack", "exposure_pair",
                 "fluorescence_pair"):  # fmt: skip
        setattr(synthetic, name, functools.partial(getattr(synthetic, name), size=size))


def _walkthrough(viewer) -> None:
    _, widget = viewer.window.add_plugin_dock_widget("napari-gifnet", "GIFNet fusion")
    for key, task, first, second, features in WALKTHROUGH:
        viewer.layers.clear()
        viewer.open_sample("napari-gifnet", key)
        widget.task.value = task
        widget._refresh_layers()
        widget.first.value = viewer.layers[first]
        widget.second.value = viewer.layers[second]
        widget.features.value = features
        widget.device.value = "cpu"
        widget.run()
        _wait(widget)
        for layer in viewer.layers:
            layer.visible = layer is widget.last_layers[0]  # the fused image alone
        viewer.reset_view()
        for _ in range(10):
            QApplication.processEvents()
        path = OUT / f"walkthrough_{key}.png"
        viewer.screenshot(str(path), canvas_only=False)
        print("wrote", path, "-", widget.status.value)
    _aligned(viewer, widget)
    _zstack(viewer, widget)
    _menu(viewer)


def _settle(n: int = 10) -> None:
    for _ in range(n):
        QApplication.processEvents()
        time.sleep(0.02)


def _aligned(viewer, widget) -> None:
    """A multi-focus pair shot hand-held: the second photo moved, then aligned back."""
    import numpy as np
    from scipy import ndimage

    from napari_gifnet.data.synthetic import multifocus_pair

    viewer.layers.clear()
    sample = multifocus_pair()
    near, far = sample.data("near focus"), sample.data("far focus")
    moved = np.stack([ndimage.shift(far[..., c].astype(float), (6.0, -9.0), order=3,
                                    mode="nearest") for c in range(far.shape[-1])], -1)
    moved = np.clip(np.rint(moved), 0, 255).astype(np.uint8)
    viewer.add_image(near, name="near focus", rgb=True)
    viewer.add_image(moved, name="far focus (hand-held)", rgb=True)
    widget.reset_settings() if hasattr(widget, "reset_settings") else None
    widget.task.value = "mfif"
    widget._refresh_layers()
    widget.first.value = viewer.layers["near focus"]
    widget.second.value = viewer.layers["far focus (hand-held)"]
    widget.align.value = "translation"
    widget.device.value = "cpu"
    widget.run()
    _wait(widget)
    for layer in viewer.layers:
        layer.visible = layer is widget.last_layers[0]
    viewer.reset_view()
    _settle()
    path = OUT / "walkthrough_align.png"
    viewer.screenshot(str(path), canvas_only=False)
    print("wrote", path, "-", widget.status.value)
    widget.align.value = None


def _zstack(viewer, widget) -> None:
    """A Z-stack whose planes dim with depth: one range per layer keeps them dimmer."""
    import numpy as np

    from napari_gifnet.data.synthetic import fluorescence_pair

    viewer.layers.clear()
    sample = fluorescence_pair()
    nuclei, membranes = sample.data("nuclei"), sample.data("membranes")
    depth = np.array([1.0, 0.7, 0.45, 0.3])[:, None, None]  # light lost with depth
    stack_a = np.rint(nuclei[None].astype(float) * depth).astype(nuclei.dtype)
    stack_b = np.rint(membranes[None].astype(float) * depth).astype(membranes.dtype)
    viewer.add_image(stack_a, name="nuclei (Z)", colormap="magenta", blending="additive")
    viewer.add_image(stack_b, name="membranes (Z)", colormap="green", blending="additive")
    widget.task.value = "custom"
    widget._refresh_layers()
    widget.first.value = viewer.layers["nuclei (Z)"]
    widget.second.value = viewer.layers["membranes (Z)"]
    widget.device.value = "cpu"
    results = []
    for per_plane in (False, True):
        widget.per_plane.value = per_plane
        widget.run()
        _wait(widget)
        fused = widget.last_layers[0]
        fused.name = "fused, " + ("each plane on its own" if per_plane else "one range per layer")
        results.append(fused)
        print("z-stack", fused.name, "plane means",
              [round(float(p.mean()), 3) for p in np.asarray(fused.data)], "-", widget.status.value)
    widget.per_plane.value = False
    for layer in viewer.layers:
        layer.visible = layer in results
        if layer in results:
            layer.contrast_limits = (0.0, 1.0)
    viewer.canvas.grid.enabled = True
    viewer.dims.set_current_step(0, stack_a.shape[0] - 1)  # the deepest plane
    viewer.reset_view()
    _settle()
    path = OUT / "walkthrough_zstack.png"
    viewer.screenshot(str(path), canvas_only=False)
    print("wrote", path)
    viewer.canvas.grid.enabled = False


def _menu(viewer) -> None:
    """Layers > Filter, opened, with the plugin's entries (the whole screen is grabbed)."""
    from qtpy.QtCore import QPoint

    window = viewer.window._qt_window
    bar = window.menuBar()
    layers = next(a for a in bar.actions() if a.text().replace("&", "") == "Layers")
    bar.setActiveAction(layers)
    _settle(20)
    menu = layers.menu()
    filt = next((a for a in menu.actions() if a.text().replace("&", "").startswith("Filter")),
                None)  # fmt: skip
    if filt is not None:
        menu.setActiveAction(filt)
        _settle(10)
        filt.menu().popup(menu.mapToGlobal(QPoint(menu.width(), menu.actionGeometry(filt).y())))
    _settle(20)
    screen = QApplication.primaryScreen()
    geometry = window.frameGeometry()
    shot = screen.grabWindow(0, geometry.x(), geometry.y(), min(geometry.width(), 1100),
                             min(geometry.height(), 600))  # fmt: skip
    path = OUT / "walkthrough_menu.png"
    shot.save(str(path))
    print("wrote", path)
    menu.close()


# ------------------------------------------------------------------ widget screenshots
def _close_toasts(viewer) -> None:
    """Close the notification toasts (they would cover the canvas's corner)."""
    try:
        from napari._qt.dialogs.qt_notification import NapariQtNotification
    except ImportError:  # a napari that keeps its toasts elsewhere: leave them
        return
    for toast in viewer.window._qt_window.findChildren(NapariQtNotification):
        toast.close()


def _shot(viewer, name: str, status: str = "") -> None:
    """Save the window as ``docs/images/<name>.png``."""
    viewer.reset_view()
    _settle()
    _close_toasts(viewer)
    _settle()
    path = OUT / f"{name}.png"
    viewer.screenshot(str(path), canvas_only=False)
    size = viewer.window._qt_window.size()
    print("wrote", path, f"({size.width()} x {size.height()} window) -", status)


def _status_of(widget) -> str:
    label = widget.status if hasattr(widget.status, "toolTip") else widget.status.native
    return label.toolTip() or label.text()


def _press(widget, button, timeout: float = 900.0) -> None:
    """Press a widget's button as a user does and wait for its job."""
    QTest.mouseClick(getattr(button, "native", button), Qt.MouseButton.LeftButton)
    _wait(widget, timeout)


def _open(viewer, title: str) -> Any:
    """The plugin's widget ``title``, docked alone (as its menu entry opens it)."""
    viewer.window.remove_dock_widget("all")
    _, widget = viewer.window.add_plugin_dock_widget("napari-gifnet", title)
    _settle()
    return widget


def _only_visible(viewer, layers) -> None:
    for layer in viewer.layers:
        layer.visible = layer in layers


def _widgets(viewer) -> None:
    """Every dock widget at rest and after a run (``widget_<name>_rest/_run.png``)."""
    viewer.layers.clear()
    viewer.open_sample("napari-gifnet", "medical")
    fusion = _open(viewer, "GIFNet fusion")
    fusion.features.value = True
    _shot(viewer, "widget_fusion_rest", _status_of(fusion))
    _press(fusion, fusion.run_button)
    _shot(viewer, "widget_fusion_run", _status_of(fusion))

    metrics = _open(viewer, "Fusion metrics")
    _shot(viewer, "widget_metrics_rest", _status_of(metrics))
    _press(metrics, metrics.compute_button)
    _shot(viewer, "widget_metrics_run", _status_of(metrics))

    viewer.layers.clear()
    viewer.open_sample("napari-gifnet", "focus_stack")
    stack = _open(viewer, "Focus stack")
    stack.layer.value = viewer.layers["focus stack"]
    _shot(viewer, "widget_focus_stack_rest", _status_of(stack))
    _press(stack, stack.run_button)
    _only_visible(viewer, stack.last_layers[:1])
    _shot(viewer, "widget_focus_stack_run", _status_of(stack))

    viewer.layers.clear()
    viewer.open_sample("napari-gifnet", "pansharpening")
    pansharpen = _open(viewer, "Pansharpen")
    _shot(viewer, "widget_pansharpen_rest", _status_of(pansharpen))
    _press(pansharpen, pansharpen.run_button)
    _only_visible(viewer, pansharpen.last_layers[:1])
    _shot(viewer, "widget_pansharpen_run", _status_of(pansharpen))

    viewer.layers.clear()
    viewer.open_sample("napari-gifnet", "exposure")
    enhance = _open(viewer, "Enhance one image")
    enhance.image.value = viewer.layers["under-exposed"]
    _shot(viewer, "widget_enhance_rest", _status_of(enhance))
    enhance.variant.value = "exposure"
    _press(enhance, enhance.run_button)
    _only_visible(viewer, enhance.last_layers[:1])
    _shot(viewer, "widget_enhance_run", _status_of(enhance))

    viewer.layers.clear()
    viewer.open_sample("napari-gifnet", "medical")
    tune = _open(viewer, "Fine-tune GIFNet")
    tune.source.value = "layers"
    tune.first.value, tune.second.value = viewer.layers["CT-like"], viewer.layers["MRI-like"]
    tune.steps.value, tune.batch_size.value, tune.crop.value = 5, 2, 64
    tune.out.value = str(Path(tempfile.mkdtemp()) / "ct_mri_tuned.pth")
    _shot(viewer, "widget_finetune_rest", _status_of(tune))
    _press(tune, tune.run_button)
    _shot(viewer, "widget_finetune_run", _status_of(tune))


# ------------------------------------------------------------------ registration
#: The known transform of the registration example: degrees, (dy, dx) pixels.
ROTATION, SHIFT = 8.0, (10.0, -14.0)


def _rotated(image, angle_deg: float, shift: tuple[float, float]):
    """``image`` rotated about its centre and shifted (the second modality, unregistered)."""
    import numpy as np
    from scipy import ndimage

    t = np.radians(angle_deg)
    a = np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])
    centre = (np.array(image.shape[:2]) - 1) / 2
    m = np.eye(3)
    m[:2, :2], m[:2, 2] = a, centre - a @ centre + np.asarray(shift)  # fixed -> moving
    inv = np.linalg.inv(m)
    out = ndimage.affine_transform(image.astype(float), inv[:2, :2], inv[:2, 2], order=1,
                                   mode="constant", cval=float(image.min()))  # fmt: skip
    return np.clip(np.rint(out), 0, 255).astype(image.dtype), m


def _registration(viewer) -> None:
    """The CT-like + MRI-like sample, the MRI-like moved: the check view before and after
    Register, and the dock (``registration_before/_after/_widget.png``)."""
    import numpy as np

    viewer.window.remove_dock_widget("all")
    viewer.layers.clear()
    viewer.open_sample("napari-gifnet", "medical")
    mri = viewer.layers["MRI-like"]
    moved, truth = _rotated(np.asarray(mri.data), ROTATION, SHIFT)
    viewer.layers.remove(mri)
    viewer.add_image(moved, name="MRI-like (moved)", colormap="gray")
    fusion = _open(viewer, "GIFNet fusion")
    fusion._refresh_layers()
    fusion.first.value = viewer.layers["CT-like"]
    fusion.second.value = viewer.layers["MRI-like (moved)"]
    fusion.align.value = "rigid"
    panel = fusion.registration
    panel.check.value = "checkerboard"
    _shot(viewer, "registration_before", "the unregistered pair, checkerboard")
    _press(fusion, panel.register_button)
    second = viewer.layers["MRI-like (moved)"]
    world = np.array(second.affine.affine_matrix) @ np.diag([*second.scale, 1.0])
    yy, xx = np.mgrid[: moved.shape[0], : moved.shape[1]]
    p = np.stack([yy.ravel(), xx.ravel(), np.ones(yy.size)])
    error = np.linalg.norm((np.linalg.inv(world) @ p - truth @ p)[:2], axis=0).mean()
    print(f"registration: mean error {error:.3f} px -", _status_of(fusion))
    _shot(viewer, "registration_after", _status_of(fusion))
    _settle()
    dock = fusion.native
    while dock.parentWidget() is not None and "Dock" not in type(dock).__name__:
        dock = dock.parentWidget()
    path = OUT / "registration_widget.png"
    dock.grab().save(str(path))
    print("wrote", path, f"({dock.width()} x {dock.height()})")


if __name__ == "__main__":
    main()
