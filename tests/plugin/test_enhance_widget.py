"""Tests of the "Enhance" dock widget (pytest-qt, napari viewer under Xvfb)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("napari")
pytest.importorskip("pytestqt")

from napari_gifnet.workflows.enhancement import enhance


@pytest.fixture
def setup(make_napari_viewer, reference_dir: Path, reference_weights: Path):
    from napari_gifnet.plugin._qt.enhance_widget import EnhanceWidget

    with np.load(reference_dir / "official" / "Medical.npz") as d:
        image = d["input_b"][:64, :80].copy()
    viewer = make_napari_viewer()
    viewer.add_image(image, name="MRI", scale=(2, 2))
    widget = EnhanceWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Enhance")
    widget.weights.value, widget.device.value = str(reference_weights), "cpu"
    return viewer, widget, image


def test_enhance_adds_the_console_result(qtbot, setup, reference_weights: Path):
    viewer, widget, image = setup
    before = image.copy()
    widget.variant.value = "exposure"
    assert widget.run() is not None
    qtbot.waitUntil(lambda: not widget.running, timeout=60_000)
    out = viewer.layers["MRI enhanced (image + brightened copy)"]
    expected = enhance(image, variant="exposure", weights=reference_weights, device="cpu")
    np.testing.assert_allclose(out.data, expected.image, rtol=0, atol=1e-6)
    assert tuple(out.scale) == (2, 2) and out.metadata["source_layer"] == "MRI"
    np.testing.assert_array_equal(viewer.layers["MRI"].data, before)  # input untouched
    assert "Last run: image + brightened copy" in widget.status.value  # the label, not the key


def test_a_stack_is_refused_with_a_clear_message(setup):
    viewer, widget, image = setup
    viewer.add_image(np.stack([image, image]), name="stack")
    widget.image.value = viewer.layers["stack"]
    assert widget.run() is None
    assert "enhance works on one plane" in widget.status.value


def test_a_dask_layer_is_read_in_the_worker_not_on_the_gui_thread(
    setup, synchronous_dask, recording_dask, run_in_worker, reference_weights: Path
):
    viewer, widget, image = setup
    threads: list[str] = []
    viewer.add_image(recording_dask(image, (32, 40), threads), name="MRI dask",
                     contrast_limits=(0, 255))  # fmt: skip
    widget.image.value = viewer.layers["MRI dask"]
    run_in_worker(widget, threads)
    assert len(threads) >= 4  # its four chunks, read in the worker
    expected = enhance(image, weights=reference_weights, device="cpu")
    out = viewer.layers["MRI dask enhanced (the image twice)"]
    np.testing.assert_allclose(out.data, expected.image, rtol=0, atol=1e-6)


def _click_run(qtbot, widget) -> None:
    from qtpy.QtCore import Qt

    qtbot.mouseClick(widget.run_button.native, Qt.MouseButton.LeftButton)
    assert widget.running
    qtbot.waitUntil(lambda: not widget.running, timeout=60_000)


def test_each_variant_keeps_its_layer_and_reruns_add_by_default(qtbot, setup):
    viewer, widget, image = setup
    assert widget.keep_previous.value  # on by default: gamma tries share the variant's name
    assert not widget.gamma.enabled  # used by the brightened copy only
    _click_run(qtbot, widget)
    widget.variant.value = "exposure"
    assert widget.gamma.enabled
    _click_run(qtbot, widget)
    names = ["MRI enhanced (the image twice)", "MRI enhanced (image + brightened copy)"]
    assert [ly.name for ly in viewer.layers][1:] == names
    widget.gamma.value = 0.3
    _click_run(qtbot, widget)  # kept: a third layer, uniquely named
    added = [ly.name for ly in viewer.layers][1:]
    assert added[:2] == names and len(added) == 3 == len(set(added))
    assert added[2].startswith(names[1]) and viewer.layers[added[2]].metadata["gamma"] == 0.3
    widget.keep_previous.value = False
    latest = viewer.layers[names[0]]
    widget.variant.value = "self"
    _click_run(qtbot, widget)  # off: the same variant's layer is updated in place
    assert [ly.name for ly in viewer.layers][1:] == added and viewer.layers[names[0]] is latest


def test_every_control_says_what_it_does(setup):
    _, widget, _ = setup
    for name in ("image", "variant", "gamma", "keep_previous"):
        assert getattr(widget, name).tooltip, name
    for text in ("the image twice", "image + brightened copy"):
        assert f"\n{text}" in widget.variant.tooltip, text
