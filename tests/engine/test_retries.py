"""Retries after running out of memory: smaller tiles every time, storages
whose scratch files cannot fit skipped, NumPy's MemoryError included, and a
progress count that never goes back."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from napari_gifnet import fuse
from napari_gifnet.engine import eager as engine
from napari_gifnet.engine.precision import DOCUMENTED_ERROR
from napari_gifnet.engine.retry import MonotonicProgress
from napari_gifnet.engine.tiled import plan as tile_plan
from napari_gifnet.engine.tiled.grid import TileShape, smaller_tile, tile_shape
from napari_gifnet.engine.tiled.stores import DiskStore, MemoryStore
from napari_gifnet.model.windows import CHANNELS

OOM = torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")


@pytest.fixture(scope="module")
def pair(reference_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    with np.load(reference_dir / "official" / "Medical.npz") as data:
        return data["input_a"][64:128, 64:160].copy(), data["input_b"][64:128, 64:160].copy()


class Recorder:
    """A stand-in for ``fuse_tiled``: records each try's storage and tile
    shape, reports ``ticks`` tiles of progress, then fails ``fail`` times."""

    def __init__(self, fail: int, ticks: int = 0, error: BaseException = OOM) -> None:
        self.fail, self.ticks, self.error = fail, ticks, error
        self.tries: list[tuple[str, TileShape]] = []

    def __call__(self, model, a, b, *, plan, features=None, progress=None) -> torch.Tensor:
        assert plan.size == tuple(a.shape[-2:])
        self.tries.append((plan.storage, plan.out))
        total = 10 * len(self.tries)  # each try has its own total
        for done in range(1, (self.ticks if len(self.tries) <= self.fail else total) + 1):
            if progress is not None:
                progress(done, total)
        if len(self.tries) <= self.fail:
            raise self.error
        return torch.zeros_like(a)


def _fuse(pair, weights, **kw):
    return fuse(*pair, weights=weights, device="cpu", **kw)


def _pixels(shape: TileShape) -> int:
    return shape.rows * shape.cols


# ---- smaller tiles every time --------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(h=st.integers(1, 3000), w=st.integers(1, 3000), rows=st.integers(1, 3000),
       cols=st.integers(1, 3000))  # fmt: skip
def test_a_retry_tile_holds_at_most_a_quarter_of_the_pixels(h: int, w: int, rows: int, cols: int) -> None:
    before = TileShape(min(rows, h), min(cols, w))
    edge = smaller_tile(before, h, w)
    assert edge % 8 == 0 and edge >= 8
    after = tile_shape(h, w, tile_size=edge)
    if edge > 8:
        assert _pixels(after) <= _pixels(before) // 4
    assert _pixels(after) < _pixels(before) or _pixels(after) <= 64  # only the 8 x 8 floor


@pytest.mark.parametrize("tile_size", [None, 10_000, 48])
def test_one_retry_in_smaller_tiles_on_disk_then_a_memory_error(
    pair, reference_weights: Path, monkeypatch: pytest.MonkeyPatch, tile_size: int | None
) -> None:
    fake = Recorder(fail=99)
    monkeypatch.setattr(engine, "fuse_tiled", fake)
    with pytest.raises(MemoryError, match="64 x 96 fusion does not fit in the memory of cpu"):
        _fuse(pair, reference_weights, tile_size=tile_size, storage="memory")
    assert [s for s, _ in fake.tries] == ["memory", "disk"]
    sizes = [_pixels(t) for _, t in fake.tries]
    assert all(b < a for a, b in zip(sizes, sizes[1:])), fake.tries


def test_a_retry_that_cannot_shrink_or_change_anything_is_skipped(
    pair, reference_weights: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = Recorder(fail=99)
    monkeypatch.setattr(engine, "fuse_tiled", fake)
    with pytest.raises(MemoryError, match=r"skipped 'recompute' with tiles no smaller than 8 x 8"):
        _fuse(pair, reference_weights, tile_size=8, storage="recompute")
    assert fake.tries == [("recompute", TileShape(8, 8))]
    # at the floor, a change of storage is still worth a try
    fake = Recorder(fail=99)
    monkeypatch.setattr(engine, "fuse_tiled", fake)
    with pytest.raises(MemoryError):
        _fuse(pair, reference_weights, tile_size=8, storage="memory")
    assert fake.tries == [(s, TileShape(8, 8)) for s in ("memory", "disk")]


# ---- storages that cannot fit are skipped ------------------------------------


def test_a_retry_whose_scratch_files_cannot_fit_is_skipped(
    pair, reference_weights: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    one_map = CHANNELS * 64 * 96 * 4  # 2.4 MB
    monkeypatch.setattr(tile_plan, "scratch_free_bytes", lambda: 2 * one_map)  # disk needs 3
    fake = Recorder(fail=1)
    monkeypatch.setattr(engine, "fuse_tiled", fake)
    result = _fuse(pair, reference_weights, storage="memory")
    assert [s for s, _ in fake.tries] == ["memory", "recompute"]
    assert _pixels(fake.tries[1][1]) <= _pixels(fake.tries[0][1]) // 4
    assert result.metadata["storage"] == "recompute"
    assert result.metadata["out_of_memory_retries"] == 1


def test_no_room_anywhere_is_a_clear_memory_error_in_human_sizes(
    pair, reference_weights: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tile_plan, "scratch_free_bytes", lambda: 300_000)
    fake = Recorder(fail=99)
    monkeypatch.setattr(engine, "fuse_tiled", fake)
    with pytest.raises(MemoryError) as info:
        _fuse(pair, reference_weights, storage="memory")
    assert [s for s, _ in fake.tries] == ["memory"]
    message = str(info.value)
    assert "64 x 96 fusion does not fit in the memory of cpu" in message
    assert "needs 7.2 MB of scratch space" in message and "has 300.0 kB free" in message
    assert "needs 2.4 MB" in message  # recompute: one map
    assert "0.0 GB" not in message


def test_a_bad_scratch_folder_skips_the_retries_on_disk(
    pair, reference_weights: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    missing = tmp_path / "nowhere"
    monkeypatch.setenv("NAPARI_GIFNET_SCRATCH", str(missing))
    monkeypatch.setattr(engine, "fuse_tiled", Recorder(fail=99))
    with pytest.raises(MemoryError, match=r"NAPARI_GIFNET_SCRATCH\) does not exist") as info:
        _fuse(pair, reference_weights, storage="memory")
    assert str(missing) in str(info.value)


# ---- NumPy's MemoryError, for real -----------------------------------------------


def test_a_numpy_memory_error_in_the_disk_store_is_retried_in_smaller_tiles(
    pair, reference_weights: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("NAPARI_GIFNET_SCRATCH", str(tmp_path))
    a, b = pair[0][:40, :48], pair[1][:40, :48]
    expected = fuse(a, b, weights=reference_weights, device="cpu", storage="memory").luma
    real_region, failed = DiskStore.region, []

    def region(self, rows, cols):
        if not failed:  # as np.empty fails when memory runs out
            failed.append((rows, cols))
            raise MemoryError("Unable to allocate 75.3 MiB for an array with shape (40, 48, 98)")
        return real_region(self, rows, cols)

    monkeypatch.setattr(DiskStore, "region", region)
    seen: list[tuple[int, int]] = []
    result = fuse(a, b, weights=reference_weights, device="cpu", storage="disk",
                  progress=lambda d, t: seen.append((d, t)))  # fmt: skip
    assert failed
    meta = result.metadata
    assert (meta["storage"], meta["tile_shape"], meta["out_of_memory_retries"]) == ("disk", [16, 16], 1)
    assert np.abs(result.luma - expected).max() <= 1e-4  # tiles change nothing
    _assert_monotonic(seen)
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("precision", ["float32", "float16", "bfloat16"])
def test_a_retry_that_moves_the_maps_to_disk_keeps_the_values_in_every_precision(
    pair, reference_weights: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, precision: str
) -> None:
    monkeypatch.setenv("NAPARI_GIFNET_SCRATCH", str(tmp_path))
    a, b = pair[0][:40, :48], pair[1][:40, :48]
    expected = fuse(a, b, weights=reference_weights, device="cpu", storage="memory",
                    tile_size=16, precision=precision).luma  # fmt: skip
    real_write, failed = MemoryStore.write, []

    def write(self, start, values, col=0):
        if not failed:  # the first map written in memory does not fit
            failed.append(start)
            raise OOM
        return real_write(self, start, values, col)

    monkeypatch.setattr(MemoryStore, "write", write)
    result = fuse(a, b, weights=reference_weights, device="cpu", storage="memory",
                  tile_size=16, precision=precision)  # fmt: skip
    meta = result.metadata
    assert failed and (meta["storage"], meta["out_of_memory_retries"]) == ("disk", 1)
    assert meta["precision"] == precision and np.isfinite(result.luma).all()
    assert np.abs(result.luma - expected).max() <= DOCUMENTED_ERROR[precision]
    assert not list(tmp_path.iterdir())


# ---- progress never goes back ----------------------------------------------------


def _assert_monotonic(seen: list[tuple[int, int]]) -> None:
    assert seen and seen[-1][0] == seen[-1][1]
    fractions = [Fraction(d, t) for d, t in seen]
    assert all(b >= a for a, b in zip(fractions, fractions[1:])), seen
    assert all(b[0] >= a[0] for a, b in zip(seen, seen[1:])), seen
    assert all(0 < d <= t for d, t in seen)


@pytest.mark.parametrize("ticks", [0, 1, 7, 10])
def test_progress_continues_across_retries(
    pair, reference_weights: Path, monkeypatch: pytest.MonkeyPatch, ticks: int
) -> None:
    fake = Recorder(fail=1, ticks=ticks)
    monkeypatch.setattr(engine, "fuse_tiled", fake)
    seen: list[tuple[int, int]] = []
    _fuse(pair, reference_weights, progress=lambda d, t: seen.append((d, t)))
    assert len(fake.tries) == 2
    _assert_monotonic(seen)
    # every tile of every try is relayed (so Cancel stops a retry at once)
    assert len(seen) == ticks + 20


def test_monotonic_progress_relays_the_first_try_unchanged() -> None:
    seen: list[tuple[int, int]] = []
    report = MonotonicProgress(lambda d, t: seen.append((d, t)))
    for d in range(1, 6):
        report(d, 5)
    assert seen == [(1, 5), (2, 5), (3, 5), (4, 5), (5, 5)]
    seen.clear()
    report = MonotonicProgress(lambda d, t: seen.append((d, t)))
    report(3, 4)  # 75 %, then a retry of 10 tiles: the bar starts at 75 %
    report.restart()
    for d in range(1, 11):
        report(d, 10)
    assert seen[1] == (31, 40) and seen[-1] == (40, 40)
    _assert_monotonic(seen)


# ---- the caller's exceptions are not the engine's -----------------------------------


@pytest.mark.parametrize("error", [MemoryError("mine"), torch.OutOfMemoryError("mine: allocate")])
def test_a_memory_error_from_the_progress_callback_is_not_retried(
    pair, reference_weights: Path, monkeypatch: pytest.MonkeyPatch, error: BaseException
) -> None:
    real, tries = engine.fuse_tiled, []

    def spy(*args, **kwargs):
        tries.append(kwargs["plan"].storage)
        return real(*args, **kwargs)

    monkeypatch.setattr(engine, "fuse_tiled", spy)
    calls: list[tuple[int, int]] = []

    def progress(done: int, total: int) -> None:
        calls.append((done, total))
        if done == 2:
            raise error

    with pytest.raises(type(error)) as info:
        _fuse(pair, reference_weights, progress=progress, storage="memory", tile_size=16)
    assert info.value is error and str(info.value).startswith("mine")  # unchanged
    assert info.value.__context__ is None and info.value.__cause__ is None
    assert tries == ["memory"]  # one try, no retry
    assert [d for d, _ in calls] == [1, 2]  # called exactly until it raised
