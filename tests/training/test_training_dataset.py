"""The RGB joint dataset: folder checks, generated focus pairs, crops and flips."""

from __future__ import annotations

from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import tifffile
import torch
from scipy import ndimage as ndi

from napari_gifnet.training.dataset import MIN_CROP, RGBJointDataset, focus_pair, list_pairs
from napari_gifnet.training.synthetic import write_synthetic_pairs


def _folder(tmp_path: Path, n: int = 3, size: int = 48) -> Path:
    return write_synthetic_pairs(tmp_path / "pairs", n=n, size=size, seed=1)


def test_missing_folders_and_unmatched_names(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="training folder not found"):
        list_pairs(tmp_path / "nope")
    (tmp_path / "a" / "first").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="has no 'second' folder"):
        list_pairs(tmp_path / "a")
    (tmp_path / "a" / "second").mkdir()
    with pytest.raises(ValueError, match="holds no images"):
        list_pairs(tmp_path / "a")
    root = _folder(tmp_path)
    (root / "second" / "scene001.png").rename(root / "second" / "other.png")
    with pytest.raises(ValueError, match=r"2 image\(s\) without a partner: 'other' \(missing in first/\), "
                       r"'scene001' \(missing in second/\)"):  # fmt: skip
        list_pairs(root)


def test_size_mismatch_and_crop_too_large(tmp_path: Path) -> None:
    root = _folder(tmp_path, n=2, size=48)
    assert [p.name for p in list_pairs(root, crop=48)] == ["scene000", "scene001"]
    assert RGBJointDataset(root, crop=MIN_CROP).crop == MIN_CROP
    with pytest.raises(ValueError, match="smaller than the 64 x 64 crop"):
        RGBJointDataset(root, crop=64)
    iio.imwrite(root / "first" / "scene001.png", np.zeros((40, 48), np.uint8))
    with pytest.raises(ValueError, match=r"'scene001': the images differ in size \(scene001.png is 48 x 40"):
        list_pairs(root)
    for bad in (8, MIN_CROP - 1, 32.5, "32"):
        with pytest.raises(ValueError, match=f"crop must be an integer of at least {MIN_CROP}, got"):
            RGBJointDataset(root, crop=bad)  # type: ignore[arg-type]



def test_any_bit_depth_and_colour(tmp_path: Path) -> None:
    root = tmp_path / "mixed"
    (root / "first").mkdir(parents=True)
    (root / "second").mkdir()
    rng = np.random.default_rng(0)
    grey16 = rng.integers(0, 4096, (40, 40), dtype=np.uint16)
    rgb8 = rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)
    tifffile.imwrite(root / "first" / "x.tif", grey16)
    iio.imwrite(root / "second" / "x.png", rgb8)
    ds = RGBJointDataset(root, crop=40, seed=0)
    sample = ds.sample(0, 0)
    assert sample.shape == (4, 1, 40, 40) and sample.dtype == torch.float32
    assert 0 <= float(sample.min()) and float(sample.max()) <= 1
    luma = (0.299 * rgb8[..., 0] + 0.587 * rgb8[..., 1] + 0.114 * rgb8[..., 2]).astype(np.uint8) / 255
    vis = sample[1, 0].numpy()
    # The whole image is the crop: vis is the luma, up to the random flips.
    assert any(np.allclose(vis, f, atol=1e-6) for f in (luma, luma[::-1], luma[:, ::-1], luma[::-1, ::-1]))


def test_focus_pair_blurs_complementary_regions() -> None:
    rng = np.random.default_rng(3)
    ref = rng.random((96, 96))
    near, far, mask = focus_pair(ref, np.random.default_rng(4))
    assert near.shape == far.shape == mask.shape == ref.shape
    sharp_near, sharp_far = mask > 0.95, mask < 0.05
    assert sharp_near.sum() > 100 and sharp_far.sum() > 100

    def detail(img: np.ndarray, where: np.ndarray) -> float:
        return float(np.abs(ndi.laplace(img.astype(np.float64)))[where].mean())

    # near is sharp where the mask is 1 and blurred where it is 0; far the reverse.
    assert np.abs(near - ref)[sharp_near].max() < 0.06 and np.abs(far - ref)[sharp_far].max() < 0.06
    assert detail(near, sharp_near) > 3 * detail(far, sharp_near)
    assert detail(far, sharp_far) > 3 * detail(near, sharp_far)


def test_samples_are_deterministic_and_aligned(tmp_path: Path) -> None:
    root = _folder(tmp_path, n=3, size=64)
    ds, again = RGBJointDataset(root, crop=32, seed=7), RGBJointDataset(root, crop=32, seed=7)
    assert torch.equal(ds.sample(1, 0), again.sample(1, 0))
    assert not torch.equal(ds.sample(1, 0), ds.sample(1, 1))  # a new crop each epoch
    assert not torch.equal(ds.sample(1, 0), RGBJointDataset(root, crop=32, seed=8).sample(1, 0))
    # Every sample's ir and vis are one window of the pair, flipped alike.
    first = iio.imread(root / "first" / "scene001.png") / 255.0
    second = iio.imread(root / "second" / "scene001.png") / 255.0
    for epoch in range(4):
        ir, vis = (t[0].double().numpy() for t in ds.sample(1, epoch)[:2])
        found = False
        for flip in (lambda a: a, np.fliplr, np.flipud, lambda a: a[::-1, ::-1]):
            ir_f, vis_f = flip(ir), flip(vis)
            for top in range(33):
                for left in range(33):
                    if np.allclose(second[top : top + 32, left : left + 32], vis_f, atol=1e-6):
                        found = np.allclose(first[top : top + 32, left : left + 32], ir_f, atol=1e-6)
                        break
                if found:
                    break
            if found:
                break
        assert found, f"epoch {epoch}: ir and vis are not the same window"
    # Batches: every index once per epoch, in a seeded order.
    assert sorted(ds.order(0)) == [0, 1, 2] and ds.batches_per_epoch(2) == 2
    assert ds.batch(0, 0, 2).shape == (4, 2, 1, 32, 32) and ds.batch(0, 1, 2).shape == (4, 1, 1, 32, 32)


def test_headers_refuse_a_stack_and_a_broken_file(tmp_path: Path) -> None:
    root = _folder(tmp_path, n=2, size=40)
    (root / "second" / "scene001.png").unlink()
    tifffile.imwrite(root / "second" / "scene001.tif", np.zeros((3, 40, 40), np.uint8),
                     photometric="minisblack")
    stack = r"scene001\.tif: shape \(3, 40, 40\) is not a grey or RGB"
    with pytest.raises(ValueError, match=stack):
        list_pairs(root)
    (root / "second" / "scene001.tif").write_bytes(b"not a tiff")
    with pytest.raises(ValueError, match=r"cannot read .*scene001\.tif: not a valid TIFF"):
        list_pairs(root)


def test_check_images_names_an_unusable_file(tmp_path: Path) -> None:
    root = _folder(tmp_path, n=3, size=40)
    # A grey + alpha PNG passes the header checks but cannot be decoded as grey or RGB.
    iio.imwrite(root / "second" / "scene002.png", np.zeros((40, 40, 2), np.uint8))
    ds = RGBJointDataset(root, crop=32)
    with pytest.raises(ValueError, match=r"cannot use .*scene002\.png for training"):
        ds.check_images()
    ok = RGBJointDataset(_folder(tmp_path / "ok", n=2, size=40), crop=32)
    ok.check_images()
    assert ok._cache is not None and sorted(ok._cache) == [0, 1]  # decoded once, kept
