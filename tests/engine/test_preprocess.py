"""Tests for napari_gifnet.engine.preprocess (input checks and normalisation)."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest

from napari_gifnet.engine.inputs import as_array, check_dtype
from napari_gifnet.engine.preprocess import published_luma_uint8, to_luma_unit, to_rgb_unit


def _rgb(r, g, b, dtype=np.uint8):
    return np.array([[[r, g, b]]], dtype=dtype)


# --- uint8: the published pipeline -------------------------------------------------


def test_uint8_grey_is_divided_by_255():
    img = np.arange(256, dtype=np.uint8).reshape(16, 16)
    luma, meta = to_luma_unit(img)
    assert luma.dtype == np.float32 and luma.shape == (16, 16)
    np.testing.assert_array_equal(luma, img.astype(np.float32) / np.float32(255))
    assert meta["normalization"] == "dtype"
    assert meta["range"] == (0.0, 255.0)
    assert meta["rgb"] is False and meta["published_uint8"] is True
    assert meta["dtype"] == "uint8"


@pytest.mark.parametrize(
    "rgb, expected",
    [
        ((255, 0, 0), 76),  # 76.245 -> 76
        ((0, 255, 0), 149),  # 149.685 -> 149 (rounding would give 150)
        ((0, 0, 255), 29),  # 29.07
        ((255, 255, 255), 255),
        ((0, 0, 0), 0),
        ((10, 20, 30), 18),  # 2.99 + 11.74 + 3.42 = 18.15
    ],
)
def test_published_luma_known_values(rgb, expected):
    assert published_luma_uint8(_rgb(*rgb))[0, 0] == expected
    luma, meta = to_luma_unit(_rgb(*rgb))
    assert luma[0, 0] == np.float32(expected) / np.float32(255)
    assert meta["rgb"] is True and meta["published_uint8"] is True


def test_published_luma_truncates_not_rounds():
    # 0.299*100 + 0.587*100 + 0.114*101 = 100.114; and green 149.685 -> 149
    img = np.array([[[0, 255, 0], [100, 100, 101], [3, 3, 4]]], dtype=np.uint8)
    y = published_luma_uint8(img)
    assert y.dtype == np.uint8 and y.shape == (1, 3)
    assert y.tolist() == [[149, 100, 3]]
    exact = 0.299 * img[..., 0] + 0.587 * img[..., 1] + 0.114 * img[..., 2]
    assert np.round(exact).astype(np.uint8).tolist() != y.tolist()


def test_published_luma_is_computed_in_float64():
    # 0.299*0 + 0.587*72 + 0.114*24 is 44.99999999999999 in float64 (-> 44),
    # but 45.0 in float32; the published inputs match float64.
    assert published_luma_uint8(_rgb(0, 72, 24))[0, 0] == 44


def test_published_luma_rejects_other_dtypes():
    with pytest.raises(ValueError, match="uint8"):
        published_luma_uint8(np.zeros((2, 2, 3), dtype=np.uint16))


def test_matches_published_input_of_medical_case(reference_dir: Path):
    # reference_dir skips when the material is missing, or fails with GIFNET_REQUIRE_REFERENCE=1
    pil = pytest.importorskip("PIL.Image")
    case = json.loads((reference_dir / "official" / "index.json").read_text())["Medical"]
    assert case["a_is_rgb"] and case["file_a"].endswith(".png")  # lossless: exact decode
    rgb = np.asarray(pil.open(reference_dir / case["file_a"]).convert("RGB"))
    expected = np.load(reference_dir / "official" / "Medical.npz")["input_a"]
    np.testing.assert_array_equal(published_luma_uint8(rgb), expected)
    luma, _ = to_luma_unit(rgb)
    np.testing.assert_array_equal(luma, expected.astype(np.float32) / np.float32(255))


# --- other dtypes -----------------------------------------------------------------


def test_uint16_12bit_auto_uses_percentile():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 4096, size=(200, 200)).astype(np.uint16)
    luma, meta = to_luma_unit(img)
    assert meta["normalization"] == "percentile"
    lo, hi = meta["range"]
    assert lo == pytest.approx(np.percentile(img, 0.1))
    assert hi == pytest.approx(np.percentile(img, 99.9))
    assert luma.min() == 0.0 and luma.max() == 1.0
    assert luma.mean() == pytest.approx(0.5, abs=0.02)
    # The "dtype" rule would leave it nearly black.
    dark, meta = to_luma_unit(img, normalization="dtype")
    assert meta["range"] == (0.0, 65535.0)
    assert dark.max() <= 4095 / 65535 + 1e-7


def test_percentile_clips_outliers():
    img = np.full((100, 100), 1000, dtype=np.uint16)
    img[:50] = 2000
    img[0, 0] = 65535  # one hot pixel
    luma, meta = to_luma_unit(img, normalization="percentile")
    assert meta["range"][1] <= 2000 + 1e-9
    assert luma[0, 0] == 1.0 and luma[1, 0] == 1.0 and luma[99, 99] == 0.0


def test_percentile_falls_back_to_minmax_for_sparse_images():
    img = np.zeros((100, 100), dtype=np.uint16)
    img[0, 0] = 7
    luma, meta = to_luma_unit(img)
    assert meta["normalization"] == "minmax" and meta["range"] == (0.0, 7.0)
    assert luma[0, 0] == 1.0 and luma.sum() == 1.0


def test_minmax():
    img = np.array([[10, 20], [30, 50]], dtype=np.int16)
    luma, meta = to_luma_unit(img, normalization="minmax")
    assert meta["range"] == (10.0, 50.0)
    np.testing.assert_allclose(luma, [[0, 0.25], [0.5, 1]])


def test_fixed_range_is_clipped():
    img = np.array([[0, 100, 200, 300]], dtype=np.uint16)
    luma, meta = to_luma_unit(img, normalization=(100, 200))
    assert meta["normalization"] == "fixed" and meta["range"] == (100.0, 200.0)
    np.testing.assert_array_equal(luma, np.array([[0, 0, 1, 1]], dtype=np.float32))
    luma, _ = to_luma_unit(img.astype(np.float64), normalization=[0.0, 400.0])
    np.testing.assert_allclose(luma, [[0, 0.25, 0.5, 0.75]])


def test_signed_dtype_range():
    img = np.array([[-32768, 0, 32767]], dtype=np.int16)
    luma, meta = to_luma_unit(img, normalization="dtype")
    assert meta["range"] == (-32768.0, 32767.0)
    np.testing.assert_allclose(luma, [[0, 32768 / 65535, 1]], rtol=1e-6)


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_float_in_unit_range_passes_through(dtype):
    img = np.linspace(0, 1, 12, dtype=dtype).reshape(3, 4)
    luma, meta = to_luma_unit(img)
    assert meta["normalization"] == "unchanged" and meta["range"] == (0.0, 1.0)
    np.testing.assert_array_equal(luma, img.astype(np.float32))


def test_float_out_of_range_auto_and_dtype():
    img = np.linspace(-50, 250, 10001).reshape(1, -1)
    luma, meta = to_luma_unit(img)
    assert meta["normalization"] == "percentile"
    assert luma.min() == 0 and luma.max() == 1
    clipped, meta = to_luma_unit(img, normalization="dtype")
    assert meta["range"] == (0.0, 1.0)
    np.testing.assert_array_equal(clipped, np.clip(img, 0, 1).astype(np.float32))


def test_bool():
    img = np.array([[True, False], [False, True]])
    luma, meta = to_luma_unit(img)
    assert meta["normalization"] == "dtype"
    np.testing.assert_array_equal(luma, [[1, 0], [0, 1]])
    luma, _ = to_luma_unit(img, normalization="percentile")
    np.testing.assert_array_equal(luma, [[1, 0], [0, 1]])


def test_rgb_uint16_luma_in_float_without_truncation():
    img = np.array([[[0, 0, 0], [65535, 65535, 65535], [0, 65535, 0]]], dtype=np.uint16)
    luma, meta = to_luma_unit(img, normalization="dtype")
    assert meta["rgb"] is True and meta["published_uint8"] is False
    np.testing.assert_allclose(luma, [[0, 1, 0.587]], rtol=1e-6)


def test_rgb_uint8_non_dtype_rule_is_float_luma():
    img = np.array([[[0, 0, 0], [0, 200, 0]]], dtype=np.uint8)
    luma, meta = to_luma_unit(img, normalization="minmax")
    assert meta["range"] == (0.0, 200.0) and meta["published_uint8"] is False
    np.testing.assert_allclose(luma, [[0, 0.587]], rtol=1e-6)


@pytest.mark.parametrize("rule", ["minmax", "percentile"])
def test_constant_image_maps_to_zero(rule):
    img = np.full((8, 8), 1234, dtype=np.uint16)
    luma, meta = to_luma_unit(img, normalization=rule)
    assert meta["constant"] is True and meta["range"] == (1234.0, 1234.0)
    assert luma.dtype == np.float32 and not luma.any()


def test_constant_float_image_auto():
    luma, meta = to_luma_unit(np.full((4, 4), 7.5))
    assert meta["constant"] and not luma.any()
    luma, _ = to_luma_unit(np.full((4, 4), 0.25))  # in [0, 1]: unchanged
    np.testing.assert_array_equal(luma, 0.25)


# --- RGBA, errors -------------------------------------------------------------------


def test_rgba_warns_and_drops_alpha():
    img = np.zeros((2, 2, 4), dtype=np.uint8)
    img[..., 0] = 255
    img[..., 3] = 7
    with pytest.warns(UserWarning, match="'my layer'.*alpha"):
        luma, meta = to_luma_unit(img, name="my layer")
    assert meta["alpha_dropped"] is True and meta["shape"] == (2, 2, 4)
    np.testing.assert_array_equal(luma, np.float32(76) / np.float32(255))


def test_rgb_does_not_warn():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        to_luma_unit(np.zeros((2, 2, 3), dtype=np.uint8))


@pytest.mark.parametrize(
    "shape", [(5,), (2, 2, 2), (2, 2, 5), (2, 2, 3, 1), (1, 2, 2, 3), (2, 2, 1)]
)
def test_bad_shapes(shape):
    with pytest.raises(ValueError, match=r"'img'.*shape \(.*unsupported shape"):
        to_luma_unit(np.zeros(shape, dtype=np.uint8), name="img")


@pytest.mark.parametrize("shape", [(0, 5), (5, 0), (0, 0, 3)])
def test_empty(shape):
    with pytest.raises(ValueError, match="'img'.*empty"):
        to_luma_unit(np.zeros(shape, dtype=np.uint8), name="img")


@pytest.mark.parametrize(
    "arr",
    [
        np.zeros((2, 2), dtype=np.complex64),
        np.zeros((2, 2), dtype=object),
        np.array([["a", "b"], ["c", "d"]]),
    ],
)
def test_bad_dtypes(arr):
    with pytest.raises(ValueError, match=rf"'img'.*dtype {arr.dtype}.*unsupported data type"):
        to_luma_unit(arr, name="img")


def test_nan_and_inf_are_counted():
    img = np.zeros((4, 4), dtype=np.float32)
    img[0, 0] = np.nan
    img[1, 1] = np.inf
    img[2, 2] = -np.inf
    with pytest.raises(ValueError, match="'vis'.*3 non-finite"):
        to_luma_unit(img, name="vis")
    rgb = np.zeros((2, 2, 3))
    rgb[0, 0, 1] = np.nan
    with pytest.raises(ValueError, match="'ir'.*1 non-finite"):
        to_luma_unit(rgb, name="ir")
    with pytest.raises(ValueError, match="1 non-finite"):
        to_rgb_unit(rgb)


@pytest.mark.parametrize(
    "bad", ["linear", "MINMAX", (1, 1), (2, 1), (0, np.inf), (1, 2, 3), "", None, 5]
)
def test_invalid_normalization(bad):
    with pytest.raises(ValueError, match="valid choices are 'auto', 'dtype', 'minmax'"):
        to_luma_unit(np.zeros((2, 2), dtype=np.uint8), normalization=bad)


# --- input never modified -----------------------------------------------------------


@pytest.mark.parametrize(
    "normalization", ["auto", "dtype", "minmax", "percentile", (10.0, 3000.0)]
)
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int32, np.float32, np.float64])
@pytest.mark.parametrize("channels", [None, 3, 4])
def test_input_unmodified(normalization, dtype, channels):
    rng = np.random.default_rng(1)
    shape = (12, 10) if channels is None else (12, 10, channels)
    base = (rng.random(shape) * 250).astype(dtype)
    big = np.zeros((24, 20) + shape[2:], dtype=dtype)
    big[::2, ::2] = base
    view = big[::2, ::2]  # non-contiguous view
    copy = base.copy()
    ro = base.copy()
    ro.setflags(write=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        for arr in (view, ro):
            luma, _ = to_luma_unit(arr, normalization=normalization)
            assert luma.flags.c_contiguous and luma.flags.writeable
            assert not np.shares_memory(luma, arr)
            luma[...] = 0.5  # writing the result must not touch the input
            rgb = to_rgb_unit(arr, normalization)
            if rgb is not None:
                rgb[...] = 0.5
    np.testing.assert_array_equal(view, copy)
    np.testing.assert_array_equal(ro, copy)
    assert not ro.flags.writeable


# --- to_rgb_unit --------------------------------------------------------------------


def test_to_rgb_unit_grey_is_none():
    assert to_rgb_unit(np.zeros((3, 3), dtype=np.uint8)) is None


def test_to_rgb_unit_uint8_and_alpha():
    img = np.array([[[255, 128, 0, 9]]], dtype=np.uint8)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        rgb = to_rgb_unit(img)
    assert rgb.dtype == np.float32 and rgb.shape == (1, 1, 3)
    np.testing.assert_array_equal(rgb, np.array([[[255, 128, 0]]], np.float32) / 255)


def test_to_rgb_unit_shares_luma_range():
    rng = np.random.default_rng(2)
    img = rng.integers(100, 4000, size=(50, 50, 3)).astype(np.uint16)
    rgb = to_rgb_unit(img)
    luma, meta = to_luma_unit(img)
    assert meta["normalization"] == "percentile"
    assert rgb.min() == 0 and rgb.max() == 1
    expected = 0.299 * rgb[..., 0] + 0.587 * rgb[..., 1] + 0.114 * rgb[..., 2]
    np.testing.assert_allclose(luma, expected, atol=1e-6)


# --- nothing silently wrong ----------------------------------------------------------


@pytest.mark.filterwarnings("error")
@pytest.mark.parametrize("rule", ["auto", "minmax", "percentile", (-1.7e308, 1.7e308)])
def test_a_range_beyond_float64_scales_without_overflow(rule):
    img = np.array([[-1.7e308, 1.7e308], [0.0, -1e308]])
    luma, meta = to_luma_unit(img, normalization=rule, name="a")
    assert np.isfinite(luma).all() and luma.min() == 0.0 and luma.max() == 1.0
    assert luma[1, 0] == pytest.approx(0.5, abs=0.01)
    assert all(np.isfinite(v) for v in meta["range"])
    rgb = to_rgb_unit(np.dstack([img, img[::-1], img.T]), rule, name="a")
    assert np.isfinite(rgb).all() and (0 <= rgb).all() and (rgb <= 1).all()


@pytest.mark.filterwarnings("error")
def test_values_far_outside_a_fixed_range_clip_without_warnings():
    img = np.array([[-1.7e308, 1.7e308], [-5e307, 0.0]])  # 1.7e308 - -1e308 overflows
    luma, _ = to_luma_unit(img, normalization=(-1e308, 0.0))
    assert luma.tolist() == [[0.0, 1.0], [0.5, 1.0]]


@pytest.mark.parametrize("channels", [3, 4])
def test_channel_first_gets_a_hint(channels):
    img = np.zeros((channels, 20, 30), dtype=np.uint8)
    with pytest.raises(
        ValueError, match=r"input 'a' .*looks channel-first; RGB images are \(H, W, 3\): use "
        r"np\.moveaxis\(x, 0, -1\)"
    ):
        to_luma_unit(img, name="a")
    with pytest.raises(ValueError, match="stack of planes") as exc:  # other stacks: no hint
        to_luma_unit(np.zeros((5, 20, 30), dtype=np.uint8), name="a")
    assert "channel-first" not in str(exc.value)


def test_bfloat16_tensors_are_read_as_float32():
    torch = pytest.importorskip("torch")
    t = torch.tensor([[0.5, 0.25], [1.0, 0.0078125]], dtype=torch.bfloat16)
    arr = as_array(t, "a")
    assert arr.dtype == np.float32
    np.testing.assert_array_equal(arr, t.float().numpy())
    luma, _ = to_luma_unit(arr, name="a")
    np.testing.assert_array_equal(luma, to_luma_unit(t.float().numpy(), name="a")[0])


@pytest.mark.parametrize(
    "dtype, error", [(np.complex64, ValueError), ("<U1", ValueError), ("M8[D]", ValueError),
                     (object, TypeError)],
)  # fmt: skip
def test_check_dtype_gives_the_messages_of_the_eager_path(dtype, error):
    with pytest.raises(error) as eager:
        to_luma_unit(as_array(np.zeros((4, 5)).astype(dtype), "a"), name="a")
    with pytest.raises(error) as early:
        check_dtype(np.dtype(dtype), (4, 5), "a")
    assert str(early.value) == str(eager.value)
    check_dtype(np.dtype(np.float16), (4, 5), "a")  # fusable: nothing raised
