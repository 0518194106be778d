"""Tests of the focus-stack alignment (napari_gifnet.workflows.alignment, fuse_stack(align=...))."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from napari_gifnet.workflows.alignment import (
    AUTO_SHIFT,
    AUTO_TURN,
    align_mode,
    apply_shift,
    apply_transform,
    estimate_shift,
    estimate_transform,
    measure_motion,
)
from napari_gifnet.workflows.focus_stack import fuse_stack

SHIFTS = np.array([[2.5, -3.0], [0.0, 0.0], [-1.25, 4.5], [3.0, 1.0]])


def _shifted_stack() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(3)
    base = ndimage.gaussian_filter(rng.random((80, 96)), 2.0)
    base = (base - base.min()) / (base.max() - base.min())
    planes = [ndimage.shift(base, s, order=3, mode="nearest") for s in SHIFTS]
    planes = [ndimage.gaussian_filter(p, 0.5 * (i % 2)) for i, p in enumerate(planes)]
    return np.stack(planes).astype(np.float32), base


def test_fuse_stack_recovers_known_shifts():
    stack, _ = _shifted_stack()
    r = fuse_stack(stack, method="focus", align=True, reference=1)
    # the shift that undoes plane i's displacement is -SHIFTS[i] (plane 1 is unshifted)
    np.testing.assert_allclose(r.shifts, -SHIFTS, atol=0.5)
    assert np.abs(r.shifts + SHIFTS).max() < 0.15
    assert r.metadata["aligned"] and len(r.metadata["shifts"]) == 4


def test_aligned_planes_line_up_with_the_reference():
    stack, base = _shifted_stack()
    shift = estimate_shift(stack[1], stack[0])
    aligned = apply_shift(stack[0], shift)
    inner = np.s_[8:-8, 8:-8]
    before = np.abs(stack[0] - stack[1])[inner].mean()
    after = np.abs(aligned - stack[1])[inner].mean()
    assert after < before / 5
    assert apply_shift(base, np.zeros(2)) is base  # no shift: nothing computed


def test_default_reference_is_the_middle_plane_and_no_align_means_zero_shifts():
    stack, _ = _shifted_stack()
    r = fuse_stack(stack, method="focus", align=True)
    np.testing.assert_array_equal(r.shifts[2], [0.0, 0.0])
    np.testing.assert_allclose(r.shifts, SHIFTS[2] - SHIFTS, atol=0.5)
    plain = fuse_stack(stack, method="focus", align=False)
    assert not plain.shifts.any() and plain.metadata["shifts"] is None


# --- focus breathing: a magnification change between planes, plus translation ---

ZOOMS = np.array([0.95, 1.0, 1.06])
OFFSETS = np.array([[2.3, -1.6], [0.0, 0.0], [-3.2, 2.7]])
BLURS = (0.5, 1.5, 2.5)  # a different defocus per plane


def _breathing_stack() -> np.ndarray:
    """Camera (192 x 192) magnified about the centre by ZOOMS, moved by OFFSETS, blurred."""
    from skimage import data

    cam = data.camera()[64:448, 64:448].astype(np.float64) / 255.0
    base = cam.reshape(192, 2, 192, 2).mean(axis=(1, 3))
    c = (np.array(base.shape) - 1) / 2
    planes = []
    for s, d, sigma in zip(ZOOMS, OFFSETS, BLURS, strict=True):
        # plane(p) = base(c + (p - c - d) / s): magnified by s about c, then moved by d
        plane = ndimage.affine_transform(
            base, np.full(2, 1 / s), offset=c - (c + d) / s, order=3, mode="reflect"
        )
        planes.append(ndimage.gaussian_filter(plane, sigma))
    return np.stack(planes).astype(np.float32)


@pytest.fixture(scope="module")
def breathing():
    stack = _breathing_stack()
    return stack, fuse_stack(stack, method="focus", align="scale", reference=1)


def test_scale_alignment_recovers_known_zooms_and_shifts(breathing):
    _, r = breathing
    np.testing.assert_allclose(r.scales, ZOOMS, rtol=0.005)
    # the shift is applied after the magnification is undone: -d / s
    np.testing.assert_allclose(r.shifts, -OFFSETS / ZOOMS[:, None], atol=0.5)
    assert r.scales[1] == 1.0 and not r.shifts[1].any()
    assert r.metadata["alignment"] == "scale"
    np.testing.assert_allclose(r.metadata["scales"], r.scales, atol=1e-6)


def test_scale_aligned_planes_match_the_reference_better(breathing):
    stack, r = breathing
    inner = np.s_[24:-24, 24:-24]
    for i in (0, 2):
        # blur both to the same defocus so that only the geometry differs
        ref = ndimage.gaussian_filter(stack[1], BLURS[i])
        before = ndimage.gaussian_filter(stack[i], BLURS[1])
        after = apply_transform(before, r.shifts[i], r.scales[i])
        shifted = apply_shift(before, estimate_shift(ref, before))
        err = [np.abs(x - ref)[inner].mean() for x in (before, shifted, after)]
        assert err[2] < err[1] / 3 and err[2] < err[0] / 3


def test_apply_transform_keeps_the_input_and_handles_rgb():
    rgb = np.random.default_rng(0).random((20, 24, 3)).astype(np.float32)
    rgb.setflags(write=False)
    before = rgb.copy()
    out = apply_transform(rgb, np.array([1.0, -0.5]), 1.04)
    np.testing.assert_array_equal(rgb, before)
    assert out.shape == rgb.shape and out.dtype == rgb.dtype
    grey = apply_transform(rgb[..., 1], np.array([1.0, -0.5]), 1.04)
    np.testing.assert_allclose(out[..., 1], grey, atol=1e-6)
    assert apply_transform(rgb, np.zeros(2), 1.0) is rgb
    np.testing.assert_array_equal(  # scale 1 is the translation-only resampling
        apply_transform(rgb, np.array([0.5, 1.0])), apply_shift(rgb, np.array([0.5, 1.0]))
    )


def test_translation_mode_is_align_true():
    stack, _ = _shifted_stack()
    plain = fuse_stack(stack, method="focus", align=True, reference=1)
    named = fuse_stack(stack, method="focus", align="Translation", reference=1)
    np.testing.assert_array_equal(plain.shifts, named.shifts)
    np.testing.assert_array_equal(plain.image, named.image)
    assert not (plain.scales - 1).any() and plain.metadata["alignment"] == "translation"
    assert fuse_stack(stack, method="focus", align=False).metadata["scales"] is None
    assert align_mode(False) is None and align_mode(None) is None
    assert align_mode(True) == "translation"


@pytest.mark.parametrize("value", ["rotation", "", 2, 1.0, ["scale"]])
def test_bad_align_values_give_a_clear_value_error(value):
    stack, _ = _shifted_stack()
    with pytest.raises(ValueError, match="unknown align option"):
        fuse_stack(stack, method="focus", align=value)
    with pytest.raises(ValueError, match="unknown align option"):
        estimate_transform(stack[0], stack[1], mode=value)
    with pytest.raises(ValueError, match="scale must be positive"):
        apply_transform(stack[0], np.zeros(2), -1.0)


# --- align="auto" (the default): the measured motion decides ---


def _static_defocus_stack() -> np.ndarray:
    """Camera (128 x 128), five planes blurred differently on the left and the right, no motion."""
    from skimage import data

    cam = data.camera()[128:384, 128:384].astype(np.float64) / 255.0
    scene = cam.reshape(128, 2, 128, 2).mean(axis=(1, 3))
    planes = []
    for k in range(5):
        left = ndimage.gaussian_filter(scene, 0.6 * k) if k else scene
        right = ndimage.gaussian_filter(scene, 0.6 * (4 - k)) if k != 4 else scene
        planes.append(np.where(np.arange(128) < 64, left, right))
    return np.rint(np.stack(planes) * 255).astype(np.uint8)


def test_auto_leaves_a_static_stack_exactly_as_no_alignment():
    stack = _static_defocus_stack()
    auto = fuse_stack(stack)  # align="auto" is the default
    off = fuse_stack(stack, align=False)
    for name in ("image", "depth_map", "confidence", "luma", "shifts", "scales", "rotations"):
        np.testing.assert_array_equal(getattr(auto, name), getattr(off, name), err_msg=name)
    meta = auto.metadata
    assert meta["alignment"] == "none" and not meta["aligned"]
    assert meta["alignment_requested"] == "auto" and off.metadata["alignment"] == "none"
    motion = meta["motion"]
    assert motion["largest_shift_px"] <= AUTO_SHIFT and motion["largest_turn_px"] <= AUTO_TURN
    assert len(motion["shifts_px"]) == 5 and motion["shifts_px"][2] == 0.0
    assert fuse_stack(stack, align="none").metadata["motion"] is None


def test_auto_aligns_a_shifted_stack_by_translation():
    stack, _ = _shifted_stack()
    auto = fuse_stack(stack, reference=1)
    explicit = fuse_stack(stack, align="translation", reference=1)
    assert auto.metadata["alignment"] == "translation" and auto.metadata["aligned"]
    np.testing.assert_array_equal(auto.shifts, explicit.shifts)
    np.testing.assert_array_equal(auto.image, explicit.image)
    measured = auto.metadata["motion"]["shifts_px"]
    np.testing.assert_allclose(measured, np.hypot(*(SHIFTS - SHIFTS[1]).T), atol=0.15)


def test_auto_progress_counts_the_measurement_pass():
    seen: list[tuple[int, int]] = []
    fuse_stack(_static_defocus_stack(), progress=lambda d, t: seen.append((d, t)))
    assert seen[-1][0] == seen[-1][1] and all(d <= t for d, t in seen)


def test_measure_motion_sees_a_rotation_about_the_centre():
    """A pure rotation leaves the centre (the global translation) where it was: the
    quadrants' translations show it."""
    from skimage import data

    scene = data.camera()[128:384, 128:384].astype(np.float64) / 255.0
    scene = scene.reshape(128, 2, 128, 2).mean(axis=(1, 3))
    turned = ndimage.rotate(scene, 2.0, reshape=False, order=3, mode="reflect")
    found = measure_motion(lambda i: (scene, turned)[i], 2, 0)
    assert found.mode == "similarity"
    # corners of a 128 px plane move by about 2 sin(1 deg) x 90 px = 3.1 px
    assert 2.5 < found.turns[1] < 3.8 and found.shifts[1] < AUTO_SHIFT
    assert measure_motion(lambda i: scene, 2, 0).mode is None


def test_auto_does_not_move_planes_that_match_nothing():
    rng = np.random.default_rng(7)
    noise = rng.random((3, 64, 64))
    found = measure_motion(lambda i: noise[i], 3)
    assert found.mode is None and found.unmatched == (0, 2)
    assert not found.shifts.any()


@pytest.mark.parametrize("value", ["auto", "none"])
def test_auto_and_none_are_fuse_stack_options_only(value):
    assert align_mode(value, auto=True) == (None if value == "none" else "auto")
    with pytest.raises(ValueError, match="unknown align option"):
        align_mode(value)


def test_auto_keeps_similarity_only_when_the_estimate_confirms_it(monkeypatch):
    """Quadrants with nothing to register on can suggest a turn: the similarity then
    estimated decides, and a static stack falls back to no alignment at all."""
    from napari_gifnet.workflows import focus_stack as module
    from napari_gifnet.workflows.alignment import Motion

    stack = _static_defocus_stack()
    misled = Motion("similarity", np.zeros(5), np.array([4.0, 0.0, 0.0, 0.0, 0.0]))
    monkeypatch.setattr(module, "measure_motion", lambda *a, **k: misled)
    r = fuse_stack(stack)
    off = fuse_stack(stack, align=False)
    assert r.metadata["alignment"] == "none" and "no corner" in r.metadata["motion_note"]
    np.testing.assert_array_equal(r.image, off.image)
    assert not r.shifts.any() and not r.rotations.any() and (r.scales == 1).all()


def test_exposure_stacks_are_aligned_only_when_asked():
    stack, _ = _shifted_stack()
    r = fuse_stack(stack, task="exposure")
    assert r.metadata["alignment"] == "none" and "exposure" in r.metadata["motion_note"]
    asked = fuse_stack(stack, task="exposure", align="translation")
    assert asked.metadata["alignment"] == "translation" and asked.shifts.any()
