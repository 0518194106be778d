"""Tests of the focus-stack alignment (napari_gifnet.alignment, fuse_stack(align=True))."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from napari_gifnet.alignment import apply_shift, estimate_shift
from napari_gifnet.stack import fuse_stack

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
    plain = fuse_stack(stack, method="focus")
    assert not plain.shifts.any() and plain.metadata["shifts"] is None
