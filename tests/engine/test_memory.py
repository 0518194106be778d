"""The heap is kept for a fusion, or for a whole run of them, then handed back."""

from __future__ import annotations

import threading

import pytest

from napari_gifnet.engine import _memory
from napari_gifnet.engine._memory import reuse_heap

KEEP = [("mallopt", _memory._M_MMAP_MAX, 0), ("mallopt", _memory._M_TRIM_THRESHOLD, 2**31 - 1)]
RESTORE = [
    ("mallopt", _memory._M_MMAP_MAX, _memory._DEFAULT_MMAP_MAX),
    ("mallopt", _memory._M_TRIM_THRESHOLD, _memory._DEFAULT_TRIM_THRESHOLD),
    ("malloc_trim", 0),
]


def test_the_heap_is_kept_inside_and_handed_back_after(heap_calls) -> None:
    with reuse_heap():
        assert heap_calls == KEEP
    assert heap_calls == KEEP + RESTORE


def test_nested_uses_hand_the_heap_back_once_after_the_outermost(heap_calls) -> None:
    with reuse_heap():
        for _ in range(3):
            with reuse_heap():
                pass
        assert heap_calls.trims == 0
    assert heap_calls == KEEP + RESTORE


def test_an_error_still_hands_the_heap_back(heap_calls) -> None:
    with pytest.raises(KeyError), reuse_heap():
        raise KeyError("x")
    assert heap_calls == KEEP + RESTORE
    with reuse_heap():  # and the next use starts afresh
        pass
    assert heap_calls == 2 * (KEEP + RESTORE)


def test_threads_share_one_count(heap_calls) -> None:
    inside, release = threading.Barrier(3), threading.Event()

    def user() -> None:
        with reuse_heap():
            inside.wait()
            release.wait()

    threads = [threading.Thread(target=user) for _ in range(2)]
    for t in threads:
        t.start()
    inside.wait()  # both threads hold it now
    assert heap_calls == KEEP
    release.set()
    for t in threads:
        t.join()
    assert heap_calls == KEEP + RESTORE


def test_without_glibc_it_does_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_memory, "_LIBC", None)
    with reuse_heap():
        pass
    assert _memory._depth == 0


def test_the_free_heap_is_counted_only_while_held(heap_calls, monkeypatch) -> None:
    import ctypes

    def mallinfo2():
        info = _memory._MallInfo2()
        info.fordblks = 123 << 20
        return info

    monkeypatch.setattr(heap_calls, "mallinfo2", mallinfo2, raising=False)
    assert _memory.free_heap_bytes() == 0  # not held: trimmed at the end anyway
    with reuse_heap():
        assert _memory.free_heap_bytes() == 123 << 20
    assert ctypes.sizeof(_memory._MallInfo2) == 10 * ctypes.sizeof(ctypes.c_size_t)


def test_the_free_heap_of_this_c_library_is_readable() -> None:
    if _memory._LIBC is None or not hasattr(_memory._LIBC, "mallinfo2"):
        pytest.skip("not glibc 2.33 or later")
    with reuse_heap():
        block = bytearray(64 << 20)
        del block  # freed into the held heap
        assert _memory.free_heap_bytes() >= 64 << 20
