"""Tests of napari_gifnet.metrics.pansharpening against second computations written from the papers.

Each index is recomputed here by a plain, loop-based reading of its
formula (Wald 2002 for ERGAS, Yuhas et al. 1992 for SAM, Wang and Bovik
2002 for Q, Alparone et al. 2004 / Garzelli and Nencini 2009 for Q4 / Q2n
with Hamilton's quaternion product written out, Zhou et al. 1998 for sCC,
Alparone et al. 2008 for QNR), and checked on hand-computed values and
properties (a perfect image scores ERGAS 0, SAM 0, Q 1, Q2n 1, sCC 1).
"""

from __future__ import annotations

import numpy as np
import pytest

from napari_gifnet.metrics import pansharpening as pm


@pytest.fixture(scope="module")
def pair() -> tuple[np.ndarray, np.ndarray]:
    """A smooth-ish 4-band truth (H, W, 4) and a distorted copy, 40 x 36 pixels."""
    rng = np.random.default_rng(11)
    y, x = np.mgrid[0:40, 0:36]
    base = 100 + 40 * np.sin(x / 5.0) * np.cos(y / 7.0)
    truth = np.stack([base * (0.6 + 0.2 * k) + rng.normal(0, 6, base.shape) for k in range(4)], -1)
    fused = truth * np.array([1.05, 0.97, 1.0, 1.02]) + rng.normal(0, 4, truth.shape) + 3
    return fused, truth


# -- second computations, from the formulas ------------------------------------


def ergas_formula(f: np.ndarray, t: np.ndarray, ratio: float) -> float:
    total = 0.0
    for k in range(t.shape[-1]):
        rmse = np.sqrt(np.mean((f[..., k] - t[..., k]) ** 2))
        total += (rmse / np.mean(t[..., k])) ** 2
    return 100.0 / ratio * np.sqrt(total / t.shape[-1])


def sam_formula(f: np.ndarray, t: np.ndarray) -> float:
    angles = []
    for i in range(t.shape[0]):
        for j in range(t.shape[1]):
            a, b = f[i, j], t[i, j]
            na, nb = np.linalg.norm(a), np.linalg.norm(b)
            if na > 0 and nb > 0:
                angles.append(np.arccos(np.clip(a @ b / (na * nb), -1, 1)))
    return float(np.degrees(np.mean(angles)))


def uiqi_one(a: np.ndarray, b: np.ndarray) -> float:
    """Wang-Bovik Q of two windows, by its definition (sample statistics; the N-1 cancels)."""
    a, b = a.ravel(), b.ravel()
    c = np.cov(a, b)
    return 4 * c[0, 1] * a.mean() * b.mean() / ((c[0, 0] + c[1, 1]) * (a.mean() ** 2 + b.mean() ** 2))


def uiqi_formula(a: np.ndarray, b: np.ndarray, block: int) -> float:
    values = [uiqi_one(a[i : i + block, j : j + block], b[i : i + block, j : j + block])
              for i in range(a.shape[0] - block + 1) for j in range(a.shape[1] - block + 1)]  # fmt: skip
    return float(np.mean(values))


def hamilton(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Quaternion product (a1 + b1 i + c1 j + d1 k)(a2 + b2 i + c2 j + d2 k), components on axis 0."""
    a1, b1, c1, d1 = p
    a2, b2, c2, d2 = q
    return np.stack([
        a1 * a2 - b1 * b2 - c1 * c2 - d1 * d2,
        a1 * b2 + b1 * a2 + c1 * d2 - d1 * c2,
        a1 * c2 - b1 * d2 + c1 * a2 + d1 * b2,
        a1 * d2 + b1 * c2 - c1 * b2 + d1 * a2,
    ])  # fmt: skip


def q4_block_formula(t: np.ndarray, f: np.ndarray) -> float:
    """Q4 of one (4, h, w) block: |sigma_zz'| / (sigma_z sigma_z') * 2 sigma_z sigma_z' /
    (sigma_z^2 + sigma_z'^2) * 2 |z| |z'| / (|z|^2 + |z'|^2), after the toolbox's normalisation."""
    m = t.reshape(4, -1).mean(1)[:, None, None]
    s = t.reshape(4, -1).std(1, ddof=1)[:, None, None]
    s[s == 0] = np.finfo(float).eps
    z, w = (t - m) / s + 1, (f - m) / s + 1
    n = z[0].size
    mz, mw = z.reshape(4, -1).mean(1), w.reshape(4, -1).mean(1)
    conj = np.array([1.0, -1.0, -1.0, -1.0])
    cov = sum(hamilton((z - mz[:, None, None])[:, i, j], (w - mw[:, None, None])[:, i, j] * conj)
              for i in range(z.shape[1]) for j in range(z.shape[2])) / (n - 1)  # fmt: skip
    var_z = np.sum((z - mz[:, None, None]) ** 2) / (n - 1)
    var_w = np.sum((w - mw[:, None, None]) ** 2) / (n - 1)
    sz, sw = np.sqrt(var_z), np.sqrt(var_w)
    nz, nw = np.linalg.norm(mz), np.linalg.norm(mw)
    return float(np.linalg.norm(cov) / (sz * sw) * 2 * sz * sw / (var_z + var_w)
                 * 2 * nz * nw / (nz**2 + nw**2))  # fmt: skip


def laplacian_formula(x: np.ndarray) -> np.ndarray:
    p = np.pad(x, 1, mode="edge")
    return p[:-2, 1:-1] + p[2:, 1:-1] + p[1:-1, :-2] + p[1:-1, 2:] - 4 * x


# -- the indices -------------------------------------------------------------------


def test_psnr_and_ergas_hand_computed_values():
    truth = np.stack([np.full((2, 2), 10.0), np.full((2, 2), 20.0)], -1)
    fused = truth.copy()
    fused[..., 0] += 1  # RMSE 1 on a band of mean 10, exact on the other
    assert pm.ergas(fused, truth, 4) == pytest.approx(100 / 4 * np.sqrt((0.1**2 + 0) / 2))
    assert pm.band_psnr(fused, truth) == pytest.approx(10 * np.log10(255**2 / 0.5))
    assert pm.ergas(truth, truth) == 0 and pm.band_psnr(truth, truth) == np.inf


def test_ergas_matches_the_formula_and_scales_with_the_ratio(pair):
    fused, truth = pair
    assert pm.ergas(fused, truth, 4) == pytest.approx(ergas_formula(fused, truth, 4), rel=1e-12)
    assert pm.ergas(fused, truth, 2) == pytest.approx(2 * pm.ergas(fused, truth, 4))
    first = pm.ergas(np.moveaxis(fused, -1, 0), np.moveaxis(truth, -1, 0), 4, band_axis=0)
    assert first == pytest.approx(pm.ergas(fused, truth, 4))


def test_sam_hand_computed_and_formula(pair):
    truth = np.array([[[1.0, 0.0], [1.0, 0.0], [0.0, 0.0]]])  # (1, 3, 2): three pixels, two bands
    fused = np.array([[[1.0, 1.0], [2.0, 0.0], [5.0, 5.0]]])  # 45 deg, 0 deg, a zero truth pixel
    assert pm.sam(fused, truth) == pytest.approx(22.5)
    f, t = pair
    assert pm.sam(f, t) == pytest.approx(sam_formula(f, t), rel=1e-10)
    assert pm.sam(t * 3, t) == pytest.approx(0, abs=1e-6)  # a brightness change keeps the angle


def test_uiqi_matches_the_windowed_formula(pair):
    f, t = pair
    for block in (4, 7):
        assert pm.uiqi(f[..., 1], t[..., 1], block) == pytest.approx(
            uiqi_formula(f[..., 1], t[..., 1], block), rel=1e-9
        )
    # smaller than a block: the whole image is one window
    assert pm.uiqi(f[:5, :6, 0], t[:5, :6, 0], 32) == pytest.approx(uiqi_one(f[:5, :6, 0], t[:5, :6, 0]))
    assert pm.q_index(t, t) == pytest.approx(1.0)
    expected = np.mean([uiqi_formula(f[..., k], t[..., k], 8) for k in range(4)])
    assert pm.q_index(f, t, 8) == pytest.approx(expected, rel=1e-9)


def test_uiqi_of_constant_windows_follows_wang_bovik():
    a, b = np.full((4, 4), 2.0), np.full((4, 4), 4.0)
    assert pm.uiqi(a, b, 4) == pytest.approx(2 * 2 * 4 / (4 + 16))
    assert pm.uiqi(np.zeros((4, 4)), np.zeros((4, 4)), 4) == 1.0


def test_the_cayley_dickson_product_is_hamiltons_for_quaternions():
    rng = np.random.default_rng(2)
    p, q = rng.normal(size=(4, 5)), rng.normal(size=(4, 5))
    np.testing.assert_allclose(pm._cd_mult(p, q), hamilton(p, q), atol=1e-12)
    i, j = np.eye(4)[1][:, None], np.eye(4)[2][:, None]
    np.testing.assert_allclose(pm._cd_mult(i, j)[:, 0], [0, 0, 0, 1])  # i j = k


def test_q4_matches_the_quaternion_formula_block_by_block(pair):
    f, t = pair
    fb, tb = np.moveaxis(f, -1, 0), np.moveaxis(t, -1, 0)
    # 40 x 36 with blocks of 16: mirrored to 48 x 48, nine blocks
    ft = np.pad(fb, ((0, 0), (0, 8), (0, 12)), mode="symmetric")
    tt = np.pad(tb, ((0, 0), (0, 8), (0, 12)), mode="symmetric")
    blocks = [q4_block_formula(tt[:, i : i + 16, j : j + 16], ft[:, i : i + 16, j : j + 16])
              for i in range(0, 48, 16) for j in range(0, 48, 16)]  # fmt: skip
    assert pm.q2n(f, t, 16) == pytest.approx(np.mean(blocks), rel=1e-9)
    assert pm.q2n(t, t, 16) == pytest.approx(1.0)
    assert 0 < pm.q2n(f, t, 16) < 1


def test_q2n_pads_three_bands_with_a_zero_band(pair):
    f, t = pair
    f3, t3 = f[:32, :32, :3], t[:32, :32, :3]
    zero = np.zeros((32, 32, 1))
    expected = q4_block_formula(np.moveaxis(np.concatenate([t3, zero], -1), -1, 0),
                                np.moveaxis(np.concatenate([f3, zero], -1), -1, 0))  # fmt: skip
    assert pm.q2n(f3, t3, 32) == pytest.approx(expected, rel=1e-9)


def test_q2n_sees_a_spectral_distortion_that_band_q_misses(pair):
    _, t = pair
    swapped = t[..., [1, 0, 2, 3]]  # two bands exchanged: same statistics, wrong colours
    assert pm.q2n(swapped, t) < pm.q2n(t, t) - 0.01


def test_scc_matches_the_formula(pair):
    f, t = pair
    expected = np.mean([np.corrcoef(laplacian_formula(f[..., k]).ravel(),
                                    laplacian_formula(t[..., k]).ravel())[0, 1] for k in range(4)])  # fmt: skip
    assert pm.scc(f, t) == pytest.approx(expected, rel=1e-9)
    assert pm.scc(t * 2 + 5, t) == pytest.approx(1.0)


def _block_q_formula(a: np.ndarray, b: np.ndarray, block: int) -> float:
    return float(np.mean([uiqi_one(a[i : i + block, j : j + block], b[i : i + block, j : j + block])
                          for i in range(0, a.shape[0] - block + 1, block)
                          for j in range(0, a.shape[1] - block + 1, block)]))  # fmt: skip


def test_qnr_matches_the_formula():
    from napari_gifnet.methods.pansharpening import reduce

    rng = np.random.default_rng(5)
    pan = 100 + 30 * rng.random((32, 32))
    ms = np.stack([reduce(pan * (0.5 + 0.3 * k), (8, 8)) + rng.normal(0, 2, (8, 8)) for k in range(3)], -1)
    fused = np.stack([pan * (0.5 + 0.3 * k) + rng.normal(0, 3, (32, 32)) for k in range(3)], -1)
    got = pm.qnr(fused, ms, pan, 4, block=16)
    d_l = np.mean([abs(_block_q_formula(fused[..., i], fused[..., j], 16)
                       - _block_q_formula(ms[..., i], ms[..., j], 4))
                   for i in range(3) for j in range(3) if i != j])  # fmt: skip
    low = reduce(pan, (8, 8))
    d_s = np.mean([abs(_block_q_formula(fused[..., i], pan, 16) - _block_q_formula(ms[..., i], low, 4))
                   for i in range(3)])  # fmt: skip
    assert got["D_lambda"] == pytest.approx(d_l, rel=1e-9)
    assert got["D_s"] == pytest.approx(d_s, rel=1e-9)
    assert got["QNR"] == pytest.approx((1 - d_l) * (1 - d_s), rel=1e-9)
    assert 0 < got["QNR"] < 1


def test_pansharpening_metrics_of_a_perfect_image(pair):
    _, t = pair
    r = pm.pansharpening_metrics(t, t)
    assert r["PSNR"] == np.inf and r["ERGAS"] == 0 and r["SAM"] == pytest.approx(0, abs=1e-6)
    assert r["Q"] == pytest.approx(1) and r["Q2n"] == pytest.approx(1)
    assert r["sCC"] == pytest.approx(1)
    assert set(r) == set(pm.PANSHARPENING_METRICS)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: pm.ergas(np.ones((4, 4, 2)), np.ones((4, 5, 2))), "differ in shape"),
        (lambda: pm.sam(np.full((4, 4, 2), np.nan), np.ones((4, 4, 2))), "fused holds NaN"),
        (lambda: pm.ergas(np.ones((4, 4, 2)), np.zeros((4, 4, 2))), "non-zero mean"),
        (lambda: pm.ergas(np.ones((4, 4, 2)), np.ones((4, 4, 2)), 0), "ratio must be > 0"),
        (lambda: pm.qnr(np.ones((32, 32, 2)), np.ones((7, 8, 2)), np.ones((32, 32))), "ms grid"),
        (lambda: pm.qnr(np.ones((32, 32, 2)), np.ones((8, 8, 2)), np.ones((32, 32)), 3), "ratio"),
    ],
)
def test_bad_input_is_named(call, match):
    with pytest.raises(ValueError, match=match):
        call()
