"""Render the screenshots of docs/walkthrough.md: napari with the fusion widget.

Run on a machine with a display or under Xvfb, with the checkpoint reachable
(``GIFNET_WEIGHTS`` or the cache)::

    xvfb-run -a python docs/make_screenshots.py

Each offline sample is opened from File > Open Sample's plugin entry, the
"GIFNet fusion" dock widget is opened and run on the sample's two inputs
exactly as a user would, and the window is saved to ``docs/images/``.
"""

from __future__ import annotations

import time
from pathlib import Path

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
    viewer.close()


if __name__ == "__main__":
    main()
