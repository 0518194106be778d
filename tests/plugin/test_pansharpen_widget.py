"""Tests of the "Pansharpen" dock widget (pytest-qt, napari viewer under Xvfb)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile

pytest.importorskip("napari")
pytest.importorskip("pytestqt")

from napari_gifnet.workflows.pansharpening import pansharpen


@pytest.fixture
def setup(make_napari_viewer, reference_dir: Path):
    from napari_gifnet.plugin._qt.pansharpen_widget import PansharpenWidget

    folder = reference_dir / "pairs" / "Remote"
    ms = np.moveaxis(tifffile.imread(folder / "ms_4band.tif")[:64:2, :48:2], -1, 0)
    pan = tifffile.imread(folder / "b_pan.tif")[:64, :48]
    viewer = make_napari_viewer()
    viewer.add_image(ms, name="MS", scale=(1, 2, 2), rgb=False)
    viewer.add_image(pan, name="PAN")
    widget = PansharpenWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Pansharpen")
    return viewer, widget, ms, pan


def test_pansharpen_upsamples_by_the_layer_scales(qtbot, setup):
    viewer, widget, ms, pan = setup
    assert widget.ms.value is viewer.layers["MS"] and widget.pan.value is viewer.layers["PAN"]
    from napari_gifnet.workflows.pansharpening import DEFAULT_METHOD, pansharpen_method_names

    assert widget.method.value == DEFAULT_METHOD  # the best measured, first in the list
    assert list(widget.method.choices) == list(pansharpen_method_names())
    widget.method.value = "laplacian"
    assert widget.run() is not None
    qtbot.waitUntil(lambda: not widget.running, timeout=60_000)
    out = viewer.layers["MS pansharpened (Laplacian)"]
    expected = pansharpen(ms, pan, band_axis=0, method="laplacian", ms_scale=(2, 2),
                          pan_scale=(1, 1))
    assert out.data.shape == (4, 64, 48) and out.data.dtype == np.uint8
    np.testing.assert_array_equal(out.data, expected.image)
    assert tuple(out.scale) == (1, 1, 1)
    assert "4 bands (upsampled)" in widget.status.value


def test_same_layer_twice_is_refused(setup):
    viewer, widget, *_ = setup
    widget.pan.value = viewer.layers["MS"]
    assert widget.run() is None
    assert "different panchromatic" in widget.status.value


def test_dask_layers_are_read_in_the_worker_not_on_the_gui_thread(
    setup, synchronous_dask, recording_dask, run_in_worker
):
    viewer, widget, ms, pan = setup
    threads: list[str] = []
    viewer.add_image(recording_dask(ms, (1, 16, 12), threads), name="MS dask", scale=(1, 2, 2),
                     rgb=False, contrast_limits=(0, 255))  # fmt: skip
    viewer.add_image(recording_dask(pan, (32, 24), threads), name="PAN dask",
                     contrast_limits=(0, 255))  # fmt: skip
    widget.ms.value, widget.pan.value = viewer.layers["MS dask"], viewer.layers["PAN dask"]
    widget.method.value = "laplacian"
    run_in_worker(widget, threads)
    assert len(threads) >= 16 + 4  # every chunk of both layers, read in the worker
    expected = pansharpen(ms, pan, band_axis=0, method="laplacian", ms_scale=(2, 2),
                          pan_scale=(1, 1))  # fmt: skip
    out = viewer.layers["MS dask pansharpened (Laplacian)"]
    np.testing.assert_array_equal(out.data, expected.image)


def test_compare_methods_adds_each_method_and_its_qnr(qtbot, setup):
    from qtpy.QtCore import Qt

    from napari_gifnet.metrics import qnr

    viewer, widget, ms, pan = setup
    widget.compare_methods = ("mtf_glp_rr", "gihs", "laplacian")
    qtbot.mouseClick(widget.compare_button.native, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not widget.running, timeout=60_000)
    names = [
        f"compare: MS + PAN ({m})" for m in ("MTF-GLP, reduced-resolution gains", "GIHS", "Laplacian")
    ]
    layer_names = [ly.name for ly in viewer.layers]
    assert layer_names[-3:] == names and all(layer_names.count(n) == 1 for n in names)
    expected = pansharpen(ms, pan, band_axis=0, method="gihs", ms_scale=(2, 2), pan_scale=(1, 1))
    np.testing.assert_array_equal(viewer.layers[names[1]].data, expected.image)
    table = widget.compare_table.value
    assert list(table["columns"]) == ["QNR", "D_lambda", "D_s"]
    score = qnr(np.moveaxis(expected.image, 0, -1).astype(float), np.moveaxis(ms, 0, -1).astype(float),
                pan.astype(float), 2)
    assert float(table["data"][1][0]) == pytest.approx(score["QNR"], abs=6e-5)
    best = widget.last_comparison.best
    assert [viewer.layers[n].visible for n in names] == [
        m == best for m in ("mtf_glp_rr", "gihs", "laplacian")
    ]
    # one method again: its layer is updated, the others stay
    widget.compare_methods = ("gihs",)
    qtbot.mouseClick(widget.compare_button.native, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not widget.running, timeout=60_000)
    layer_names = [ly.name for ly in viewer.layers]
    assert all(layer_names.count(n) == 1 for n in names), layer_names


def _click_run(qtbot, widget) -> None:
    from qtpy.QtCore import Qt

    qtbot.mouseClick(widget.run_button.native, Qt.MouseButton.LeftButton)
    assert widget.running
    qtbot.waitUntil(lambda: not widget.running, timeout=60_000)


def test_each_method_keeps_its_own_layer_and_keep_previous_adds_more(qtbot, setup):
    viewer, widget, ms, pan = setup
    assert not widget.keep_previous.value
    widget.method.value = "gihs"
    _click_run(qtbot, widget)
    widget.method.value = "brovey"
    _click_run(qtbot, widget)
    names = ["MS pansharpened (GIHS)", "MS pansharpened (Brovey)"]
    assert [ly.name for ly in viewer.layers][2:] == names  # the second replaced nothing
    expected = pansharpen(ms, pan, band_axis=0, method="gihs", ms_scale=(2, 2), pan_scale=(1, 1))
    np.testing.assert_array_equal(viewer.layers[names[0]].data, expected.image)
    first = viewer.layers[names[1]]
    _click_run(qtbot, widget)  # the same method, keep previous off: updated in place
    assert [ly.name for ly in viewer.layers][2:] == names and viewer.layers[names[1]] is first
    widget.keep_previous.value = True
    _click_run(qtbot, widget)  # on: a new, uniquely named layer
    added = [ly.name for ly in viewer.layers][2:]
    assert added[:2] == names and len(added) == 3 == len(set(added))
    assert added[2].startswith(names[1])


def test_every_control_says_what_it_does_and_each_method_what_it_is_for(setup):
    from napari_gifnet.methods.pansharpening import PANSHARPENING_METHODS

    _, widget, _, _ = setup
    names = ["ms", "pan", "band_axis", "method", "rescale", "keep_previous", "compare_button",
             "compare_note", "compare_table"]  # fmt: skip
    for name in names:
        assert getattr(widget, name).tooltip, name
    for text in ("auto", "first", "last"):
        assert f"\n{text}" in widget.band_axis.tooltip, text
    for text in ("range", "moments", "none"):
        assert f"\n{text}" in widget.rescale.tooltip, text
    combo = widget.method.native
    labels = [combo.itemText(i) for i in range(combo.count())]
    assert labels[0] == "MTF-GLP, reduced-resolution gains — best measured"
    assert all(" — " in label for label in labels)
    longest = max(combo.fontMetrics().horizontalAdvance(label) for label in labels)
    assert combo.minimumSizeHint().width() < longest  # elided in the form: the dock stays narrow
    assert "colours drift" in labels[list(widget.method.choices).index("gifnet")]
    for key, name in PANSHARPENING_METHODS.items():
        assert labels[list(widget.method.choices).index(key)].startswith(f"{name} — ")
