"""The progress callback every long computation takes, and the one way to stop it.

A computation (a fusion, a stack, a training run) calls ``progress(done,
total)`` as it goes. An exception raised there stops it at once and
propagates unchanged; :class:`Cancelled` is the one raised for a Cancel
button (the napari widgets), so callers can tell a cancel from a failure.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["Cancelled", "Progress"]

#: ``progress(done, total)``: called after each step with the steps done and in all.
Progress = Callable[[int, int], Any]


class Cancelled(Exception):
    """Raised by a progress callback to stop a computation (the widgets' Cancel)."""
