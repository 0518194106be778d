"""Tests of napari_gifnet.methods.pansharpening: the MTF filter, the grids and each method's model."""

from __future__ import annotations

import numpy as np
import pytest

from napari_gifnet.methods import pansharpening as ps


@pytest.fixture(scope="module")
def scene() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(truth (3, 64, 64), upsampled degraded bands (3, 64, 64), pan (64, 64)): Wald's protocol."""
    rng = np.random.default_rng(1)
    y, x = np.mgrid[0:64, 0:64]
    edges = 60.0 * ((x // 9 + y // 13) % 2) + 30 * np.sin(x / 3.0) * np.cos(y / 4.0)
    truth = np.stack([80 + edges * g + rng.normal(0, 1, edges.shape) for g in (1.0, 0.7, 0.4)])
    pan = truth.mean(axis=0)
    up = np.stack([ps.expand(ps.reduce(b, (16, 16)), (64, 64)) for b in truth])
    return truth, up, pan


def test_the_mtf_gaussian_has_the_nyquist_gain():
    # a cosine at the multispectral Nyquist frequency, 1 / (2 * 4) cycles per pixel
    x = np.arange(256)
    wave = np.tile(np.cos(2 * np.pi * x / 8.0), (64, 1))
    low = ps.lowpass(wave, 4, nyquist_gain=0.3)
    amplitude = np.abs(low[32, 64:192]).max()
    assert amplitude == pytest.approx(0.3, abs=0.005)
    assert ps.mtf_sigma(4, 0.3) == pytest.approx(4 * np.sqrt(-2 * np.log(0.3)) / np.pi)


def test_reduce_and_expand_keep_a_constant_and_the_shapes():
    flat = np.full((32, 24), 7.0)
    small = ps.reduce(flat, (8, 6))
    assert small.shape == (8, 6) and np.allclose(small, 7.0)
    assert np.allclose(ps.expand(small, (32, 24)), 7.0)
    ramp = np.tile(np.arange(32, dtype=float), (32, 1))
    # coarse pixel j covers fine pixels 4j..4j+3: its centre is 4j + 1.5
    np.testing.assert_allclose(ps.reduce(ramp, (8, 8))[4, 2:6], 4 * np.arange(2, 6) + 1.5, atol=1e-6)


def test_gihs_adds_one_detail_image_to_every_band(scene):
    _, up, pan = scene
    out = ps.gihs(up, pan)
    details = out - up
    np.testing.assert_allclose(details[0], details[1], atol=1e-9)
    np.testing.assert_allclose(details[0], details[2], atol=1e-9)
    assert abs(details.mean()) < 1e-9  # the matched pan has the intensity's mean


def test_brovey_keeps_every_pixels_spectral_angle(scene):
    from napari_gifnet.metrics.pansharpening import sam

    _, up, pan = scene
    out = ps.brovey(up, pan)
    assert sam(out, up, band_axis=0) == pytest.approx(0, abs=1e-5)


def test_gsa_regression_recovers_the_weights_of_an_exact_combination():
    rng = np.random.default_rng(4)
    ms = rng.random((3, 20, 20))
    target = 0.2 * ms[0] + 0.5 * ms[1] + 0.3 * ms[2] + 7
    intensity, coef = ps.regression_intensity(ms, target)
    np.testing.assert_allclose(coef, [0.2, 0.5, 0.3, 7], atol=1e-9)
    np.testing.assert_allclose(intensity, target, atol=1e-9)


def test_gsa_gains_are_cov_over_var(scene):
    _, up, pan = scene
    intensity, _ = ps.regression_intensity(up, ps._pan_low(pan, 4, 0.3))
    gains = ps._cs_gains(up, intensity).ravel()
    expected = [np.cov(b.ravel(), intensity.ravel())[0, 1] / np.var(intensity.ravel(), ddof=1) for b in up]
    np.testing.assert_allclose(gains, expected, rtol=1e-9)
    detail = ps.gsa(up, pan) - up
    for k in range(3):  # the same detail image, scaled by each band's gain
        np.testing.assert_allclose(detail[k], gains[k] / gains[0] * detail[0], atol=1e-8)


def test_mtf_glp_hpm_multiplies_by_pan_over_its_low_pass(scene):
    _, up, pan = scene
    out = ps.mtf_glp(up, pan, 4, injection="hpm")
    low = ps._pan_low(pan, 4, 0.3)
    for k in range(3):
        sharp, sharp_low = ps._match(pan, low, up[k])
        np.testing.assert_allclose(out[k], up[k] * sharp / sharp_low, rtol=1e-9)


def test_a_constant_pan_adds_no_detail_and_flattens_the_intensity(scene):
    _, up, _ = scene
    flat = np.full(up.shape[1:], 50.0)
    for method in ("mtf_glp", "mtf_glp_hpm"):  # MRA: only details are injected
        np.testing.assert_allclose(ps.pansharpen_bands(method, up, flat, 4), up, atol=1e-9)
    # CS: the intensity is substituted by the (flat) pan matched to its mean
    np.testing.assert_allclose(ps.gihs(up, flat).mean(axis=0), up.mean(), atol=1e-9)
    out = ps.brovey(up, flat)
    np.testing.assert_allclose(out.mean(axis=0), up.mean(), rtol=1e-9)


@pytest.mark.parametrize("method", ["gihs", "gsa", "mtf_glp", "mtf_glp_hpm", "brovey"])
def test_every_method_beats_plain_upsampling_under_walds_protocol(scene, method):
    from napari_gifnet.metrics.pansharpening import ergas

    truth, up, pan = scene
    out = ps.pansharpen_bands(method, up, pan, 4)
    assert ergas(out, truth, 4, band_axis=0) < 0.7 * ergas(up, truth, 4, band_axis=0)


def test_gsa_detail_injects_the_high_pass_of_the_fusion_with_gsas_gains(scene):
    _, up, pan = scene
    flat = ps.gsa_detail(up, pan, 4, lambda i, p: np.full_like(i, 3.0))  # no detail
    np.testing.assert_allclose(flat, up, atol=1e-9)
    # the pan itself as the fusion: its matched high-pass P - P_low, with GSA's gains
    low = ps._pan_low(pan, 4, 0.3)
    intensity, _ = ps.regression_intensity(up, low)
    gains = [np.cov(b.ravel(), intensity.ravel())[0, 1] / np.var(intensity, ddof=1) for b in up]
    detail = (pan - low) * intensity.std() / low.std()
    expected = np.stack([b + g * detail for b, g in zip(up, gains)])
    np.testing.assert_allclose(ps.gsa_detail(up, pan, 4, lambda i, p: p), expected, atol=1e-8)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: ps.pansharpen_bands("nope", np.ones((2, 4, 4)), np.ones((4, 4))), "unknown"),
        (lambda: ps.gsa(np.ones((2, 4, 4)), np.ones((4, 5))), "pan grid"),
        (lambda: ps.gihs(np.ones((2, 4, 4)), np.ones((4, 4)), weights=[1, 2, 3]), "weights"),
        (lambda: ps.mtf_glp(np.ones((2, 4, 4)), np.ones((4, 4)), injection="x"), "injection"),
        (lambda: ps.mtf_sigma(4, 1.5), "nyquist_gain"),
    ],
)
def test_bad_arguments_are_named(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_reduced_resolution_gains_recover_bands_proportional_to_the_pan(scene):
    # bands that are a_k * pan + c_k seen through the sensor: the gains measured one scale
    # down are a_k, and the sharpened bands are a_k * pan + c_k exactly
    _, _, pan = scene
    low = ps._pan_low(pan, 4, 0.3)
    a, c = np.array([0.5, 1.0, 2.0]), np.array([10.0, -3.0, 40.0])
    up = a[:, None, None] * low + c[:, None, None]
    np.testing.assert_allclose(ps._reduced_gains(up, low, 4, 0.3).ravel(), a, rtol=1e-9)
    out = ps.pansharpen_bands("mtf_glp_rr", up, pan, 4)
    np.testing.assert_allclose(out, a[:, None, None] * pan + c[:, None, None], atol=1e-8)
