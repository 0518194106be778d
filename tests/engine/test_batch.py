"""Planes of one size fused in batches give each plane its own result."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from napari_gifnet.engine import batch as batch_module
from napari_gifnet.engine.batch import BYTES_PER_PIXEL, MAX_BATCH, batch_size, fuse_planes
from napari_gifnet.engine.fusion import fuse
from napari_gifnet.model.network import GIFNet


@pytest.fixture(scope="module")
def planes(reference_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    data = np.load(reference_dir / "official" / "IVIF.npz")
    a, b = data["input_a"], data["input_b"]
    a = a if a.ndim == 2 else a[..., 0]
    b = b if b.ndim == 2 else b[..., 0]
    # five planes of one scene at different offsets and brightness (one very dim)
    crops = [(0, 0), (40, 64), (200, 100), (96, 300), (10, 500)]
    scale = [1.0, 0.8, 0.5, 1.0, 0.1]
    sa = np.stack(
        [(a[r : r + 72, c : c + 90] * s).astype(a.dtype) for (r, c), s in zip(crops, scale)]
    )
    sb = np.stack([b[r : r + 72, c : c + 90] for r, c in crops])
    return sa, sb


def test_batched_planes_equal_planes_fused_alone(planes, reference_weights: Path) -> None:
    a, b = planes
    before = a.copy(), b.copy()
    batched = fuse_planes(a, b, weights=reference_weights, device="cpu", batch=3)
    np.testing.assert_array_equal(a, before[0])  # the inputs are never modified
    np.testing.assert_array_equal(b, before[1])
    assert [r.metadata["batch"] for r in batched] == [3, 3, 3, 2, 2]
    for i, result in enumerate(batched):
        alone = fuse(a[i], b[i], weights=reference_weights, device="cpu")
        assert result.image.shape == alone.image.shape == (72, 90)
        np.testing.assert_allclose(result.image, alone.image, atol=2e-5, rtol=0)
        assert result.metadata["inputs"] == alone.metadata["inputs"]  # per-plane normalisation


def test_colour_planes_keep_their_chroma(planes, reference_weights: Path) -> None:
    a, b = planes
    rgb = np.stack([np.dstack([p, p // 2, 255 - p]) for p in b[:2]]).astype(np.uint8)
    batched = fuse_planes(a[:2], rgb, weights=reference_weights, device="cpu", batch=2)
    for i, result in enumerate(batched):
        alone = fuse(a[i], rgb[i], weights=reference_weights, device="cpu")
        assert result.image.shape == (72, 90, 3)
        np.testing.assert_allclose(result.image, alone.image, atol=2e-5, rtol=0)


def test_off_cuda_every_plane_takes_the_tiled_path(
    planes, reference_weights: Path, heap_calls, store_runs, monkeypatch: pytest.MonkeyPatch
) -> None:
    from napari_gifnet.engine import eager

    a, b = planes
    prepared: list[int] = []

    def counted(module):
        real = module.prepare_pair

        def prepare(*args, **kwargs):
            prepared.append(1)
            return real(*args, **kwargs)

        monkeypatch.setattr(module, "prepare_pair", prepare)

    counted(batch_module)
    counted(eager)
    results = fuse_planes(a[:3], b[:3], weights=reference_weights, device="cpu")
    assert [r.metadata["batch"] for r in results] == [1, 1, 1]
    assert len(prepared) == 3  # each plane is prepared once
    assert heap_calls.trims == 1 and store_runs == [1]  # one heap and one set of maps


def test_a_batch_out_of_memory_is_split_in_half(
    planes, reference_weights: Path, monkeypatch
) -> None:
    forward = GIFNet.forward
    tried: list[int] = []

    def small_memory(self, a, b, features=None):
        tried.append(a.shape[0])
        if a.shape[0] > 2:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 9 GiB")
        return forward(self, a, b, features)

    monkeypatch.setattr(GIFNet, "forward", small_memory)
    a, b = planes
    results = fuse_planes(a, b, weights=reference_weights, device="cpu", batch=5)
    assert tried == [5, 2, 2]  # the last plane alone takes the tiled path
    assert [r.metadata["batch"] for r in results] == [2, 2, 2, 2, 1]
    alone = fuse(a[4], b[4], weights=reference_weights, device="cpu")
    np.testing.assert_allclose(results[4].image, alone.image, atol=0, rtol=0)


def test_other_errors_are_not_taken_for_memory(
    planes, reference_weights: Path, monkeypatch
) -> None:
    def broken(self, a, b, features=None):
        raise RuntimeError("something else")

    monkeypatch.setattr(GIFNet, "forward", broken)
    with pytest.raises(RuntimeError, match="something else"):
        fuse_planes(*planes, weights=reference_weights, device="cpu", batch=2)


def test_progress_counts_planes(planes, reference_weights: Path) -> None:
    seen: list[tuple[int, int]] = []
    fuse_planes(
        *planes,
        weights=reference_weights,
        device="cpu",
        batch=2,
        progress=lambda *d: seen.append(d),
    )
    assert seen == [(2, 5), (4, 5), (5, 5)]


@pytest.mark.parametrize(
    "free, planes, expected",
    [
        (10 * 2**30, 100, int(0.7 * 10 * 2**30 // (512 * 512 * BYTES_PER_PIXEL))),
        (2**40, 1000, MAX_BATCH),  # capped
        (2**40, 3, 3),  # no more than the planes
        (2**20, 100, 1),  # not even one fits: one at a time (the tiled path)
    ],
)
def test_batch_size_follows_free_memory(free: int, planes: int, expected: int) -> None:
    assert batch_size(512, 512, planes, torch.device("cuda"), free_bytes=free) == expected


def test_batch_size_is_one_off_cuda_and_for_planes_the_tiled_engine_would_tile() -> None:
    assert batch_size(512, 512, 50, torch.device("cpu"), free_bytes=2**40) == 1
    big = batch_module.MAX_BATCH_PLANE_PIXELS
    assert batch_size(big // 1000 + 1, 1000, 50, torch.device("cuda"), free_bytes=2**40) == 1


def test_bad_stacks_are_refused_before_any_work(planes, monkeypatch) -> None:
    def no_work(*args, **kwargs):
        raise AssertionError("reached the network")

    monkeypatch.setattr(batch_module, "_fuse_batch", no_work)
    monkeypatch.setattr(batch_module, "fuse_arrays", no_work)
    a, b = planes
    with pytest.raises(ValueError, match="a has 5 planes and b has 4"):
        fuse_planes(a, b[:4], device="cpu")
    with pytest.raises(ValueError, match="several sizes"):
        fuse_planes([a[0], a[1][:60]], [b[0], b[1][:60]], device="cpu")
    with pytest.raises(ValueError, match="batch must be a positive"):
        fuse_planes(a, b, device="cpu", batch=0)
    with pytest.raises(ValueError, match="unknown precision"):
        fuse_planes(a, b, device="cpu", precision="float8")
    with pytest.raises(ValueError, match="b"):
        fuse_planes(a, b[:, :, :50], device="cpu")  # a pair of two sizes: fuse's own message
