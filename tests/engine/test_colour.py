"""Tests for napari_gifnet.engine.colour (BT.601 YCbCr and chroma transfer)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from napari_gifnet.engine.colour import (
    ColourPlan,
    apply_colour,
    combine_chroma,
    plan_colour,
    rgb_to_ycbcr,
    ycbcr_to_rgb,
)

unit_rgb = arrays(
    np.float32,
    st.tuples(st.integers(1, 6), st.integers(1, 6), st.just(3)),
    elements=st.floats(0, 1, width=32),
)


def _px(r, g, b):
    return np.array([[[r, g, b]]], dtype=np.float32)


@pytest.mark.parametrize(
    "rgb, ycbcr",
    [
        ((1, 0, 0), (0.299, -0.168736, 0.5)),
        ((0, 1, 0), (0.587, -0.331264, -0.418688)),
        ((0, 0, 1), (0.114, 0.5, -0.081312)),
        ((1, 1, 1), (1.0, 0.0, 0.0)),
        ((0, 0, 0), (0.0, 0.0, 0.0)),
        ((1, 1, 0), (0.886, -0.5, 0.081312)),
    ],
)
def test_known_ycbcr(rgb, ycbcr):
    y, cb, cr = rgb_to_ycbcr(_px(*rgb))
    assert y.dtype == cb.dtype == cr.dtype == np.float32
    np.testing.assert_allclose([y[0, 0], cb[0, 0], cr[0, 0]], ycbcr, atol=1e-6)


@pytest.mark.parametrize("level", [0.0, 0.2, 0.5, 0.731, 1.0])
def test_neutral_grey_has_zero_chroma(level):
    y, cb, cr = rgb_to_ycbcr(np.full((3, 4, 3), level, dtype=np.float32))
    np.testing.assert_allclose(y, level, atol=1e-7)
    np.testing.assert_allclose(cb, 0, atol=1e-7)
    np.testing.assert_allclose(cr, 0, atol=1e-7)


@settings(max_examples=200, deadline=None)
@given(unit_rgb)
def test_round_trip(rgb):
    y, cb, cr = rgb_to_ycbcr(rgb)
    assert np.all((y >= 0) & (y <= 1))
    assert np.all(np.abs(cb) <= 0.5 + 1e-7) and np.all(np.abs(cr) <= 0.5 + 1e-7)
    back = ycbcr_to_rgb(y, cb, cr)
    assert back.dtype == np.float32 and back.shape == rgb.shape
    np.testing.assert_allclose(back, rgb, atol=2e-6)


def test_ycbcr_to_rgb_clips():
    out = ycbcr_to_rgb(np.array([[1.0, 0.0]]), np.array([[0.5, -0.5]]), np.array([[0.5, 0.0]]))
    assert out.min() >= 0 and out.max() <= 1
    # Y=1, Cb=Cr=0.5: R=1.701 and B=1.886 clip to 1, G=1-0.344136/2-0.714136/2
    np.testing.assert_allclose(out[0, 0], [1, 1 - 0.5 * (0.344136 + 0.714136), 1], atol=1e-6)
    # Y=0, Cb=-0.5: B=-0.886 clips to 0, G=0.172068
    np.testing.assert_allclose(out[0, 1], [0, 0.172068, 0], atol=1e-6)


def test_rgb_to_ycbcr_rejects_bad_shape():
    with pytest.raises(ValueError, match=r"\(H, W, 3\)"):
        rgb_to_ycbcr(np.zeros((2, 2, 4)))


# --- combine_chroma -----------------------------------------------------------------


def test_combine_neutral_source_gives_other_chroma():
    a = np.array([[0.3, -0.2, 0.0]])
    zero = np.zeros_like(a)
    cb, cr = combine_chroma(a, -a, zero, zero)
    np.testing.assert_allclose(cb, a, rtol=1e-6)
    np.testing.assert_allclose(cr, -a, rtol=1e-6)
    cb, cr = combine_chroma(zero, zero, a, -a)
    np.testing.assert_allclose(cb, a, rtol=1e-6)
    np.testing.assert_allclose(cr, -a, rtol=1e-6)


def test_combine_known_answers():
    # equal magnitude, opposite signs -> neutral; both zero -> 0 (no NaN)
    cb, cr = combine_chroma(
        np.array([0.2, 0.0, 0.1, 0.3]),
        np.array([-0.4, 0.0, 0.1, 0.0]),
        np.array([-0.2, 0.0, 0.3, 0.1]),
        np.array([0.4, 0.0, 0.1, 0.0]),
    )
    # (0.1*0.1 + 0.3*0.3) / 0.4 = 0.25 ; (0.3*0.3 + 0.1*0.1) / 0.4 = 0.25
    np.testing.assert_allclose(cb, [0.0, 0.0, 0.25, 0.25], atol=1e-7)
    np.testing.assert_allclose(cr, [0.0, 0.0, 0.1, 0.0], atol=1e-7)
    assert np.all(np.isfinite(cb)) and np.all(np.isfinite(cr))
    assert cb.dtype == np.float32


def test_combine_stays_between_sources():
    rng = np.random.default_rng(0)
    a, b = rng.uniform(-0.5, 0.5, (2, 64))
    c, _ = combine_chroma(a, a, b, b)
    assert np.all(c >= np.minimum(a, b) - 1e-7) and np.all(c <= np.maximum(a, b) + 1e-7)


# --- plan_colour / apply_colour -----------------------------------------------------


def test_no_rgb_input_means_grey():
    assert plan_colour(None, None) is None


def test_apply_colour_needs_plan_and_matching_shape():
    plan = plan_colour(np.zeros((2, 3, 3), np.float32), None)
    with pytest.raises(TypeError):
        apply_colour(np.zeros((2, 3)), None)
    with pytest.raises(ValueError, match="shape"):
        apply_colour(np.zeros((3, 2)), plan)
    with pytest.raises(ValueError, match="shape"):
        plan_colour(np.zeros((2, 3, 3)), np.zeros((3, 2, 3)))


@pytest.mark.parametrize("side", ["a", "b"])
def test_fused_equal_to_own_luma_reproduces_input(side):
    rng = np.random.default_rng(3)
    rgb = rng.random((17, 13, 3)).astype(np.float32)
    plan = plan_colour(rgb, None) if side == "a" else plan_colour(None, rgb)
    assert isinstance(plan, ColourPlan) and plan.source == side
    y, _, _ = rgb_to_ycbcr(rgb)
    out = apply_colour(y, plan)
    assert out.dtype == np.float32 and out.shape == rgb.shape
    np.testing.assert_allclose(out, rgb, atol=1e-6)


def test_grey_plus_colour_keeps_hue():
    skcolor = pytest.importorskip("skimage.color")
    rng = np.random.default_rng(4)
    # moderately saturated colours, so a changed luma does not clip
    rgb = (0.35 + 0.3 * rng.random((20, 20, 3))).astype(np.float32)
    plan = plan_colour(None, rgb)
    y, cb, cr = rgb_to_ycbcr(rgb)
    fused = np.clip(0.8 * y + 0.1, 0, 1)  # a different luma
    out = apply_colour(fused, plan)
    y2, cb2, cr2 = rgb_to_ycbcr(out)
    np.testing.assert_allclose(y2, fused, atol=1e-6)
    np.testing.assert_allclose(cb2, cb, atol=1e-6)
    np.testing.assert_allclose(cr2, cr, atol=1e-6)
    dh = skcolor.rgb2hsv(out)[..., 0] - skcolor.rgb2hsv(rgb)[..., 0]  # hue in [0, 1)
    np.testing.assert_allclose(np.angle(np.exp(2j * np.pi * dh)), 0, atol=1e-3)


def test_two_rgb_inputs_combine_chroma():
    red = np.broadcast_to(_px(1, 0, 0), (2, 2, 3)).copy()
    grey = np.full((2, 2, 3), 0.5, dtype=np.float32)
    plan = plan_colour(red, grey)
    assert plan.source == "both"
    np.testing.assert_allclose(plan.cb, -0.168736, atol=1e-6)
    np.testing.assert_allclose(plan.cr, 0.5, atol=1e-6)
    # a colour image and its complementary colour of equal strength cancel
    warm = np.broadcast_to(_px(0.6, 0.45, 0.4), (2, 2, 3)).copy()
    y_w, cb_w, cr_w = rgb_to_ycbcr(warm)
    cool = ycbcr_to_rgb(y_w, -cb_w, -cr_w)  # no clipping at this saturation
    plan = plan_colour(warm, cool)
    np.testing.assert_allclose(plan.cb, 0, atol=1e-6)
    np.testing.assert_allclose(plan.cr, 0, atol=1e-6)
    np.testing.assert_allclose(apply_colour(np.full((2, 2), 0.4), plan), 0.4, atol=1e-6)


def test_inputs_unmodified():
    rng = np.random.default_rng(5)
    a = rng.random((5, 6, 3)).astype(np.float32)
    b = rng.random((5, 6, 3)).astype(np.float32)
    a.setflags(write=False)
    b.setflags(write=False)
    a0, b0 = a.copy(), b.copy()
    plan = plan_colour(a, b)
    apply_colour(np.full((5, 6), 0.5, dtype=np.float32), plan)
    np.testing.assert_array_equal(a, a0)
    np.testing.assert_array_equal(b, b0)


# --------------------------------------------------------------------------- grey stored as RGB
def _grey_as_rgb(grey: np.ndarray) -> np.ndarray:
    return np.repeat(grey[..., None], 3, axis=-1)


def test_every_8_bit_grey_level_stored_as_rgb_reads_back_exactly():
    from napari_gifnet.engine.preprocess import to_luma_unit

    levels = np.arange(256, dtype=np.uint8).reshape(16, 16)
    luma, meta = to_luma_unit(_grey_as_rgb(levels))
    np.testing.assert_array_equal(np.rint(luma * 255).astype(np.uint8), levels)
    np.testing.assert_array_equal(luma, to_luma_unit(levels)[0])  # the same as the grey image
    assert meta["grey_rgb"] and meta["rgb"]


def test_grey_rgb_published_keeps_the_published_truncation():
    from napari_gifnet.engine.preprocess import published_luma_uint8, to_luma_unit

    levels = np.arange(256, dtype=np.uint8).reshape(16, 16)
    rgb = _grey_as_rgb(levels)
    luma, meta = to_luma_unit(rgb, grey_rgb="published")
    np.testing.assert_array_equal(luma * 255, published_luma_uint8(rgb).astype(np.float32))
    # the float BT.601 weights sum to just under 1: 65 levels come out one lower
    assert np.count_nonzero(published_luma_uint8(rgb) != levels) == 65
    assert not meta["grey_rgb"]
    with pytest.raises(ValueError, match="grey_rgb"):
        to_luma_unit(rgb, grey_rgb="truncate")


def test_grey_rgb_of_other_types_and_rgba():
    from napari_gifnet.engine.preprocess import to_luma_unit

    grey = np.linspace(0.0, 1.0, 30, dtype=np.float32).reshape(5, 6)
    np.testing.assert_array_equal(to_luma_unit(_grey_as_rgb(grey))[0], grey)
    wide = (grey * 4000).astype(np.uint16)
    np.testing.assert_array_equal(to_luma_unit(_grey_as_rgb(wide))[0], to_luma_unit(wide)[0])
    rgba = np.concatenate([_grey_as_rgb(wide), np.full((5, 6, 1), 9, np.uint16)], axis=-1)
    with pytest.warns(UserWarning, match="alpha"):
        np.testing.assert_array_equal(to_luma_unit(rgba)[0], to_luma_unit(wide)[0])


def test_a_colour_image_with_grey_pixels_keeps_the_published_luma():
    from napari_gifnet.engine.preprocess import published_luma_uint8, to_luma_unit

    rgb = _grey_as_rgb(np.arange(256, dtype=np.uint8).reshape(16, 16)).copy()
    rgb[0, 0] = (10, 20, 30)  # one coloured pixel: a colour image
    np.testing.assert_array_equal(to_luma_unit(rgb)[0] * 255, published_luma_uint8(rgb))


def test_the_published_infrared_file_is_read_as_the_network_saw_it(reference_dir):
    """The IVIF infrared image is grey stored as RGB; the published run read its
    one channel, and so does the default now (the published luma differs)."""
    from napari_gifnet.engine.preprocess import to_luma_unit
    from napari_gifnet.io.images import read_image

    rgb = read_image(reference_dir / "pairs" / "IVIF" / "a_infrared.jpg")
    seen = np.load(reference_dir / "official" / "IVIF.npz")["input_a"]
    assert rgb.ndim == 3
    np.testing.assert_array_equal(np.rint(to_luma_unit(rgb)[0] * 255), seen)
    assert np.any(np.rint(to_luma_unit(rgb, grey_rgb="published")[0] * 255) != seen)


def test_grey_stored_as_rgb_adds_no_colour():
    y = np.random.default_rng(3).random((5, 7)).astype(np.float32)
    grey_rgb = _grey_as_rgb(y)
    colour = np.random.default_rng(4).random((5, 7, 3)).astype(np.float32)
    both = plan_colour(grey_rgb, colour)
    alone = plan_colour(None, colour)
    np.testing.assert_allclose(both.cb, alone.cb, atol=1e-7)
    np.testing.assert_allclose(both.cr, alone.cr, atol=1e-7)
    out = apply_colour(y, plan_colour(grey_rgb, grey_rgb))  # two grey-as-RGB inputs
    for k in range(3):
        np.testing.assert_array_equal(out[..., k], y)


def test_a_neutral_chunk_of_a_colour_plane_is_read_as_its_plane(reference_weights):
    import dask.array as da

    from napari_gifnet.engine.fusion import fuse
    from napari_gifnet.engine.lazy import fuse_dask

    rng = np.random.default_rng(5)
    rgb = rng.integers(0, 256, (64, 192, 3), dtype=np.uint8)
    rgb[:, :128] = rgb[:, :128, :1]  # neutral on the left: a chunk and its margin
    grey = rng.integers(0, 256, (64, 192), dtype=np.uint8)
    lazy = fuse_dask(da.from_array(rgb, chunks=(64, 64, 3)), grey, weights=reference_weights,
                     device="cpu", chunk=64).compute()  # fmt: skip
    eager = fuse(rgb, grey, weights=reference_weights, device="cpu").image
    np.testing.assert_allclose(lazy, eager, atol=1e-6)
