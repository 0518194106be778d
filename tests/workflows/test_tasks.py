"""Tests of napari_gifnet.workflows.tasks: ``fuse(a, b, task=..., method=...)``.

Without a task, ``napari_gifnet.fuse`` must stay GIFNet exactly (the parity tests
run through it); with a task, the task's default method runs and the result says
which and why. The focus-selection path is checked against a property of a
constructed pair (each half sharp in one input), independently of fuse_stack.
"""

from __future__ import annotations

import inspect
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

import napari_gifnet
from napari_gifnet.engine import fusion as engine_fusion
from napari_gifnet.engine.options import FusionOptions
from napari_gifnet.methods.classical import fuse_laplacian, fuse_mean
from napari_gifnet.workflows import tasks
from napari_gifnet.workflows.focus_pair import FocusPairResult
from napari_gifnet.workflows.focus_stack import fuse_stack


@pytest.fixture(scope="module")
def near_far() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(near, far, sharp): uint8 48 x 64; near is sharp on the left half, far on the right."""
    rng = np.random.default_rng(3)
    sharp = ndimage.gaussian_filter(rng.random((48, 64)), 0.8)
    sharp = np.rint((sharp - sharp.min()) / np.ptp(sharp) * 255).astype(np.uint8)
    blurred = np.rint(ndimage.gaussian_filter(sharp.astype(float), 3.0)).astype(np.uint8)
    near, far = blurred.copy(), blurred.copy()
    near[:, :32], far[:, 32:] = sharp[:, :32], sharp[:, 32:]
    return near, far, sharp


def test_napari_gifnet_fuse_is_the_task_aware_fuse() -> None:
    assert napari_gifnet.fuse is tasks.fuse
    assert napari_gifnet.FusionResult is engine_fusion.FusionResult


def test_the_signature_is_gifnets_plus_task_and_method() -> None:
    engine = inspect.signature(engine_fusion.fuse).parameters
    ours = inspect.signature(napari_gifnet.fuse).parameters
    assert list(ours) == ["a", "b", "task", "method", *list(engine)[2:]]
    for name, param in engine.items():
        assert (ours[name].kind, ours[name].default) == (param.kind, param.default), name
    assert ours["task"].default is None and ours["method"].default is None


def test_without_a_task_every_keyword_goes_to_the_engine_unchanged(monkeypatch) -> None:
    calls = []
    sentinel = object()

    def recorder(a, b, **kw):
        calls.append((a, b, kw))
        return sentinel

    monkeypatch.setattr(tasks.engine, "fuse", recorder)
    a, b = np.zeros((4, 4)), np.ones((4, 4))
    kw = dict(weights="w.pth", device="cpu", return_features=True, normalization="dtype",
              storage="disk", tile_size=16, precision="tf32")  # fmt: skip
    assert napari_gifnet.fuse(a, b, **kw) is sentinel
    assert calls == [(a, b, kw)]


def test_without_a_task_an_unknown_keyword_is_the_engines_type_error() -> None:
    with pytest.raises(TypeError, match="unexpected keyword argument 'bogus'"):
        napari_gifnet.fuse(np.zeros((8, 8)), np.zeros((8, 8)), bogus=1)


def test_without_a_task_the_image_is_gifnets(reference_weights: Path, near_far) -> None:
    near, far, _ = near_far
    expected = engine_fusion.fuse(near, far, weights=reference_weights, device="cpu")
    got = napari_gifnet.fuse(near, far, weights=reference_weights, device="cpu")
    assert type(got) is engine_fusion.FusionResult
    np.testing.assert_array_equal(got.image, expected.image)
    assert got.metadata["method"] == "GIFNet" and "method_reason" not in got.metadata


def test_mfif_runs_the_focus_pyramid_and_takes_each_half_from_its_sharp_input(near_far) -> None:
    near, far, sharp = near_far
    before = near.copy(), far.copy()
    res = napari_gifnet.fuse(near, far, task="mfif")
    assert isinstance(res, FocusPairResult)
    assert res.metadata["method"] == "focus_pyramid" and res.metadata["task"] == "mfif"
    assert "focus-guided pyramid" in res.metadata["method_reason"]
    assert "docs/quality.md" in res.metadata["method_reason"]
    # away from the seam the result is the sharp input (the truth) to within 1 %
    inner = (slice(8, -8), np.r_[8:24, 40:56])
    assert np.abs(res.image[inner] - sharp[inner] / 255.0).mean() < 0.01
    assert (res.depth_map[:, 6:26] == 0).all() and (res.depth_map[:, 38:58] == 1).all()
    assert res.confidence.shape == near.shape and res.confidence.dtype == np.float32
    np.testing.assert_array_equal(near, before[0])
    np.testing.assert_array_equal(far, before[1])


def test_focus_selection_takes_each_half_from_its_sharp_input_exactly(near_far) -> None:
    near, far, sharp = near_far
    res = napari_gifnet.fuse(near, far, method="focus")
    inner = (slice(6, -6), np.r_[6:26, 38:58])
    np.testing.assert_allclose(res.image[inner], sharp[inner] / 255.0, atol=1e-6)


def test_focus_selection_of_a_pair_is_the_two_plane_stack(near_far) -> None:
    near, far, _ = near_far
    res = napari_gifnet.fuse(near, far, method="focus")
    stack = fuse_stack(np.stack([near, far]), method="focus", align=False)
    np.testing.assert_array_equal(res.image, stack.image)
    np.testing.assert_array_equal(res.luma, stack.luma)
    np.testing.assert_array_equal(res.depth_map, stack.depth_map)
    np.testing.assert_array_equal(res.confidence, stack.confidence)
    assert res.metadata["method_reason"] == "method 'focus' given by the caller"
    assert res.metadata["task"] is None


def test_the_focus_pyramid_of_one_image_twice_is_that_image(near_far) -> None:
    near, _, _ = near_far
    rgb = np.stack([near, near[::-1], near[:, ::-1]], axis=-1)
    res = napari_gifnet.fuse(rgb, rgb.copy(), method="focus_pyramid")
    np.testing.assert_allclose(res.image, rgb / 255.0, atol=1e-6)  # the pyramid is exact


def test_the_focus_pyramid_blends_coarse_levels_by_the_depth_map(near_far) -> None:
    # two flat inputs have no detail: every level is blended by the depth map, so
    # the result is the depth map's weight of each input (smoothed at the seam only)
    near, far, _ = near_far
    from napari_gifnet.workflows import focus_pair

    a, b = np.full((64, 64), 0.2), np.full((64, 64), 0.8)
    weight = np.zeros((64, 64))
    weight[:, 32:] = 1.0
    got = focus_pair._pyramid_blend(a, b, weight)
    np.testing.assert_allclose(got[:, :12], 0.2, atol=1e-3)
    np.testing.assert_allclose(got[:, 52:], 0.8, atol=1e-3)
    assert np.all(np.diff(got[32]) >= -1e-12)  # a monotone transition across the seam


def test_focus_selection_of_a_grey_and_an_rgb_input(near_far) -> None:
    near, far, _ = near_far
    far_rgb = np.repeat(far[..., None], 3, axis=-1)
    res = napari_gifnet.fuse(near, far_rgb, task="mfif")
    assert res.image.shape == (*near.shape, 3)
    with pytest.raises(ValueError, match="one sensor .one dtype.: a is uint8, b is uint16"):
        napari_gifnet.fuse(near, far.astype(np.uint16), task="mfif")
    with pytest.raises(ValueError, match="same height and width"):
        napari_gifnet.fuse(near, far[:-1], task="mfif")


def test_meif_runs_the_laplacian_pyramid(near_far) -> None:
    near, far, _ = near_far
    res = napari_gifnet.fuse(near, far, task="meif")
    np.testing.assert_array_equal(res.image, fuse_laplacian(near, far).image)
    assert res.metadata["method"] == "laplacian" and res.metadata["task"] == "meif"
    assert res.metadata["method_reason"].startswith("the 'meif' task's default: ")


def test_a_method_overrides_the_task_and_gifnet_options_are_ignored(near_far) -> None:
    near, far, _ = near_far
    res = napari_gifnet.fuse(near, far, task="ivif", method="Mean", weights="nowhere.pth",
                             device="cpu", tile_size=8)  # fmt: skip
    np.testing.assert_array_equal(res.image, fuse_mean(near, far).image)
    assert res.metadata["method"] == "mean" and res.metadata["task"] == "ivif"
    assert res.metadata["method_reason"] == "method 'mean' given by the caller"


@pytest.mark.parametrize(
    ("task", "method"),
    [("ivif", "gifnet"), ("medical", "gifnet"), ("nir", "gifnet"), ("mfif", "focus_pyramid"),
     ("meif", "laplacian"), ("remote", "gifnet"), ("custom", "gifnet"),
     ("Multi-focus", "focus_pyramid")],
)  # fmt: skip
def test_resolve_method_gives_each_tasks_default(task: str, method: str) -> None:
    key, reason = tasks.resolve_method(task, None)
    assert key == method and reason.endswith("(docs/quality.md)")


def test_gifnet_tasks_run_the_engine(monkeypatch) -> None:
    from napari_gifnet.engine.result import FusionResult

    seen = []

    def recorder(a, b, options, progress=None):
        seen.append(options)
        return FusionResult(image=a, luma=a, metadata={"method": "GIFNet"})

    monkeypatch.setattr(tasks.engine, "fuse_options", recorder)
    res = napari_gifnet.fuse(np.zeros((8, 8)), np.ones((8, 8)), task="ivif", device="cpu")
    assert seen == [FusionOptions(device="cpu")]
    assert res.metadata["method"] == "gifnet" and "sharpness" in res.metadata["method_reason"]


def test_unknown_task_and_method_are_refused_with_the_valid_names() -> None:
    a = np.zeros((8, 8))
    with pytest.raises(ValueError, match="unknown task 'x'; valid: ivif, medical, nir, mfif"):
        napari_gifnet.fuse(a, a, task="x")
    with pytest.raises(ValueError, match="unknown fusion method 'y'; valid: gifnet, focus, focus_pyramid, mean"):
        napari_gifnet.fuse(a, a, task="mfif", method="y")


def test_features_are_gifnets_only(near_far) -> None:
    near, far, _ = near_far
    with pytest.raises(ValueError, match="only GIFNet has feature maps, not 'focus_pyramid'"):
        napari_gifnet.fuse(near, far, task="mfif", return_features=True)
    with pytest.raises(TypeError, match="'focus' takes no parameter"):
        napari_gifnet.fuse(near, far, method="focus", levels=3)


def test_the_signature_holds_when_the_engine_function_takes_only_keywords(monkeypatch) -> None:
    """A replaced engine function (``fuse(a, b, **kw)``) keeps ``**kw`` last in the signature."""
    monkeypatch.setattr(tasks.engine, "fuse", lambda a, b, **kw: None)
    params = list(tasks._signature().parameters)
    assert params == ["a", "b", "task", "method", "kw"]
