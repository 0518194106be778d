"""Widget settings remembered from one napari launch to the next (Qt's ``QSettings``).

Each job widget lists the controls it remembers (weights file, device, task
preset, method, options; never the layer pickers). :class:`WidgetSettings`
restores them when the widget is created, stores a control's value whenever
it changes, and :meth:`WidgetSettings.reset` puts the defaults back and
forgets what was stored. Values are stored as JSON text, one key per control,
in one group per widget (``fusion/method``, ``enhance/gamma``, ...). A stored
value the control cannot take any more (a choice that is gone, a device that
is not there, a weights file that no longer exists, unreadable text) is
ignored: the control keeps its default.

Where: :func:`open_settings`, looked up on every read and write.
``NAPARI_GIFNET_SETTINGS`` names an INI file (``QSettings.IniFormat``; tests
point it at a temporary file); otherwise the user's settings of organisation
``"napari-gifnet"``, application ``"widgets"`` (on Linux
``~/.config/napari-gifnet/widgets.conf``). While pytest runs a test
(``PYTEST_CURRENT_TEST`` is set) and the variable is not set, nothing is read
or stored, so a test run never touches the user's real settings.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from magicgui.widgets import CheckBox, ComboBox, FileEdit, FloatSpinBox, SpinBox
from qtpy.QtCore import QSettings

__all__ = ["APPLICATION", "ENV", "ORGANISATION", "WidgetSettings", "open_settings"]

#: Environment variable naming an INI file to use instead of the user's settings.
ENV = "NAPARI_GIFNET_SETTINGS"
ORGANISATION, APPLICATION = "napari-gifnet", "widgets"
_INVALID = object()


def open_settings() -> QSettings | None:
    """The settings store now: ``$NAPARI_GIFNET_SETTINGS`` (INI), the user's, or None.

    None (nothing is remembered) while a pytest test runs without the variable.
    """
    path = os.environ.get(ENV, "").strip()
    if path:
        return QSettings(str(Path(path).expanduser()), QSettings.Format.IniFormat)
    if os.environ.get("PYTEST_CURRENT_TEST"):
        return None
    return QSettings(ORGANISATION, APPLICATION)


def value_of(control: Any) -> Any:
    """A control's value as stored (JSON-able)."""
    if isinstance(control, FileEdit):
        return str(control.line_edit.value).strip()
    if isinstance(control, CheckBox):
        return bool(control.value)
    if isinstance(control, FloatSpinBox):
        return float(control.value)
    if isinstance(control, SpinBox):
        return int(control.value)
    return control.value


def accepted(control: Any, value: Any) -> Any:
    """``value`` as ``control`` takes it now, or ``_INVALID``."""
    if isinstance(control, FileEdit):
        if not isinstance(value, str):
            return _INVALID
        return value if not value or Path(value).expanduser().is_file() else _INVALID
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
            text = settings.value(self.key(name))
            if not isinstance(text, str):
                continue
            try:
                value = accepted(control, json.loads(text))
            except (ValueError, TypeError):
                continue
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
        if self._quiet:
            return
        settings = open_settings()
        if settings is None:
            return
        try:
            text = json.dumps(value_of(self.controls[name]))
        except (TypeError, ValueError):
            return
        settings.setValue(self.key(name), text)
        settings.sync()

    def reset(self) -> None:
        """Put every control back to its default and forget the stored values."""
        with self._silenced():
            for name, value in self.defaults.items():
                set_value(self.controls[name], value)
        settings = open_settings()
        if settings is not None:
            settings.remove(self.group)
            settings.sync()
