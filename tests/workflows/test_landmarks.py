"""Registration from point pairs (workflows.landmarks): exact and least squares fits, refusals."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from napari_gifnet.workflows.landmarks import register_landmarks
from napari_gifnet.workflows.registration import RegistrationError
from registration_cases import case_2d, homogeneous, mapping_error


def _known(kind: str, ndim: int) -> np.ndarray:
    if ndim == 2:
        t = np.deg2rad(9)
        linear = np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])
    else:
        linear = Rotation.from_euler("XYZ", [5, -7, 9], degrees=True).as_matrix()
    if kind == "similarity":
        linear = 1.07 * linear
    if kind == "affine":
        linear = linear @ np.diag([1.05, 0.94, 1.02][:ndim]) + 0.05 * np.eye(ndim)[::-1]
    return homogeneous(linear, np.array([4.0, -3.0, 2.5][:ndim]))


def _move(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    n = points.shape[1]
    return points @ matrix[:n, :n].T + matrix[:n, n]


@pytest.mark.parametrize("ndim", [2, 3])
@pytest.mark.parametrize("kind", ["rigid", "similarity", "affine"])
def test_the_fewest_exact_pairs_recover_the_transform(kind: str, ndim: int) -> None:
    true = _known(kind, ndim)
    points = np.array([[10.0, 20.0, 5.0], [40.0, 25.0, 9.0], [22.0, 50.0, 30.0],
                       [35.0, 40.0, 12.0], [5.0, 5.0, 25.0]])[:, :ndim]  # fmt: skip
    need = {2: {"rigid": 2, "similarity": 2, "affine": 3},
            3: {"rigid": 3, "similarity": 3, "affine": 4}}[ndim][kind]  # fmt: skip
    fixed, moving = points[:need], _move(true, points[:need])
    kept = fixed.copy()
    result = register_landmarks(fixed, moving, kind)
    np.testing.assert_allclose(result.transform.matrix, true, atol=1e-9)
    np.testing.assert_allclose(result.report.residuals, 0.0, atol=1e-9)
    assert result.report.method == "landmarks" and result.moved is None
    np.testing.assert_array_equal(fixed, kept)
    with pytest.raises(RegistrationError, match=f"at least {need} point pairs; ct and mri have"):
        register_landmarks(fixed[: need - 1], moving[: need - 1], kind, fixed_name="ct",
                           moving_name="mri")  # fmt: skip


def test_noisy_points_give_the_least_squares_fit_and_its_residuals() -> None:
    rng = np.random.default_rng(0)
    true = _known("similarity", 2)
    fixed = rng.uniform(0, 100, (12, 2))
    moving = _move(true, fixed) + rng.normal(0, 0.5, (12, 2))
    result = register_landmarks(fixed, moving, "similarity")
    found = result.transform.matrix
    expected = np.linalg.norm(_move(found, fixed) - moving, axis=1)
    np.testing.assert_allclose(result.report.residuals, expected)
    assert 0.1 < result.report.residuals.mean() < 1.0
    # least squares: nudging the fit makes the summed squares larger
    base = np.sum(expected**2)
    for delta in (np.diag([1.001, 1.001, 1.0]), homogeneous(np.eye(2), np.array([0.05, 0.0]))):
        assert np.sum((_move(delta @ found, fixed) - moving) ** 2) > base
    assert mapping_error(true, found, (100, 100)) < 0.5
    assert "residual mean" in result.report.describe()


def test_landmarks_move_the_image_onto_the_fixed_grid() -> None:
    fixed_image, moving_image, true = case_2d("rigid")
    fixed = np.array([[20.0, 20.0], [100.0, 30.0], [60.0, 110.0], [30.0, 90.0]])
    result = register_landmarks(fixed, _move(true, fixed), "rigid", fixed=fixed_image,
                                moving=moving_image)  # fmt: skip
    assert result.moved.shape == fixed_image.shape and 0.5 < result.report.overlap <= 1.0
    assert mapping_error(true, result.transform.matrix, fixed_image.shape) < 1e-9


def test_degenerate_points_are_refused_naming_the_input() -> None:
    line = np.array([[0.0, 0.0], [1.0, 1.0], [2.0, 2.0], [3.0, 3.0]])
    spread = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0], [7.0, 7.0]])
    with pytest.raises(RegistrationError, match="points of second are collinear"):
        register_landmarks(spread, line, "affine")
    with pytest.raises(RegistrationError, match="points of first all coincide"):
        register_landmarks(np.ones((3, 2)), spread[:3], "rigid")
    with pytest.raises(RegistrationError, match="points of ct are collinear"):
        register_landmarks(np.c_[line, line[:, 0]], np.c_[spread, spread[:, 0] * 0],
                           "rigid", fixed_name="ct")  # fmt: skip
    with pytest.raises(RegistrationError, match="first has points of shape"):
        register_landmarks(spread, spread[:3], "rigid")
    with pytest.raises(RegistrationError, match="points of second contain NaN"):
        register_landmarks(spread, np.where(spread == 7.0, np.nan, spread), "rigid")
    with pytest.raises(RegistrationError, match="gave scales"):
        register_landmarks(spread, spread * 3.0, "similarity")
    register_landmarks(line[:2], line[:2] + 1.0, "rigid")  # two points do for a 2-D rigid fit


def test_landmarks_that_move_the_image_off_the_fixed_grid_are_refused() -> None:
    fixed_image, moving_image, _true = case_2d("rigid")
    fixed = np.array([[20.0, 20.0], [100.0, 30.0], [60.0, 110.0]])
    with pytest.raises(RegistrationError, match=r"mri covers 0 % of ct .*refused"):
        register_landmarks(fixed, fixed + [0.0, 900.0], "rigid", fixed=fixed_image,
                           moving=moving_image, fixed_name="ct", moving_name="mri")  # fmt: skip
    # without the images there is nothing to cover: the fit alone is returned
    alone = register_landmarks(fixed, fixed + [0.0, 900.0], "rigid")
    assert np.isnan(alone.report.overlap) and alone.moved is None
