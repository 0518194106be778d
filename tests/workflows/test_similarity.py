"""Tests of the similarity alignment (rotation + scale + shift) of focus stacks.

napari_gifnet.workflows.alignment.estimate_similarity, fuse_stack(align="similarity")
and ``napari-gifnet stack --align-similarity``.
"""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
from scipy import ndimage

from cli_run import one_error_line, run_cli
from napari_gifnet.io.images import read_image, read_tiff_metadata
from napari_gifnet.workflows.alignment import (
    MIN_SIMILARITY_SIZE,
    align_mode,
    apply_transform,
    estimate_alignment,
    estimate_similarity,
    estimate_transform,
    resample,
)
from napari_gifnet.workflows.focus_stack import fuse_stack

ANGLES = np.array([-3.0, 0.0, 2.5])  # degrees, counter-clockwise on screen
ZOOMS = np.array([0.97, 1.0, 1.03])
OFFSETS = np.array([[2.1, -1.4], [0.0, 0.0], [-1.7, 2.6]])
BLURS = (0.5, 1.5, 2.5)


def _rot(angle: float) -> np.ndarray:
    t = np.deg2rad(angle)
    return np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])


def _scene() -> np.ndarray:
    """Camera, 192 x 192, in [0, 1]."""
    from skimage import data

    cam = data.camera()[64:448, 64:448].astype(np.float64) / 255.0
    return cam.reshape(192, 2, 192, 2).mean(axis=(1, 3))


def _warp(scene: np.ndarray, angle: float, zoom: float, offset: np.ndarray) -> np.ndarray:
    """The scene turned by ``angle``, magnified by ``zoom`` about the centre, moved by ``offset``."""
    c = (np.array(scene.shape) - 1) / 2
    m = _rot(angle).T / zoom  # plane(q) = scene(c + R^T (q - c - d) / s)
    return ndimage.affine_transform(scene, m, offset=c - m @ (c + offset), order=3,
                                    mode="reflect")  # fmt: skip


def _expected_shifts() -> np.ndarray:
    # the shift applied after the rotation and magnification are undone: -R^T d / s
    return np.array([-(_rot(a).T @ d) / s for a, s, d in zip(ANGLES, ZOOMS, OFFSETS)])


@pytest.fixture(scope="module")
def handheld():
    scene = _scene()
    planes = [ndimage.gaussian_filter(_warp(scene, a, s, d), b)
              for a, s, d, b in zip(ANGLES, ZOOMS, OFFSETS, BLURS)]  # fmt: skip
    stack = np.stack(planes).astype(np.float32)
    return stack, fuse_stack(stack, method="focus", align="similarity", reference=1)


def test_similarity_recovers_known_rotations_scales_and_shifts(handheld):
    _, r = handheld
    assert np.abs(r.rotations - ANGLES).max() < 0.2
    assert np.abs(r.scales / ZOOMS - 1).max() < 0.005
    assert np.abs(r.shifts - _expected_shifts()).max() < 0.3
    assert r.rotations[1] == 0.0 and r.scales[1] == 1.0 and not r.shifts[1].any()
    meta = r.metadata
    assert meta["alignment"] == "similarity" and meta["aligned"]
    np.testing.assert_allclose(meta["rotations"], r.rotations, atol=1e-4)
    np.testing.assert_allclose(meta["scales"], r.scales, atol=1e-6)
    np.testing.assert_allclose(meta["shifts"], r.shifts, atol=1e-4)


def _psnr(x: np.ndarray, truth: np.ndarray) -> float:
    return float(10 * np.log10(1.0 / np.mean((x - truth) ** 2)))


def test_similarity_all_in_focus_beats_translation_only():
    """Each plane sharp in one third of the scene (blurred elsewhere), then moved by hand."""
    scene = _scene()
    blurred = ndimage.gaussian_filter(scene, 3.0)
    third = scene.shape[1] // 3
    planes = []
    for k, (a, s, d) in enumerate(zip(ANGLES, ZOOMS, OFFSETS)):
        sharp_here = np.zeros(scene.shape, bool)
        sharp_here[:, k * third : (k + 1) * third if k < 2 else None] = True
        planes.append(_warp(np.where(sharp_here, scene, blurred), a, s, d))
    stack = np.stack(planes).astype(np.float32)
    sim = fuse_stack(stack, method="focus", align="similarity", reference=1)
    shift = fuse_stack(stack, method="focus", align=True, reference=1)
    assert np.abs(sim.rotations - ANGLES).max() < 0.2
    assert np.abs(sim.scales / ZOOMS - 1).max() < 0.005
    assert np.abs(sim.shifts - _expected_shifts()).max() < 0.3
    inner = np.s_[24:-24, 24:-24]
    gain = _psnr(sim.image[inner], scene[inner]) - _psnr(shift.image[inner], scene[inner])
    assert gain >= 3.0, gain


def test_other_modes_report_no_rotation(handheld):
    stack, _ = handheld
    for align in (True, "scale"):
        r = fuse_stack(stack[:2], method="focus", align=align, reference=1)
        assert r.rotations.shape == (2,) and not r.rotations.any()
        assert r.metadata["rotations"] == [0.0, 0.0]
    plain = fuse_stack(stack[:2], method="focus", align=False)
    assert not plain.rotations.any() and plain.metadata["rotations"] is None
    assert align_mode(" Similarity ") == "similarity"


def test_estimate_similarity_resolves_the_180_degree_ambiguity():
    scene = _scene()
    moving = ndimage.gaussian_filter(_warp(scene, 170.0, 1.05, np.array([1.3, -0.7])), 2.0)
    shift, scale, angle = estimate_similarity(scene, moving)
    assert abs(angle - 170.0) < 0.2 and abs(scale / 1.05 - 1) < 0.005
    expected = -(_rot(170.0).T @ np.array([1.3, -0.7])) / 1.05
    assert np.abs(shift - expected).max() < 0.3
    flat = np.full((64, 64), 0.5)
    shift, scale, angle = estimate_similarity(flat, flat)
    assert not shift.any() and scale == 1.0 and angle == 0.0


def test_rotation_resampling_rgb_and_range():
    rgb = np.random.default_rng(0).random((20, 24, 3)).astype(np.float32)
    rgb.setflags(write=False)
    out = apply_transform(rgb, np.array([1.0, -0.5]), 1.04, 3.0)
    grey = apply_transform(rgb[..., 1], np.array([1.0, -0.5]), 1.04, 3.0)
    assert out.shape == rgb.shape and out.dtype == rgb.dtype
    np.testing.assert_allclose(out[..., 1], grey, atol=1e-6)
    # no rotation: exactly the scale-only resampling
    np.testing.assert_array_equal(apply_transform(rgb, np.array([0.5, 1.0]), 1.02, 0.0),
                                  apply_transform(rgb, np.array([0.5, 1.0]), 1.02))  # fmt: skip
    assert resample(rgb, np.zeros(2), 1.0, 0.0) is rgb
    moved = resample(rgb, np.array([0.3, -0.2]), 0.98, -2.0)
    assert moved.min() >= rgb.min() and moved.max() <= rgb.max()  # clamped, no overshoot
    with pytest.raises(ValueError, match="rotation must be a finite"):
        apply_transform(rgb, np.zeros(2), 1.0, float("nan"))


def test_similarity_refusals_are_clear(handheld):
    stack, _ = handheld
    with pytest.raises(ValueError, match="unknown align option .*'similarity'"):
        fuse_stack(stack, method="focus", align="similar")
    with pytest.raises(ValueError, match="use estimate_similarity"):
        estimate_transform(stack[1], stack[0], mode="similarity")
    with pytest.raises(ValueError, match="with_rotations=True"):
        estimate_alignment(lambda i: stack[i], 3, mode="similarity")


def test_stack_align_similarity_matches_the_api(tmp_path, capsys, handheld):
    stack, expected = handheld
    data = np.rint(stack * 65535).astype(np.uint16)
    tifffile.imwrite(tmp_path / "z.tif", data, photometric="minisblack")
    out = tmp_path / "aif.tif"
    code, text, err = run_cli(capsys, "stack", str(tmp_path / "z.tif"), "-o", str(out),
                              "--method", "focus", "--align-similarity")  # fmt: skip
    assert code == 0, err
    api = fuse_stack(data, method="focus", align="similarity")
    np.testing.assert_array_equal(read_image(out), api.image)
    meta = read_tiff_metadata(out)
    assert meta["alignment"] == "similarity" and len(meta["rotations"]) == 3
    np.testing.assert_allclose(meta["rotations"], api.rotations, atol=1e-4)
    assert "rotations" in text and "scales" in text
    code, _, err = run_cli(capsys, "stack", str(tmp_path / "z.tif"), "-o", str(out),
                           "--align-scale", "--align-similarity", "--overwrite")  # fmt: skip
    assert code != 0
    one_error_line(err, "one of --align-scale and --align-similarity")


def _shifted_crops(scene: np.ndarray, size: int, offsets: list[tuple[int, int]]) -> np.ndarray:
    """``size`` x ``size`` crops of ``scene`` moved by whole pixels (no rotation, no zoom)."""
    y0, x0 = (scene.shape[0] - size) // 2, (scene.shape[1] - size) // 2
    return np.stack([scene[y0 + dy : y0 + dy + size, x0 + dx : x0 + dx + size]
                     for dy, dx in offsets]).astype(np.float32)  # fmt: skip


@pytest.mark.parametrize("size", [16, 24])
def test_similarity_on_small_planes_falls_back_to_translation_and_says_so(size: int):
    offsets = [(1, -2), (0, 0), (-2, 1)]
    stack = _shifted_crops(_scene(), size, offsets)
    r = fuse_stack(stack, method="focus", align="similarity", reference=1)
    assert not r.rotations.any() and (r.scales == 1.0).all()
    translation = fuse_stack(stack, method="focus", align="translation", reference=1)
    np.testing.assert_array_equal(r.shifts, translation.shifts)
    np.testing.assert_array_equal(r.image, translation.image)
    meta = r.metadata
    assert meta["aligned"] and meta["alignment"] == "translation"
    assert f"{size} x {size} px" in meta["alignment_fallback"]
    assert "translation only" in meta["alignment_fallback"]
    _, scale, angle = estimate_similarity(stack[1], stack[0])
    assert (scale, angle) == (1.0, 0.0)


def test_similarity_is_kept_from_the_minimum_plane_size_on():
    size = MIN_SIMILARITY_SIZE
    scene = _scene()[48 : 48 + size, 48 : 48 + size]
    moving = _warp(scene, 2.5, 1.03, np.array([1.0, -1.5]))
    r = fuse_stack(np.stack([scene, moving]).astype(np.float32), method="focus",
                   align="similarity", reference=0)  # fmt: skip
    assert r.metadata["alignment"] == "similarity" and r.metadata["alignment_fallback"] is None
    assert abs(r.rotations[1] - 2.5) < 0.3 and abs(r.scales[1] / 1.03 - 1) < 0.01


def test_auto_aligns_a_turned_stack_by_similarity(handheld):
    stack, explicit = handheld
    auto = fuse_stack(stack, method="focus", reference=1)  # align="auto" is the default
    assert auto.metadata["alignment"] == "similarity" and auto.metadata["alignment_requested"] == "auto"
    np.testing.assert_array_equal(auto.rotations, explicit.rotations)
    np.testing.assert_array_equal(auto.image, explicit.image)
    turns = auto.metadata["motion"]["turns_px"]
    # a corner of a 192 px plane moves about 2 sin(angle / 2) x 135.1 px (and the zoom adds)
    assert turns[1] == 0.0 and min(turns[0], turns[2]) > 4.0


def test_auto_on_planes_too_small_for_similarity_never_turns():
    scene = _scene()[64:128, 64:128]
    moving = _warp(scene, 3.0, 1.0, np.array([1.5, -1.0]))
    r = fuse_stack(np.stack([scene, moving]).astype(np.float32), method="focus", reference=0)
    assert r.metadata["alignment"] == "translation" and not r.rotations.any()
    assert r.metadata["motion"]["turns_px"] == [0.0, 0.0]
