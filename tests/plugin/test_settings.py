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
#: what each widget remembers in its own group (never its layer pickers, nor the fusion's
#: normalisation, which follows the task)
REMEMBERED = {
    "fusion": ["task", "method", "align", "per_plane", "device", "features", "keep_previous"],
    "stack": ["axis", "task", "method", "strategy", "select", "align", "keep_dtype", "device"],
    "pansharpen": ["band_axis", "method", "rescale", "device"],
    "enhance": ["variant", "gamma", "device"],
}  # fmt: skip
#: ... and what it shows from one launch to the next: those and the shared weights file
SHOWN = {kind: [*names, "weights"] for kind, names in REMEMBERED.items()}
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
    group = WIDGETS[kind][1]
    widget = _make(kind, viewer)
    assert widget.settings is not None
    names = list(widget.settings.controls)  # REMEMBERED first, in order, maybe more after
    assert names[: len(REMEMBERED[kind])] == REMEMBERED[kind]
    assert "weights" not in names and "normalization" not in names
    shown = [*names, "weights"]
    defaults = _values(widget, shown)
    for name in shown:  # in the widget's order: a task preset first, then what it sets
        _change(getattr(widget, name), weights_file)
    chosen = _values(widget, shown)
    changed = [n for n in shown if chosen[n] != defaults[n]]
    assert changed, chosen
    if kind == "fusion":  # the options the issue names, all remembered
        assert {"task", "method", "align", "per_plane", "device", "weights"} <= set(changed)
        assert chosen["weights"] == str(weights_file)
    # stored as soon as they changed, in the widget's own group of the INI file; the
    # weights in the plugin-wide group
    stored = _ini(settings_file)
    assert group in stored and set(changed) - {"weights"} <= set(stored[group])
    assert "weights" not in stored[group]
    assert json.loads(stored["plugin"]["weights"].replace('\\"', '"')) == str(weights_file)
    for picker in PICKERS[kind]:  # layer choices are not remembered
        assert picker not in stored[group]

    again = _make(kind, viewer)  # a new launch
    assert _values(again, shown) == chosen
    assert again.status.value == "Ready."

    again.reset_button.clicked.emit()
    assert _values(again, shown) == defaults
    assert group not in _ini(settings_file)  # forgotten, not just overwritten
    assert _values(_make(kind, viewer), shown) == defaults


def test_fusion_normalisation_follows_the_task_not_the_settings(viewer, settings_file):
    from napari_gifnet.methods.presets import get_preset

    widget = _make("fusion", viewer)
    widget.task.value = "meif"  # its preset sets "dtype"
    assert widget.normalization.value == get_preset("meif").normalization == "dtype"
    widget.normalization.value = "minmax"  # then changed by hand, for this session
    widget.align.value = "scale"
    widget.per_plane.value = True
    assert widget.options()["normalization"] == "minmax"
    assert "normalization" not in _ini(settings_file)["fusion"]
    _store(settings_file, "fusion", {"normalization": json.dumps("minmax")})  # an older file
    again = _make("fusion", viewer)
    assert again.task.value == "meif" and again.normalization.value == "dtype"
    assert again.align.value == "scale" and again.per_plane.value is True
    assert again.options()["align"] == "scale" and again.options()["per_plane"] is True
    assert again.hint.value == get_preset("meif").hint
    again.task.value = "medical"  # choosing a task applies its preset's normalisation
    assert again.normalization.value == get_preset("medical").normalization == "auto"


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


# ------------------------------------------------ files the plugin did not write
#: A PNG's first bytes (its signature and the start of its header chunk).
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x10\x00\x00\x00\x10\x08\x06\x00\x00\x00"
FOREIGN = {
    "text note": b"shopping list\n- milk\n- eggs = 3\n",
    "png": PNG + bytes(range(256)),
    "other program's ini": b"[window]\nwidth=640\nheight=480\n",
    "qt variant": b"[napari-gifnet]\nformat=1\n[fusion]\nmethod=@Variant(\\0\\0\\0\\x2\\0\\0\\0\\x1)\n",
    "comment": b"; my notes\n[fusion]\nkeep_previous=true\n",
}  # fmt: skip


def _warnings_naming(path) -> list[str]:
    from napari.utils.notifications import notification_manager

    return [str(n.message) for n in notification_manager.records if str(path) in str(n.message)]


@pytest.mark.parametrize("kind", list(FOREIGN))
def test_a_file_the_plugin_did_not_write_is_never_written(viewer, settings_file, weights_file,
                                                          kind):  # fmt: skip
    settings_file.write_bytes(FOREIGN[kind])
    widget = _make("fusion", viewer)
    defaults = _values(widget, SHOWN["fusion"])
    (message,) = _warnings_naming(settings_file)
    assert "not written by napari-gifnet" in message and "kept in memory only" in message
    for name in SHOWN["fusion"]:
        _change(getattr(widget, name), weights_file)
    chosen = _values(widget, SHOWN["fusion"])
    assert settings_file.read_bytes() == FOREIGN[kind]  # never rewritten
    # remembered in memory for this session, with one warning in all
    again = _make("fusion", viewer)
    assert _values(again, SHOWN["fusion"]) == chosen
    again.reset_button.clicked.emit()
    assert _values(_make("fusion", viewer), SHOWN["fusion"]) == defaults
    assert len(_warnings_naming(settings_file)) == 1
    assert settings_file.read_bytes() == FOREIGN[kind]
    assert sorted(p.name for p in settings_file.parent.iterdir()) == sorted(
        ["my-gifnet.pth", settings_file.name])  # fmt: skip


def test_which_files_are_the_plugins(tmp_path, settings_file, weights_file, viewer):
    from napari_gifnet.plugin._qt._settings import MAX_FILE_BYTES, foreign_reason

    assert foreign_reason(tmp_path / "absent.ini") is None
    (tmp_path / "empty.ini").write_bytes(b"")
    assert foreign_reason(tmp_path / "empty.ini") is None
    widget = _make("fusion", viewer)  # what the widgets write is theirs
    for name in SHOWN["fusion"]:
        _change(getattr(widget, name), weights_file)
    widget.weights.value = str(weights_file.rename(tmp_path / 'a, "b" @c;d.pth'))
    assert foreign_reason(settings_file) is None
    assert "[napari-gifnet]" in settings_file.read_text()
    assert _make("fusion", viewer).weights.value == widget.weights.value
    legacy = tmp_path / "legacy.ini"  # a file of an earlier version: no marker, only widget groups
    legacy.write_text('[fusion]\nmethod=\\"gifnet\\"\n\n[enhance]\ngamma=0.5\n')
    assert foreign_reason(legacy) is None
    shared = tmp_path / "shared.ini"  # the plugin-wide group alone is the plugin's too
    shared.write_text('[plugin]\nweights=\\"/data/run.pth\\"\n')
    assert foreign_reason(shared) is None
    for kind, data in FOREIGN.items():
        (tmp_path / "foreign").write_bytes(data)
        assert foreign_reason(tmp_path / "foreign"), kind
    quoted = tmp_path / "quoted.ini"  # Qt would decode these as serialised values too
    for value in ('"@Variant(\\0)"', '"\\x40Variant(\\0)"', '\\"a\\", @Variant(\\0)', "1\\",
                  '\\"a\x00b\\"', '\\"a\x0bb\\"'):  # fmt: skip
        quoted.write_text(f"[fusion]\nmethod={value}\n")
        assert "line 2" in foreign_reason(quoted), value
    big = tmp_path / "big.ini"
    big.write_bytes(b"[fusion]\nmethod=" + b"1" * MAX_FILE_BYTES)
    assert "larger than" in foreign_reason(big)
    assert "not a regular file" in foreign_reason(tmp_path)


def test_a_hostile_settings_file_does_not_stop_a_widget_opening(viewer, settings_file,
                                                                monkeypatch):  # fmt: skip
    monkeypatch.setenv("NAPARI_GIFNET_SETTINGS", str(settings_file.with_name("absent.ini")))
    defaults = _values(_make("fusion", viewer), REMEMBERED["fusion"])
    monkeypatch.setenv("NAPARI_GIFNET_SETTINGS", str(settings_file))
    deep = 50_000
    settings_file.write_text(
        "[napari-gifnet]\nformat=1\n[fusion]\n"
        f"method={'[' * deep}{']' * deep}\n"  # past the value length read
        f"task={'[' * 5_000}{']' * 5_000}\n"  # past the JSON reader's nesting
        "device=[1e999999]\n"  # not a device
        f"weights=\\\"{'a' * 5_000}\\\"\n"  # a name too long to look up
        "keep_previous=true\n"
        "[enhance]\n"
        f"gamma=1{'0' * 400}\n"  # too large for a float
    )  # fmt: skip
    widget = _make("fusion", viewer)
    assert _values(widget, REMEMBERED["fusion"]) == {**defaults, "keep_previous": True}
    assert widget.status.value == "Ready."
    assert _make("enhance", viewer).gamma.value == 0.5
    assert not _warnings_naming(settings_file)


@pytest.mark.parametrize("kind", ["nested variant", "huge value"])
def test_a_settings_file_qt_cannot_read_safely_is_refused(viewer, settings_file, kind):
    if kind == "nested variant":  # a list in a list ... 50,000 deep, as Qt serialises it
        unit = "\\0\\0\\0\\t\\0\\0\\0\\x1"
        value = f"@Variant({unit * 50_000}\\0\\0\\0\\t\\0\\0\\0\\0)"
    else:  # 50 MB of text
        value = "1" * 50_000_000
    settings_file.write_text(f"[napari-gifnet]\nformat=1\n[fusion]\nmethod={value}\n")
    before = settings_file.stat()
    widget = _make("fusion", viewer)
    assert widget.method.value == widget.settings.defaults["method"]
    assert len(_warnings_naming(settings_file)) == 1
    widget.keep_previous.value = not widget.keep_previous.value
    after = settings_file.stat()
    assert (after.st_ino, after.st_size, after.st_mtime_ns) == (
        before.st_ino, before.st_size, before.st_mtime_ns)  # fmt: skip


def test_a_store_replaces_the_file_and_unknown_groups_are_refused(viewer, settings_file):
    from napari_gifnet.plugin._qt._settings import WidgetSettings

    widget = _make("enhance", viewer)
    widget.gamma.value = 0.6
    first = settings_file.stat().st_ino
    widget.gamma.value = 0.7
    # QSettings writes a temporary file and renames it over the old one
    assert settings_file.stat().st_ino != first
    assert sorted(p.name for p in settings_file.parent.iterdir()) == [settings_file.name]
    with pytest.raises(ValueError, match="not one of the settings groups"):
        WidgetSettings("no-such-widget", {"gamma": widget.gamma})


def test_the_users_settings_file_is_checked_too(monkeypatch, tmp_path):
    import os

    from qtpy.QtCore import QSettings

    from napari_gifnet.plugin._qt import _settings

    if _settings._settings_file(QSettings(_settings.ORGANISATION, _settings.APPLICATION)) is None:
        pytest.skip("the user's settings are not an INI file here")
    native, user = QSettings.Format.NativeFormat, QSettings.Scope.UserScope
    home = os.environ.get("XDG_CONFIG_HOME") or os.path.expanduser("~/.config")
    note = tmp_path / "napari-gifnet" / "widgets.conf"
    note.parent.mkdir()
    note.write_bytes(FOREIGN["text note"])
    monkeypatch.delenv("NAPARI_GIFNET_SETTINGS")
    monkeypatch.delenv("PYTEST_CURRENT_TEST")
    QSettings.setPath(native, user, str(tmp_path))
    try:
        store = _settings.open_settings()
        assert isinstance(store, _settings.MemorySettings) and store.refused == str(note)
    finally:
        QSettings.setPath(native, user, home)
    assert note.read_bytes() == FOREIGN["text note"]
