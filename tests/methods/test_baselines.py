"""Classical fusion baselines: known answers, colour handling, input checks."""

from __future__ import annotations

import inspect

import numpy as np
import pytest
from scipy import ndimage

from napari_gifnet import FusionResult
from napari_gifnet.engine.colour import apply_colour, plan_colour
from napari_gifnet.engine.options import FusionOptions
from napari_gifnet.engine.preprocess import to_rgb_unit
from napari_gifnet.methods.classical import (
    BASELINES,
    fuse_guided,
    fuse_max,
    fuse_mean,
    fuse_mertens,
    fuse_with,
    guided_filter,
    laplacian_pyramid,
    reconstruct_laplacian,
)

METHODS = list(BASELINES)
MULTISCALE = ["laplacian", "dwt", "guided"]


def _scene(shape=(96, 120), seed=0) -> np.ndarray:
    """A textured float image in [0, 1]."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0 : shape[0], 0 : shape[1]]
    img = 0.5 + 0.25 * np.sin(x / 5.0) * np.cos(y / 7.0)
    img = img + 0.15 * ndimage.gaussian_filter(rng.standard_normal(shape), 1.0)
    return np.clip(img, 0.0, 1.0)


def test_registry() -> None:
    assert METHODS == ["mean", "max", "laplacian", "dwt", "guided", "mertens"]
    params = inspect.signature(fuse_guided).parameters
    assert {"normalization", "progress", "r1", "eps1", "r2", "eps2"} <= set(params)
    assert params["r1"].default == 45 and params["eps2"].default == 1e-6


@pytest.mark.parametrize("shape", [(1, 1), (2, 3), (7, 5), (64, 64), (97, 131)])
@pytest.mark.parametrize("levels", [None, 0, 1, 4])
def test_laplacian_pyramid_reconstructs_exactly(shape, levels) -> None:
    image = np.random.default_rng(1).random(shape)
    pyramid = laplacian_pyramid(image, levels)
    if levels is not None:
        assert len(pyramid) == levels + 1
    np.testing.assert_allclose(reconstruct_laplacian(pyramid), image, rtol=0, atol=1e-6)


def test_mean_of_two_constants() -> None:
    result = fuse_mean(np.full((16, 20), 0.2), np.full((16, 20), 0.6))
    assert isinstance(result, FusionResult)
    assert result.luma.dtype == np.float32 and result.image.shape == (16, 20)
    np.testing.assert_allclose(result.luma, 0.4, atol=1e-7)
    np.testing.assert_allclose(
        fuse_mean(np.full((4, 4), 51, np.uint8), np.full((4, 4), 153, np.uint8)).luma,
        0.4,
        atol=1e-7,
    )


def test_max_picks_the_larger() -> None:
    a, b = _scene(seed=1), _scene(seed=2)
    np.testing.assert_allclose(fuse_max(a, b).luma, np.maximum(a, b), atol=1e-7)


@pytest.mark.parametrize("method", METHODS)
def test_fusing_an_image_with_itself_returns_it(method) -> None:
    image = _scene((70, 90))
    np.testing.assert_allclose(fuse_with(method, image, image).luma, image, atol=1e-6)


@pytest.mark.parametrize("method", MULTISCALE)
def test_sharp_and_blurred_is_closer_to_sharp_than_the_mean(method) -> None:
    sharp = _scene()
    blurred = ndimage.gaussian_filter(sharp, 2.5)
    mean_error = np.abs(fuse_mean(sharp, blurred).luma - sharp).mean()
    error = np.abs(fuse_with(method, sharp, blurred).luma - sharp).mean()
    assert error < 0.7 * mean_error
    # order does not matter either
    assert np.abs(fuse_with(method, blurred, sharp).luma - sharp).mean() < 0.7 * mean_error


@pytest.mark.parametrize("method", MULTISCALE)
def test_complementary_focus_recovers_the_scene(method) -> None:
    scene = _scene()
    blurred = ndimage.gaussian_filter(scene, 2.5)
    near, far = scene.copy(), scene.copy()
    near[:, 60:], far[:, :60] = blurred[:, 60:], blurred[:, :60]
    mean_error = np.abs(fuse_mean(near, far).luma - scene).mean()
    assert np.abs(fuse_with(method, near, far).luma - scene).mean() < 0.7 * mean_error


def test_mertens_is_closer_to_mid_grey_where_one_exposure_is_clipped() -> None:
    x = np.mgrid[0:128, 0:160][1]
    rng = np.random.default_rng(3)
    scene = x / 159 * 0.9 + 0.05 + 0.08 * ndimage.gaussian_filter(rng.standard_normal(x.shape), 1.5)
    scene = np.clip(scene, 0, 1)
    over, under = np.clip(scene * 2.2, 0, 1), scene * 0.45
    clipped = over >= 1
    assert 0.2 < clipped.mean() < 0.8
    fused = fuse_mertens(over, under).luma

    def deviation(v):
        return np.abs(v - 0.5)[clipped].mean()

    assert deviation(fused) < min(deviation(over), deviation(under))
    assert np.abs(fused - 0.5).mean() < min(np.abs(over - 0.5).mean(), np.abs(under - 0.5).mean())


def test_guided_filter() -> None:
    step = np.zeros((40, 40))
    step[:, 20:] = 1.0
    # edge-preserving with the image as its own guide
    np.testing.assert_allclose(guided_filter(step, step, 4, 1e-6), step, atol=1e-3)
    np.testing.assert_allclose(
        guided_filter(_scene((40, 40)), np.full((40, 40), 0.3), 7, 0.1), 0.3, atol=1e-12
    )
    # a flat guide gives plain box smoothing, not edges
    assert np.abs(np.diff(guided_filter(np.ones((40, 40)), step, 4, 0.01)[0])).max() < 0.2


@pytest.mark.parametrize("method", METHODS)
def test_rgb_keeps_chroma_like_the_engine(method) -> None:
    rng = np.random.default_rng(4)
    grey = (_scene((48, 64)) * 255).astype(np.uint8)
    tint = np.array([30, -10, -35])
    rgb = np.clip(grey[..., None].astype(int) // 2 + 60 + tint, 0, 255).astype(np.uint8)
    other = rng.integers(0, 256, (48, 64), dtype=np.uint8)
    result = fuse_with(method, rgb, other)
    assert result.image.shape == (48, 64, 3) and result.image.dtype == np.float32
    plan = plan_colour(to_rgb_unit(rgb), None)
    np.testing.assert_array_equal(result.image, apply_colour(result.luma, plan))
    assert result.metadata["colour"].startswith("chroma from a")
    both = fuse_with(method, rgb, rgb[..., ::-1])
    # mertens blends two colour inputs channel by channel, as OpenCV (tests/methods/test_mertens.py)
    expected = "RGB channels blended" if method == "mertens" else "chroma from both"
    assert both.metadata["colour"].startswith(expected)
    grey_result = fuse_with(method, grey, other)
    assert grey_result.image.shape == (48, 64) and grey_result.metadata["colour"] == "grey"


@pytest.mark.parametrize("method", METHODS)
def test_inputs_are_not_modified_and_any_size_works(method) -> None:
    a = (_scene((33, 47), 5) * 65535).astype(np.uint16)
    b = _scene((33, 47), 6).astype(np.float32)
    copies = a.copy(), b.copy()
    a.flags.writeable = b.flags.writeable = False
    result = fuse_with(method, a, b)
    np.testing.assert_array_equal(a, copies[0])
    np.testing.assert_array_equal(b, copies[1])
    assert 0.0 <= result.luma.min() and result.luma.max() <= 1.0
    assert (
        result.metadata["method"] == method and result.metadata["inputs"]["a"]["dtype"] == "uint16"
    )
    for shape in [(1, 1), (3, 2), (9, 6)]:
        tiny = fuse_with(method, np.full(shape, 0.25), np.full(shape, 0.75))
        assert tiny.luma.shape == shape and np.isfinite(tiny.luma).all()


@pytest.mark.parametrize("method", METHODS)
def test_shape_mismatch_is_refused(method) -> None:
    with pytest.raises(ValueError, match=r"\(16, 16\).*\(16, 17\)"):
        fuse_with(method, np.zeros((16, 16)), np.zeros((16, 17)))
    with pytest.raises(ValueError, match=r"\(16, 16, 3\).*\(15, 16\)"):
        fuse_with(method, np.zeros((16, 16, 3)), np.zeros((15, 16)))


def test_nan_and_bad_options_are_refused() -> None:
    bad = np.zeros((8, 8))
    bad[2, 2] = np.nan
    with pytest.raises(ValueError, match="non-finite"):
        fuse_mean(bad, np.zeros((8, 8)))
    with pytest.raises(TypeError, match="unknown parameter"):
        fuse_with("laplacian", np.zeros((8, 8)), np.zeros((8, 8)), radius=3)
    with pytest.raises(ValueError, match="unknown fusion method"):
        fuse_with("median", np.zeros((8, 8)), np.zeros((8, 8)))


def test_fuse_with_dispatch(monkeypatch) -> None:
    from napari_gifnet.engine import fusion as engine

    calls = []
    monkeypatch.setattr(engine, "fuse_options", lambda *args: calls.append(args) or "gifnet result")
    assert fuse_with("GIFNet", 1, 2, device="cpu") == "gifnet result"
    assert calls == [(1, 2, FusionOptions(device="cpu"), None)]
    done = []
    result = fuse_with(
        "MEAN", np.zeros((4, 4)), np.ones((4, 4)), progress=lambda i, n: done.append((i, n)),
        device="cuda:7", tile_size=64,  # GIFNet's options: a baseline ignores them
    )  # fmt: skip
    assert done == [(1, 1)] and result.metadata["method"] == "mean"
    assert fuse_with("dwt", _scene(), _scene()).metadata["parameters"] == {
        "wavelet": "db2",
        "levels": 3,
    }
