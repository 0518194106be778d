"""The registration benchmark measures what it says: its truth, its error and its conversion
of today's phase correlation to a fixed -> moving matrix (benchmarks/bench_registration.py)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
from scipy import ndimage as ndi

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    name = "bench_registration"
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_the_phase_matrix_resamples_as_apply_transform_does(bench: ModuleType) -> None:
    from napari_gifnet.workflows.alignment import apply_transform

    image = ndi.gaussian_filter(np.random.default_rng(0).random((72, 64)), 2.0)
    for shift, scale, angle in (((3.2, -1.5), 1.05, 7.0), ((-2.0, 4.5), 0.93, 0.0),
                                ((1.0, 2.0), 1.0, 0.0)):  # fmt: skip
        expected = apply_transform(image, np.array(shift), scale, angle)
        matrix = bench.phase_matrix(np.array(shift), scale, angle, image.shape)
        moved = bench.warp_to_fixed(image, matrix, image.shape, (1.0, 1.0), (1.0, 1.0))
        inner = np.s_[12:-12, 12:-12]  # the edges differ: repeated there, zero here
        np.testing.assert_allclose(moved[inner], expected[inner], atol=1e-9)


def test_the_error_is_the_distance_on_the_fixed_grid_in_its_pixels(bench: ModuleType) -> None:
    shift = np.eye(3)
    shift[:2, 2] = (3.0, 4.0)
    assert bench.grid_error(shift, np.eye(3), (20, 30), (1.0, 1.0)) == pytest.approx((5.0, 5.0))
    # in world units 6 and 8 on a grid of 2 mm pixels: still 5 px
    shift[:2, 2] = (6.0, 8.0)
    assert bench.grid_error(shift, np.eye(3), (20, 30), (2.0, 2.0)) == pytest.approx((5.0, 5.0))
    # a turn about the origin: every pixel's own distance, by brute force
    matrix = np.eye(4)
    matrix[:3, :3] = bench.rotation(3, 5.0, np.random.default_rng(1))
    mean, worst = bench.grid_error(matrix, np.eye(4), (4, 5, 6), (1.0, 1.0, 1.0))
    points = np.stack(np.meshgrid(*map(np.arange, (4, 5, 6)), indexing="ij"), -1).reshape(-1, 3)
    dist = np.linalg.norm(points @ (matrix[:3, :3] - np.eye(3)).T, axis=1)
    assert (mean, worst) == pytest.approx((dist.mean(), dist.max()))


def test_a_case_moving_image_is_its_second_modality_through_the_truth(bench: ModuleType) -> None:
    image = bench.scene("camera", None, "camera", 64, ROOT)
    case = bench.case_2d("camera", image, 64, "affine", 0, np.random.default_rng(2))
    crop = np.s_[16:80, 16:80]  # the fixed image's part of the 96 px scene
    expected = ndi.gaussian_filter(bench.other_modality(image)[crop], 1.0)  # blurred alike

    def agreement(matrix: np.ndarray) -> float:
        back = bench.warp_to_fixed(case.moving, matrix, (64, 64), (1.0, 1.0), (1.0, 1.0))
        inner = np.s_[16:-16, 16:-16]
        return float(np.corrcoef(back[inner].ravel(), expected[inner].ravel())[0, 1])

    best = agreement(case.truth)
    assert best > 0.95
    for step in ((0.5, 0.0), (0.0, -0.5), (0.5, 0.5)):  # half a pixel off agrees less
        off = np.eye(3)
        off[:2, 2] = step
        assert agreement(off @ case.truth) < best - 0.02
    # the landmarks are the truth's, with noise of 0.5 px
    moved = case.fixed_points @ case.truth[:2, :2].T + case.truth[:2, 2]
    assert 0.05 < np.abs(moved - case.moving_points).mean() < 1.5


def test_every_method_runs_on_a_small_case(bench: ModuleType) -> None:
    image = bench.scene("camera", None, "camera", 96, ROOT)
    case = bench.case_2d("camera", image, 96, "rigid", 0, np.random.default_rng(3))
    rows = [bench.run_method(case, name, call) for name, call in bench.methods_for(case)]
    assert [r.method for r in rows] == [
        "phase (today)",
        "mattes rigid",
        "mattes affine",
        "landmarks rigid",
    ]
    assert all(r.mean is not None for r in rows), [r.note for r in rows]
    assert rows[1].mean < bench.GOAL[2] and rows[2].mean < bench.GOAL[2]
    summary = bench.summary(rows)
    assert "| mattes, the case's kind | 2-D | 1 / 1 (< 0.5 px) |" in summary
