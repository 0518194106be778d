"""The job widgets remember their settings from one napari launch to the next.

Every test here points ``NAPARI_GIFNET_SETTINGS`` at an INI file of its own
temporary folder, so the user's real settings are never read or written; a
"new launch" is a new widget reading the same file. No weights are needed:
nothing is run.
"""

from __future__ import annotations

import configparser
import importlib
import json

import numpy as np
import pytest

pytest.importorskip("napari")
pytest.importorskip("pytestqt")

from magicgui.widgets import CheckBox, ComboBox, FileEdit, FloatSpinBox, SpinBox

#: widget -> (module.class, settings group)
WIDGETS = {
    "fusion": ("fusion_widget.FusionWidget", "fusion"),
    "stack": ("stack_widget.StackWidget", "focus_stack"),
    "pansharpen": ("pansharpen_widget.PansharpenWidget", "pansharpen"),
    "enhance": ("enhance_widget.EnhanceWidget", "enhance"),
}
#: what each widget must remember (never its layer pickers)
REMEMBERED = {
    "fusion": ["task", "normalization", "method", "align", "per_plane", "device", "weights",
               "features", "keep_previous"],
    "stack": ["axis", "method", "strategy", "select", "align", "align_scale", "keep_dtype",
              "device", "weights"],
    "pansharpen": ["band_axis", "method", "rescale", "device", "weights"],
    "enhance": ["variant", "gamma", "device", "weights"],
}  # fmt: skip
PICKERS = {"fusion": ["first", "second"], "stack": ["layer"], "pansharpen": ["ms", "pan"],
           "enhance": ["image"]}  # fmt: skip


@pytest.fixture(autouse=True)
def settings_file(tmp_path, monkeypatch):
    path = tmp_path / "napari-gifnet-settings.ini"
    monkeypatch.setenv("NAPARI_GIFNET_SETTINGS", str(path))
    return path


@pytest.fixture
def viewer(make_napari_viewer):
    rng = np.random.default_rng(0)
    viewer = make_napari_viewer()
    for name in ("A", "B"):
        viewer.add_image(rng.random((16, 16), np.float32), name=name)
    return viewer


@pytest.fixture
def weights_file(tmp_path):
    path = tmp_path / "my-gifnet.pth"
    path.write_bytes(b"not read: nothing runs")
    return path


def _make(kind: str, viewer):
    module, cls = WIDGETS[kind][0].split(".")
    return getattr(importlib.import_module(f"napari_gifnet.plugin._qt.{module}"), cls)(viewer)


def _value(control):
    if isinstance(control, FileEdit):
        return str(control.line_edit.value)
    return control.value


def _values(widget, names) -> dict:
    return {name: _value(getattr(widget, name)) for name in names}


def _change(control, weights_file) -> None:
    """Give ``control`` a value other than its current one."""
    if isinstance(control, FileEdit):
        control.value = str(weights_file)
    elif isinstance(control, CheckBox):
        control.value = not control.value
    elif isinstance(control, (SpinBox, FloatSpinBox)):
        step = control.step or 1
        control.value = control.value + step if control.value + step <= control.max \
            else control.value - step  # fmt: skip
    elif isinstance(control, ComboBox):
        control.value = next(c for c in control.choices if c != control.value)
    else:  # pragma: no cover
        raise AssertionError(control)


def _ini(path) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(path, encoding="utf-8")
    return parser


@pytest.mark.parametrize("kind", list(WIDGETS))
def test_settings_are_restored_in_a_new_launch_and_reset(viewer, settings_file, weights_file,
                                                         kind):  # fmt: skip
    names, group = REMEMBERED[kind], WIDGETS[kind][1]
    widget = _make(kind, viewer)
    assert widget.settings is not None and list(widget.settings.controls) == names
    defaults = _values(widget, names)
    for name in names:  # in the widget's order: a task preset first, then what it sets
        _change(getattr(widget, name), weights_file)
    chosen = _values(widget, names)
    changed = [n for n in names if chosen[n] != defaults[n]]
    assert changed, chosen
    if kind == "fusion":  # the options the issue names, all remembered
        assert {"task", "method", "align", "per_plane", "device", "weights"} <= set(changed)
        assert chosen["weights"] == str(weights_file)
    # stored as soon as they changed, in the widget's own group of the INI file
    stored = _ini(settings_file)
    assert group in stored and set(changed) <= set(stored[group])
    for picker in PICKERS[kind]:  # layer choices are not remembered
        assert picker not in stored[group]

    again = _make(kind, viewer)  # a new launch
    assert _values(again, names) == chosen
    assert again.status.value == "Ready."

    again.reset_button.clicked.emit()
    assert _values(again, names) == defaults
    assert group not in _ini(settings_file)  # forgotten, not just overwritten
    assert _values(_make(kind, viewer), names) == defaults


def test_fusion_restores_a_normalisation_other_than_the_presets(viewer):
    from napari_gifnet.methods.presets import get_preset

    widget = _make("fusion", viewer)
    widget.task.value = "meif"  # its preset sets "dtype"
    assert widget.normalization.value == get_preset("meif").normalization == "dtype"
    widget.normalization.value = "minmax"  # then changed by hand
    widget.align.value = "scale"
    widget.per_plane.value = True
    again = _make("fusion", viewer)
    assert again.task.value == "meif" and again.normalization.value == "minmax"
    assert again.align.value == "scale" and again.per_plane.value is True
    assert again.options()["align"] == "scale" and again.options()["per_plane"] is True
    assert again.hint.value == get_preset("meif").hint


def _store(settings_file, group: str, values: dict[str, str]) -> None:
    from qtpy.QtCore import QSettings

    qs = QSettings(str(settings_file), QSettings.Format.IniFormat)
    for name, text in values.items():
        qs.setValue(f"{group}/{name}", text)
    qs.sync()


def test_stored_values_no_longer_valid_fall_back_to_the_defaults(viewer, settings_file,
                                                                 weights_file):  # fmt: skip
    defaults = _values(_make("fusion", viewer), REMEMBERED["fusion"])
    _store(settings_file, "fusion", {
        "task": "{not json",
        "method": json.dumps("a-method-since-removed"),
        "device": json.dumps("cuda:7"),
        "weights": json.dumps(str(weights_file.with_name("deleted.pth"))),
        "per_plane": json.dumps("yes"),  # not a bool
        "features": json.dumps(1),  # not a bool either
        "keep_previous": json.dumps(True),  # the one valid value
        "align": json.dumps(False),  # no choice is False (off is None)
    })  # fmt: skip
    widget = _make("fusion", viewer)
    assert _values(widget, REMEMBERED["fusion"]) == {**defaults, "keep_previous": True}
    assert widget.options()["weights"] is None and widget.options()["align"] is None

    _store(settings_file, "enhance", {"gamma": json.dumps(5.0), "variant": json.dumps("gone")})
    _store(settings_file, "pansharpen", {"band_axis": json.dumps(2), "rescale": "null"})
    _store(settings_file, "focus_stack", {"axis": json.dumps(99), "strategy": json.dumps(3)})
    enhance, pan, stack = (_make(k, viewer) for k in ("enhance", "pansharpen", "stack"))
    assert enhance.gamma.value == 0.5 and enhance.variant.value == "self"
    assert pan.band_axis.value is None and pan.rescale.value == "range"
    assert stack.axis.value == 0 and stack.strategy.value == stack.settings.defaults["strategy"]


def test_a_weights_file_that_was_deleted_is_not_restored(viewer, weights_file):
    from napari_gifnet.plugin._qt._job import weights_of

    widget = _make("enhance", viewer)
    widget.weights.value = str(weights_file)
    assert _make("enhance", viewer).weights.line_edit.value == str(weights_file)
    weights_file.unlink()
    again = _make("enhance", viewer)
    assert again.weights.line_edit.value == "" and weights_of(again) is None


def test_the_store_is_the_users_settings_unless_overridden(monkeypatch, settings_file):
    from qtpy.QtCore import QSettings

    from napari_gifnet.plugin._qt import _settings

    qs = _settings.open_settings()
    assert qs.format() == QSettings.Format.IniFormat and qs.fileName() == str(settings_file)
    monkeypatch.delenv("NAPARI_GIFNET_SETTINGS")
    assert _settings.open_settings() is None  # a test never touches the real settings
    monkeypatch.delenv("PYTEST_CURRENT_TEST")  # outside pytest: the user's settings
    user = _settings.open_settings()  # opened, not written
    assert (user.organizationName(), user.applicationName()) == ("napari-gifnet", "widgets")
    assert user.scope() == QSettings.Scope.UserScope
