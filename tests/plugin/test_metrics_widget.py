"""Tests of the "Fusion metrics" dock widget (pytest-qt, napari viewer on Xvfb).

Inputs are 64 x 64 crops of the reference Medical pair; fused layers come
from :func:`napari_gifnet.fuse_layers` (mean baseline, max baseline, GIFNet
with the published checkpoint).
"""

from __future__ import annotations

import csv
import io
import threading
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("napari")
pytest.importorskip("pytestqt")

from napari.utils.notifications import notification_manager
from qtpy.QtCore import Qt
from qtpy.QtWidgets import QApplication

from napari_gifnet.metrics.fusion import METRICS, fusion_metrics
from napari_gifnet.plugin.layer_fusion import fuse_layers

H = W = 64
DONE_MS = 120_000


@pytest.fixture(scope="module")
def medical(reference_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    d = np.load(reference_dir / "official" / "Medical.npz")
    return d["input_a"][:H, :W].copy(), d["input_b"][:H, :W].copy()


@pytest.fixture
def viewer(make_napari_viewer, medical):
    v = make_napari_viewer()
    v.add_image(medical[0], name="PET")
    v.add_image(medical[1], name="MRI")
    return v


def _widget(viewer):
    from napari_gifnet.plugin._qt.metrics_widget import MetricsWidget

    widget = MetricsWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Fusion metrics")
    return widget


def _compute(qtbot, widget) -> None:
    assert widget.compute() is not None
    assert widget.running and not widget.compute_button.isEnabled()
    qtbot.waitUntil(lambda: not widget.running, timeout=DONE_MS)
    assert widget.compute_button.isEnabled()


def _full_status(widget) -> str:
    """The status line's whole text (the label may show it elided, the tooltip whole)."""
    return max(widget.status.text(), widget.status.toolTip(), key=len)


def _row(metric: str) -> int:
    return list(METRICS).index(metric)


def _errors_since(count: int) -> list[str]:
    return [str(n.message) for n in notification_manager.records[count:]]


def test_table_matches_fusion_metrics_off_the_gui_thread(qtbot, viewer, medical, reference_weights):
    fuse_layers(viewer, "PET", "MRI", method="mean")
    fuse_layers(viewer, "PET", "MRI", method="max")
    fuse_layers(viewer, "PET", "MRI", weights=reference_weights, device="cpu")
    fused = ["PET + MRI (Mean)", "PET + MRI (Max)", "PET + MRI (GIFNet)"]
    widget = _widget(viewer)
    # fused layers (with a "method" in their metadata) are preselected
    assert widget.selected_fused() == fused
    assert (widget.first.currentText(), widget.second.currentText()) == ("PET", "MRI")
    _compute(qtbot, widget)
    assert widget.last_outcome.thread_id != threading.get_ident()
    # one row per metric, one column per fused layer (in the list's order)
    assert widget.table.rowCount() == len(METRICS) and widget.table.columnCount() == 3
    assert [widget.table.verticalHeaderItem(r).text() for r in range(len(METRICS))] == [*METRICS]
    assert [widget.table.horizontalHeaderItem(c).text() for c in range(3)] == fused
    rows = dict(widget.table_rows())
    assert set(rows) == set(fused)
    for name in fused:
        expected = fusion_metrics(viewer.layers[name].data, *medical)
        np.testing.assert_allclose(rows[name], list(expected.values()), rtol=0, atol=1e-9)
        assert widget.results[name] == pytest.approx(expected, abs=1e-9)
    assert "3 fused layer" in widget.status.text()


def test_metrics_as_rows_fit_the_dock_best_marking_and_csv(qtbot, make_napari_viewer, medical):
    viewer = make_napari_viewer(show=True)
    viewer.add_image(medical[0], name="PET")
    viewer.add_image(medical[1], name="MRI")
    for method in ("mean", "max", "laplacian"):
        fuse_layers(viewer, "PET", "MRI", method=method)
    widget = _widget(viewer)
    qtbot.wait(50)
    dock_width = widget.width()
    # every control says what it does
    controls = [widget.first, widget.second, widget.fused, widget.compute_button,
                widget.copy_button, widget.table]  # fmt: skip
    assert all(c.toolTip().strip() for c in controls)
    _compute(qtbot, widget)
    qtbot.wait(50)
    table = widget.table
    names = ["PET + MRI (Mean)", "PET + MRI (Max)", "PET + MRI (Laplacian)"]
    assert [name for name, _ in widget.table_rows()] == names
    # the table fits the dock: no horizontal scrolling, the dock no wider
    assert widget.width() == dock_width
    assert table.horizontalScrollBar().maximum() == 0, table.horizontalHeader().length()
    assert table.horizontalHeader().length() <= table.viewport().width()
    # the metrics name their rows and say what they measure; not sortable, no sort arrow
    for r, (metric, (direction, text)) in enumerate(METRICS.items()):
        head = table.verticalHeaderItem(r)
        assert head.text() == metric and text in head.toolTip() and direction in head.toolTip()
    assert not table.isSortingEnabled() and not table.horizontalHeader().isSortIndicatorShown()
    # a long layer name is whole in its column's tooltip
    assert table.horizontalHeaderItem(2).toolTip() == "PET + MRI (Laplacian)"
    # each column keeps its own layer's numbers
    for name, vals in widget.table_rows():
        expected = fusion_metrics(viewer.layers[name].data, *medical)
        np.testing.assert_allclose(vals, list(expected.values()), rtol=0, atol=1e-9)
    # best per row (all metrics: higher is better) in bold, others not
    for metric, (direction, _) in METRICS.items():
        cells = [table.item(_row(metric), c) for c in range(table.columnCount())]
        vals = [cell.data(Qt.ItemDataRole.UserRole) for cell in cells]
        best = max(vals) if direction == "higher" else min(vals)
        assert [cell.font().bold() for cell in cells] == [v == best for v in vals], metric
    # CSV, a line per layer in the columns' order, parses back to the same numbers
    text = widget.copy_csv()
    assert QApplication.clipboard().text() == text
    parsed = list(csv.reader(io.StringIO(text)))
    assert parsed[0] == ["layer", *METRICS]
    assert [(r[0], [float(x) for x in r[1:]]) for r in parsed[1:]] == widget.table_rows()
    widget.copy_button.click()
    assert QApplication.clipboard().text() == text


def test_a_layer_that_cannot_be_scored_is_skipped_and_the_rest_scored(qtbot, viewer, medical):
    fuse_layers(viewer, "PET", "MRI", method="mean")
    fuse_layers(viewer, "PET", "MRI", method="max")
    viewer.add_image(medical[0][:32, :40], name="small")
    viewer.add_image(np.full((H, W), 7.5, np.float32), name="bad")
    widget = _widget(viewer)
    widget.set_inputs("PET", "MRI", ["PET + MRI (Mean)", "small", "bad", "PET + MRI (Max)"])
    count = len(notification_manager.records)
    _compute(qtbot, widget)
    assert [name for name, _ in widget.table_rows()] == ["PET + MRI (Mean)", "PET + MRI (Max)"]
    for name, values in widget.table_rows():
        expected = fusion_metrics(viewer.layers[name].data, *medical)
        np.testing.assert_allclose(values, list(expected.values()), rtol=0, atol=1e-9)
    skipped = widget.last_outcome.skipped
    assert skipped["small"] == "it is 32 x 40 pixels, the inputs are 64 x 64"
    assert "from 7.5 to 7.5, outside the 0-1 range" in skipped["bad"]
    warnings = " ".join(_errors_since(count))
    for text in (_full_status(widget), warnings):
        assert "Skipped 'small'" in text and "Skipped 'bad'" in text and "scaled" not in text
    # nothing that can be scored: an empty table that says why
    widget.set_inputs("PET", "MRI", ["bad"])
    _compute(qtbot, widget)
    assert widget.table.columnCount() == 0 and widget.last_outcome.error is None
    assert "No fused layer could be scored" in _full_status(widget)


def test_inputs_of_different_sizes_are_a_notification_and_the_widget_recovers(
    qtbot, viewer, medical
):
    fuse_layers(viewer, "PET", "MRI", method="mean")
    viewer.add_image(medical[0][:32, :40], name="small")
    widget = _widget(viewer)
    widget.set_inputs("PET", "small", ["PET + MRI (Mean)"])
    count = len(notification_manager.records)
    assert widget.compute() is None
    errors = _errors_since(count)
    assert errors and "differ in size" in errors[-1] and "'small' 32 x 40" in errors[-1]
    assert widget.compute_button.isEnabled()
    # an input the metrics cannot take (float data outside [0, 1]) is reported in words
    viewer.add_image(np.full((H, W), 7.5, np.float32), name="bad")
    widget.set_inputs("PET", "bad", ["PET + MRI (Mean)"])
    count = len(notification_manager.records)
    _compute(qtbot, widget)
    errors = _errors_since(count)
    assert errors and "Metrics failed" in errors[-1] and "'bad'" in errors[-1]
    assert "scaled" not in errors[-1]
    # nothing selected
    widget.set_inputs("PET", "MRI", [])
    assert widget.compute() is None
    # and it works again
    widget.set_inputs("PET", "MRI", ["PET + MRI (Mean)"])
    _compute(qtbot, widget)
    assert widget.table.columnCount() == 1 and widget.last_outcome.error is None


def test_nd_layers_use_the_displayed_plane(qtbot, make_napari_viewer, medical):
    a, b = medical
    viewer = make_napari_viewer()
    viewer.add_image(np.stack([a, b[::-1]]), name="A")
    viewer.add_image(np.stack([b, a[:, ::-1]]), name="B")
    fuse_layers(viewer, "A", "B", method="mean")
    widget = _widget(viewer)
    widget.set_inputs("A", "B", ["A + B (Mean)"])
    fused = viewer.layers["A + B (Mean)"].data
    for z in (1, 0):
        viewer.dims.current_step = (z, 0, 0)
        _compute(qtbot, widget)
        expected = fusion_metrics(fused[z], viewer.layers["A"].data[z], viewer.layers["B"].data[z])
        np.testing.assert_allclose(
            widget.table_rows()[0][1], list(expected.values()), rtol=0, atol=1e-9
        )
    # a 3-D view has no single displayed plane: refused clearly
    viewer.dims.ndisplay = 3
    count = len(notification_manager.records)
    assert widget.compute() is None
    assert "2-D view" in _errors_since(count)[-1]
    assert widget.compute_button.isEnabled()


def test_lists_follow_the_layer_list(viewer, medical):
    widget = _widget(viewer)

    def names() -> list[str]:
        return [widget.fused.item(i).text() for i in range(widget.fused.count())]

    assert names() == [] and widget.selected_fused() == []  # the inputs are not offered
    viewer.add_labels(np.zeros((H, W), np.uint8), name="mask")  # not an image: not listed
    fuse_layers(viewer, "PET", "MRI", method="mean")
    assert names() == ["PET + MRI (Mean)"]
    assert widget.selected_fused() == ["PET + MRI (Mean)"]
    viewer.layers["PET + MRI (Mean)"].name = "fused"
    assert names() == ["fused"] and widget.selected_fused() == ["fused"]
    # choosing another input offers the former one, unselected
    widget.second.setCurrentText("fused")
    assert names() == ["MRI"] and widget.selected_fused() == []
    widget.second.setCurrentText("MRI")
    viewer.layers.remove("MRI")
    assert widget.second.findText("MRI") == -1


def test_dock_opens_from_the_plugin_manifest(make_napari_viewer, gifnet_plugin):
    from napari_gifnet.plugin._qt.metrics_widget import MetricsWidget

    viewer = make_napari_viewer()
    _dock, widget = viewer.window.add_plugin_dock_widget(gifnet_plugin, "Fusion metrics")
    assert isinstance(widget, MetricsWidget)  # its viewer is napari's proxy of ``viewer``
    viewer.add_image(np.zeros((H, W), np.float32), name="late")
    assert widget.first.findText("late") == 0
