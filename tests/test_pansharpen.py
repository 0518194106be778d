"""Tests of napari_gifnet.pansharpen (multispectral + panchromatic fusion)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile

from napari_gifnet.pansharpen import pansharpen, resample_band


@pytest.fixture(scope="module")
def remote(reference_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """The reference Remote case: (H, W, 4) uint8 multispectral and (H, W) panchromatic."""
    folder = reference_dir / "pairs" / "Remote"
    return tifffile.imread(folder / "ms_4band.tif"), tifffile.imread(folder / "b_pan.tif")


def test_band1_matches_the_published_output(remote, reference_dir, reference_weights):
    ms, pan = remote
    ref = np.load(reference_dir / "official" / "Remote-band1.npz")["fused_luma"]
    r = pansharpen(ms[..., 0], pan, rescale="none", weights=reference_weights, device="cpu")
    assert r.luma.shape == (1, *pan.shape)
    assert np.abs(r.luma[0] - ref).max() < 1e-4
    assert r.image.dtype == np.uint8
    np.testing.assert_array_equal(r.image, np.rint(r.luma[0].astype(np.float64) * 255))


def test_each_band_keeps_its_range_and_the_layout(remote):
    ms, pan = remote
    crop = np.s_[:96, :80]
    ms, pan = ms[crop], pan[crop]
    last = pansharpen(ms, pan, method="laplacian")
    first = pansharpen(np.moveaxis(ms, -1, 0), pan, method="laplacian")
    assert last.image.shape == ms.shape and last.image.dtype == np.uint8
    assert first.image.shape == (4, 96, 80)
    np.testing.assert_array_equal(np.moveaxis(first.image, 0, -1), last.image)
    for i in range(4):
        band = ms[..., i]
        assert last.image[..., i].min() == band.min() and last.image[..., i].max() == band.max()
    moments = pansharpen(ms, pan, method="laplacian", rescale="moments")
    for i in range(4):
        assert abs(moments.image[..., i].mean() - ms[..., i].mean()) < 1.0
    assert last.metadata["band_axis"] == -1 and first.metadata["band_axis"] == 0


def test_low_resolution_bands_are_upsampled(remote):
    ms, pan = remote
    pan = pan[:96, :80]
    small = ms[:96:2, :80:2]  # half resolution
    r = pansharpen(small, pan, method="laplacian")
    assert r.image.shape == (96, 80, 4)
    assert r.metadata["resampled"]["from"] == [48, 40]
    scaled = pansharpen(small, pan, method="mean", ms_scale=(2, 2), pan_scale=(1, 1))
    assert scaled.image.shape == (96, 80, 4)


def test_resample_band_follows_napari_pixel_centres():
    ramp = np.tile(np.arange(10, dtype=np.float32) * 2.0, (6, 1))  # value = 2 * column
    out = resample_band(ramp, (12, 20), src_scale=(2, 2), dst_scale=(1, 1))
    # target pixel j is at world j, i.e. source pixel j / 2, value j (clamped at the end)
    np.testing.assert_allclose(out[3, 4:14], np.arange(4, 14, dtype=float), atol=0.02)
    same = resample_band(ramp, (12, 20))  # same extent: corners aligned
    np.testing.assert_allclose(same[0, 1:-1].mean(), ramp[0].mean(), atol=0.2)
    u8 = resample_band(np.full((4, 4), 200, np.uint8), (8, 8))
    assert u8.dtype == np.uint8 and (u8 == 200).all()


def test_inputs_are_not_modified(remote):
    ms, pan = (x[:32, :32].copy() for x in remote)
    ms.setflags(write=False)
    before = ms.copy()
    pansharpen(ms, pan, method="mean")
    np.testing.assert_array_equal(ms, before)


@pytest.mark.parametrize(
    ("ms", "pan", "kwargs", "match"),
    [
        (np.zeros((16, 16, 3)), np.zeros((8, 8)), {}, "larger than the panchromatic"),
        (np.zeros((3, 8, 8)), np.zeros((16, 16)), {"ms_scale": (2, 2)}, "both ms_scale"),
        (np.zeros((3, 8, 8)), np.zeros((8, 8)), {"rescale": "fancy"}, "unknown rescale"),
        (np.zeros((2, 3, 8, 8)), np.zeros((8, 8)), {}, "multispectral image must be"),
        (np.zeros((3, 8, 8)), np.zeros((2, 8, 8)), {}, "panchromatic image must be"),
        (np.full((3, 8, 8), np.nan), np.zeros((8, 8)), {}, "NaN"),
        (np.zeros((3, 8, 8)), np.zeros((8, 8)), {"band_axis": 1}, "band_axis"),
        (np.zeros((3, 8, 8)), np.zeros((8, 8)), {"method": "nope"}, "unknown fusion method"),
    ],
)
def test_bad_input_gives_a_clear_value_error(ms, pan, kwargs, match):
    with pytest.raises(ValueError, match=match):
        pansharpen(ms, pan, **{"method": "mean", **kwargs})
