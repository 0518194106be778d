"""Scratch storage of the band-by-band evaluation."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from napari_gifnet import fuse
from napari_gifnet.engine.tiled.stores import DiskStore, MemoryStore


def _mfif(reference_dir: Path, rows: int, cols: int) -> tuple[np.ndarray, np.ndarray]:
    """The top-left ``rows`` x ``cols`` of the MFIF reference pair."""
    with np.load(reference_dir / "official" / "MFIF.npz") as d:
        return d["input_a"][:rows, :cols], d["input_b"][:rows, :cols]


@pytest.mark.parametrize("kind", [MemoryStore, DiskStore])
def test_rows_round_trip(kind, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NAPARI_GIFNET_SCRATCH", str(tmp_path))
    store = kind(5, 20, 7, torch.device("cpu"))
    data = torch.rand(1, 5, 20, 7)
    store.write(0, data[:, :, :12])
    store.write(12, data[:, :, 12:].contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(store.rows(3, 17), data[:, :, 3:17], rtol=0, atol=0)
    if os.name == "posix":  # the scratch file is anonymous (elsewhere: deleted on close)
        assert not list(tmp_path.iterdir())
    store.close()
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_reduced_precision_maps_are_stored_as_float32_in_every_store(
    dtype: torch.dtype, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NAPARI_GIFNET_SCRATCH", str(tmp_path))
    values = (torch.rand(1, 5, 6, 7) * 100).to(dtype)  # as autocast leaves them
    read = []
    for kind in (MemoryStore, DiskStore):
        store = kind(5, 10, 9, torch.device("cpu"))
        store.write(2, values, col=1)  # part of the rows and columns
        store.write(0, values[:, :, :2, :].contiguous(memory_format=torch.channels_last))
        read.append(store.region((0, 8), (1, 7)).clone())
        store.close()
    assert read[0].dtype == read[1].dtype == torch.float32
    torch.testing.assert_close(read[1], read[0], rtol=0, atol=0)
    torch.testing.assert_close(read[1][:, :, 2:], values[..., :6].float(), rtol=0, atol=0)


def test_fuse_gives_the_same_values_with_every_storage(
    reference_dir: Path, reference_weights: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NAPARI_GIFNET_SCRATCH", str(tmp_path))
    a, b = _mfif(reference_dir, 120, 200)
    results = {
        storage: fuse(a, b, weights=reference_weights, device="cpu", storage=storage,
                      return_features=True)
        for storage in ("memory", "disk", "recompute")
    }
    ref = results["memory"]
    for storage, result in results.items():
        np.testing.assert_allclose(result.luma, ref.luma, rtol=0, atol=2e-6, err_msg=storage)
        for name, feat in result.features.items():
            np.testing.assert_allclose(feat, ref.features[name], rtol=2e-6, atol=1e-5, err_msg=name)
    assert not list(tmp_path.iterdir())


def test_auto_storage_follows_free_memory_and_scratch_space(monkeypatch: pytest.MonkeyPatch) -> None:
    from napari_gifnet.engine.tiled import plan as tile_plan

    cpu = torch.device("cpu")
    one_map = 98 * 100 * 100 * 4
    monkeypatch.setattr(tile_plan, "scratch_free_bytes", lambda: 10 * one_map)
    monkeypatch.setattr(tile_plan, "_available_memory", lambda device: 10 * one_map)
    assert tile_plan.choose_storage(100, 100, cpu) == "memory"  # 3 maps <= 40% of 10
    monkeypatch.setattr(tile_plan, "_available_memory", lambda device: 5 * one_map)
    assert tile_plan.choose_storage(100, 100, cpu) == "disk"  # 3 maps <= 80% of 10
    monkeypatch.setattr(tile_plan, "scratch_free_bytes", lambda: 3 * one_map)
    assert tile_plan.choose_storage(100, 100, cpu) == "recompute"


def test_auto_tile_size_follows_free_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    from napari_gifnet.engine.tiled import plan as tile_plan

    cpu, gpu = torch.device("cpu"), torch.device("cuda")
    per_pixel = tile_plan.TILE_BYTES_PER_PIXEL
    monkeypatch.setattr(tile_plan, "_available_memory", lambda device: 256 << 30)
    assert tile_plan.auto_tile_pixels(1000, 1000, cpu, "disk") == 1 << 16  # the CPU cap
    assert tile_plan.auto_tile_pixels(1000, 1000, gpu, "disk") == 1 << 22  # the GPU cap
    # a quarter of what is left once the stored maps are counted
    monkeypatch.setattr(tile_plan, "_available_memory", lambda device: 4 * per_pixel * 5000)
    assert tile_plan.auto_tile_pixels(1000, 1000, gpu, "disk") == 5000
    assert tile_plan.auto_tile_pixels(1000, 1000, gpu, "memory") == 1 << 12  # the floor


# ---- the scratch folder ----------------------------------------------------------


def test_sizes_are_printed_in_the_unit_that_fits() -> None:
    from napari_gifnet.engine.tiled.stores import human_bytes

    assert human_bytes(0) == "0 B" and human_bytes(999) == "999 B"
    assert human_bytes(1536) == "1.5 kB" and human_bytes(2_408_448) == "2.4 MB"
    assert human_bytes(3.2e9) == "3.2 GB" and human_bytes(5e12) == "5.0 TB"


def test_scratch_space_messages_use_human_sizes(monkeypatch: pytest.MonkeyPatch) -> None:
    from napari_gifnet.engine.tiled import plan as tile_plan
    from napari_gifnet.engine.tiled.stores import ScratchError

    monkeypatch.setattr(tile_plan, "scratch_free_bytes", lambda: 123_456)
    with pytest.raises(ScratchError, match=r"needs 2\.4 MB of scratch space .* has 123\.5 kB free"):
        tile_plan.check_scratch("recompute", 64, 96)
    with pytest.raises(OSError, match=r"needs 7\.2 MB .*storage='recompute'"):
        tile_plan.check_scratch("disk", 64, 96)


def test_memory_storage_never_touches_the_scratch_folder(monkeypatch: pytest.MonkeyPatch) -> None:
    from napari_gifnet.engine.tiled import plan as tile_plan

    def broken() -> int:
        raise AssertionError("the scratch folder was consulted")

    monkeypatch.setattr(tile_plan, "scratch_free_bytes", broken)
    tile_plan.check_scratch("memory", 10_000, 10_000)
    monkeypatch.setattr(tile_plan, "_available_memory", lambda device: 1 << 40)
    assert tile_plan.choose_storage(100, 100, torch.device("cpu")) == "memory"


@pytest.mark.parametrize("kind", ["missing", "file"])
def test_a_bad_scratch_folder_is_named_only_when_scratch_is_needed(
    reference_weights: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    from napari_gifnet.engine.tiled.stores import ScratchError, scratch_free_bytes

    bad = tmp_path / "nowhere"
    if kind == "file":
        bad.write_text("not a folder")
    monkeypatch.setenv("NAPARI_GIFNET_SCRATCH", str(bad))
    rng = np.random.default_rng(3)
    a, b = rng.random((24, 32), np.float32), rng.random((24, 32), np.float32)
    memory = fuse(a, b, weights=reference_weights, device="cpu", storage="memory")
    auto = fuse(a, b, weights=reference_weights, device="cpu")  # small: auto chooses memory
    assert memory.metadata["storage"] == auto.metadata["storage"] == "memory"
    what = "does not exist" if kind == "missing" else "is not a folder"
    for storage in ("disk", "recompute"):
        with pytest.raises(ScratchError, match=rf"NAPARI_GIFNET_SCRATCH\) {what}") as info:
            fuse(a, b, weights=reference_weights, device="cpu", storage=storage)
        assert str(bad) in str(info.value)
    with pytest.raises(ScratchError, match="NAPARI_GIFNET_SCRATCH"):
        scratch_free_bytes()
    with pytest.raises(ScratchError, match="NAPARI_GIFNET_SCRATCH"):
        DiskStore(4, 4, 4, torch.device("cpu"))


def test_a_scratch_folder_that_cannot_be_written_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tempfile

    from napari_gifnet.engine.tiled.stores import ScratchError

    def refuse(**kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setenv("NAPARI_GIFNET_SCRATCH", str(tmp_path))
    monkeypatch.setattr(tempfile, "TemporaryFile", refuse)
    with pytest.raises(ScratchError, match="Permission denied") as info:
        DiskStore(4, 4, 4, torch.device("cpu"))
    assert str(tmp_path) in str(info.value) and "NAPARI_GIFNET_SCRATCH" in str(info.value)


# ---- portable disk storage (no pread / pwrite) -----------------------------------


def _exercise(store: DiskStore, data: torch.Tensor) -> list[torch.Tensor]:
    store.write(0, data[:, :, :9])  # full-width rows: one call
    store.write(9, data[:, :, 9:, :4], 0)  # partial rows: one call per row
    store.write(9, data[:, :, 9:, 4:], 4)
    return [store.rows(0, 20), store.region((3, 17), (2, 6)), store.region((19, 20), (6, 7))]


def test_disk_store_without_positional_io_gives_the_same_values(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from napari_gifnet.engine.tiled import stores as _stores

    monkeypatch.setenv("NAPARI_GIFNET_SCRATCH", str(tmp_path))
    data = torch.rand(1, 5, 20, 7)
    posix = DiskStore(5, 20, 7, torch.device("cpu"))
    assert posix.positional
    expected = _exercise(posix, data)
    posix.close()

    def unavailable(*args, **kwargs):
        raise AssertionError("a positional read or write was used")

    monkeypatch.setattr(_stores, "POSITIONAL_IO", False)
    monkeypatch.setattr(os, "preadv", unavailable, raising=False)
    monkeypatch.setattr(os, "pwrite", unavailable, raising=False)
    portable = DiskStore(5, 20, 7, torch.device("cpu"))
    assert not portable.positional
    got = _exercise(portable, data)
    for g, e in zip(got, expected):
        torch.testing.assert_close(g, e, rtol=0, atol=0)
    torch.testing.assert_close(got[0], data, rtol=0, atol=0)
    with pytest.raises(OSError, match="scratch file read"):  # past the end of the file
        portable._read(np.empty(8, np.float32), portable.row_bytes * 20)
    portable.close()
    portable.close()  # idempotent
    assert not list(tmp_path.iterdir())


def test_available_memory_comes_from_psutil_on_every_os(monkeypatch: pytest.MonkeyPatch) -> None:
    """Not a Linux-only file read with a 4 GB guess elsewhere: psutil's figure."""
    import builtins
    from types import SimpleNamespace

    import psutil
    import torch

    from napari_gifnet.engine.tiled import plan as tile_plan

    monkeypatch.setattr(psutil, "virtual_memory", lambda: SimpleNamespace(available=7 << 30))
    real_open = builtins.open

    def no_proc(path, *args, **kwargs):
        if str(path).startswith("/proc"):
            raise OSError("no /proc here (not Linux)")
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", no_proc)
    assert tile_plan._available_memory(torch.device("cpu")) == 7 << 30


def test_the_pool_keeps_tensors_of_one_size_only_while_held() -> None:
    from napari_gifnet.engine.tiled.stores import StorePool

    pool, t = StorePool(), torch.empty(1, 4, 8, 8)
    pool.give(t)
    assert len(pool) == 0  # not held: let go
    pool.hold()
    pool.give(t)
    assert pool.nbytes() == t.numel() * 4
    assert pool.take((1, 4, 8, 8)) is t and len(pool) == 0
    other = torch.empty(1, 4, 16, 16)
    pool.give(t)
    pool.give(other)  # maps of two shapes (S is smaller than the padded maps)
    assert pool.take((1, 4, 16, 16)) is other and len(pool) == 1
    pool.give(other)
    assert pool.take((1, 4, 8, 9)) is None  # another size: nothing kept would serve
    assert len(pool) == 0
    pool.give(t)
    pool.hold()  # re-entrant
    pool.release()
    assert len(pool) == 1
    pool.release()
    assert len(pool) == 0


def test_a_run_of_fusions_reuses_its_maps_and_frees_them_after(
    reference_dir: Path, reference_weights: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from napari_gifnet.engine import fusion_run
    from napari_gifnet.engine.tiled import stores

    a, b = _mfif(reference_dir, 70, 94)  # S smaller than the rest
    alone = [fuse(x, y, weights=reference_weights, device="cpu", storage="memory").luma
             for x, y in ((a, b), (b, a))]  # fmt: skip
    made: list[list[int]] = []
    real_init = stores.MemoryStore.__init__

    def recording(self, *args, **kwargs):
        real_init(self, *args, **kwargs)
        made[-1].append(self.data.data_ptr())

    monkeypatch.setattr(stores.MemoryStore, "__init__", recording)
    with fusion_run():
        together = []
        for x, y in ((a, b), (b, a)):
            made.append([])
            together.append(fuse(x, y, weights=reference_weights, device="cpu",
                                 storage="memory").luma)  # fmt: skip
        assert len(stores.POOL) == 4  # both embeddings, the gated stream and S
    assert len(made[1]) == 4 and set(made[1]) == set(made[0])  # the same tensors, again
    assert len(stores.POOL) == 0  # freed when the run ends
    for got, expected in zip(together, alone):
        np.testing.assert_array_equal(got, expected)  # reused maps change nothing


def test_the_planner_counts_what_a_run_keeps_as_available(monkeypatch: pytest.MonkeyPatch) -> None:
    import psutil

    from napari_gifnet.engine.tiled import plan as _plan
    from napari_gifnet.engine.tiled import stores

    monkeypatch.setattr(psutil, "virtual_memory", lambda: type("M", (), {"available": 1 << 30}))
    cpu = torch.device("cpu")
    assert _plan._available_memory(cpu) == 1 << 30
    with stores.keep_stores():
        stores.MemoryStore(98, 64, 64, cpu).close()
        assert _plan._available_memory(cpu) == (1 << 30) + 98 * 64 * 64 * 4
    assert _plan._available_memory(cpu) == 1 << 30


def test_a_fusion_that_keeps_no_map_frees_what_a_run_kept(
    reference_dir: Path, reference_weights: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from napari_gifnet.engine import fusion_run
    from napari_gifnet.engine.tiled import stores

    monkeypatch.setenv("NAPARI_GIFNET_SCRATCH", str(tmp_path))
    a, b = _mfif(reference_dir, 48, 64)
    with fusion_run():
        fuse(a, b, weights=reference_weights, device="cpu", storage="memory")
        assert len(stores.POOL) == 4
        fuse(a, b, weights=reference_weights, device="cpu", storage="disk")
        assert len(stores.POOL) == 0  # not held through a fusion that cannot use them


def test_a_kept_map_serves_only_its_inference_mode() -> None:
    from napari_gifnet.engine.tiled import stores

    cpu = torch.device("cpu")
    with stores.keep_stores():
        with torch.inference_mode():
            kept = stores.MemoryStore(3, 8, 8, cpu)
            inference_tensor = kept.data
            kept.close()
        plain = stores.MemoryStore(3, 8, 8, cpu)  # outside inference mode
        assert plain.data is not inference_tensor and not plain.data.is_inference()
        plain.write(0, torch.ones(1, 3, 8, 8))  # an inference tensor would refuse this
