"""One plugin-wide GIFNet weights setting, shown in every widget that has a weights field.

Every test points ``NAPARI_GIFNET_SETTINGS`` at a file of its own (tests/plugin/conftest.py);
a "new launch" is a widget made after forgetting which files this process chose.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("napari")
pytest.importorskip("pytestqt")

from qtpy.QtCore import QSettings, Qt

KINDS = {
    "fusion": "fusion_widget.FusionWidget",
    "stack": "stack_widget.StackWidget",
    "pansharpen": "pansharpen_widget.PansharpenWidget",
    "enhance": "enhance_widget.EnhanceWidget",
}
SEARCH = "this field, else the file named by GIFNET_WEIGHTS, else the cache"


def _make(kind: str, viewer):
    import importlib

    module, cls = KINDS[kind].split(".")
    return getattr(importlib.import_module(f"napari_gifnet.plugin._qt.{module}"), cls)(viewer)


def _store(key: str, value: str) -> None:
    import os

    qs = QSettings(os.environ["NAPARI_GIFNET_SETTINGS"], QSettings.Format.IniFormat)
    qs.setValue(key, json.dumps(value))
    qs.sync()


def _stored(key: str):
    import os

    value = QSettings(os.environ["NAPARI_GIFNET_SETTINGS"], QSettings.Format.IniFormat).value(key)
    return None if value is None else json.loads(value)


@pytest.fixture
def new_launch(monkeypatch):
    """Forget which weights files this process chose (as a new napari launch would)."""
    from napari_gifnet.plugin._qt import _settings

    monkeypatch.setattr(_settings, "_chosen_now", set())


@pytest.fixture
def tuned(tmp_path, reference_weights):
    """A loadable GIFNet checkpoint other than the published one: ``run.pth``."""
    import torch

    state = torch.load(reference_weights, map_location="cpu", weights_only=True)
    key = next(k for k, v in state.items() if v.is_floating_point())
    state[key] = state[key] * 1.001
    path = tmp_path / "run.pth"
    torch.save(state, path)
    return path


@pytest.fixture
def viewer(make_napari_viewer):
    viewer = make_napari_viewer()
    rng = np.random.default_rng(1)
    for name in ("A", "B"):
        viewer.add_image(rng.random((64, 64), np.float32), name=name)
    return viewer


def _visible(widget) -> bool:
    return not widget.native.isHidden()


def test_one_weights_setting_is_shown_and_set_in_every_widget(qtbot, viewer, tmp_path,
                                                              new_launch, monkeypatch):  # fmt: skip
    monkeypatch.delenv("GIFNET_WEIGHTS", raising=False)  # the search then finds the published
    file = tmp_path / "local.pth"
    file.write_bytes(b"not read: nothing runs")
    widgets = {kind: _make(kind, viewer) for kind in KINDS}
    for kind, widget in widgets.items():
        viewer.window.add_dock_widget(widget, name=kind)
        # the field, and below it the line saying which weights a run uses
        items = list(widget)
        assert items.index(widget.shared_weights.note) == items.index(widget.weights) + 1
        assert SEARCH in widget.weights.tooltip and SEARCH in widget.shared_weights.note.tooltip
        assert widget.device.tooltip and "cpu" in widget.device.tooltip
        assert widget.shared_weights.note.value.startswith("Weights: the published checkpoint")
        assert not _visible(widget.shared_weights.published)

    widgets["pansharpen"].weights.value = str(file)  # set in one widget ...
    for kind, widget in widgets.items():  # ... set in every open widget at once
        assert widget.weights.line_edit.value == str(file), kind
        assert widget.shared_weights.note.value == (
            "Weights: local.pth (not the published checkpoint; from this field)"
        )
        assert _visible(widget.shared_weights.published)
    assert _stored("plugin/weights") == str(file)  # one key, for the next launch
    assert _stored("pansharpen/weights") is None and _stored("fusion/weights") is None

    qtbot.mouseClick(widgets["stack"].shared_weights.published.native, Qt.LeftButton)
    for widget in widgets.values():
        assert widget.weights.line_edit.value == "" and not _visible(
            widget.shared_weights.published)  # fmt: skip
    assert _stored("plugin/weights") == ""


def test_use_checkpoint_sets_the_shared_setting(viewer, tmp_path, new_launch):
    file = tmp_path / "tuned.pth"
    file.write_bytes(b"not read")
    enhance = _make("enhance", viewer)
    fusion = _make("fusion", viewer)
    fusion.use_checkpoint(file)  # what the fine-tune widget's button calls
    assert enhance.weights.line_edit.value == str(file)
    assert _stored("plugin/weights") == str(file)
    assert _make("stack", viewer).weights.line_edit.value == str(file)  # next widget too


def test_a_widgets_own_weights_of_an_older_version_are_read_once(viewer, tmp_path, new_launch):
    old, other = tmp_path / "old.pth", tmp_path / "other.pth"
    old.write_bytes(b"x")
    other.write_bytes(b"y")
    _store("focus_stack/weights", str(tmp_path / "deleted.pth"))  # not a file: skipped
    _store("enhance/weights", str(old))
    fusion = _make("fusion", viewer)
    assert fusion.weights.line_edit.value == str(old)
    assert "remembered from an earlier session" in fusion.shared_weights.note.value
    assert _stored("plugin/weights") == str(old)  # migrated
    _store("enhance/weights", str(other))  # never read again
    assert _make("pansharpen", viewer).weights.line_edit.value == str(old)
    fusion.shared_weights.use_published()
    assert _make("enhance", viewer).weights.line_edit.value == ""


def test_a_remembered_checkpoint_is_shown_in_the_widget_status_and_metadata(
    qtbot, viewer, tuned, reference_weights, new_launch
):
    from napari_gifnet.plugin._qt.fusion_widget import FusionWidget

    _store("plugin/weights", str(tuned))  # a fine-tune of an earlier session
    widget = FusionWidget(viewer)
    viewer.window.add_dock_widget(widget, name="GIFNet fusion")
    widget.device.value = "cpu"
    text = "Weights: run.pth (not the published checkpoint; remembered from an earlier session)"
    assert widget.shared_weights.note.value == text
    assert _visible(widget.shared_weights.published)
    qtbot.mouseClick(widget.run_button.native, Qt.LeftButton)
    qtbot.waitUntil(lambda: not widget.running, timeout=120_000)
    fused = viewer.layers["A + B (GIFNet)"]
    assert text in widget.status.value
    assert fused.metadata["weights_note"] == text
    assert fused.metadata["weights"] == str(tuned) and fused.metadata["weights_published"] is False

    # one click back to the published weights; the next run says nothing about weights
    qtbot.mouseClick(widget.shared_weights.published.native, Qt.LeftButton)
    assert widget.weights.line_edit.value == "" and not _visible(widget.shared_weights.published)
    widget.weights.value = str(reference_weights)  # the published file, named explicitly
    assert "(the published checkpoint" in widget.shared_weights.note.value
    qtbot.mouseClick(widget.run_button.native, Qt.LeftButton)
    qtbot.waitUntil(lambda: not widget.running, timeout=120_000)
    assert "Weights" not in widget.status.value and "weights_note" not in fused.metadata
    assert fused.metadata["weights_published"] is True


def test_the_weights_line_says_where_the_weights_come_from(tmp_path, monkeypatch, tuned,
                                                            reference_weights):  # fmt: skip
    from napari_gifnet.plugin._qt._job import weights_state

    monkeypatch.delenv("GIFNET_WEIGHTS", raising=False)
    assert weights_state("") == ("Weights: the published checkpoint (cache or download)", False)
    monkeypatch.setenv("GIFNET_WEIGHTS", str(tuned))  # the field empty: the variable's file
    assert weights_state(None) == (
        "Weights: run.pth (not the published checkpoint; from GIFNET_WEIGHTS)", True)  # fmt: skip
    assert weights_state(str(reference_weights))[1] is False  # the published file, by sha256
    assert weights_state(str(tmp_path / "gone.pth")) == (
        "Weights: gone.pth (file not found; from this field)", True)  # fmt: skip
