"""The default focus decision at depth steps and with alignment (project issue 16).

Each test also runs the decision used before issue 16 (the focus measure
smoothed with sigma 2 px, a blind 5 x 5 median, linearly resampled planes)
and checks that it fails where the new one succeeds, so the tests keep
meaning something.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from napari_gifnet.workflows.alignment import apply_shift, resample
from napari_gifnet.workflows.focus import BestPlane, edge_focus, guarded_median
from napari_gifnet.workflows.focus_stack import fuse_stack

H, W = 48, 64
EDGE = W // 2  # the depth step lies between columns EDGE - 1 and EDGE


def _sigma2_focus(luma: np.ndarray) -> np.ndarray:
    """The squared Laplacian smoothed by a Gaussian of sigma 2 px (a wide window)."""
    lap = ndimage.laplace(np.asarray(luma, dtype=np.float32), mode="mirror")
    return ndimage.gaussian_filter(lap * lap, 2.0, mode="mirror")


def _old_decision(planes: list[np.ndarray]) -> np.ndarray:
    best = BestPlane(planes[0].shape)
    for i, p in enumerate(planes):
        best.update(i, _sigma2_focus(p))
    return ndimage.median_filter(best.index, size=5, mode="nearest")


def _texture(seed: int, contrast: float) -> np.ndarray:
    t = ndimage.gaussian_filter(np.random.default_rng(seed).random((H, W)), 1.0)
    return 0.5 + contrast * 0.15 * (t - t.mean()) / t.std()


def _occlusion_stack() -> tuple[np.ndarray, np.ndarray]:
    """Two planes: a strong texture left (sharp in plane 0), a weak one right (plane 1)."""
    strong, weak = _texture(0, 1.0), _texture(1, 0.4)
    left = np.arange(W) < EDGE
    p0 = np.where(left, strong, ndimage.gaussian_filter(weak, 3.0))
    p1 = np.where(left, ndimage.gaussian_filter(strong, 3.0), weak)
    truth = np.broadcast_to(np.where(left, 0, 1), (H, W))
    return np.clip(np.stack([p0, p1]), 0, 1).astype(np.float32), truth


def test_default_keeps_the_right_plane_next_to_an_occlusion_edge():
    stack, truth = _occlusion_stack()
    r = fuse_stack(stack)
    old = _old_decision(list(stack))
    near = np.s_[4:-4, EDGE + 1 : EDGE + 3]  # 1 and 2 px beyond the first pixel of the step
    new_ok = (r.depth_map[near] == truth[near]).mean()
    old_ok = (old[near] == truth[near]).mean()
    assert new_ok >= 0.9 and old_ok <= 0.3, (new_ok, old_ok)
    band = np.s_[4:-4, EDGE - 3 : EDGE + 3]  # within 3 px on either side
    assert (r.depth_map[band] == truth[band]).mean() >= 0.8
    away = np.s_[4:-4, np.r_[4 : EDGE - 3, EDGE + 3 : W - 4]]
    np.testing.assert_array_equal(r.depth_map[away], truth[away])
    # the pixels copied next to the edge are the sharp ones
    err = np.abs(r.luma - np.where(truth == 0, stack[0], stack[1]))[near].mean()
    old_err = np.abs(np.where(old == 0, stack[0], stack[1]) - np.where(truth == 0, stack[0],
                     stack[1]))[near].mean()  # fmt: skip
    assert err < old_err / 4


def _unmoved_blurred_and_moved_sharp() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(2)
    base = np.clip(ndimage.gaussian_filter(rng.random((64, 64)), 0.8) * 3 - 1, 0, 1)
    base = (base - base.min()) / (base.max() - base.min())
    reference = ndimage.gaussian_filter(base, 0.5)  # slightly defocused, not moved
    moved = ndimage.shift(base, (0.5, -0.5), order=3, mode="nearest")  # sharp, half a pixel off
    return np.stack([reference, moved]).astype(np.float32), base


def test_alignment_does_not_bias_the_depth_map_towards_the_unmoved_plane():
    stack, _ = _unmoved_blurred_and_moved_sharp()
    r = fuse_stack(stack, align=True, reference=0)
    np.testing.assert_allclose(r.shifts[1], [-0.5, 0.5], atol=0.1)
    inner = np.s_[4:-4, 4:-4]
    assert (r.depth_map[inner] == 1).mean() >= 0.95  # the sharp plane, everywhere
    # the old way: resample the moved plane linearly, then measure its focus
    old = _old_decision([stack[0], apply_shift(stack[1], r.shifts[1])])
    assert (old[inner] == 1).mean() <= 0.5


def test_aligned_pixels_are_copied_with_cubic_splines():
    base = ndimage.gaussian_filter(np.random.default_rng(6).random((64, 64)), 1.5)
    base = (base - base.min()) / (base.max() - base.min())
    moved = ndimage.shift(base, (0.5, -0.5), order=3, mode="nearest")
    stack = np.clip(np.stack([ndimage.gaussian_filter(base, 1.0), moved]), 0, 1).astype(np.float32)
    r = fuse_stack(stack, align=True, reference=0)
    inner = np.s_[6:-6, 6:-6]
    assert (r.depth_map[inner] == 1).mean() >= 0.95
    linear = apply_shift(stack[1], r.shifts[1])
    err_new = np.abs(r.luma - base)[inner].mean()
    err_linear = np.abs(linear - base)[inner].mean()
    assert err_new < err_linear / 2, (err_new, err_linear)


def test_resample_is_cubic_clamped_to_the_local_range():
    rng = np.random.default_rng(4)
    x = rng.random((40, 50))
    x[10:14, 10:14] = 20.0  # a spike: cubic splines ring around it
    out = resample(x, np.array([0.4, -0.3]))
    cubic = ndimage.shift(x, (0.4, -0.3), order=3, mode="nearest")
    assert cubic.min() < 0 or cubic.max() > 20  # the ringing that is clamped
    assert 0.0 <= out.min() and out.max() <= 20.0
    lo = apply_shift(ndimage.minimum_filter(x, 3, mode="nearest"), np.array([0.4, -0.3]))
    hi = apply_shift(ndimage.maximum_filter(x, 3, mode="nearest"), np.array([0.4, -0.3]))
    assert (out >= lo - 1e-12).all() and (out <= hi + 1e-12).all()
    np.testing.assert_allclose(resample(x, np.array([2.0, -1.0])),
                               ndimage.shift(x, (2, -1), order=0, mode="nearest"))  # fmt: skip
    assert resample(x, np.zeros(2)) is x
    rgb = np.stack([x, x / 2, x / 3], axis=-1)
    np.testing.assert_allclose(resample(rgb, np.array([0.4, -0.3]), 1.02)[..., 1],
                               resample(x / 2, np.array([0.4, -0.3]), 1.02), atol=1e-12)


@pytest.mark.parametrize("planes", [2, 3, 7, 16, 17])
def test_guarded_median_keeps_confident_pixels_and_matches_the_median(planes):
    rng = np.random.default_rng(planes)
    index = ndimage.median_filter(rng.integers(0, planes, (30, 41)), 3).astype(np.int32)
    confidence = rng.random(index.shape).astype(np.float32)
    out = guarded_median(index, confidence, planes=planes)
    med = ndimage.median_filter(index, size=5, mode="nearest")
    keep = confidence > 0.4
    np.testing.assert_array_equal(out[keep], index[keep])
    np.testing.assert_array_equal(out[~keep], med[~keep])
    np.testing.assert_array_equal(out, guarded_median(index, confidence))
    assert out.dtype == np.int32


def test_edge_focus_is_local_and_ranks_sharpness():
    sharp = _texture(3, 1.0)
    blurred = ndimage.gaussian_filter(sharp, 1.5)
    assert (edge_focus(sharp) > edge_focus(blurred))[4:-4, 4:-4].mean() > 0.95
    spot = np.zeros((41, 41), np.float32)
    spot[20, 20] = 1.0
    e = edge_focus(spot)
    assert e.dtype == np.float32 and e.shape == spot.shape
    # most of an impulse's energy stays within 2 px (the old sigma-2 window spread it wider)
    old = _sigma2_focus(spot)
    within = np.s_[18:23, 18:23]
    assert e[within].sum() / e.sum() > 0.8 > old[within].sum() / old.sum()
    tiny = edge_focus(np.ones((1, 3), np.float32))  # too small to mirror by slicing
    assert tiny.shape == (1, 3)
