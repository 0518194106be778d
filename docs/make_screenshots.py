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
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("NAPARI_GIFNET_SETTINGS", str(Path(tempfile.mkdtemp()) / "widgets.ini"))

import napari
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


def main() -> None:
    OUT.mkdir(exist_ok=True)
    viewer = napari.Viewer(title="napari-gifnet")
    viewer.window.resize(1400, 850)
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
            layer.visible = "(GIFNet)" in layer.name and "features" not in layer.name
        viewer.reset_view()
        for _ in range(10):
            QApplication.processEvents()
        path = OUT / f"walkthrough_{key}.png"
        viewer.screenshot(str(path), canvas_only=False)
        print("wrote", path, "-", widget.status.value)
    _aligned(viewer, widget)
    _zstack(viewer, widget)
    _menu(viewer)
    viewer.close()


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
        layer.visible = "(GIFNet)" in layer.name
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


if __name__ == "__main__":
    main()
