"""Progress plumbing shared by the dock widgets: a worker thread reports
``(done, total)``, the GUI thread moves napari's progress bar."""

from __future__ import annotations

from typing import Any

from qtpy.QtCore import QObject, Signal


class ProgressRelay(QObject):
    """Carries ``(done, total)`` from a worker thread to the GUI thread."""

    progressed = Signal(int, int)


def advance_bar(bar: Any, done: int, total: int) -> None:
    """Set a napari ``progress`` bar to ``done`` of ``total`` (GUI thread)."""
    if bar.total != total:
        bar.total = total
    bar.update(done - bar.n)
