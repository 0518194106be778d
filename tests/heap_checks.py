"""Checks on where an array's memory comes from."""

from __future__ import annotations

import mmap

import numpy as np


def mapped_on_its_own(array: np.ndarray) -> bool:
    """Whether ``array``'s memory is an anonymous map of its own (see
    :func:`napari_gifnet.engine._memory.empty_outside_heap`), not the heap's."""
    base = array
    while getattr(base, "base", None) is not None:
        base = base.base
    return isinstance(getattr(base, "obj", base), mmap.mmap)
