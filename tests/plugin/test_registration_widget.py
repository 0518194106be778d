"""The registration rows of the "GIFNet fusion" dock widget, in a real viewer with real clicks.

A CT-like / MRI-like pair (the medical sample at 96 px: two modalities with
different contrast) whose second image is rotated and shifted by a known
transform; the widget registers it by mutual information, moves the second
layer by its affine, shows the check views, undoes the move and fuses.
Landmarks: two Points layers recover a known similarity.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("napari")
pytest.importorskip("pytestqt")
pytest.importorskip("SimpleITK")

from qtpy.QtCore import Qt
from qtpy.QtWidgets import QApplication

SIZE = 96
DONE_MS = 60_000


def _matrix(angle_deg: float, scale: float, shift: tuple[float, float]) -> np.ndarray:
    """A fixed -> moving (y, x) homogeneous matrix about the image's centre."""
    t = np.radians(angle_deg)
    a = scale * np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])
    centre = np.array([(SIZE - 1) / 2] * 2)
    m = np.eye(3)
    m[:2, :2] = a
    m[:2, 2] = centre - a @ centre + np.asarray(shift)
    return m


def _warp(image: np.ndarray, m: np.ndarray) -> np.ndarray:
    """The moving image: moving(m @ p) = image(p)."""
    from scipy import ndimage

    inv = np.linalg.inv(m)
    out = ndimage.affine_transform(image.astype(float), inv[:2, :2], inv[:2, 2], order=1,
                                   mode="constant", cval=float(image.min()))  # fmt: skip
    return np.clip(np.rint(out), 0, 255).astype(image.dtype)


def _mapping_error(layer, m: np.ndarray) -> float:
    """Mean distance (px) between where the layer's world transform and ``m`` put the
    first's pixels in the second's data."""
    world = np.array(layer.affine.affine_matrix) @ np.diag([*layer.scale, 1.0])
    world[:2, 2] += np.asarray(layer.translate)
    to_data = np.linalg.inv(world)
    yy, xx = np.mgrid[:SIZE, :SIZE]
    p = np.stack([yy.ravel(), xx.ravel(), np.ones(yy.size)])
    return float(np.linalg.norm((to_data @ p - m @ p)[:2], axis=0).mean())


def _click(qtbot, button) -> None:
    qtbot.mouseClick(button.native, Qt.MouseButton.LeftButton)


def _wait(qtbot, widget) -> None:
    qtbot.waitUntil(lambda: not widget.running, timeout=DONE_MS)


@pytest.fixture
def medical():
    from napari_gifnet.data.synthetic import medical_pair

    sample = medical_pair(size=SIZE)
    return sample.data("CT-like"), sample.data("MRI-like")


def test_register_moves_the_second_layer_checks_the_fit_undoes_and_fuses(
    qtbot, make_napari_viewer, medical, tmp_path, monkeypatch
):
    from napari_gifnet.plugin._qt.fusion_widget import FusionWidget
    from napari_gifnet.plugin.check_view import CHECK_LAYER

    ct, mri = medical
    truth = _matrix(6.0, 1.0, (3.0, -4.0))
    moving = _warp(mri, truth)
    viewer = make_napari_viewer(show=True)
    first = viewer.add_image(ct, name="CT")
    second = viewer.add_image(moving, name="MRI (moved)")
    data = second.data
    widget = FusionWidget(viewer)
    dock = viewer.window.add_dock_widget(widget, name="GIFNet fusion")
    widget.method.value = "mean"
    panel = widget.registration
    QApplication.processEvents()
    width = dock.width()

    # the rows show only with a registration mode; landmarks add the Points pickers
    rows = [panel.points, panel.fit, panel.buttons, panel.check, panel.wipe]
    assert not any(row.visible for row in rows)
    widget.align.value = "translation"
    assert not any(row.visible for row in rows)
    widget.align.value = "landmarks"
    QApplication.processEvents()
    assert panel.points.visible and panel.fit.visible and panel.buttons.visible
    assert dock.width() <= width, (width, dock.width())
    widget.align.value = "rigid"
    QApplication.processEvents()
    assert panel.buttons.visible and panel.check.visible
    assert not panel.points.visible and not panel.wipe.visible
    assert dock.width() <= width, (width, dock.width())
    assert widget.options()["align"] is None  # not a phase-correlation alignment

    # Cancel, pressed at once, stops the optimiser: nothing moves
    _click(qtbot, panel.register_button)
    assert widget.running and widget.cancel_button.enabled
    _click(qtbot, widget.cancel_button)
    _wait(qtbot, widget)
    assert widget.runner.status_line.full.startswith("Cancelled")
    assert np.allclose(second.affine.affine_matrix, np.eye(3)) and panel.registration is None

    # Register: the second layer moves onto the first by its affine; its data stay
    _click(qtbot, panel.register_button)
    _wait(qtbot, widget)
    assert panel.registration is not None, widget.status.native.toolTip()
    assert _mapping_error(second, truth) < 0.5
    assert second.data is data and np.array_equal(second.data, moving)
    status = widget.runner.status_line.full
    assert "Registered 'MRI (moved)' onto 'CT'" in status and "overlap" in status
    assert panel.is_current() and panel.undo_button.enabled
    first.translate = (0, 5)
    assert not panel.is_current()  # the first moved: Run would register again
    first.translate = (0, 0)
    assert panel.is_current()

    # Save...: the transform as a JSON file, reloadable
    from qtpy.QtWidgets import QFileDialog

    from napari_gifnet.io.transform_file import load_transform

    target = tmp_path / "mri_onto_ct.json"
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a, **k: (str(target), ""))
    _click(qtbot, panel.save_button)
    saved = load_transform(target)
    assert saved["kind"] == "rigid" and saved["layers"] == {"fixed": "CT", "moving": "MRI (moved)"}
    np.testing.assert_allclose(saved["matrix"], panel.registration.transform.matrix)
    assert str(target) in widget.runner.status_line.full

    # the check views: the first and the second as moved
    panel.check.value = "checkerboard"
    layer = viewer.layers[-1]
    assert layer.name == CHECK_LAYER and layer.data.shape == (SIZE, SIZE)
    assert not panel.wipe.visible
    assert CHECK_LAYER not in [name for name, _ in widget._image_choices()]
    panel.check.value = "wipe"
    assert panel.wipe.visible and viewer.layers[-1].name == CHECK_LAYER
    panel.wipe.value = 25
    unit_first = np.clip(ct / float(first.contrast_limits[1]), 0, 1)
    view = viewer.layers[CHECK_LAYER].data
    np.testing.assert_allclose(view[:, :24], unit_first[:, :24], atol=1e-6)
    assert not np.allclose(view[:, 24:], unit_first[:, 24:], atol=1e-3)
    panel.wipe.value = 75
    view = viewer.layers[CHECK_LAYER].data
    np.testing.assert_allclose(view[:, :72], unit_first[:, :72], atol=1e-6)
    panel.check.value = "overlay"
    assert viewer.layers[CHECK_LAYER].rgb and viewer.layers[CHECK_LAYER].data.shape[-1] == 3
    assert panel.check.value == "overlay" and panel.check_view.mode == "overlay"

    # Run after Register fuses the moved layer; the result says how it was registered
    _click(qtbot, widget.run_button)
    _wait(qtbot, widget)
    fused = widget.last_layers[0]
    entry = fused.metadata["registration"]
    assert entry["kind"] == "rigid" and np.asarray(entry["matrix"]).shape == (3, 3)
    assert "registered (rigid)" in widget.runner.status_line.full

    # Undo move: the affine it had; the check view follows; the data never changed
    _click(qtbot, panel.undo_button)
    assert np.allclose(second.affine.affine_matrix, np.eye(3))
    assert not panel.undo_button.enabled and not panel.save_button.enabled
    assert not panel.is_current()
    assert second.data is data

    # Run with the mode but no current registration registers first, then fuses
    _click(qtbot, widget.run_button)
    _wait(qtbot, widget)
    assert _mapping_error(second, truth) < 0.5
    assert widget.last_layers[0].metadata["registration"]["kind"] == "rigid"

    # back to off: the rows and the check view go; the next widget opens with "off"
    widget.align.value = None
    assert not any(row.visible for row in rows), [(r.label, r.visible) for r in rows]
    assert CHECK_LAYER not in [ly.name for ly in viewer.layers]
    again = FusionWidget(viewer)
    assert again.align.value is None and again.registration.mode is None


def test_register_is_clickable_again_the_moment_the_job_ends(
    qtbot, make_napari_viewer, medical, monkeypatch
):
    """The job ends (``running`` turns False) and Register comes back in one event: a click
    right after a cancelled job starts the next one (it once came a queued event later, so
    a click in between was lost and the next registration never ran)."""
    from napari_gifnet.plugin._qt.fusion_widget import FusionWidget

    ct, mri = medical
    viewer = make_napari_viewer()
    viewer.add_image(ct, name="CT")
    viewer.add_image(_warp(mri, _matrix(6.0, 1.0, (3.0, -4.0))), name="MRI (moved)")
    widget = FusionWidget(viewer)
    widget.align.value = "rigid"
    panel = widget.registration
    line = widget.runner.status_line
    seen = []  # (status, running, Register enabled) as each status is shown
    show = line.show
    monkeypatch.setattr(
        line, "show", lambda text: (seen.append((text, widget.running,
                                                 panel.register_button.enabled)), show(text))
    )  # fmt: skip
    _click(qtbot, panel.register_button)
    _click(qtbot, widget.cancel_button)
    _wait(qtbot, widget)
    assert seen[-1] == (widget.runner.cancelled_text, False, True), seen
    _click(qtbot, panel.register_button)  # at once: no event processed in between
    assert widget.running
    _wait(qtbot, widget)
    assert panel.registration is not None, line.full
    assert seen[-1][0].startswith("Registered 'MRI (moved)'") and seen[-1][1:] == (False, True)


def test_landmarks_recover_a_similarity_and_bad_points_are_refused(
    qtbot, make_napari_viewer, medical
):
    from napari_gifnet.plugin._qt.fusion_widget import FusionWidget

    ct, mri = medical
    truth = _matrix(8.0, 1.05, (4.0, -3.0))
    viewer = make_napari_viewer()
    viewer.add_image(ct, name="CT")
    second = viewer.add_image(_warp(mri, truth), name="MRI (moved)")
    fixed = np.array([[20.0, 25.0], [70.0, 30.0], [48.0, 75.0]])
    moving = fixed @ truth[:2, :2].T + truth[:2, 2]
    viewer.add_points(fixed, name="CT points")
    extra = viewer.add_points(moving[:2], name="MRI points")
    widget = FusionWidget(viewer)
    panel = widget.registration
    widget.align.value = "landmarks"
    assert panel.first_points.value.name == "CT points"
    assert panel.second_points.value.name == "MRI points"

    # 3 points against 2: one message naming both layers, nothing runs
    _click(qtbot, panel.register_button)
    assert not widget.running
    status = widget.runner.status_line.full
    assert "'CT points' has 3 points and 'MRI points' has 2" in status
    assert "same number" in status

    # too few pairs for an affine fit
    viewer.layers["CT points"].data = fixed[:2]
    extra.data = moving[:2]
    panel.fit.value = "affine"
    _click(qtbot, panel.register_button)
    status = widget.runner.status_line.full
    assert "a 2-D affine fit needs at least 3 point pairs" in status
    assert "'CT points' and 'MRI points' have 2" in status

    # three pairs, a similarity: the second layer lands on the first
    viewer.layers["CT points"].data = fixed
    extra.data = moving
    panel.fit.value = "similarity"
    _click(qtbot, panel.register_button)
    _wait(qtbot, widget)
    assert panel.registration is not None, widget.runner.status_line.full
    assert _mapping_error(second, truth) < 0.05
    assert "residual" in widget.runner.status_line.full


def test_a_volume_registers_shows_its_check_view_and_fuses(qtbot, make_napari_viewer):
    from scipy import ndimage

    from napari_gifnet.plugin._qt.fusion_widget import FusionWidget

    rng = np.random.default_rng(0)
    volume = ndimage.gaussian_filter(rng.random((16, 32, 32)), 2.0)
    volume = ((volume - volume.min()) / np.ptp(volume)).astype(np.float32)
    shift = np.array([1.0, 2.0, -1.5])  # (z, y, x) voxels
    other = ndimage.shift(np.abs(volume - 0.5), shift, order=1, mode="nearest")  # non-monotonic
    viewer = make_napari_viewer()
    viewer.add_image(volume, name="MRI")
    second = viewer.add_image(other.astype(np.float32), name="CT")
    widget = FusionWidget(viewer)
    widget.method.value = "mean"
    widget.align.value = "rigid"
    panel = widget.registration
    _click(qtbot, panel.register_button)
    _wait(qtbot, widget)
    assert panel.registration is not None, widget.runner.status_line.full
    np.testing.assert_allclose(second.affine.affine_matrix[:3, 3], -shift, atol=0.1)
    np.testing.assert_allclose(second.affine.affine_matrix[:3, :3], np.eye(3), atol=0.01)
    panel.check.value = "checkerboard"
    check = viewer.layers[-1]
    assert check.name == "check view" and check.data.shape == (1, 32, 32)  # the plane shown
    np.testing.assert_allclose(
        check.data_to_world((0, 0, 0)), (np.rint(viewer.dims.point[0]), 0, 0)
    )
    _click(qtbot, widget.run_button)
    _wait(qtbot, widget)
    fused = widget.last_layers[0]
    assert fused.data.shape == (16, 32, 32) and fused.metadata["registration"]["kind"] == "rigid"


def test_volume_landmarks_need_three_pairs_and_save_refuses_an_input_file(
    qtbot, make_napari_viewer, tmp_path, monkeypatch
):
    import tifffile
    from qtpy.QtWidgets import QFileDialog

    from napari_gifnet.io.transform_file import load_transform
    from napari_gifnet.plugin._qt.fusion_widget import FusionWidget

    rng = np.random.default_rng(1)
    volume = rng.random((8, 24, 24)).astype(np.float32)
    folder = tmp_path / "data"  # napari keeps its settings in tmp_path
    folder.mkdir()
    source = folder / "mri.tif"
    tifffile.imwrite(source, volume)
    viewer = make_napari_viewer()
    [first] = viewer.open(str(source), plugin="napari")
    first.units = "mm"  # saved with the transform: its world coordinates are in mm
    viewer.add_image(volume.copy(), name="CT", translate=(1.0, 2.0, -3.0), units="mm")
    fixed = np.array([[2.0, 4.0, 5.0], [5.0, 18.0, 6.0], [3.0, 10.0, 19.0], [6.0, 5.0, 15.0]])
    moving = fixed + [1.0, 2.0, -3.0]
    viewer.add_points(fixed[:2], name="MRI points")
    viewer.add_points(moving[:2], name="CT points")
    widget = FusionWidget(viewer)
    panel = widget.registration
    widget.align.value = "landmarks"
    panel.fit.value = "rigid"
    assert first.source.path == str(source) and widget.second.value.name == "CT"

    # two pairs are enough for a 2-D rigid fit, not for a 3-D one: refused before it runs
    _click(qtbot, panel.register_button)
    assert not widget.running and panel.registration is None
    status = widget.runner.status_line.full
    assert status.startswith("Cannot register: a 3-D rigid fit needs at least 3 point pairs")
    viewer.layers["MRI points"].data = fixed[:3]
    viewer.layers["CT points"].data = moving[:3]
    _click(qtbot, panel.register_button)
    _wait(qtbot, widget)
    assert panel.registration is not None, widget.runner.status_line.full

    # Save... refuses the input's own file and another existing file; adds .json
    before = source.read_bytes()
    notes = folder / "notes.txt"
    notes.write_text("keep")
    chosen = []
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a, **k: (chosen[-1], ""))
    for path, message in ((source, "is the source file of an open layer"),
                          (notes, "is an existing file that is not a .json file")):  # fmt: skip
        chosen.append(str(path))
        _click(qtbot, panel.save_button)
        status = widget.runner.status_line.full
        assert status.startswith("Cannot save the transform: ") and message in status, status
        assert str(path) in status
    assert source.read_bytes() == before and notes.read_text() == "keep"
    chosen.append(str(folder / "ct_onto_mri"))
    _click(qtbot, panel.save_button)
    saved = folder / "ct_onto_mri.json"
    assert widget.runner.status_line.full == f"Transform saved: {saved}"
    np.testing.assert_allclose(load_transform(saved)["matrix"], panel.registration.transform.matrix)
    assert load_transform(saved)["unit"] == "millimeter"
    assert sorted(p.name for p in folder.iterdir()) == [
        "ct_onto_mri.json",
        "mri.tif",
        "notes.txt",
    ]

    # the check view follows the Z slider until the widget closes
    from qtpy.QtCore import QEvent

    step = viewer.dims.events.current_step
    connected = len(step.callbacks)
    panel.check.value = "checkerboard"
    assert len(step.callbacks) == connected + 1
    viewer.dims.set_current_step(0, 5)
    check = viewer.layers["check view"]
    np.testing.assert_allclose(check.data_to_world((0, 0, 0)), first.data_to_world((5, 0, 0)))
    widget.native.deleteLater()
    QApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    assert len(step.callbacks) == connected


def test_register_is_off_while_a_fusion_runs_and_back_after_it(qtbot, make_napari_viewer, medical):
    """Register is one of the runner's buttons: off while Run fuses (a click then would be
    ignored), and back when the fusion ends, also when the mode was chosen during the run
    (it once stayed off until the mode changed again)."""
    from napari_gifnet.plugin._qt.fusion_widget import FusionWidget

    ct, mri = medical
    viewer = make_napari_viewer()
    viewer.add_image(ct, name="CT")
    viewer.add_image(mri, name="MRI")
    widget = FusionWidget(viewer)
    panel = widget.registration
    _click(qtbot, widget.run_button)
    assert widget.running and not panel.register_button.enabled
    widget.align.value = "rigid"  # chosen while the fusion runs
    assert not panel.register_button.enabled
    _wait(qtbot, widget)
    assert "CT + MRI (GIFNet)" in viewer.layers
    assert panel.register_button.enabled
