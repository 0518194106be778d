"""The README's one-line way to open napari with the widget docked really works."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

#: What README.md tells a newcomer to type (the plugin has several widgets, so napari
#: needs the widget's name after the plugin's).
COMMAND = ["napari", "-w", "napari-gifnet", "GIFNet fusion"]

_LAUNCH = """
import sys
from napari._qt.qt_event_loop import get_qapp
from qtpy.QtCore import QTimer

app = get_qapp()

def check():
    import napari
    print("DOCKS", sorted(napari.current_viewer().window.dock_widgets), flush=True)
    app.quit()

QTimer.singleShot(6000, check)
sys.argv = {argv!r}
from napari.__main__ import main
main()
"""


def test_napari_with_the_widget_docked(gifnet_plugin: str) -> None:
    if not os.environ.get("DISPLAY"):
        pytest.skip("needs a display (pytest-xvfb provides one)")
    with open(os.path.join(os.path.dirname(__file__), "..", "..", "README.md"), encoding="utf-8") as f:
        assert " ".join(COMMAND[:3]) + ' "GIFNet fusion"' in f.read()
    done = subprocess.run([sys.executable, "-c", _LAUNCH.format(argv=COMMAND)],
                          capture_output=True, text=True, timeout=240)  # fmt: skip
    docks = [line for line in done.stdout.splitlines() if line.startswith("DOCKS")]
    assert docks == ["DOCKS ['GIFNet fusion (napari-gifnet)']"], done.stdout + done.stderr
