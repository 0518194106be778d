"""Tests of napari_gifnet.workflows.pansharpening (multispectral + panchromatic fusion)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import tifffile

from napari_gifnet.workflows.pan_grid import resample_band
from napari_gifnet.workflows.pansharpening import pansharpen


@pytest.fixture(scope="module")
def remote(reference_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """The reference Remote case: (H, W, 4) uint8 multispectral and (H, W) panchromatic."""
    folder = reference_dir / "pairs" / "Remote"
    return tifffile.imread(folder / "ms_4band.tif"), tifffile.imread(folder / "b_pan.tif")


def test_band1_matches_the_published_output(remote, reference_dir, reference_weights):
    ms, pan = remote
    ref = np.load(reference_dir / "official" / "Remote-band1.npz")["fused_luma"]
    r = pansharpen(ms[..., 0], pan, method="gifnet", rescale="none", weights=reference_weights,
                   device="cpu")
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
        (np.zeros((3, 8, 8)), np.zeros((8, 8)), {"method": "nope"}, "unknown pansharpening method"),
    ],
)
def test_bad_input_gives_a_clear_value_error(ms, pan, kwargs, match):
    with pytest.raises(ValueError, match=match):
        pansharpen(ms, pan, **{"method": "mean", **kwargs})


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"band_axis": "0"}, "band_axis must be 0 (bands, H, W) or -1 (H, W, bands), not '0'"),
        ({"band_axis": 1}, "band_axis must be 0 (bands, H, W) or -1 (H, W, bands), not 1"),
        ({"band_axis": 0.0}, "band_axis must be 0 (bands, H, W) or -1 (H, W, bands), not 0.0"),
        ({"band_axis": True}, "band_axis must be 0 (bands, H, W) or -1 (H, W, bands), not True"),
        ({"rescale": "0"}, "unknown rescale '0'; valid: range, moments, none"),
        ({"method": "0"}, "unknown pansharpening method '0'; valid: mtf_glp_rr, mtf_glp, "),
        ({"ms_scale": "2", "pan_scale": 1}, "positive finite number or a (y, x) pair of them, "
                                            "not '2'"),
        ({"ms_scale": 2, "pan_scale": 1, "pan_translate": "1"}, "not '1'"),
    ],
)
def test_argument_errors_show_the_repr_of_what_was_given(kwargs, message):
    # a string that looks like a number must read as a string, quotes and all
    with pytest.raises(ValueError) as info:
        pansharpen(np.zeros((3, 8, 8)), np.zeros((16, 16)), **{"method": "mean", **kwargs})
    assert message in str(info.value)


@pytest.mark.parametrize(("which", "ms_nan"), [("multispectral", True), ("panchromatic", False)])
def test_nan_message_names_the_image_as_the_other_messages_do(which, ms_nan):
    ms, pan = np.zeros((3, 8, 8)), np.zeros((8, 8))
    (ms if ms_nan else pan)[0, 0] = np.nan
    with pytest.raises(ValueError, match=f"^the {which} image holds NaN or infinite values$"):
        pansharpen(ms, pan, method="mean")


# -- the reviewer's findings: band ranges, scale arguments, band axis ----------


def _edge_band(lo: float, hi: float, n: int = 8) -> np.ndarray:
    """An n x n band with a vertical step edge from lo (left) to hi (right)."""
    band = np.full((n, n), lo, dtype=np.float64)
    band[:, n // 2 :] = hi
    return band


@pytest.fixture(scope="module")
def pan32() -> np.ndarray:
    return np.random.default_rng(7).integers(0, 4000, (32, 32)).astype(np.uint16)


def test_resample_band_stays_within_the_band_range():
    # cubic interpolation overshoots a step edge on both sides; it is clipped to the band
    u16 = _edge_band(200, 3049).astype(np.uint16)
    out = resample_band(u16, (32, 32))
    assert out.dtype == np.uint16
    assert out.min() == 200 and out.max() == 3049
    f32 = _edge_band(0.066, 1.0).astype(np.float32)
    out = resample_band(f32, (32, 32), src_scale=4, dst_scale=1)
    assert out.dtype == np.float32
    assert out.min() >= np.float32(0.066) and out.max() <= np.float32(1.0)
    f64 = _edge_band(0.1, 0.3)  # float64 limits not representable in float32
    out = resample_band(f64, (32, 32))
    assert float(out.min()) >= 0.1 and float(out.max()) <= 0.3


@pytest.mark.parametrize("rescale", ["range", "moments", "none"])
def test_upsampled_bands_keep_their_original_range(pan32, rescale):
    ms = np.stack([_edge_band(200, 3049), _edge_band(3049, 200), _edge_band(10, 20)])
    ms = ms.astype(np.uint16)
    r = pansharpen(ms, pan32, method="mean", rescale=rescale)
    assert r.image.shape == (3, 32, 32) and r.image.dtype == np.uint16
    np.testing.assert_array_equal(r.band_ranges, [[200, 3049], [200, 3049], [10, 20]])
    assert r.metadata["band_ranges"] == [(200.0, 3049.0), (200.0, 3049.0), (10.0, 20.0)]
    if rescale == "range":  # each output band spans exactly its original band's range
        for i, (lo, hi) in enumerate(r.band_ranges):
            assert r.image[i].min() == lo and r.image[i].max() == hi


def test_upsampled_float_bands_keep_their_original_range(pan32):
    for dtype in (np.float32, np.float64):
        ms = np.stack([_edge_band(0.066, 1.0), _edge_band(0.1, 0.3)]).astype(dtype)
        r = pansharpen(ms, pan32, method="mean")
        assert r.image.dtype == np.float32
        for i, band in enumerate(ms):
            lo, hi = float(band.min()), float(band.max())
            assert tuple(r.band_ranges[i]) == (lo, hi)
            assert float(r.image[i].min()) >= lo and float(r.image[i].max()) <= hi
            np.testing.assert_allclose([r.image[i].min(), r.image[i].max()], [lo, hi], rtol=1e-6)


def test_bool_bands_stay_bool_when_upsampled(pan32):
    band = np.zeros((8, 8), bool)
    band[:, 4:] = True
    up = resample_band(band, (32, 32))
    assert up.dtype == bool
    assert not up[:, :14].any() and up[:, 18:].all()  # the edge stays near column 16
    r = pansharpen(np.stack([band, ~band]), pan32, method="mean")
    assert r.image.dtype == bool and r.image.shape == (2, 32, 32)
    assert r.metadata["dtype"] == "bool"
    np.testing.assert_array_equal(r.band_ranges, [[0, 1], [0, 1]])


def test_upsampling_does_not_modify_the_inputs(pan32):
    ms = np.stack([_edge_band(0.066, 1.0)] * 2).astype(np.float32)
    ms.setflags(write=False)
    pan = pan32.copy()
    pan.setflags(write=False)
    before = ms.copy()
    pansharpen(ms, pan, method="mean", ms_scale=(4, 4), pan_scale=(1, 1))
    np.testing.assert_array_equal(ms, before)
    np.testing.assert_array_equal(pan, pan32)


def test_scales_accept_one_number_or_a_pair(pan32):
    ms = np.stack([_edge_band(200, 3049)] * 2).astype(np.uint16)
    pair = pansharpen(ms, pan32, method="mean", ms_scale=(4, 4), pan_scale=(1, 1))
    one = pansharpen(ms, pan32, method="mean", ms_scale=4, pan_scale=1.0)
    arrays = pansharpen(ms, pan32, method="mean", ms_scale=np.array([4.0, 4.0]),
                        pan_scale=np.float32(1))  # fmt: skip
    np.testing.assert_array_equal(one.image, pair.image)
    np.testing.assert_array_equal(arrays.image, pair.image)
    meta = arrays.metadata["resampled"]
    assert meta["ms_scale"] == [4.0, 4.0] and meta["pan_scale"] == [1.0, 1.0]
    assert all(type(v) is float for v in meta["ms_scale"] + meta["pan_scale"])


def test_resample_band_follows_the_translates():
    ramp = np.tile(np.arange(10, dtype=np.float32) * 2.0, (6, 1))  # value = 2 * column
    out = resample_band(ramp, (4, 8), src_scale=(2, 2), dst_scale=(1, 1), dst_translate=(0, 5))
    # target pixel j is at world 5 + j, i.e. source pixel (5 + j) / 2, value 5 + j
    np.testing.assert_allclose(out[1], np.arange(5, 13, dtype=float), atol=0.02)


GOOD = {"ms_scale": (4, 4), "pan_scale": (1, 1)}


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({**GOOD, "ms_scale": (0, 0)}, "ms_scale must be a positive"),
        ({**GOOD, "ms_scale": (-4, -4)}, "ms_scale must be a positive"),
        ({**GOOD, "ms_scale": (4, 0)}, "ms_scale must be a positive"),
        ({**GOOD, "pan_scale": -1}, "pan_scale must be a positive"),
        ({**GOOD, "ms_scale": (4,)}, "ms_scale .*1 value"),
        ({**GOOD, "pan_scale": (1, 1, 1)}, "pan_scale .*3 value"),
        ({**GOOD, "ms_scale": (np.nan, 4)}, "ms_scale .*NaN or infinite"),
        ({**GOOD, "pan_scale": (1, np.inf)}, "pan_scale .*NaN or infinite"),
        ({**GOOD, "ms_scale": "4"}, "ms_scale must be"),
        ({**GOOD, "ms_scale": (True, True)}, "ms_scale must be"),
        ({**GOOD, "ms_scale": [[4, 4]]}, "ms_scale must be"),
        ({**GOOD, "ms_translate": (np.nan, 0)}, "ms_translate must be a finite"),
        ({**GOOD, "pan_translate": (0, 0, 0)}, "pan_translate .*3 value"),
        ({"ms_translate": (1, 1)}, "need the pixel sizes"),
    ],
)
def test_bad_scales_and_translates_name_the_argument(pan32, kwargs, match):
    ms = np.zeros((2, 8, 8), np.uint16)
    with pytest.raises(ValueError, match=match):
        pansharpen(ms, pan32, method="mean", **kwargs)


def test_resample_band_validates_its_arguments():
    band = np.zeros((4, 4), np.float32)
    with pytest.raises(ValueError, match="src_scale must be a positive"):
        resample_band(band, (8, 8), src_scale=0, dst_scale=1)
    with pytest.raises(ValueError, match="both src_scale and dst_scale"):
        resample_band(band, (8, 8), src_scale=2)
    with pytest.raises(ValueError, match="2-D"):
        resample_band(np.zeros((0, 4)), (8, 8))
    with pytest.raises(ValueError, match="shape must be"):
        resample_band(band, (8, 0))


@pytest.mark.parametrize(
    ("ms", "kwargs", "match"),
    [
        (np.zeros((0, 8, 8)), {}, "no bands"),
        (np.zeros((8, 8, 0)), {"band_axis": -1}, "no bands"),
        (np.zeros((3, 0, 8)), {}, "empty image"),
        (np.zeros((3, 8, 8), complex), {}, "bool, integer or float"),
    ],
)
def test_empty_or_complex_multispectral_images_are_refused(pan32, ms, kwargs, match):
    with pytest.raises(ValueError, match=match):
        pansharpen(ms, pan32, method="mean", **kwargs)


@pytest.mark.parametrize(
    ("ms_shape", "kwargs"),
    [
        ((4, 16, 16), {"band_axis": -1}),  # 16 bands of 4 x 16
        ((16, 16, 4), {"band_axis": 0}),  # 16 bands of 16 x 4
        ((4, 16, 16), {"band_axis": -1, "ms_scale": 2, "pan_scale": 1}),
        ((4, 8, 32), {}),  # auto axis 0 gives 8 x 32 bands for a square panchromatic image
    ],
)
def test_a_wrong_band_axis_is_refused(pan32, ms_shape, kwargs):
    ms = np.zeros(ms_shape, np.uint16)
    with pytest.raises(ValueError, match="band_axis="):
        pansharpen(ms, pan32, method="mean", **kwargs)


@pytest.mark.parametrize(
    ("ms_shape", "pan_shape", "kwargs"),
    [
        ((3, 16, 16), (32, 32), {}),  # ratio 2
        ((3, 8, 8), (32, 32), {"band_axis": 0}),  # ratio 4
        ((30, 25, 3), (96, 80), {}),  # ratio 3.2 (not an integer), same extent
        ((3, 12, 16), (47, 64), {}),  # ratio 4, the panchromatic crop one pixel short
        ((3, 30, 25), (96, 80), {"ms_scale": (3.2, 3.2), "pan_scale": (1, 1)}),
        ((3, 16, 16), (64, 64), {"ms_scale": (4, 4), "pan_scale": (1, 1)}),  # corners of pixel 0 apart
        ((3, 16, 16), (16, 16), {"ms_scale": (4, 4), "pan_scale": (1, 1), "pan_translate": (10, 20)}),
        ((3, 16, 8), (32, 32), {"ms_scale": (2, 4), "pan_scale": (1, 1)}),  # non-square MS pixels
    ],
)
def test_legitimate_resolution_ratios_still_work(ms_shape, pan_shape, kwargs):
    ms = np.random.default_rng(3).integers(0, 255, ms_shape).astype(np.uint8)
    pan = np.random.default_rng(4).integers(0, 255, pan_shape).astype(np.uint8)
    r = pansharpen(ms, pan, method="mean", **kwargs)
    axis = 0 if ms_shape[0] <= ms_shape[2] else -1
    expected = (3, *pan_shape) if axis == 0 else (*pan_shape, 3)
    assert r.image.shape == expected and r.image.dtype == np.uint8
    assert r.metadata["resampled"]["to"] == list(pan_shape)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"ms_scale": 1, "pan_scale": 1},  # the MS covers only 16 of the 32 pixels
        {"ms_scale": 2, "pan_scale": 1, "pan_translate": (0, 20)},  # shifted out along x
        {"ms_scale": 2, "pan_scale": 1, "pan_translate": (-8, 0)},  # shifted out along y
    ],
)
def test_a_multispectral_grid_that_misses_the_panchromatic_one_is_refused(pan32, kwargs):
    ms = np.zeros((3, 16, 16), np.uint16)
    with pytest.raises(ValueError, match="do not cover the panchromatic"):
        pansharpen(ms, pan32, method="mean", **kwargs)


def test_cast_to_dtype_rounds_clips_and_thresholds():
    from napari_gifnet.workflows._dtype_cast import cast_to_dtype

    values = np.array([-3.0, 0.49, 0.5, 1.5, 2.5, 300.0])
    np.testing.assert_array_equal(cast_to_dtype(values, np.uint8), [0, 0, 0, 2, 2, 255])
    np.testing.assert_array_equal(cast_to_dtype(values, np.int8), [-3, 0, 0, 2, 2, 127])
    np.testing.assert_array_equal(cast_to_dtype(values, bool), values >= 0.5)
    assert cast_to_dtype(values, np.float64) is values  # already the dtype: as it is
    assert cast_to_dtype(values, np.float16).dtype == np.float16
    # within: float32, and never outside lo..hi through float32 rounding
    lo, hi = 0.1, 0.30000000000000004
    out = cast_to_dtype(np.array([0.0, 0.2, 1.0]), np.float32, within=(lo, hi))
    assert out.dtype == np.float32 and float(out.min()) >= lo and float(out.max()) <= hi
    np.testing.assert_array_equal(cast_to_dtype(values, np.uint8, within=(0, 9)),
                                  cast_to_dtype(values, np.uint8))  # fmt: skip


# -- spectral pansharpening, the default (issue 22) ------------------------------


@pytest.fixture(scope="module")
def wald() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Wald's protocol as benchmarks/bench_pansharpen.py builds it, on a 128 x 128 crop of
    astronaut (a tuning scene) with 3 bands: R, G and a NIR-like band; the pan their weighted
    sum plus noise of sigma 1; the bands degraded by the MTF-like Gaussian and decimated by 4.
    (truth, pan, ms), uint8."""
    from scipy import ndimage
    from skimage import data

    from napari_gifnet.methods.pansharpening import reduce

    rgb = data.astronaut()[160:288, 180:308].astype(np.float64)
    nir = ndimage.gaussian_filter(rgb @ [0.6, 0.3, 0.1], 1.0)
    truth = np.clip(np.rint(np.dstack([rgb[..., :2], nir])), 0, 255)
    noise = np.random.default_rng(0).normal(0, 1, (128, 128))
    pan = np.clip(np.rint(truth @ [0.35, 0.35, 0.3] + noise), 0, 255)
    ms = np.stack([np.clip(np.rint(reduce(truth[..., k], (32, 32))), 0, 255) for k in range(3)], -1)
    return truth.astype(np.uint8), pan.astype(np.uint8), ms.astype(np.uint8)


def test_the_default_beats_plain_upsampling_and_a_plain_gihs_under_walds_protocol(wald):
    from napari_gifnet.metrics.pansharpening import band_psnr, ergas, sam

    truth, pan, ms = wald
    result = pansharpen(ms, pan)
    assert result.metadata["method"] == "mtf_glp_rr" and result.metadata["family"] == "spectral"
    assert result.metadata["ratio"] == 4.0
    assert result.image.shape == truth.shape and result.image.dtype == np.uint8
    up = np.stack([resample_band(ms[..., k], pan.shape) for k in range(3)], -1).astype(np.float64)
    plain_gihs = np.clip(np.rint(up + pan[..., None] - up.mean(-1, keepdims=True)), 0, 255)
    out = result.image
    for other in (up, plain_gihs):  # PSNR, ERGAS and SAM all at least as good
        assert band_psnr(out, truth) > band_psnr(other, truth)
        assert ergas(out, truth) < ergas(other, truth)
        assert sam(out, truth) <= sam(other, truth) + 1e-9
    assert band_psnr(out, truth) > band_psnr(up, truth) + 3
    # each band keeps its colour: band means within one level of the truth's
    np.testing.assert_allclose(out.mean(axis=(0, 1)), truth.mean(axis=(0, 1)), atol=1.0)


@pytest.mark.parametrize("method", ["mtf_glp_rr", "mtf_glp", "gsa", "mtf_glp_hpm", "gihs", "brovey"])
def test_spectral_methods_keep_dtype_layout_and_band_ranges(method, wald):
    _, pan, ms = wald
    u16 = np.moveaxis(ms.astype(np.uint16) * 16, -1, 0)  # bands first, uint16
    r = pansharpen(u16, pan, method=method)
    assert r.image.shape == (3, *pan.shape) and r.image.dtype == np.uint16
    for k in range(3):
        assert u16[k].min() <= r.image[k].min() and r.image[k].max() <= u16[k].max()
    f32 = (ms / 255.0).astype(np.float32)
    rf = pansharpen(f32, pan, method=method)
    assert rf.image.dtype == np.float32 and rf.image.shape == (*pan.shape, 3)
    assert rf.luma.shape == (3, *pan.shape) and rf.luma.dtype == np.float32
    assert 0 <= rf.luma.min() and rf.luma.max() <= 1
    # the same fusion in any units: uint16 = 16 x uint8 and float = uint8 / 255
    np.testing.assert_allclose(r.image.astype(float) / 16 / 255,
                               np.moveaxis(rf.image, -1, 0), atol=1 / 255 / 16)  # fmt: skip


def test_spectral_rescale_rules(wald):
    _, pan, ms = wald
    small = ms.astype(np.float32)
    none = pansharpen(small, pan, rescale="none")
    ranged = pansharpen(small, pan)
    for k in range(3):
        lo, hi = float(small[..., k].min()), float(small[..., k].max())
        np.testing.assert_array_equal(ranged.image[..., k], np.clip(none.image[..., k], lo, hi))
    moments = pansharpen(small, pan, rescale="moments")
    up = resample_band(small[..., 0].astype(np.float64), pan.shape)
    assert moments.image[..., 0].std() == pytest.approx(up.std(), rel=1e-4)
    assert moments.image[..., 0].mean() == pytest.approx(up.mean(), rel=1e-4)


def test_an_rgb_pan_is_taken_by_its_luma(wald):
    _, pan, ms = wald
    grey = pansharpen(ms, pan)
    rgb = pansharpen(ms, np.dstack([pan] * 3))
    np.testing.assert_array_equal(rgb.image, grey.image)


def test_the_ratio_comes_from_the_grids_or_the_argument(wald):
    _, pan, ms = wald
    assert pansharpen(ms, pan).metadata["ratio"] == 4.0
    same = resample_band(ms[..., 0], pan.shape)
    assert pansharpen(same, pan).metadata["ratio"] == 4.0  # already on the pan grid: 4
    scaled = pansharpen(ms[:16, :16], pan[:32, :32], ms_scale=2, pan_scale=1)
    assert scaled.metadata["ratio"] == 2.0
    assert pansharpen(ms, pan, ratio=3).metadata["ratio"] == 3.0
    for bad in (0.5, float("nan"), "4", True):
        with pytest.raises(ValueError, match="ratio must be a finite number >= 1"):
            pansharpen(ms, pan, ratio=bad)


def test_the_default_does_not_modify_its_inputs(wald):
    _, pan, ms = wald
    ms_c, pan_c = ms.copy(), pan.copy()
    ms_c.setflags(write=False)
    pan_c.setflags(write=False)
    pansharpen(ms_c, pan_c, method="gsa")
    np.testing.assert_array_equal(ms_c, ms)
    np.testing.assert_array_equal(pan_c, pan)


def test_method_names_are_spectral_first_then_the_fusions():
    from napari_gifnet.workflows.pansharpening import DEFAULT_METHOD, pansharpen_method_names

    names = pansharpen_method_names()
    assert names[0] == DEFAULT_METHOD == "mtf_glp_rr"
    assert names.index("gifnet") > names.index("gsa_gifnet") and "laplacian" in names
    assert pansharpen(np.zeros((3, 8, 8)), np.zeros((8, 8)), method="MTF-GLP").metadata[
        "method"] == "mtf_glp"  # fmt: skip


def test_gsa_with_gifnet_details(wald, reference_weights):
    from napari_gifnet import fuse
    from napari_gifnet.methods.pansharpening import gsa_detail

    _, pan, ms = wald
    ms, pan = ms[:8, :8], pan[:32, :32]
    r = pansharpen(ms, pan, method="gsa_gifnet", weights=reference_weights, device="cpu",
                   rescale="none")  # fmt: skip
    assert r.image.shape == (32, 32, 3) and "weights_sha256" in r.metadata

    def detail(intensity, sharp):  # the same network call, made here
        lo, hi = min(intensity.min(), sharp.min()), max(intensity.max(), sharp.max())
        luma = fuse(intensity, sharp, normalization=(lo, hi), weights=reference_weights,
                    device="cpu").luma  # fmt: skip
        return lo + luma.astype(np.float64) * (hi - lo)

    up = np.stack([resample_band(ms[..., k].astype(np.float64), (32, 32)) for k in range(3)])
    expected = gsa_detail(up.astype(np.float64), pan.astype(np.float64), 4, detail)
    np.testing.assert_array_equal(r.image, np.clip(np.rint(np.moveaxis(expected, 0, -1)), 0, 255))


@pytest.mark.parametrize("band_axis", [0, -1, 2, 5, "x"])
def test_a_band_axis_for_one_band_is_refused(band_axis):
    message = (f"band_axis must be None for a single-band (H, W) multispectral image (8, 8), "
               f"not {band_axis!r}")  # fmt: skip
    with pytest.raises(ValueError, match=re.escape(message)):
        pansharpen(np.zeros((8, 8)), np.zeros((16, 16)), band_axis=band_axis, method="mean")
    assert pansharpen(np.zeros((8, 8)), np.zeros((16, 16)), method="mean").image.shape == (16, 16)


@pytest.mark.parametrize("ratio", [1, 4, 4.0])
def test_per_band_fusion_refuses_a_ratio_it_would_not_use(wald, ratio):
    _, pan, ms = wald
    with pytest.raises(ValueError, match="ratio is used by the spectral methods only; "
                                         "per-band fusion \\('mean'\\) takes none"):  # fmt: skip
        pansharpen(ms, pan, method="mean", ratio=ratio)
    assert pansharpen(ms, pan, method="gihs", ratio=ratio).metadata["ratio"] == float(ratio)


def test_gsa_gifnet_progress_has_one_total_from_the_start(wald, reference_weights):
    _, pan, ms = wald
    calls: list[tuple[int, int]] = []
    pansharpen(ms[:8, :8], pan[:32, :32], method="gsa_gifnet", weights=reference_weights,
               device="cpu", progress=lambda done, total: calls.append((done, total)))  # fmt: skip
    done = [d for d, _ in calls]
    assert {t for _, t in calls} == {100} and len(calls) > 2
    assert done[0] == 0 and done[-1] == 100 and done == sorted(done)


@pytest.mark.parametrize("method", ["gihs", "brovey", "mtf_glp_rr"])
def test_float64_bands_are_resampled_in_float64(method):
    from scipy import ndimage

    from napari_gifnet.methods.pansharpening import pansharpen_bands

    rng = np.random.default_rng(3)
    ms, pan = rng.random((2, 8, 8)) + 0.5, rng.random((32, 32)) + 0.5
    result = pansharpen(ms, pan, band_axis=0, method=method, rescale="none")
    j = (np.arange(32) + 0.5) / 4 - 0.5  # pixel centres of the pan grid, in ms pixels
    grid = np.meshgrid(j, j, indexing="ij")
    up = np.stack([np.clip(ndimage.map_coordinates(b, grid, order=3, mode="nearest"),
                           b.min(), b.max()) for b in ms])  # fmt: skip
    expected = pansharpen_bands(method, up, pan, 4.0).astype(np.float32)
    np.testing.assert_array_equal(result.image, expected)
