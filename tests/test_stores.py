"""Scratch storage of the band-by-band evaluation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from napari_gifnet import fuse
from napari_gifnet._stores import DiskStore, MemoryStore


@pytest.mark.parametrize("kind", [MemoryStore, DiskStore])
def test_rows_round_trip(kind, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NAPARI_GIFNET_SCRATCH", str(tmp_path))
    store = kind(5, 20, 7, torch.device("cpu"))
    data = torch.rand(1, 5, 20, 7)
    store.write(0, data[:, :, :12])
    store.write(12, data[:, :, 12:].contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(store.rows(3, 17), data[:, :, 3:17], rtol=0, atol=0)
    assert not list(tmp_path.iterdir())  # the scratch file is anonymous
    store.close()


def test_fuse_gives_the_same_values_with_every_storage(
    reference_dir: Path, reference_weights: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NAPARI_GIFNET_SCRATCH", str(tmp_path))
    with np.load(reference_dir / "official" / "MFIF.npz") as d:
        a, b = d["input_a"][:120, :200], d["input_b"][:120, :200]
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
    from napari_gifnet import streaming

    cpu = torch.device("cpu")
    one_map = 98 * 100 * 100 * 4
    monkeypatch.setattr(streaming, "scratch_free_bytes", lambda: 10 * one_map)
    monkeypatch.setattr(streaming, "_available_memory", lambda device: 10 * one_map)
    assert streaming.choose_storage(100, 100, cpu) == "memory"  # 3 maps <= 40% of 10
    monkeypatch.setattr(streaming, "_available_memory", lambda device: 5 * one_map)
    assert streaming.choose_storage(100, 100, cpu) == "disk"  # 3 maps <= 80% of 10
    monkeypatch.setattr(streaming, "scratch_free_bytes", lambda: 3 * one_map)
    assert streaming.choose_storage(100, 100, cpu) == "recompute"


def test_auto_tile_size_follows_free_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    from napari_gifnet import streaming

    cpu, gpu = torch.device("cpu"), torch.device("cuda")
    per_pixel = streaming.TILE_BYTES_PER_PIXEL
    monkeypatch.setattr(streaming, "_available_memory", lambda device: 256 << 30)
    assert streaming.auto_tile_pixels(1000, 1000, cpu, "disk") == 1 << 16  # the CPU cap
    assert streaming.auto_tile_pixels(1000, 1000, gpu, "disk") == 1 << 22  # the GPU cap
    # a quarter of what is left once the stored maps are counted
    monkeypatch.setattr(streaming, "_available_memory", lambda device: 4 * per_pixel * 5000)
    assert streaming.auto_tile_pixels(1000, 1000, gpu, "disk") == 5000
    assert streaming.auto_tile_pixels(1000, 1000, gpu, "memory") == 1 << 12  # the floor
