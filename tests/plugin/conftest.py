"""Fixtures shared by the napari plugin's tests."""

from __future__ import annotations

import threading
from collections.abc import Callable

import numpy as np
import pytest


@pytest.fixture(autouse=True)
def _own_settings(tmp_path, monkeypatch):
    """Each test's widgets remember their settings in a file of its own (never the user's)."""
    monkeypatch.setenv("NAPARI_GIFNET_SETTINGS", str(tmp_path / "settings.ini"))


@pytest.fixture
def synchronous_dask():
    """Dask computes a chunk in the thread that asks for it."""
    dask = pytest.importorskip("dask")
    with dask.config.set(scheduler="synchronous"):
        yield


@pytest.fixture
def recording_dask() -> Callable[..., object]:
    """``make(array, chunks, threads)``: a Dask array whose chunk function records the
    name of the thread computing it (with ``synchronous_dask``, the thread that asked)."""
    da = pytest.importorskip("dask.array")

    def make(array: np.ndarray, chunks, threads: list[str]):
        def record(block: np.ndarray) -> np.ndarray:
            threads.append(threading.current_thread().name)
            return block

        meta = np.empty((0,) * array.ndim, array.dtype)
        return da.from_array(array, chunks=chunks).map_blocks(record, dtype=array.dtype, meta=meta)

    return make


@pytest.fixture
def run_in_worker(qtbot) -> Callable[..., object]:
    """``run(widget, threads, timeout_ms)``: press Run and wait for the job, checking
    that no chunk recorded in ``threads`` (see ``recording_dask``) was read on the
    GUI thread, neither by Run itself nor later. Returns the worker."""

    def run(widget, threads: list[str], timeout_ms: int = 60_000):
        threads.clear()  # napari may have drawn the layers: only Run counts
        worker = widget.run()
        assert worker is not None
        assert threading.main_thread().name not in threads  # Run read nothing on the GUI thread
        qtbot.waitUntil(lambda: not widget.running, timeout=timeout_ms)
        assert threads and threading.main_thread().name not in threads, threads
        return worker

    return run
