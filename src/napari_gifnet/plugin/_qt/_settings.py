"""Widget settings remembered from one napari launch to the next (Qt's ``QSettings``).

One group per widget (``fusion/method``, ...: :class:`WidgetSettings`) and the
plugin-wide weights file ``plugin/weights`` (:func:`stored_weights`), each
value stored as JSON text. Where (:func:`open_settings`): the INI file named
by ``NAPARI_GIFNET_SETTINGS``, else the user's settings of organisation
``"napari-gifnet"``, application ``"widgets"`` (on Linux
``~/.config/napari-gifnet/widgets.conf``). Only a file the plugin wrote is
handed to ``QSettings`` (which rewrites the whole file, atomically); any
other (:func:`foreign_reason`) is left as it is, with one warning, and the
settings are kept in memory (:class:`MemorySettings`).
"""

from __future__ import annotations

import json
import math
import os
import re
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from functools import partial
from pathlib import Path
from typing import Any

from magicgui.widgets import CheckBox, ComboBox, FileEdit, FloatSpinBox, SpinBox
from qtpy.QtCore import QObject, QSettings, Signal

__all__ = [
    "APPLICATION", "ENV", "GROUPS", "MARKER_GROUP", "MemorySettings", "ORGANISATION",
    "PLUGIN_GROUP", "WEIGHTS_KEY", "WidgetSettings", "foreign_reason", "open_settings",
    "store_weights", "stored_weights", "weights_chosen_now", "weights_hub",
]  # fmt: skip

#: Environment variable naming an INI file to use instead of the user's settings.
ENV = "NAPARI_GIFNET_SETTINGS"
ORGANISATION, APPLICATION = "napari-gifnet", "widgets"
#: The plugin-wide settings group (shared by every widget) and its weights key.
PLUGIN_GROUP = "plugin"
WEIGHTS_KEY = f"{PLUGIN_GROUP}/weights"
#: The settings groups of the job widgets (one per widget), and the plugin-wide one.
GROUPS = frozenset({"enhance", "finetune", "focus_stack", "fusion", "pansharpen", PLUGIN_GROUP})
#: The widgets' groups that held their own weights file before the shared setting.
OLD_WEIGHTS_GROUPS = ("fusion", "focus_stack", "pansharpen", "enhance")
#: The group marking a settings file as the plugin's, and its one key and value.
MARKER_GROUP, MARKER_KEY, MARKER_VALUE = "napari-gifnet", "format", "1"
#: A file larger than this is not one the plugin wrote (its values are a few paths).
MAX_FILE_BYTES = 1 << 20
#: A stored value's JSON text longer than this is not read (its control keeps its default).
MAX_VALUE_CHARS = 1 << 16
_INVALID = object()
_SECTION = re.compile(r"\[([A-Za-z0-9_-]+)\]")
_ENTRY = re.compile(r"([A-Za-z0-9_]+)\s*=(.*)")
#: Line breaks as Qt's INI reader knows them, and characters the plugin never writes raw.
_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f]")
#: Settings file path -> the in-memory store used instead of it.
_memory: dict[str, MemorySettings] = {}
_warned: set[str] = set()


class MemorySettings:
    """The part of ``QSettings`` the widgets use, held in memory (nothing is written).

    Used instead of a settings file that the plugin did not write.
    """

    def __init__(self, refused: str) -> None:
        self.refused = refused
        self.values: dict[str, Any] = {}

    def value(self, key: str) -> Any:
        return self.values.get(key)

    def setValue(self, key: str, value: Any) -> None:  # noqa: N802 - QSettings' name
        self.values[key] = value

    def remove(self, group: str) -> None:
        self.values = {k: v for k, v in self.values.items() if not k.startswith(f"{group}/")}

    def sync(self) -> None:
        """Nothing to write."""


def _starts_as_json(text: str) -> bool:
    """Whether ``text`` (QSettings-escaped) starts as JSON text does, or is empty."""
    return not text or text[0] in "[{-0123456789tfn" or text.startswith('\\"')


def _plain_value(raw: str) -> bool:
    """Whether ``raw`` is JSON text as QSettings writes it: one string Qt reads as text.

    An unquoted value has no comma (which would split it into a list) and no
    line-continuing backslash at its end; a quoted one is a single quoted
    token. Either starts as JSON does, so never with ``@`` (or an escape
    meaning it), which Qt would decode as a serialised value.
    """
    raw = raw.strip()
    if not raw.startswith('"'):
        return "," not in raw and not raw.endswith("\\") and _starts_as_json(raw)
    i = 1
    while i < len(raw) - 1 and raw[i] != '"':
        i += 2 if raw[i] == "\\" else 1
    return i == len(raw) - 1 and raw[i] == '"' and _starts_as_json(raw[1:-1])


def foreign_reason(path: Path) -> str | None:
    """Why ``path`` is not a settings file the plugin wrote, or None when it is.

    None for an absent or empty file, and for one of at most
    :data:`MAX_FILE_BYTES` of UTF-8 text holding only ``[group]`` lines and
    ``key=value`` lines of JSON text (:func:`_plain_value`, no raw control
    characters, so no serialised ``@Variant``), with the marker group
    :data:`MARKER_GROUP` (written with every value) or only :data:`GROUPS`.
    """
    try:
        if not path.exists():
            return None
        if not path.is_file():
            return "it is not a regular file"
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            return f"it is {size / 2**20:.1f} MiB, larger than any settings file it writes"
        data = path.read_bytes()
    except OSError as exc:
        return f"it cannot be read ({exc.strerror or exc})"
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return "it is not text"
    groups: set[str] = set()
    group = None
    for number, line in enumerate(_LINE_BREAK.split(text), 1):
        line = line.strip()
        if not line:
            continue
        section = _SECTION.fullmatch(line)
        if section:
            group = section.group(1)
            groups.add(group)
            continue
        entry = _ENTRY.fullmatch(line)
        plain = entry is not None and group is not None and _plain_value(entry.group(2))
        if not plain or _CONTROL.search(line):
            return f"line {number} is not one it writes"
    if groups and MARKER_GROUP not in groups and not groups <= GROUPS:
        return f"its groups {sorted(groups - GROUPS)} are not the widgets'"
    return None


def _settings_file(settings: QSettings) -> Path | None:
    """The file ``settings`` reads and writes, if it is an INI file."""
    native_ini = sys.platform not in ("darwin", "win32")
    if settings.format() == QSettings.Format.IniFormat or native_ini:
        return Path(settings.fileName())
    return None


def _refuse(path: Path, reason: str) -> MemorySettings:
    """The in-memory store for a refused file, warning once per file."""
    key = str(path)
    if key not in _warned:
        _warned.add(key)
        from napari.utils.notifications import show_warning

        show_warning(
            f"GIFNet: the settings file {path} was not written by napari-gifnet ({reason}); "
            "it is left as it is, and the widgets' settings are kept in memory only"
        )
    return _memory.setdefault(key, MemorySettings(key))


def open_settings() -> QSettings | MemorySettings | None:
    """The settings store now: ``$NAPARI_GIFNET_SETTINGS`` (INI), the user's, or None.

    None (nothing is remembered) while a pytest test runs without the
    variable; a :class:`MemorySettings` when the file is not the plugin's
    (:func:`foreign_reason`).
    """
    path = os.environ.get(ENV, "").strip()
    if path:
        file = Path(path).expanduser()
        reason = foreign_reason(file)
        if reason is not None:
            return _refuse(file, reason)
        settings = QSettings(str(file), QSettings.Format.IniFormat)
    elif os.environ.get("PYTEST_CURRENT_TEST"):
        return None
    else:
        settings = QSettings(ORGANISATION, APPLICATION)  # opened, not read yet
        file = _settings_file(settings)
        reason = None if file is None else foreign_reason(file)
        if file is not None and reason is not None:
            return _refuse(file, reason)
    settings.setAtomicSyncRequired(True)
    return settings


def value_of(control: Any) -> Any:
    """A control's value as stored (JSON-able)."""
    if isinstance(control, FileEdit):
        return str(control.line_edit.value).strip()
    for kind, cast in ((CheckBox, bool), (FloatSpinBox, float), (SpinBox, int)):
        if isinstance(control, kind):
            return cast(control.value)
    return control.value


def _file_value(value: Any) -> Any:
    """``value`` if it is "" or the path of an existing file, else ``_INVALID``."""
    if not isinstance(value, str):
        return _INVALID
    return value if not value or Path(value).expanduser().is_file() else _INVALID


def accepted(control: Any, value: Any) -> Any:
    """``value`` as ``control`` takes it now, or ``_INVALID``."""
    if isinstance(control, FileEdit):
        return _file_value(value)
    if isinstance(control, CheckBox):
        return value if isinstance(value, bool) else _INVALID
    if isinstance(control, (FloatSpinBox, SpinBox)):
        number = (int, float) if isinstance(control, FloatSpinBox) else (int,)
        if isinstance(value, bool) or not isinstance(value, number) or not math.isfinite(value):
            return _INVALID
        return value if control.min <= value <= control.max else _INVALID
    if isinstance(control, ComboBox):  # same type and value as a choice (False is not 0)
        return next((c for c in control.choices if type(c) is type(value) and c == value),
                    _INVALID)  # fmt: skip
    return _INVALID


def _parsed(text: Any, accept: Callable[[Any], Any]) -> Any:
    """Stored JSON ``text`` as ``accept`` takes it, or ``_INVALID``.

    Text that is not a string, too long, not JSON, nested too deep, a number
    too large for a float or a path the system cannot look up is ``_INVALID``.
    """
    if not isinstance(text, str) or len(text) > MAX_VALUE_CHARS:
        return _INVALID
    try:
        return accept(json.loads(text))
    except (ValueError, TypeError, RecursionError, OverflowError, OSError):
        return _INVALID


def set_value(control: Any, value: Any) -> None:
    if isinstance(control, FileEdit) and not value:
        control.line_edit.value = ""
    else:
        control.value = value


class WidgetSettings:
    """Remembers ``controls`` (name -> magicgui widget) in the settings group ``group``.

    The defaults are the controls' values when this is made. Controls are
    restored in the order given (e.g. the task preset before the
    normalisation it sets); while restoring or resetting nothing is stored.
    """

    def __init__(self, group: str, controls: dict[str, Any]) -> None:
        if group not in GROUPS:
            raise ValueError(f"{group!r} is not one of the settings groups {sorted(GROUPS)}")
        self.group = group
        self.controls = dict(controls)
        self.defaults = {name: value_of(c) for name, c in self.controls.items()}
        self._quiet = False
        for name, control in self.controls.items():
            control.changed.connect(lambda *_args, name=name: self.save(name))

    def key(self, name: str) -> str:
        return f"{self.group}/{name}"

    @contextmanager
    def _silenced(self) -> Iterator[None]:
        quiet, self._quiet = self._quiet, True
        try:
            yield
        finally:
            self._quiet = quiet

    def stored(self) -> dict[str, Any]:
        """The stored values that the controls can take now (name -> value)."""
        settings = open_settings()
        if settings is None:
            return {}
        out = {}
        for name, control in self.controls.items():
            value = _parsed(settings.value(self.key(name)), partial(accepted, control))
            if value is not _INVALID:
                out[name] = value
        return out

    def restore(self) -> dict[str, Any]:
        """Set the controls to their stored values (invalid ones stay default); returns them."""
        values = self.stored()
        with self._silenced():
            for name, value in values.items():
                set_value(self.controls[name], value)
        return values

    def save(self, name: str) -> None:
        """Store control ``name``'s value (called when it changes)."""
        settings = None if self._quiet else open_settings()
        if settings is None:
            return
        with suppress(TypeError, ValueError):  # not JSON-able: not stored
            _write(settings, self.key(name), value_of(self.controls[name]))

    def reset(self) -> None:
        """Put every control back to its default and forget the stored values."""
        with self._silenced():
            for name, value in self.defaults.items():
                set_value(self.controls[name], value)
        settings = open_settings()
        if settings is not None:
            settings.remove(self.group)
            settings.sync()


class _WeightsHub(QObject):
    """Tells every open widget that the shared weights file changed (its new value)."""

    changed = Signal(str)


_hub: _WeightsHub | None = None
#: Weights files chosen in this process (they are not "remembered from an earlier session").
_chosen_now: set[str] = set()


def weights_hub() -> _WeightsHub:
    """The one object whose ``changed(str)`` signal carries the shared weights file."""
    global _hub
    with suppress(RuntimeError):
        if _hub is not None:
            _hub.objectName()  # raises once Qt has deleted it (e.g. at exit)
            return _hub
    _hub = _WeightsHub()
    return _hub


def _weights_value(text: Any) -> str | None:
    """A stored weights value (JSON text) as a path the field can take, or None."""
    value = _parsed(text, _file_value)
    return None if value is _INVALID else value


def _write(settings: QSettings | MemorySettings, key: str, value: Any) -> None:
    """Store ``value`` as JSON text at ``key``, with the marker (raises if not JSON-able)."""
    text = json.dumps(value)
    settings.setValue(f"{MARKER_GROUP}/{MARKER_KEY}", MARKER_VALUE)
    settings.setValue(key, text)
    settings.sync()


def stored_weights() -> str:
    """The shared weights file stored now: a path of an existing file, or "" (the search).

    While ``plugin/weights`` was never stored, the first valid ``<group>/weights``
    of :data:`OLD_WEIGHTS_GROUPS` is read, and stored as ``plugin/weights``.
    """
    settings = open_settings()
    if settings is None:
        return ""
    text = settings.value(WEIGHTS_KEY)
    if text is not None:
        return _weights_value(text) or ""
    for group in OLD_WEIGHTS_GROUPS:
        old = _weights_value(settings.value(f"{group}/weights"))
        if old:
            _write(settings, WEIGHTS_KEY, old)
            return old
    return ""


def store_weights(path: str) -> None:
    """Make ``path`` ("" for the search) the shared weights file: stored, and sent to
    every open widget (:func:`weights_hub`)."""
    path = str(path).strip()
    if path:
        _chosen_now.add(path)
    settings = open_settings()
    if settings is not None:
        _write(settings, WEIGHTS_KEY, path)
    weights_hub().changed.emit(path)


def weights_chosen_now(path: str) -> bool:
    """Whether ``path`` was made the shared weights file in this process (not remembered)."""
    return str(path).strip() in _chosen_now
