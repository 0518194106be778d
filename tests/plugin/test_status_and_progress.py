"""The status line and progress bar every dock widget gets from its :class:`JobRunner`.

In a shown napari window (under Xvfb), as a user sees them: a failed run
(missing weights) leaves one short status line, the dock as wide as before
and the whole message in the tooltip and the notification, and the next
successful run clears it; while a job runs, a progress bar shows
"done / total" and the time left, and hides afterwards; the running status
names the device GIFNet runs on, never "auto".
"""

from __future__ import annotations

import re
import threading
import time

import numpy as np
import pytest

pytest.importorskip("napari")
pytest.importorskip("pytestqt")

from napari.utils.notifications import NotificationSeverity, notification_manager

from napari_gifnet.plugin._qt._job import device_text, progress_text

DONE_MS = 30_000
N = 16
#: a checkpoint name as a fine-tune run makes them: long, with no place to break a line
MISSING = "gifnet_finetuned_on_the_lab_s_own_ct_and_mri_pairs_200_steps_lr_1e-4_crop_128.pth"


def _viewer(make_napari_viewer, show: bool = False):
    rng = np.random.default_rng(0)
    viewer = make_napari_viewer(show=show)
    viewer.add_image(rng.random((N, N), np.float32), name="A")
    viewer.add_image(rng.random((N, N), np.float32), name="B")
    return viewer


def _fusion(viewer):
    from napari_gifnet.plugin._qt.fusion_widget import FusionWidget

    widget = FusionWidget(viewer)
    widget.first.value, widget.second.value = viewer.layers["A"], viewer.layers["B"]
    return widget


def _errors_since(count: int) -> list[str]:
    return [
        str(n.message)
        for n in notification_manager.records[count:]
        if n.severity == NotificationSeverity.ERROR
    ]


def test_an_error_keeps_one_status_line_and_the_dock_width(
    qtbot, make_napari_viewer, tmp_path, monkeypatch
):
    monkeypatch.delenv("GIFNET_WEIGHTS", raising=False)
    viewer = _viewer(make_napari_viewer, show=True)
    widget = _fusion(viewer)
    dock = viewer.window.add_dock_widget(widget, name="GIFNet fusion")
    qtbot.waitUntil(lambda: dock.isVisible() and widget.native.width() > 0, timeout=DONE_MS)
    qtbot.wait(50)
    width_before, canvas_before = dock.width(), viewer.window._qt_viewer.canvas.native.width()
    label = widget.status.native

    widget.method.value = "gifnet"
    widget.weights.value = str(tmp_path / MISSING)
    count = len(notification_manager.records)
    assert widget.run() is not None
    qtbot.waitUntil(lambda: not widget.running, timeout=DONE_MS)
    qtbot.wait(50)

    errors = _errors_since(count)
    assert len(errors) == 1 and MISSING in errors[0], errors
    shown = widget.status.value
    assert "\n" not in shown and not label.wordWrap()
    assert label.fontMetrics().horizontalAdvance(shown) <= label.contentsRect().width()
    assert shown != errors[0] and shown.endswith("…")  # elided: the path does not fit
    assert shown.startswith("GIFNet weights file not found")  # the line spans the dock
    assert label.toolTip() == errors[0]  # the whole message on demand
    assert dock.width() == width_before
    assert viewer.window._qt_viewer.canvas.native.width() == canvas_before

    widget.method.value = "mean"  # a baseline: succeeds without weights
    assert widget.run() is not None
    qtbot.waitUntil(lambda: not widget.running, timeout=DONE_MS)
    assert widget.last_layers, widget.status.value
    assert MISSING not in widget.status.value and MISSING not in label.toolTip()
    assert dock.width() == width_before


def test_a_message_of_several_lines_is_shown_on_one(qtbot, make_napari_viewer):
    viewer = _viewer(make_napari_viewer)
    widget = _fusion(viewer)
    message = "GIFNet weights are not available.\n  Set GIFNET_WEIGHTS\nor download them."
    widget.fail(message)
    assert widget.status.value == (
        "GIFNet weights are not available. Set GIFNET_WEIGHTS or download them."
    )
    assert widget.status.native.toolTip() == message


def test_the_progress_bar_follows_the_job_and_hides_afterwards(
    qtbot, make_napari_viewer, monkeypatch
):
    import napari_gifnet.plugin._qt.fusion_widget as fw

    viewer = _viewer(make_napari_viewer)
    reported, release = threading.Event(), threading.Event()

    def fake_iter(plan, *, progress, **_options):  # a generator, like iter_fusion
        progress(0, 10)
        time.sleep(0.05)
        progress(3, 10)
        reported.set()
        release.wait(20)
        yield 0, 1
        raise ValueError("the fake job ends here")

    monkeypatch.setattr(fw, "iter_fusion", fake_iter)
    widget = _fusion(viewer)
    viewer.window.add_dock_widget(widget, name="GIFNet fusion")
    bar = widget.runner.bar
    assert bar.isHidden()
    assert widget.run() is not None
    qtbot.waitUntil(reported.is_set, timeout=DONE_MS)
    qtbot.waitUntil(lambda: bar.value() == 3, timeout=DONE_MS)
    assert not bar.isHidden() and bar.maximum() == 10
    assert re.fullmatch(r"3 / 10, about \d+ s left", bar.format()), bar.format()
    release.set()
    qtbot.waitUntil(lambda: not widget.running, timeout=DONE_MS)
    assert bar.isHidden()


def test_the_metrics_widget_gets_its_bar_below_its_buttons(make_napari_viewer):
    from napari_gifnet.plugin._qt.metrics_widget import MetricsWidget

    widget = MetricsWidget(_viewer(make_napari_viewer))
    bar = widget.runner.bar
    assert bar.parentWidget() is widget and bar.isHidden()


@pytest.mark.parametrize(
    ("done", "total", "elapsed", "text"),
    [
        (0, 10, None, "0 / 10"),
        (3, 10, 6.0, "3 / 10, about 14 s left"),  # 2 s a tile, 7 tiles to go
        (1, 100, 60.0, "1 / 100, about 99 min left"),
        (10, 10, 20.0, "10 / 10"),
    ],
)
def test_progress_text(done, total, elapsed, text):
    assert progress_text(done, total, elapsed) == text


def test_the_running_status_names_the_device_not_auto(qtbot, make_napari_viewer, monkeypatch):
    import napari_gifnet.engine.devices as devices
    import napari_gifnet.plugin._qt.fusion_widget as fw

    monkeypatch.setattr(devices, "available_devices", lambda: ["cpu"])
    viewer = _viewer(make_napari_viewer)
    release = threading.Event()

    def fake_iter(plan, *, progress, **_options):
        release.wait(20)
        yield 0, 1
        raise ValueError("the fake job ends here")

    monkeypatch.setattr(fw, "iter_fusion", fake_iter)
    widget = _fusion(viewer)
    widget.method.value, widget.device.value = "gifnet", "auto"
    try:
        assert widget.run() is not None
        assert widget.status.value.startswith("Running GIFNet on the CPU: "), widget.status.value
    finally:
        release.set()
        qtbot.waitUntil(lambda: not widget.running, timeout=DONE_MS)


def test_device_text_names_the_gpu(monkeypatch):
    import torch

    import napari_gifnet.engine.devices as devices

    monkeypatch.setattr(devices, "available_devices", lambda: ["cuda:0", "cpu"])
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda index=0: "NVIDIA H100")
    assert device_text("auto") == "the GPU (NVIDIA H100)"
    assert device_text("cpu") == "the CPU"
