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
    out = viewer.layers["MRI enhanced"]
    expected = enhance(image, variant="exposure", weights=reference_weights, device="cpu")
    np.testing.assert_allclose(out.data, expected.image, rtol=0, atol=1e-6)
    assert tuple(out.scale) == (2, 2) and out.metadata["source_layer"] == "MRI"
    np.testing.assert_array_equal(viewer.layers["MRI"].data, before)  # input untouched
    assert "exposure" in widget.status.value


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
    np.testing.assert_allclose(viewer.layers["MRI dask enhanced"].data, expected.image, rtol=0,
                               atol=1e-6)  # fmt: skip
