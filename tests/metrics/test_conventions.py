"""The literature's metric conventions (VIFB, CDDFuse/EMMA) and grey images stored as RGB."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import pytest

from napari_gifnet.metrics import CONVENTIONS
from napari_gifnet.metrics.fusion import fusion_metrics, reference_metrics, ssim, to_metric_scale

SHARED = ["EN", "SD", "SF", "AG", "EI", "MI", "SCD", "VIF", "Qabf"]


def _case(reference_dir: Path, case: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    with np.load(reference_dir / "official" / f"{case}.npz") as data:
        fused = np.round(data["fused_luma"].astype(np.float64) * 255)
        return fused, data["input_a"], data["input_b"]


def _textured(shape: tuple[int, ...], seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0 : shape[0], 0 : shape[1]]
    smooth = 120 + 60 * np.sin(x / (5.0 + seed)) * np.cos(y / 9.0)
    if len(shape) == 3:
        smooth = smooth[..., None] + np.array([-20.0, 0.0, 25.0])
    return np.clip(smooth + rng.normal(0, 20, shape), 0, 255).round().astype(np.uint8)


def test_the_conventions_are_named_and_checked() -> None:
    assert list(CONVENTIONS) == ["project", "cddfuse", "vifb"]
    f = _textured((16, 16), 0)
    with pytest.raises(ValueError, match="convention"):
        fusion_metrics(f, f, f, convention="matlab")
    with pytest.raises(ValueError, match="grey_rgb"):
        to_metric_scale(f, grey_rgb="round")


# --------------------------------------------------------------------------- CDDFuse / EMMA
def _uniform_ssim(x: np.ndarray, y: np.ndarray) -> float:
    """The CDDFuse evaluator's SSIM from Wang et al.'s formula, written out:
    every 7 x 7 window inside the image, its means, sample (N - 1) variances
    and covariance, C1 = (0.01 * 2)^2, C2 = (0.03 * 2)^2 (scikit-image <= 0.19
    took the data range of float data as 2), the mean of the map."""
    from numpy.lib.stride_tricks import sliding_window_view

    wx, wy = sliding_window_view(x, (7, 7)), sliding_window_view(y, (7, 7))
    n = 49
    mx, my = wx.mean(axis=(2, 3)), wy.mean(axis=(2, 3))
    dx, dy = wx - mx[..., None, None], wy - my[..., None, None]
    vx, vy = (dx * dx).sum(axis=(2, 3)) / (n - 1), (dy * dy).sum(axis=(2, 3)) / (n - 1)
    cxy = (dx * dy).sum(axis=(2, 3)) / (n - 1)
    c1, c2 = (0.01 * 2) ** 2, (0.03 * 2) ** 2
    s = (2 * mx * my + c1) * (2 * cxy + c2) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    return float(s.mean())


@pytest.mark.parametrize("case", ["Medical"])  # the largest cost less than a second
def test_cddfuse_reproduces_the_reference_evaluator(case, reference_dir) -> None:
    """``metrics-reference.json`` holds the public evaluator's values for the
    metrics it shares with the project; its SSIM is the evaluator's own."""
    expected = json.loads((reference_dir / "metrics-reference.json").read_text())[case]
    f, a, b = _case(reference_dir, case)
    got = fusion_metrics(f, a, b, scaled=True, convention="cddfuse")
    for name in SHARED:
        tol = 1e-3 if name == "MI" else 1e-4
        assert abs(got[name] - expected[name]) <= tol * abs(expected[name]), name
    want = _uniform_ssim(f, a.astype(float)) + _uniform_ssim(f, b.astype(float))
    assert got["SSIM"] == pytest.approx(want, rel=1e-9)
    # not the project's SSIM: a different window, covariance and data range
    assert abs(got["SSIM"] - expected["SSIM"]) > 0.1


def test_cddfuse_ssim_on_small_images() -> None:
    f, t = _textured((20, 23), 1), _textured((20, 23), 2)
    assert ssim(f, t, convention="cddfuse") == pytest.approx(
        _uniform_ssim(f.astype(float), t.astype(float)), rel=1e-9
    )
    assert reference_metrics(f, t, convention="cddfuse")["SSIM"] == ssim(f, t, convention="cddfuse")
    assert math.isnan(ssim(f[:6], t[:6], convention="cddfuse"))


def test_cddfuse_rounds_the_luma_of_colour() -> None:
    rgb = _textured((9, 11, 3), 3)
    want = np.round(rgb.astype(np.float64) @ np.array([0.299, 0.587, 0.114]))
    np.testing.assert_array_equal(to_metric_scale(rgb, convention="cddfuse"), want)


# --------------------------------------------------------------------------- VIFB
def test_vifb_scores_each_band_and_averages() -> None:
    """Colour fused image, colour and grey inputs: each metric of one band from
    the grey formulas, VIFB's AG and SF written out here from its MATLAB code."""
    f, vis, ir = _textured((44, 46, 3), 4), _textured((44, 46, 3), 5), _textured((44, 46), 6)
    got = fusion_metrics(f, vis, ir, convention="vifb")
    per_band = [fusion_metrics(f[..., k], vis[..., k], ir) for k in range(3)]
    for name in ["EN", "SD", "EI", "MI", "SCD", "VIF", "Qabf", "SSIM"]:
        assert got[name] == pytest.approx(np.mean([m[name] for m in per_band]), rel=1e-12), name
    # AG: sum of sqrt((gx^2 + gy^2) / 2) over all pixels / ((r - 1)(c - 1)), per band
    ag = []
    for k in range(3):
        gy, gx = np.gradient(f[..., k].astype(float))
        ag.append(np.sqrt((gx**2 + gy**2) / 2).sum() / (43 * 45))
    assert got["AG"] == pytest.approx(np.mean(ag), rel=1e-12)
    # SF: MATLAB's [m, n] = size(rgb) makes n = 3 * width; the bands side by side
    wide = np.hstack([f[..., k] for k in range(3)]).astype(float)
    rf = sum((wide[i, j] - wide[i, j - 1]) ** 2 for i in range(44) for j in range(1, 138))
    cf = np.sum(np.diff(wide, axis=0) ** 2)
    assert got["SF"] == pytest.approx(math.sqrt((rf + cf) / wide.size), rel=1e-12)


def test_vifb_mi_quantises_each_image_to_256_levels() -> None:
    """VIFB's mutinf: min-max to 0..255, rounded; on non-integer data it differs
    from binning the rounded values, on integer data it is the same."""
    rng = np.random.default_rng(7)
    f, a, b = (rng.uniform(0, 80, (30, 30)) for _ in range(3))
    got = fusion_metrics(f, a, b, scaled=True, convention="vifb", metrics=["MI"])["MI"]

    def levels(x):
        return np.floor((x - x.min()) / (x.max() - x.min()) * 255 + 0.5).astype(int)

    def mi(x, y):
        joint = np.histogram2d(levels(x).ravel(), levels(y).ravel(), bins=256,
                               range=[[0, 256], [0, 256]])[0] / x.size  # fmt: skip
        px, py = joint.sum(axis=1), joint.sum(axis=0)
        nz = joint > 0
        return float(np.sum(joint[nz] * np.log(joint[nz] / np.outer(px, py)[nz])))

    assert got == pytest.approx(mi(f, a) + mi(f, b), rel=1e-10)
    ints = [np.rint(x) for x in (f, a, b)]
    assert fusion_metrics(*ints, scaled=True, convention="vifb", metrics=["MI"])["MI"] == (
        pytest.approx(fusion_metrics(*ints, scaled=True, metrics=["MI"])["MI"], rel=1e-12)
    )


def test_vifb_grey_fused_image_uses_matlab_rgb2gray() -> None:
    f, vis, ir = _textured((24, 24), 8), _textured((24, 24, 3), 9), _textured((24, 24), 10)
    grey = np.round(vis.astype(float) @ np.array([0.298936021293775, 0.587043074451121,
                                                  0.114020904255103]))  # fmt: skip
    got = fusion_metrics(f, vis, ir, convention="vifb", metrics=["MI", "Qabf", "SSIM"])
    want = fusion_metrics(f, grey, ir, scaled=True, metrics=["MI", "Qabf", "SSIM"])
    assert got == pytest.approx(want, rel=1e-12)


#: VIFB's stored per-image values (github.com/xingchenzhang/VIFB, commit
#: 22b2ea9d91499cc5962d9bdcae9c290270f0fade,
#: output/evaluation_metrics_single/<pair>_<method>_<metric>.txt, 5 significant
#: digits), with the pair's input/VI, input/IR and output/fused_images files.
VIFB_STORED = {
    ("carLight", "CBF"): {"EN": 7.5229, "SD": 50.772, "SF": 12.599, "AG": 3.7147,
                          "EI": 38.168, "MI": 2.6435, "Qabf": 0.5568, "SSIM": 1.3447},
    ("manWalking", "TIF"): {"EN": 6.9894, "SD": 36.104, "SF": 16.597, "AG": 4.8559,
                            "EI": 51.145, "MI": 2.3188, "Qabf": 0.5088, "SSIM": 1.381},
}  # fmt: skip


@pytest.mark.parametrize("pair, method", list(VIFB_STORED))
def test_vifb_reproduces_its_stored_values(pair, method) -> None:
    """Needs a VIFB checkout (its images are not redistributed here): set
    NAPARI_GIFNET_VIFB to the folder holding its input/ and output/."""
    root = os.environ.get("NAPARI_GIFNET_VIFB")
    if not root or not (Path(root) / "output" / "fused_images").is_dir():
        pytest.skip("NAPARI_GIFNET_VIFB does not name a VIFB checkout")
    from napari_gifnet.io.images import read_image

    vis = read_image(Path(root) / "input" / "VI" / f"{pair}.jpg")
    ir = read_image(Path(root) / "input" / "IR" / f"{pair}.jpg")
    fused = read_image(Path(root) / "output" / "fused_images" / f"{pair}_{method}.jpg")
    got = fusion_metrics(fused, vis, ir, convention="vifb")
    for name, want in VIFB_STORED[pair, method].items():
        half_digit = 0.5 * 10 ** (math.floor(math.log10(abs(want))) - 4)
        assert abs(got[name] - want) <= 1.05 * half_digit, (name, got[name], want)


# --------------------------------------------------------------------------- grey stored as RGB
def _grey_as_rgb(grey: np.ndarray) -> np.ndarray:
    return np.repeat(grey[..., None], 3, axis=-1)


@pytest.mark.parametrize("convention", ["project", "cddfuse", "vifb"])
def test_every_8_bit_grey_level_stored_as_rgb_reads_back_exactly(convention) -> None:
    levels = np.arange(256, dtype=np.uint8).reshape(16, 16)
    got = to_metric_scale(_grey_as_rgb(levels), convention=convention)
    np.testing.assert_array_equal(got, levels)
    np.testing.assert_array_equal(to_metric_scale(_grey_as_rgb(levels / 255.0)), levels)


def test_grey_rgb_published_is_the_published_truncation() -> None:
    levels = np.arange(256, dtype=np.uint8).reshape(16, 16)
    got = to_metric_scale(_grey_as_rgb(levels), grey_rgb="published")
    assert np.count_nonzero(got != levels) == 65 and np.all(levels - got <= 1)


def test_mi_of_a_grey_pair_stored_as_rgb_is_the_mi_of_the_grey_pair() -> None:
    f, a, b = _textured((48, 48), 11), _textured((48, 48), 12), _textured((48, 48), 13)
    grey = fusion_metrics(f, a, b)
    as_rgb = fusion_metrics(*(_grey_as_rgb(x) for x in (f, a, b)))
    assert as_rgb == grey
    mixed = fusion_metrics(f, _grey_as_rgb(a), b)
    assert mixed == grey
    published = fusion_metrics(f, _grey_as_rgb(a), b, grey_rgb="published", metrics=["MI"])
    assert published["MI"] < grey["MI"]  # 65 levels merged into their neighbours
