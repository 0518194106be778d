"""Fusion metrics: parity with the reference evaluator, input scaling, edge cases."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from napari_gifnet.engine.preprocess import published_luma_uint8
from napari_gifnet.metrics.fusion import (
    METRICS,
    REFERENCE_METRICS,
    fusion_metrics,
    psnr,
    reference_metrics,
    ssim,
    to_metric_scale,
)
from reference_cases import CASES

NAMES = ["EN", "SD", "SF", "AG", "EI", "MI", "SCD", "VIF", "Qabf", "SSIM"]


@pytest.fixture(scope="module")
def expected(reference_dir: Path) -> dict[str, dict[str, float]]:
    values = json.loads((reference_dir / "metrics-reference.json").read_text())
    assert sorted(values) == sorted(CASES)
    return values


def _case(reference_dir: Path, case: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    with np.load(reference_dir / "official" / f"{case}.npz") as data:
        return data["fused_luma"], data["input_a"], data["input_b"]


def _textured(shape: tuple[int, int], seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0 : shape[0], 0 : shape[1]]
    smooth = 120 + 60 * np.sin(x / 7.0) * np.cos(y / 11.0)
    return np.clip(smooth + rng.normal(0, 20, shape), 0, 255).round().astype(np.uint8)


@pytest.mark.parametrize("case", CASES)
def test_reproduces_the_reference_evaluator(case, reference_dir, expected) -> None:
    fused, a, b = _case(reference_dir, case)
    f = np.round(fused.astype(np.float64) * 255)
    got = fusion_metrics(f, a, b, scaled=True)
    assert list(got) == NAMES
    for name, want in expected[case].items():
        tol = 1e-3 if name == "MI" else 1e-4
        assert abs(got[name] - want) <= tol * abs(want), (name, got[name], want)


def test_float_and_uint8_fused_images_give_the_same_values(reference_dir) -> None:
    fused, a, b = _case(reference_dir, "Medical")
    as_uint8 = np.round(fused.astype(np.float64) * 255).astype(np.uint8)
    assert fusion_metrics(fused, a, b) == fusion_metrics(as_uint8, a, b)


def test_all_ten_run_on_a_small_image() -> None:
    f, a, b = (_textured((64, 64), s) for s in range(3))
    values = fusion_metrics(f, a, b)
    assert list(values) == NAMES == list(METRICS)
    assert all(isinstance(v, float) and np.isfinite(v) for v in values.values())
    assert set(fusion_metrics(f, a, b, metrics=["VIF", "EN"])) == {"EN", "VIF"}


def test_metadata_tables() -> None:
    for table in (METRICS, REFERENCE_METRICS):
        for direction, description in table.values():
            assert direction == "higher" and description and "\n" not in description
    assert list(REFERENCE_METRICS) == ["PSNR", "SSIM"]


# --------------------------------------------------------------------------- scaling
def test_to_metric_scale_rules() -> None:
    np.testing.assert_array_equal(to_metric_scale(np.array([[0, 7, 255]], np.uint8)), [[0, 7, 255]])
    np.testing.assert_array_equal(to_metric_scale(np.array([[False, True]])), [[0, 255]])
    np.testing.assert_array_equal(
        to_metric_scale(np.array([[0, 257, 65535]], np.uint16)), [[0, 1, 255]]
    )
    np.testing.assert_array_equal(
        to_metric_scale(np.array([[-32768, 0, 32767]], np.int16)), [[0, 128, 255]]
    )
    np.testing.assert_array_equal(
        to_metric_scale(np.array([[0.0, 0.5, 1.0]], np.float32)), [[0, 128, 255]]
    )
    scaled = to_metric_scale(np.array([[3.25, 300.0]]), scaled=True)
    np.testing.assert_array_equal(scaled, [[3.25, 300.0]])
    assert scaled.dtype == np.float64


def test_rgb_is_reduced_to_luma() -> None:
    rgb = np.random.default_rng(0).integers(0, 256, (8, 9, 3), dtype=np.uint8)
    np.testing.assert_array_equal(to_metric_scale(rgb), published_luma_uint8(rgb))
    rgba = np.concatenate([rgb, np.full((8, 9, 1), 7, np.uint8)], axis=-1)
    np.testing.assert_array_equal(to_metric_scale(rgba), published_luma_uint8(rgb))
    unit = rgb / 255.0
    expect = np.rint(unit @ np.array([0.299, 0.587, 0.114]) * 255)
    np.testing.assert_allclose(to_metric_scale(unit), expect)


def test_float_outside_unit_range_needs_scaled() -> None:
    with pytest.raises(ValueError, match="scaled=True"):
        to_metric_scale(np.full((4, 4), 12.0))


# --------------------------------------------------------------------------- bad inputs
def test_shape_mismatch_names_the_shapes() -> None:
    a = np.zeros((16, 16), np.uint8)
    with pytest.raises(ValueError, match=r"\(16, 17\)"):
        fusion_metrics(np.zeros((16, 17), np.uint8), a, a)
    with pytest.raises(ValueError, match=r"\(16, 16, 3\).*\(15, 16\)"):
        reference_metrics(np.zeros((16, 16, 3), np.uint8), np.zeros((15, 16), np.uint8))


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_values_are_refused(bad) -> None:
    a = np.zeros((16, 16))
    b = a.copy()
    b[3, 4] = bad
    with pytest.raises(ValueError, match="NaN"):
        fusion_metrics(a, a, b)
    with pytest.raises(ValueError, match="NaN"):
        psnr(b, a)


def test_unknown_metric_and_bad_data() -> None:
    a = np.zeros((16, 16), np.uint8)
    with pytest.raises(ValueError, match="unknown metric"):
        fusion_metrics(a, a, a, metrics=["PSNR"])
    with pytest.raises(ValueError, match="expected"):
        fusion_metrics(np.zeros((4, 4, 2)), a, a)


def test_constant_images_give_documented_values_without_warnings() -> None:
    flat = np.full((48, 48), 100, np.uint8)
    black = np.zeros((48, 48), np.uint8)
    tex = _textured((48, 48), 1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        all_flat = fusion_metrics(flat, flat, flat)
        all_black = fusion_metrics(black, black, black)
        flat_a = fusion_metrics(tex, flat, tex)
    for name in ("EN", "SD", "SF", "AG", "EI", "MI"):
        assert all_flat[name] == 0.0 and np.copysign(1.0, all_flat[name]) == 1.0
    assert np.isnan(all_flat["SCD"])
    # Qabf's zero padding makes the border of a flat non-zero image an edge;
    # with no edge at all in either input it is 0 / 0.
    assert np.isfinite(all_flat["Qabf"]) and np.isnan(all_black["Qabf"])
    assert all_flat["VIF"] == 2.0  # each 0 / 0 counts as 1
    assert all_flat["SSIM"] == pytest.approx(2.0)
    assert np.isnan(flat_a["SCD"])  # corr(F - B, A) is undefined for a constant A
    assert np.isfinite(flat_a["Qabf"])


@pytest.mark.parametrize("side", [1, 8, 20, 40])
def test_too_small_for_the_windows_gives_nan(side) -> None:
    f, a, b = (_textured((side, side), s) for s in range(3))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        values = fusion_metrics(f, a, b)
    assert np.isnan(values["VIF"])
    assert np.isnan(values["SSIM"]) == (side < 11)
    assert np.isfinite(values["EN"]) and np.isnan(values["Qabf"]) == (side == 1)
    assert np.isfinite(fusion_metrics(*(_textured((41, 41), s) for s in range(3)))["VIF"])


def test_inputs_are_not_modified() -> None:
    f, a, b = (_textured((32, 32), s) for s in range(3))
    fl = f / 255.0
    copies = [x.copy() for x in (fl, a, b)]
    for x in (fl, a, b):
        x.flags.writeable = False
    fusion_metrics(fl, a, b)
    for x, c in zip((fl, a, b), copies):
        np.testing.assert_array_equal(x, c)


# --------------------------------------------------------------------------- properties
def test_fused_equal_to_both_inputs() -> None:
    f = _textured((48, 48), 3)
    values = fusion_metrics(f, f, f)
    assert values["SSIM"] == pytest.approx(2.0)
    assert values["VIF"] == pytest.approx(2.0)
    # equal strengths give G = gF (>= 1 on edges), equal angles Ao = 1: Q is
    # just below its ceiling Tg * Ta / (1 + exp(-22 * 0.2))
    ceiling = 0.9994 * 0.9879 / (1 + np.exp(-4.4))
    assert 0.95 * ceiling < values["Qabf"] <= ceiling * (1 + 1e-12)


def test_entropy_of_two_equal_halves_is_one_bit() -> None:
    f = np.zeros((16, 16), np.uint8)
    f[:, 8:] = 200
    assert fusion_metrics(f, f, f, metrics=["EN"])["EN"] == pytest.approx(1.0)


def test_scd_of_the_sum() -> None:
    # F = A + B (as scaled data): F - B = A and F - A = B, so SCD = 1 + 1.
    a, b = _textured((24, 24), 4).astype(float), _textured((24, 24), 5).astype(float)
    assert fusion_metrics(a + b, a, b, scaled=True, metrics=["SCD"])["SCD"] == pytest.approx(2.0)


images = arrays(np.uint8, (24, 24), elements=st.integers(0, 255))


@settings(max_examples=25, deadline=None)
@given(images, images, images)
def test_swapping_the_inputs_changes_nothing(f, a, b) -> None:
    one, two = fusion_metrics(f, a, b), fusion_metrics(f, b, a)
    for name in NAMES:
        np.testing.assert_allclose(one[name], two[name], rtol=1e-12, atol=1e-12)
    assert 0.0 <= one["EN"] <= 8.0 and one["MI"] >= 0.0


# --------------------------------------------------------------------------- ground truth
def test_psnr_and_ssim_against_a_truth() -> None:
    truth = _textured((32, 32), 6)
    off_by_one = truth.astype(np.int16) + 1
    off_by_one = np.clip(off_by_one, 0, 255).astype(np.uint8)
    mse = np.mean((off_by_one.astype(float) - truth) ** 2)
    assert psnr(off_by_one, truth) == pytest.approx(10 * np.log10(255**2 / mse))
    assert psnr(truth, truth) == np.inf
    assert ssim(truth, truth) == pytest.approx(1.0)
    assert ssim(off_by_one, truth) < 1.0
    both = reference_metrics(off_by_one, truth)
    assert both == {"PSNR": psnr(off_by_one, truth), "SSIM": ssim(off_by_one, truth)}
    assert psnr(truth / 255.0, truth) == np.inf  # float [0, 1] data is scaled by 255
