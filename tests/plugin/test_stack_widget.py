"""Tests of the "Focus stack" dock widget (pytest-qt, napari viewer under Xvfb)."""

from __future__ import annotations

import threading

import numpy as np
import pytest

pytest.importorskip("napari")
pytest.importorskip("pytestqt")

from napari.utils.notifications import notification_manager
from scipy import ndimage

from napari_gifnet.workflows.focus_stack import fuse_stack

DONE_MS = 120_000


def _stack() -> np.ndarray:
    rng = np.random.default_rng(0)
    sharp = ndimage.gaussian_filter(rng.random((40, 48)), 1.0)
    sharp = (sharp - sharp.min()) / (sharp.max() - sharp.min())
    planes = [ndimage.gaussian_filter(sharp, s) for s in (0.0, 2.0, 3.0)]
    planes[2][:, 24:] = sharp[:, 24:]
    return np.rint(np.stack(planes) * 255).astype(np.uint8)



@pytest.fixture
def setup(make_napari_viewer):
    from napari_gifnet.plugin._qt.stack_widget import StackWidget

    viewer = make_napari_viewer()
    data = _stack()
    viewer.add_image(data, name="zstack", scale=(3.0, 0.5, 0.25), translate=(0, 10, 20))
    widget = StackWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Focus stack")
    return viewer, widget, data


def _run(qtbot, widget) -> None:
    assert widget.run() is not None
    assert widget.running and not widget.run_button.enabled
    qtbot.waitUntil(lambda: not widget.running, timeout=DONE_MS)
    assert widget.run_button.enabled and not widget.cancel_button.enabled


def test_focus_stack_adds_three_layers(qtbot, setup):
    viewer, widget, data = setup
    assert widget.layer.value is viewer.layers["zstack"]
    assert widget.method.value == "focus"  # the benchmark winner is the default
    assert widget.align.value == "auto"  # the measured motion decides by default
    widget.align.value = "translation"
    _run(qtbot, widget)
    expected = fuse_stack(data, method="focus", align=True)
    aif, depth, conf = (viewer.layers[f"zstack {k} (Focus selection)"]
                        for k in ("all-in-focus", "depth", "confidence"))
    np.testing.assert_array_equal(aif.data, expected.image)
    np.testing.assert_array_equal(depth.data, expected.depth_map)
    np.testing.assert_array_equal(conf.data, expected.confidence)
    assert tuple(aif.scale) == (0.5, 0.25) and tuple(aif.translate) == (10, 20)
    assert aif.metadata["method"] == "focus selection"
    assert "3 planes" in widget.status.value
    assert viewer.layers[-1] is aif and list(viewer.layers.selection) == [aif]  # result on top
    assert not depth.visible and not conf.visible  # the maps hidden below it
    _run(qtbot, widget)  # a second run updates the same layers
    assert len(viewer.layers) == 4


def test_other_axis_and_a_baseline(qtbot, setup):
    viewer, widget, data = setup
    viewer.add_image(np.moveaxis(data, 0, 2), name="yxz", rgb=False)
    widget.layer.value = viewer.layers["yxz"]
    widget.axis.value = 2
    widget.method.value = "laplacian"
    widget.strategy.value = "sequential"
    assert widget.strategy.enabled and not widget.device.enabled
    _run(qtbot, widget)
    expected = fuse_stack(data, method="laplacian", strategy="sequential")
    np.testing.assert_allclose(viewer.layers["yxz all-in-focus (Laplacian)"].data, expected.image, atol=1e-6)


def test_a_2d_layer_is_refused_with_a_message(qtbot, setup):
    viewer, widget, data = setup
    viewer.add_image(data[0], name="flat")
    widget.layer.value = viewer.layers["flat"]
    count = len(notification_manager.records)
    assert widget.run() is None
    assert "three spatial axes" in widget.status.value
    assert any("three spatial axes" in str(n.message)
               for n in notification_manager.records[count:])


def test_cancel_adds_nothing(qtbot, setup, reference_weights):
    viewer, widget, _ = setup
    widget.method.value = "gifnet"
    widget.weights.value = str(reference_weights)
    widget.device.value = "cpu"
    assert widget.run() is not None
    widget.cancel()
    qtbot.waitUntil(lambda: not widget.running, timeout=DONE_MS)
    assert widget.status.value.startswith("Cancelled")
    assert [ly.name for ly in viewer.layers] == ["zstack"]


def test_a_dask_stack_is_read_in_the_worker_not_on_the_gui_thread(
    qtbot, setup, synchronous_dask, recording_dask
):
    viewer, widget, data = setup
    threads: list[str] = []
    lazy = recording_dask(data, (1, 40, 48), threads)
    viewer.add_image(lazy, name="lazy stack", contrast_limits=(0, 255))
    widget.layer.value = viewer.layers["lazy stack"]
    threads.clear()
    _run(qtbot, widget)
    assert threads and threading.main_thread().name not in threads, threads
    expected = fuse_stack(data, method="focus")
    np.testing.assert_array_equal(viewer.layers["lazy stack all-in-focus (Focus selection)"].data, expected.image)


# ---------------------------------------------------------------- task and compare methods
def _compare(qtbot, widget) -> None:
    from qtpy.QtCore import Qt

    qtbot.mouseClick(widget.compare_button.native, Qt.MouseButton.LeftButton)
    assert widget.running and not widget.compare_button.enabled
    qtbot.waitUntil(lambda: not widget.running, timeout=DONE_MS)
    assert widget.compare_button.enabled and widget.run_button.enabled


def _exposure_stack() -> np.ndarray:
    """Three exposures (64 x 64) of one smooth radiance map, clipped like a sensor."""
    rng = np.random.default_rng(1)
    radiance = np.exp(ndimage.gaussian_filter(rng.normal(size=(64, 64)), 4.0) * 6.0)
    radiance /= np.median(radiance)
    planes = [np.clip(radiance * g, 0.0, 1.0) ** (1 / 2.2) for g in (0.1, 0.4, 1.6)]
    return np.rint(np.stack(planes) * 255).astype(np.uint8)


def test_exposure_task_selects_its_method_and_runs_with_it(qtbot, setup):
    viewer, widget, _ = setup
    data = _exposure_stack()
    viewer.add_image(data, name="bracket")
    widget.layer.value = viewer.layers["bracket"]
    widget.task.value = "exposure"
    assert widget.method.value == "laplacian" and widget.strategy.value == "all"
    _run(qtbot, widget)
    expected = fuse_stack(data, task="exposure")
    aif = viewer.layers["bracket all-in-focus (Laplacian)"]
    np.testing.assert_array_equal(aif.data, expected.image)
    assert aif.metadata["task"] == "exposure"
    widget.task.value = "focus"
    assert widget.method.value == "focus" and widget.strategy.value == "tree"


def test_compare_methods_adds_one_layer_per_method_and_keeps_the_others(qtbot, setup):
    viewer, widget, data = setup
    widget.compare_methods = ("focus", "laplacian", "mean")
    _compare(qtbot, widget)
    names = [f"compare: zstack ({m})" for m in ("Focus selection", "Laplacian", "Mean")]
    layer_names = [ly.name for ly in viewer.layers]
    assert layer_names[-3:] == names and all(layer_names.count(n) == 1 for n in names)
    assert tuple(viewer.layers[names[0]].scale) == (0.5, 0.25)
    assert tuple(viewer.layers[names[0]].translate) == (10, 20)
    np.testing.assert_array_equal(
        viewer.layers[names[1]].data, fuse_stack(data, method="laplacian", task="focus").image
    )
    assert sum(viewer.layers[n].visible for n in names) == 1  # only the best is shown
    assert list(widget.compare_table.value["columns"]) == ["EN", "SD", "SF", "AG"]
    rows = [r.replace(" (best)", "") for r in widget.compare_table.value["index"]]
    assert rows == ["Focus selection", "Laplacian", "Mean"]
    widget.compare_methods = ("laplacian",)
    _compare(qtbot, widget)
    layer_names = [ly.name for ly in viewer.layers]
    assert all(layer_names.count(n) == 1 for n in names), layer_names


def test_compare_methods_on_an_exposure_stack_scores_mef_ssim(qtbot, setup):
    from napari_gifnet.metrics import mef_ssim

    viewer, widget, _ = setup
    data = _exposure_stack()
    viewer.add_image(data, name="bracket")
    widget.layer.value = viewer.layers["bracket"]
    widget.task.value = "exposure"
    widget.compare_methods = ("laplacian", "max")
    _compare(qtbot, widget)
    table = widget.compare_table.value
    assert table["columns"][0] == "MEF-SSIM"
    lap = viewer.layers["compare: bracket (Laplacian)"].data
    assert float(table["data"][0][0]) == pytest.approx(mef_ssim(list(data), lap), abs=6e-5)
    comparison = widget.last_comparison
    scores = {r.method: r.metrics["MEF-SSIM"] for r in comparison.results}
    assert comparison.best == max(scores, key=scores.get)


def test_a_dim_stack_result_is_shown_with_its_own_range(qtbot, make_napari_viewer):
    from napari_gifnet.plugin._qt.stack_widget import StackWidget

    viewer = make_napari_viewer()
    dim = (_stack().astype(np.float32) / 255) * 0.05 + 0.01  # a dim float stack in [0.01, 0.06]
    viewer.add_image(dim, name="dim")
    widget = StackWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Focus stack")
    widget.align.value = "off" if "off" in widget.align.choices else widget.align.choices[0]
    _run(qtbot, widget)
    aif = viewer.layers["dim all-in-focus (Focus selection)"]
    lo, hi = aif.contrast_limits
    assert lo == pytest.approx(float(aif.data.min())) and hi == pytest.approx(float(aif.data.max()))
    assert hi < 0.1  # not 0-1, where the result would look black
    widget.compare_methods = ("laplacian",)  # the compare layers too
    _compare(qtbot, widget)
    compared = viewer.layers["compare: dim (Laplacian)"]
    lo, hi = compared.contrast_limits
    assert lo == pytest.approx(float(compared.data.min()))
    assert hi == pytest.approx(float(compared.data.max())) and hi < 0.1


# ------------------------------------------- method order, result names, keep previous, tooltips
def _click_run(qtbot, widget) -> None:
    from qtpy.QtCore import Qt

    qtbot.mouseClick(widget.run_button.native, Qt.MouseButton.LeftButton)
    assert widget.running
    qtbot.waitUntil(lambda: not widget.running, timeout=DONE_MS)


def _results(viewer) -> list[str]:
    return [ly.name for ly in viewer.layers if ly.name != "zstack"]


def test_each_method_keeps_its_own_layers_and_keep_previous_adds_more(qtbot, setup):
    viewer, widget, data = setup
    widget.align.value = "none"
    assert not widget.keep_previous.value  # a rerun of one method replaces its own layers
    _click_run(qtbot, widget)
    widget.method.value = "laplacian"
    _click_run(qtbot, widget)
    kinds = ("depth", "confidence", "all-in-focus")  # the result on top of its maps
    focus = [f"zstack {k} (Focus selection)" for k in kinds]
    laplacian = [f"zstack {k} (Laplacian)" for k in kinds]
    assert _results(viewer) == focus + laplacian  # the second method replaced nothing
    np.testing.assert_array_equal(viewer.layers[focus[2]].data,
                                  fuse_stack(data, method="focus", align=False).image)
    np.testing.assert_allclose(viewer.layers[laplacian[2]].data,
                               fuse_stack(data, method="laplacian", align=False).image, atol=1e-6)
    assert viewer.layers[laplacian[2]].metadata["method"] == "laplacian"
    first = viewer.layers[laplacian[2]]
    _click_run(qtbot, widget)  # the same method again, keep previous off: updated in place
    assert _results(viewer) == focus + laplacian and viewer.layers[laplacian[2]] is first
    widget.keep_previous.value = True
    _click_run(qtbot, widget)  # on: three more layers, uniquely named, the others kept
    names = _results(viewer)
    assert names[:6] == focus + laplacian and len(names) == 9 == len(set(names))
    assert all(n.startswith(f"zstack {k} (Laplacian)") for n, k in zip(names[6:], kinds))
    assert viewer.layers[laplacian[2]] is first


def test_the_method_list_is_ordered_by_measured_quality_for_the_task(setup):
    from napari_gifnet.methods.classical import BASELINES
    from napari_gifnet.plugin._qt.stack_widget import MEASURED

    _, widget, _ = setup
    every = {"gifnet", "focus", *BASELINES}
    assert set(widget.method.choices) == every
    keys = [key for key, _, _ in MEASURED["focus"]]
    assert list(widget.method.choices) == keys and keys[0] == "focus" and keys[-1] == "gifnet"
    assert widget.method.value == "focus"
    labels = [widget.method.native.itemText(i) for i in range(widget.method.native.count())]
    assert labels[0] == "Focus selection — best on focus stacks (43.5 dB)"
    assert labels[-1] == "GIFNet — for image pairs; posterises stacks (12.7 dB)"
    assert all(" — " in label and "(" in label for label in labels)
    combo = widget.method.native  # long entries are elided in the form, never widening the dock
    longest = max(combo.fontMetrics().horizontalAdvance(label) for label in labels)
    assert combo.minimumSizeHint().width() < longest
    widget.task.value = "exposure"  # re-ordered for exposures; the best selected
    keys = [key for key, _, _ in MEASURED["exposure"]]
    assert set(keys) == every and list(widget.method.choices) == keys
    assert widget.method.value == "laplacian" and widget.strategy.value == "all"
    assert widget.method.native.itemText(0) == "Laplacian — best on exposure brackets " \
        "(MEF-SSIM 0.977)"  # fmt: skip
    assert "MEF-SSIM" in widget.method.tooltip and "dB" not in widget.method.tooltip
    widget.method.value = "guided"  # folded pairwise: "all" is Laplacian's and Mertens' only
    assert widget.strategy.value == "tree"
    widget.method.value = "mertens"
    assert widget.strategy.value == "all"
    widget.task.value = "focus"
    assert list(widget.method.choices)[0] == "focus" == widget.method.value
    assert widget.strategy.value == "tree" and "43.5 dB" in widget.method.tooltip


def _table_rows(path, first: str) -> dict[str, str]:
    """Row name -> the next cell, of the Markdown table rows after the line starting ``first``."""
    lines = path.read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(first))
    rows = {}
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        cells = [c.strip().strip("*") for c in line.strip("|").split("|")]
        rows[cells[0]] = cells[1]
    return rows


def test_the_method_scores_are_the_documented_ones_best_first():
    from pathlib import Path

    from napari_gifnet.methods.registry import task_method_label
    from napari_gifnet.plugin._qt.stack_widget import MEASURED

    docs = Path(__file__).resolve().parents[2] / "docs"
    psnr = _table_rows(docs / "stacks.md", "| method | PSNR | SSIM |")
    mef = _table_rows(docs / "quality.md", "| method | MEF-SSIM | 1-scale Q | time (s) | time / "
                                           "laplacian_fusion (N-way)")  # fmt: skip
    focus = {k: ("focus selection (default)" if k == "focus" else f"{task_method_label(k)}, tree")
             for k, _, _ in MEASURED["focus"]}  # fmt: skip
    exposure = {k: f"fuse_stack {k}" for k, _, _ in MEASURED["exposure"]}
    exposure.update(laplacian='fuse_stack(task="exposure")', mertens="mertens_fusion (N-way)",
                    focus="fuse_stack default")  # fmt: skip
    for task, rows, row_of, unit in (("focus", psnr, focus, " dB"),
                                      ("exposure", mef, exposure, "")):  # fmt: skip
        measured = [(k, s) for k, _, s in MEASURED[task] if s != "not measured"]
        values = []
        for key, score in measured:
            value = float(rows[row_of[key]])
            digits = 1 if unit else 3
            assert score.endswith(f"{value:.{digits}f}{unit}"), (task, key, score, value)
            values.append(value)
        assert values == sorted(values, reverse=True), task


def test_every_control_says_what_it_does(setup):
    _, widget, _ = setup
    names = ["layer", "axis", "task", "method", "strategy", "select", "align", "keep_dtype",
             "keep_previous", "compare_button", "compare_note", "compare_table"]  # fmt: skip
    for name in names:
        assert getattr(widget, name).tooltip, name
    for choice in ("tree", "sequential", "all"):
        assert f"\n{choice}" in widget.strategy.tooltip, choice
    for text in ("auto", "off", "translation", "scale", "similarity"):
        assert f"\n{text}" in widget.align.tooltip, text


def test_the_task_follows_a_sample_layer_not_the_remembered_task(setup):
    viewer, widget, data = setup
    widget.task.value = "exposure"  # e.g. remembered from an exposure bracket
    viewer.add_image(data, name="focus stack", metadata={"sample": "focus_stack"})
    widget.layer.value = viewer.layers["focus stack"]
    assert widget.task.value == "focus" and widget.method.value == "focus"
    assert "focus_stack" in widget.status.value
    widget.layer.value = viewer.layers["zstack"]  # a layer that says nothing: left as chosen
    widget.task.value = "exposure"
    assert widget.task.value == "exposure"
    from napari_gifnet.plugin._qt.stack_widget import StackWidget

    viewer.layers.remove("zstack")  # a new launch with the sample open, "exposure" remembered
    again = StackWidget(viewer)
    assert again.layer.value is viewer.layers["focus stack"]
    assert again.task.value == "focus" and again.method.value == "focus"
