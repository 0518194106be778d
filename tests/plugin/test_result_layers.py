"""The result layers as a user meets them in a real viewer (issue 23, points 1, 3 and 6).

The README's console example on the "medical" sample, with the published
checkpoint found through ``GIFNET_WEIGHTS``, then the "Fusion metrics" dock
opened from the plugin's manifest and its real Compute button pressed; and a
dim result that must not be shown black.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("napari")
pytest.importorskip("pytestqt")

from qtpy.QtCore import Qt

from napari_gifnet.metrics.fusion import METRICS, fusion_metrics
from napari_gifnet.plugin.layer_fusion import fuse_layers

DONE_MS = 120_000
FUSED = "CT-like + MRI-like (GIFNet)"
KEYS = ("shared", "multimodal", "photographic")


def _press_compute(qtbot, widget) -> None:
    qtbot.mouseClick(widget.compute_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(
        lambda: not widget.running and widget.compute_button.isEnabled(), timeout=DONE_MS
    )


@pytest.fixture
def medical_with_features(make_napari_viewer, gifnet_plugin, reference_weights: Path, monkeypatch):
    """The README's console sequence: sample, then fuse_layers(..., features=True)."""
    monkeypatch.setenv("GIFNET_WEIGHTS", str(reference_weights))
    viewer = make_napari_viewer()
    viewer.open_sample(gifnet_plugin, "medical")
    fuse_layers(viewer, "CT-like", "MRI-like", features=True)
    return viewer


def test_metrics_after_the_console_example_score_the_fused_layer(
    qtbot, medical_with_features, gifnet_plugin
):
    viewer = medical_with_features
    # the result on top, selected, its six feature layers hidden below it (their order,
    # names and visibility are tested on small images in test_layers.py)
    names = [ly.name for ly in viewer.layers]
    assert names[:2] == ["CT-like", "MRI-like"] and names[-1] == FUSED and len(names) == 9
    assert viewer.layers.selection.active is viewer.layers[FUSED]
    _dock, widget = viewer.window.add_plugin_dock_widget(gifnet_plugin, "Fusion metrics")
    offered = [widget.fused.item(i).text() for i in range(widget.fused.count())]
    # neither the inputs nor the feature layers are offered as fused layers
    assert offered == [FUSED] and widget.selected_fused() == [FUSED]
    assert (widget.first.currentText(), widget.second.currentText()) == ("CT-like", "MRI-like")
    _press_compute(qtbot, widget)
    ct, mri, fused = (viewer.layers[n].data for n in ("CT-like", "MRI-like", FUSED))
    rows = dict(widget.table_rows())
    assert list(rows) == [FUSED]
    np.testing.assert_allclose(
        rows[FUSED], list(fusion_metrics(fused, ct, mri).values()), atol=1e-9
    )
    assert "scaled" not in widget.status.text()

    # one layer the metrics cannot take is skipped, named and explained; the rest are scored
    fuse_layers(viewer, "CT-like", "MRI-like", method="mean")
    viewer.add_image(np.linspace(-1, 6, ct.size, dtype=np.float32).reshape(ct.shape), name="ratio")
    widget.set_inputs("CT-like", "MRI-like", [FUSED, "CT-like + MRI-like (Mean)", "ratio"])
    _press_compute(qtbot, widget)
    assert sorted(name for name, _ in widget.table_rows()) == sorted(
        [FUSED, "CT-like + MRI-like (Mean)"]
    )
    assert all(len(values) == len(METRICS) for _, values in widget.table_rows())
    status = max(widget.status.text(), widget.status.toolTip(), key=len)  # may be elided
    assert "Skipped 'ratio'" in status and "outside the 0-1 range" in status
    assert "scaled" not in status
    assert widget.last_outcome.skipped.keys() == {"ratio"}


def test_a_dim_result_gets_contrast_limits_from_its_own_range(make_napari_viewer):
    viewer = make_napari_viewer()
    rng = np.random.default_rng(3)
    # 12-bit-like data in a 16-bit type, fused on the data type's scale: a dim result
    a = rng.integers(100, 400, size=(48, 64)).astype(np.uint16)
    b = rng.integers(150, 300, size=(48, 64)).astype(np.uint16)
    viewer.add_image(a, name="nuclei")
    viewer.add_image(b, name="membranes")
    fused = fuse_layers(viewer, "nuclei", "membranes", method="mean", normalization="dtype")[0]
    data = np.asarray(fused.data)
    assert data.max() < 0.01  # dim: on 0..1 it would look black
    lo, hi = fused.contrast_limits
    assert lo == pytest.approx(float(data.min())) and hi == pytest.approx(float(data.max()))
    assert fused.metadata["method"] and fused.metadata["normalization"] == "dtype"
    # a rerun that updates the layer in place follows the new range too
    viewer.layers["nuclei"].data = (a * 8).astype(np.uint16)
    again = fuse_layers(viewer, "nuclei", "membranes", method="mean", normalization="dtype")[0]
    assert again is fused
    data = np.asarray(fused.data)
    assert tuple(fused.contrast_limits) == pytest.approx((float(data.min()), float(data.max())))
