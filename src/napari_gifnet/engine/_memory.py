"""Process memory helpers for large CPU inference.

PyTorch's CPU allocator hands every large tensor to ``malloc``; glibc serves
blocks above 32 MB with fresh ``mmap`` pages and returns them on ``free``, so
a network that allocates and drops hundreds of large feature maps spends much
of its time in page faults (measured here: over a third of the wall time of a
1.3-megapixel fusion). :func:`reuse_heap` switches glibc to serving such
blocks from its heap, where freed memory is reused, for the duration of a
fusion, then restores the defaults and trims the heap back.

A run of many fusions (the planes of a stack, a folder of pairs) is wrapped
in :func:`fusion_run`: one heap for the whole run, and the whole-image maps
of each fusion kept for the next (:func:`napari_gifnet.engine.tiled.stores.keep_stores`),
so the pages the first fusion faulted in serve every later one (docs/engine.md,
"Speed and memory", has the measurements); the peak memory stays that of one fusion.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_DEFAULT_MMAP_MAX = 65536
_DEFAULT_TRIM_THRESHOLD = 128 * 1024

_lock = threading.Lock()
_depth = 0


class _MallInfo2(ctypes.Structure):
    """glibc's ``struct mallinfo2`` (2.33 and later)."""

    _fields_ = [
        (name, ctypes.c_size_t)
        for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks",
                     "uordblks", "fordblks", "keepcost")
    ]  # fmt: skip


def _glibc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
        libc.malloc_trim.argtypes = [ctypes.c_size_t]
        if hasattr(libc, "mallinfo2"):
            libc.mallinfo2.restype, libc.mallinfo2.argtypes = _MallInfo2, []
        return libc
    except (OSError, AttributeError):  # musl or another libc: nothing to tune
        return None


_LIBC = _glibc()


def free_heap_bytes() -> int:
    """Bytes free inside the heap while :func:`reuse_heap` holds it.

    The system does not count them as available, yet the next fusion
    allocates from them first; the memory planner adds them back. 0 when
    the heap is not held, or the C library cannot say (not glibc 2.33+).
    """
    info = getattr(_LIBC, "mallinfo2", None)
    if _depth == 0 or info is None:
        return 0
    return int(info().fordblks)


@contextmanager
def reuse_heap() -> Iterator[None]:
    """Serve large allocations from the reusable heap while the block runs.

    Re-entrant and thread-safe (a counter: the defaults come back when the
    last user leaves). A no-op where the C library is not glibc.
    """
    global _depth
    if _LIBC is None:
        yield
        return
    with _lock:
        if _depth == 0:
            _LIBC.mallopt(_M_MMAP_MAX, 0)
            _LIBC.mallopt(_M_TRIM_THRESHOLD, 2**31 - 1)
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0:
                _LIBC.mallopt(_M_MMAP_MAX, _DEFAULT_MMAP_MAX)
                _LIBC.mallopt(_M_TRIM_THRESHOLD, _DEFAULT_TRIM_THRESHOLD)
                _LIBC.malloc_trim(0)


@contextmanager
def fusion_run() -> Iterator[None]:
    """Hold one heap and one set of whole-image maps for a run of fusions.

    Wrap a loop of fusions in it (the planes of a stack, a folder of
    pairs): see the module's notes. Re-entrant and thread-safe; everything
    it kept is freed, and the heap handed back, when the last user leaves.
    """
    from .tiled.stores import keep_stores  # torch: only when a run starts

    with reuse_heap(), keep_stores():
        yield
