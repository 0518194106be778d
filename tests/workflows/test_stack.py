"""Tests of napari_gifnet.workflows.focus_stack.fuse_stack and napari_gifnet.workflows.focus."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from napari_gifnet.methods.classical import fuse_laplacian, laplacian_fusion, mertens_fusion
from napari_gifnet.workflows.focus import NOISE_THRESHOLD, BestPlane
from napari_gifnet.workflows.focus_stack import fuse_stack

H, W = 48, 64


def _texture(seed: int = 0, shape=(H, W)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(ndimage.gaussian_filter(rng.random(shape), 1.0) * 2 - 0.5, 0, 1)


def _two_region_stack(planes: int = 3) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """uint8 stack: left half sharp in plane 0, right half sharp in the last plane."""
    sharp = _texture()
    blur = ndimage.gaussian_filter(sharp, 3.0)
    truth_depth = np.zeros((H, W), int)
    truth_depth[:, W // 2 :] = planes - 1
    stack = []
    for i in range(planes):
        plane = blur.copy()
        plane[truth_depth == i] = sharp[truth_depth == i]
        stack.append(plane)
    return np.rint(np.stack(stack) * 255).astype(np.uint8), np.rint(sharp * 255), truth_depth


def test_focus_selection_finds_the_sharp_plane():
    stack, sharp, depth = _two_region_stack()
    r = fuse_stack(stack, method="focus")
    inner = np.s_[4:-4, 4 : W // 2 - 4], np.s_[4:-4, W // 2 + 4 : -4]
    for region in inner:
        assert np.array_equal(r.depth_map[region], depth[region])
        np.testing.assert_allclose(r.image[region] * 255, sharp[region], atol=1e-3)
    assert r.image.dtype == np.float32 and r.depth_map.shape == (H, W)
    assert r.confidence.min() >= 0 and r.confidence.max() <= 1
    assert r.confidence[inner[0]].mean() > 0.5


def test_tree_of_means_is_the_mean_and_sequential_weights_halve():
    rng = np.random.default_rng(1)
    stack = rng.random((4, 16, 16)).astype(np.float32)
    tree = fuse_stack(stack, method="mean", strategy="tree", align=False)
    seq = fuse_stack(stack, method="mean", strategy="sequential", align=False)
    np.testing.assert_allclose(tree.image, stack.mean(axis=0), atol=1e-6)
    expected = stack[0] / 8 + stack[1] / 8 + stack[2] / 4 + stack[3] / 2
    np.testing.assert_allclose(seq.image, expected, atol=1e-6)


def test_two_planes_equal_the_pair_fusion():
    stack, _, _ = _two_region_stack(2)
    r = fuse_stack(stack, method="laplacian", align=False)
    pair = fuse_laplacian(stack[0], stack[1])
    np.testing.assert_allclose(r.image, pair.luma, atol=1e-6)


def test_axis_and_layouts_agree():
    stack, _, _ = _two_region_stack()
    ref = fuse_stack(stack, method="focus")
    moved = fuse_stack(np.moveaxis(stack, 0, 2), axis=2, method="focus")
    listed = fuse_stack(list(stack), method="focus")
    np.testing.assert_array_equal(moved.image, ref.image)
    np.testing.assert_array_equal(listed.depth_map, ref.depth_map)
    rgb = fuse_stack(np.repeat(stack[..., None], 3, axis=-1), method="focus")
    assert rgb.image.shape == (H, W, 3)
    np.testing.assert_allclose(rgb.luma, ref.luma, atol=1e-5)


def test_keep_dtype_returns_input_pixels_for_selection():
    stack, _, _ = _two_region_stack()
    s16 = stack.astype(np.uint16) * 257
    r = fuse_stack(s16, method="focus", keep_dtype=True, normalization="dtype")
    assert r.image.dtype == np.uint16
    picked = np.take_along_axis(s16, r.depth_map[None], axis=0)[0]
    np.testing.assert_array_equal(r.image, picked)
    auto = fuse_stack(s16, method="laplacian", keep_dtype=True)
    assert auto.image.dtype == np.uint16 and auto.metadata["normalization"]["rule"] == "percentile"


def _bright_spot_stack(rgb: bool = False) -> np.ndarray:
    """uint16 planes of 1000-2000 (64 x 64) with a 2 x 2 spot of 60000 in every plane.

    The spot is under 0.1 % of the pixels, so it lies above the 99.9th percentile
    that ``normalization="auto"`` maps to 1.
    """
    stack, _, _ = _two_region_stack(4)
    stack = np.pad(stack, ((0, 0), (8, 8), (0, 0)), mode="reflect")  # 64 x 64
    s16 = (1000 + np.rint(stack / 255.0 * 1000)).astype(np.uint16)
    s16[:, 20:22, 10:12] = 60000
    if rgb:
        s16 = np.stack([s16, s16 // 2 + 100, s16 // 3 + 200], axis=-1)
    s16.setflags(write=False)
    return s16


@pytest.mark.parametrize("rgb", [False, True])
def test_keep_dtype_selection_returns_the_planes_own_values(rgb):
    s16 = _bright_spot_stack(rgb)
    before = s16.copy()
    for kwargs in ({"method": "focus"}, {"method": "laplacian", "select": True}):
        r = fuse_stack(s16, keep_dtype=True, **kwargs)
        assert r.metadata["normalization"]["rule"] == "percentile"
        assert r.metadata["normalization"]["range"][1] < 60000  # the spot is out of range
        depth = r.depth_map[None, ..., None] if rgb else r.depth_map[None]
        picked = np.take_along_axis(s16, depth, axis=0)[0]
        assert r.image.dtype == np.uint16
        np.testing.assert_array_equal(r.image, picked)
        assert r.image.max() == 60000
        # float output: the same pixels, normalised on the range (and clipped to [0, 1])
        f = fuse_stack(s16, **kwargs)
        lo, hi = f.metadata["normalization"]["range"]
        np.testing.assert_array_equal(f.depth_map, r.depth_map)
        expected = np.clip((picked.astype(np.float32) - lo) / (hi - lo), 0, 1)
        np.testing.assert_allclose(f.image, expected, atol=1e-6)
        assert f.image.dtype == np.float32
    np.testing.assert_array_equal(s16, before)


@pytest.mark.parametrize("rgb", [False, True])
def test_keep_dtype_blend_restores_values_outside_the_range(rgb):
    s16 = _bright_spot_stack(rgb)
    r = fuse_stack(s16, method="laplacian", keep_dtype=True)
    f = fuse_stack(s16, method="laplacian")
    lo, hi = r.metadata["normalization"]["range"]
    assert r.image.dtype == np.uint16 and hi < 60000
    assert (r.image[20:22, 10:12] == s16[0, 20:22, 10:12]).all()  # 60000 and its colour
    np.testing.assert_array_equal(r.depth_map, f.depth_map)
    depth = r.depth_map[None, ..., None] if rgb else r.depth_map[None]
    picked = np.take_along_axis(s16, depth, axis=0)[0]
    outside = (picked < lo) | (picked > hi)  # the spot, and a few pixels below the range
    outside = outside.any(axis=-1) if rgb else outside  # whole pixels are restored
    assert outside[20:22, 10:12].all() and r.metadata["restored_out_of_range"] == outside.sum()
    np.testing.assert_array_equal(r.image[outside], picked[outside])
    back = np.rint(f.image.astype(np.float64) * (hi - lo) + lo)
    np.testing.assert_array_equal(r.image[~outside], back[~outside])  # the blend elsewhere
    np.testing.assert_array_equal(r.luma, f.luma)


def test_keep_dtype_blend_with_a_fixed_range_restores_what_it_misses():
    s16 = _bright_spot_stack()
    fixed = fuse_stack(s16, method="mean", keep_dtype=True, normalization=(1200, 1800))
    picked = np.take_along_axis(s16, fixed.depth_map[None], axis=0)[0]
    outside = (picked < 1200) | (picked > 1800)
    assert fixed.metadata["restored_out_of_range"] == outside.sum() >= 4
    np.testing.assert_array_equal(fixed.image[outside], picked[outside])
    assert fixed.image.max() == 60000
    assert 1200 <= fixed.image[~outside].min() and fixed.image[~outside].max() <= 1800


def test_keep_dtype_selection_with_alignment_keeps_unmoved_planes_exact():
    s16 = np.array(_bright_spot_stack()[:3])
    s16[1] = np.roll(s16[1], 2, axis=1)  # plane 1 moved by 2 px, the others stay
    r = fuse_stack(s16, method="focus", keep_dtype=True, align=True, reference=0)
    assert r.shifts[1].any() and not r.shifts[0].any() and not r.shifts[2].any()
    assert r.image.dtype == np.uint16 and r.image.max() == 60000
    picked = np.take_along_axis(s16, r.depth_map[None], axis=0)[0]
    still = r.depth_map != 1
    np.testing.assert_array_equal(r.image[still], picked[still])
    assert s16.min() <= r.image.min() and r.image.max() <= s16.max()


def test_best_plane_update_returns_where_the_plane_won():
    best = BestPlane((1, 3), larger_is_better=True)
    np.testing.assert_array_equal(best.update(0, np.array([[1.0, 2.0, 0.0]])), [[1, 1, 1]])
    np.testing.assert_array_equal(best.update(1, np.array([[3.0, 2.0, -1.0]])), [[1, 0, 0]])


def test_lists_of_nested_python_lists_and_integer_axes():
    stack, _, _ = _two_region_stack()
    ref = fuse_stack(stack, method="focus")
    nested = fuse_stack([p.tolist() for p in stack], method="focus", normalization=(0, 255))
    assert nested.metadata["input_dtype"] == np.asarray([1]).dtype.name
    np.testing.assert_array_equal(nested.depth_map, ref.depth_map)
    np.testing.assert_array_equal(nested.image, ref.image)
    moved = np.moveaxis(stack, 0, 2)
    for axis in (np.int64(2), np.int32(-1), 2):
        np.testing.assert_array_equal(fuse_stack(moved, axis=axis, method="focus").image,
                                      ref.image)


class _CountingStack:
    """An array-like that records every index it is asked for."""

    def __init__(self, data: np.ndarray) -> None:
        self.data, self.shape, self.dtype, self.calls = data, data.shape, data.dtype, []

    def __getitem__(self, index):
        self.calls.append(index)
        return self.data[index]


def test_planes_are_read_one_at_a_time_and_dask_works():
    stack, _, _ = _two_region_stack()
    lazy = _CountingStack(stack)
    r = fuse_stack(lazy, method="laplacian")
    assert lazy.calls and all(c == (i,) for c in lazy.calls for i in [c[0]])
    assert all(np.ndim(stack[c]) == 2 for c in lazy.calls)
    da = pytest.importorskip("dask.array")
    d = fuse_stack(da.from_array(stack, chunks=(1, H, W)), method="laplacian")
    np.testing.assert_array_equal(d.image, r.image)


def test_progress_counts_planes_and_cancel_stops():
    stack, _, _ = _two_region_stack(4)
    seen = []
    fuse_stack(stack, method="laplacian", align=False,
               progress=lambda d, t: seen.append((d, t)))  # fmt: skip
    assert seen[-1][0] == seen[-1][1] == 8  # 4 planes fused + 4 read for the depth map

    class Stop(Exception):
        pass

    def cancel(done, total):
        if done >= 2:
            raise Stop

    with pytest.raises(Stop):
        fuse_stack(stack, method="laplacian", progress=cancel)


def test_inputs_are_not_modified():
    stack, _, _ = _two_region_stack()
    stack.setflags(write=False)
    before = stack.copy()
    fuse_stack(stack, method="focus", align=True)
    np.testing.assert_array_equal(stack, before)


@pytest.mark.parametrize(
    ("data", "kwargs", "match"),
    [
        (np.zeros((1, 8, 8)), {}, "at least 2 planes"),
        (np.zeros((8, 8)), {}, "3-D"),
        (np.zeros((3, 8, 8)), {"axis": 3}, "axis 3"),
        (np.zeros((3, 8, 8, 3)), {"axis": 3}, "axis 3"),
        (np.zeros((3, 8, 8, 5)), {}, "RGB planes"),
        (np.full((3, 8, 8), np.nan), {}, "NaN"),
        (np.zeros((3, 8, 8)), {"method": "magic"}, "unknown stack method"),
        (np.zeros((3, 8, 8)), {"strategy": "random"}, "unknown strategy"),
        (np.zeros((3, 8, 8)), {"normalization": "weird"}, "unknown normalization"),
        (np.zeros((3, 8, 8)), {"align": "rotation"}, "unknown align option"),
        (np.zeros((3, 8, 8)), {"method": None, "task": "hdr"}, "unknown stack task.*exposure"),
        ([np.zeros((8, 8)), np.zeros((8, 9))], {}, "differ in shape"),
        ([[[0, 1], [2]], [[0, 1], [2, 3]]], {}, "not a rectangular array"),
        (np.zeros((3, 0, 8)), {}, "empty"),
        (np.zeros((3, 8, 0, 3)), {}, "empty"),
        ([np.zeros((0, 8)), np.zeros((0, 8))], {}, "empty"),
        (np.zeros((3, 8, 8)), {"axis": 1.5}, "integer"),
        (np.zeros((3, 8, 8)), {"axis": True}, "integer"),
        (np.zeros((3, 8, 8)), {"axis": "0"}, "integer"),
        (np.zeros((3, 8, 8)), {"method": "mean", "pair_options": {"normalization": "minmax"}},
         "normalization"),
        (np.zeros((3, 8, 8)), {"method": "mean", "pair_options": {"progress": print}},
         "progress"),
    ],
)
def test_bad_input_gives_a_clear_value_error(data, kwargs, match):
    with pytest.raises(ValueError, match=match):
        fuse_stack(data, **{"method": "focus", **kwargs})


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"method": "guided", "pair_options": {"radius": 4}},
         r"^unknown parameter 'radius' for method 'guided'; valid: r1, eps1, r2, eps2$"),
        ({"method": "laplacian", "strategy": "all", "pair_options": {"zzz": 1}},
         r"^unknown parameter 'zzz' for method 'laplacian'; valid: levels$"),
        ({"method": "mertens", "strategy": "all", "pair_options": {"gamma": 2.2, "k": 1}},
         r"^unknown parameters 'gamma', 'k' for method 'mertens'; valid: contrast, "),
        ({"method": "laplacian", "pair_options": {"levels": "x"}},
         r"^parameter 'levels' of method 'laplacian' must be an integer or None, not 'x'$"),
        ({"method": "guided", "pair_options": {"r1": 4.5}},
         r"^parameter 'r1' of method 'guided' must be an integer, not 4.5$"),
        ({"method": "mertens", "strategy": "all", "pair_options": {"sigma": True}},
         r"^parameter 'sigma' of method 'mertens' must be a number, not True$"),
        ({"method": "dwt", "pair_options": {"wavelet": 2}},
         r"^parameter 'wavelet' of method 'dwt' must be a string, not 2$"),
        ({"method": "focus", "pair_options": {"zzz": 1}},
         r"^method 'focus' takes no parameters; got unknown parameter 'zzz'$"),
        ({"method": "gifnet", "pair_options": {"levels": 2}},
         r"^method 'gifnet' takes no parameters; got unknown parameter 'levels'$"),
        ({"method": "focus", "pair_options": {"device": "cpu"}},
         r"^pair_options 'device' has no effect: method 'focus' fuses no pairs"),
        ({"method": "laplacian", "strategy": "all", "pair_options": {"tile_size": 64}},
         r"^pair_options 'tile_size' has no effect: strategy 'all' fuses every plane at once "
         r"by the 'laplacian' rule, which takes only its own parameters \(levels\)$"),
        ({"method": None, "task": "exposure", "pair_options": {"device": "cpu", "levels": 2}},
         r"^pair_options 'device' has no effect: strategy 'all'"),
    ],
)  # fmt: skip
def test_pair_options_are_checked_before_any_plane_is_read(kwargs, match):
    stack, _, _ = _two_region_stack()
    lazy, seen = _CountingStack(stack), []
    with pytest.raises(ValueError, match=match):
        fuse_stack(lazy, progress=lambda d, t: seen.append(d), **kwargs)
    assert lazy.calls == [] and seen == []


def test_valid_pair_options_reach_the_method_unchanged():
    stack, _, _ = _two_region_stack()
    folded = fuse_stack(stack, method="laplacian", align=False, pair_options={"levels": 1})
    default = fuse_stack(stack, method="laplacian", align=False)
    assert not np.array_equal(folded.image, default.image)
    levels = np.int64(1)  # numpy integers are integers
    same = fuse_stack(stack, method="laplacian", align=False, pair_options={"levels": levels})
    np.testing.assert_array_equal(same.image, folded.image)
    at_once = fuse_stack(stack, method="mertens", strategy="all", align=False,
                         pair_options={"sigma": 1, "contrast": 0.5})  # fmt: skip
    expected = np.clip(mertens_fusion(_unit(stack), sigma=1, contrast=0.5), 0, 1)
    np.testing.assert_array_equal(at_once.image, expected.astype(np.float32))
    # a folded baseline still ignores the fusion options it does not take, as documented
    mean = fuse_stack(stack, method="mean", align=False, pair_options={"device": "cpu"})
    np.testing.assert_array_equal(mean.image, fuse_stack(stack, method="mean", align=False).image)


def test_scale_alignment_undoes_focus_breathing_in_an_rgb_stack():
    sharp = _texture(5, (96, 96))
    c = (np.array(sharp.shape) - 1) / 2
    zoom = 1.05  # plane 1 shows the scene 5 % larger, about the centre, and is blurred on the left
    big = ndimage.affine_transform(sharp, np.full(2, 1 / zoom), offset=c - c / zoom, order=3)
    planes = [sharp.copy(), big]
    planes[0][:, 48:] = ndimage.gaussian_filter(sharp, 2.0)[:, 48:]
    planes[1][:, :48] = ndimage.gaussian_filter(big, 2.0)[:, :48]
    stack = np.repeat(np.stack(planes)[..., None], 3, axis=-1).astype(np.float32)
    stack.setflags(write=False)
    before = stack.copy()
    scaled = fuse_stack(stack, method="focus", align="scale", reference=0)
    shifted = fuse_stack(stack, method="focus", align=True, reference=0)
    np.testing.assert_array_equal(stack, before)
    assert abs(scaled.scales[1] / zoom - 1) < 0.005 and scaled.scales[0] == 1.0
    assert scaled.image.shape == (96, 96, 3) and scaled.metadata["alignment"] == "scale"
    inner = np.s_[12:-12, 12:-12]
    err = [np.abs(r.luma - sharp)[inner].mean() for r in (scaled, shifted)]
    assert err[0] < err[1] / 2


def test_task_picks_the_default_method_and_an_explicit_method_wins():
    stack, _, _ = _two_region_stack(3)
    focus = fuse_stack(stack)
    assert focus.metadata["method"] == "focus selection" and focus.metadata["task"] == "focus"
    assert fuse_stack(stack, task="focus").metadata["method"] == "focus selection"
    exposure = fuse_stack(stack, task="Exposure")  # exposures are never fused by focus selection
    assert exposure.metadata["method"] == "laplacian" and exposure.metadata["task"] == "exposure"
    assert exposure.metadata["strategy"] == "all"  # every plane at once, not folded
    np.testing.assert_array_equal(exposure.image, laplacian_fusion(_unit(stack)))
    assert fuse_stack(stack, task="exposure", method="mean").metadata["strategy"] == "tree"
    assert fuse_stack(stack, task="exposure", method="mean").metadata["method"] == "mean"


def _unit(stack: np.ndarray) -> list[np.ndarray]:
    """A uint8 stack's planes as fuse_stack normalises them: float32 in [0, 1]."""
    return [plane.astype(np.float32) / np.float32(255) for plane in stack]


def test_strategy_all_fuses_every_plane_at_once_with_the_n_image_rules():
    stack, _, _ = _two_region_stack(3)
    for method, rule in (("laplacian", laplacian_fusion), ("mertens", mertens_fusion)):
        result = fuse_stack(stack, method=method, strategy="all", align=False)
        expected = np.clip(rule(_unit(stack)), 0, 1).astype(np.float32)
        np.testing.assert_array_equal(result.image, expected)
        folded = fuse_stack(stack, method=method, strategy="tree", align=False)
        assert not np.array_equal(result.image, folded.image)
    with pytest.raises(ValueError, match="strategy 'all' fuses every plane at once"):
        fuse_stack(stack, method="guided", strategy="all")


def test_best_plane_confidence():
    best = BestPlane((1, 3), larger_is_better=True)
    best.update(0, np.array([[1.0, 2.0, 0.0]]))
    best.update(1, np.array([[3.0, 2.0, 0.0]]))
    np.testing.assert_array_equal(best.index, [[1, 0, 0]])
    np.testing.assert_allclose(best.confidence(), [[2 / 3, 0.0, 0.0]])


def test_gifnet_two_planes_match_fuse_and_tree_runs(reference_weights, heap_calls, store_runs):
    from napari_gifnet.engine.fusion import fuse

    stack, _, _ = _two_region_stack(3)
    r = fuse_stack(stack[:2], method="gifnet", weights=reference_weights, device="cpu")
    pair = fuse(stack[0], stack[1], weights=reference_weights, device="cpu")
    np.testing.assert_allclose(r.luma, pair.luma, atol=1e-5)
    assert r.metadata["pair_metadata"]["method"] == "GIFNet"
    tree = fuse_stack(
        stack, method="gifnet", strategy="tree", select=True, weights=reference_weights,
        device="cpu",
    )
    assert heap_calls.trims == 3  # one heap per stack (its pair fusions share it), one per fuse
    assert store_runs == [1, 1]  # and one set of maps per stack
    picked = np.take_along_axis(stack, tree.depth_map[None], axis=0)[0] / 255.0
    np.testing.assert_allclose(tree.image, picked, atol=1e-6)


# --- noisy stacks: the noise is measured, the planes blended by focus weights ---


def test_noise_sigma_reads_known_noise_and_ignores_texture_in_a_minority_of_pixels():
    from napari_gifnet.workflows.focus import noise_sigma

    rng = np.random.default_rng(4)
    yy, xx = np.mgrid[:96, :128]
    ramp = 0.2 + 0.003 * yy + 0.002 * xx  # the 3 x 3 kernel cancels flat areas and ramps
    assert noise_sigma(ramp) < 1e-6
    textured = ramp + 0.05 * (np.indices(ramp.shape).sum(axis=0) % 2) * (xx < 16)
    for sigma in (0.004, 0.02, 0.05):  # a fine checkerboard over 1 / 8 of the image
        assert abs(noise_sigma(ramp + rng.normal(0, sigma, ramp.shape)) / sigma - 1) < 0.05
        noisy = textured + rng.normal(0, sigma, ramp.shape)
        robust = abs(noise_sigma(noisy) / sigma - 1)
        d = ndimage.correlate(noisy, np.outer([1, -2, 1], [1, -2, 1]))[1:-1, 1:-1]
        mean_based = np.sqrt(np.pi / 2) / 6 * np.abs(d).mean()  # Immerkaer's mean: misled more
        assert robust < 0.25 and robust < abs(mean_based / sigma - 1)


def test_soft_blend_equals_the_direct_weighted_average():
    from napari_gifnet.workflows.focus import SoftBlend

    rng = np.random.default_rng(5)
    scores = rng.normal(0, 3, (6, 8, 9))
    grey, rgb = rng.random((6, 8, 9)), rng.random((6, 8, 9, 3))
    blend = SoftBlend(temperature=2.0)
    for s, g, c in zip(scores, grey, rgb):
        blend.update(s, g, c)
    w = np.exp((scores - scores.max(axis=0)) / 2.0)  # written out: softmax weights
    w /= w.sum(axis=0)
    got_grey, got_rgb = blend.result()
    np.testing.assert_allclose(got_grey, (w * grey).sum(axis=0), rtol=1e-12)
    np.testing.assert_allclose(got_rgb, (w[..., None] * rgb).sum(axis=0), rtol=1e-12)


def _noisy_camera_stack(sigma: float, planes: int = 5) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Camera (96 x 128) with a smooth nearness (left far, right near), defocused by up to
    4 px, plane k focused at nearness k / (planes - 1); noise of ``sigma``, clipped to [0, 1].
    Returns the stack, the truth and the true plane index."""
    from skimage import data

    from napari_gifnet.data.synthetic import defocus

    cam = data.camera()[128:320:2, 0:256:2].astype(np.float64) / 255.0
    near = np.broadcast_to(np.linspace(0.0, 1.0, cam.shape[1]), cam.shape)
    focus = np.linspace(0.0, 1.0, planes)
    stack = np.stack([defocus(cam, near, float(f), 4.0) for f in focus])
    rng = np.random.default_rng(6)
    noisy = np.clip(stack + rng.normal(0, sigma, stack.shape), 0, 1)
    depth = np.argmin(np.abs(near[None] - focus[:, None, None]), axis=0)
    return noisy.astype(np.float32), cam, depth


def test_noisy_stack_is_blended_above_the_noise_floor():
    """Copying each pixel from one noisy plane cannot beat the noise (PSNR 20 log10(1 / sigma)):
    the blend averages the noise away where planes agree, and the depth map stays right."""
    sigma = 5 / 255
    stack, truth, depth = _noisy_camera_stack(sigma)
    r = fuse_stack(stack, align=False)
    inner = np.s_[6:-6, 6:-6]
    psnr = 10 * np.log10(1.0 / np.mean((r.image[inner] - truth[inner]) ** 2))
    assert psnr > 20 * np.log10(1 / sigma) + 1.0, psnr
    assert abs(r.metadata["noise_sigma"] / sigma - 1) < 0.1 and not r.metadata["selected"]
    assert "noisy stack" in r.metadata["focus_rule"]
    error = np.abs(r.depth_map[inner] - depth[inner])
    assert np.mean(error == 0) > 0.75 and np.mean(error <= 1) > 0.95


def test_clean_stack_keeps_pixel_selection_and_keep_dtype_blends_on_the_input_scale():
    clean, _, _ = _two_region_stack()
    r = fuse_stack(clean, align=False)
    assert r.metadata["selected"] and r.metadata["noise_sigma"] < NOISE_THRESHOLD
    stack, _, _ = _noisy_camera_stack(5 / 255, planes=3)
    native = np.rint(stack * 65535).astype(np.uint16)
    before = native.copy()
    out = fuse_stack(native, align=False, keep_dtype=True)
    np.testing.assert_array_equal(native, before)
    assert out.image.dtype == np.uint16 and not out.metadata["selected"]
    unit = fuse_stack(native, align=False)
    lo, hi = unit.metadata["normalization"]["range"]  # the blend is linear in the values
    inside = ((native >= lo) & (native <= hi)).all(axis=0)  # no plane clipped by the range
    expected = unit.image.astype(np.float64) * (hi - lo) + lo
    np.testing.assert_allclose(out.image[inside], expected[inside], atol=0.6 + 1e-4 * (hi - lo))
    assert out.image[~inside].max() > hi  # highlights beyond the range keep their values
