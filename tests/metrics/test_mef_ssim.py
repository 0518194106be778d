"""MEF-SSIM (Ma, Zeng & Wang 2015) against a direct per-patch computation written
from the paper and its published MATLAB code (mef_ssim.m, mef_ms_ssim.m), plus
properties."""

from __future__ import annotations

import numpy as np
import pytest

from napari_gifnet.metrics import mef_ssim

EPS = np.finfo(float).eps


def _window() -> np.ndarray:
    t = np.arange(-5, 6)
    g = np.exp(-(t[:, None] ** 2 + t[None, :] ** 2) / (2 * 1.5**2))
    return g / g.sum()


def _patch_loop(seq: np.ndarray, f: np.ndarray) -> float:
    """One scale, patch by patch: seq (K, H, W) and f (H, W) on 0-255."""
    win, c = _window(), (0.03 * 255) ** 2
    k, h, w = seq.shape
    scores = []
    for i in range(h - 10):
        for j in range(w - 10):
            x = seq[:, i : i + 11, j : j + 11].reshape(k, -1)
            centred = x - x.mean(axis=1, keepdims=True)
            norms = np.linalg.norm(centred, axis=1)
            strength = norms + 0.001
            total = x.sum(axis=0)
            r = (np.linalg.norm(total - total.mean()) + EPS) / (norms.sum() + EPS)
            r = min(max(r, EPS), 1 - EPS)
            p = min(np.tan(np.pi / 2 * r), 10.0)
            wk = (strength / 11) ** p + EPS
            wk = wk / wk.sum()
            ref = (wk[:, None] * centred / strength[:, None]).sum(axis=0)
            if np.linalg.norm(ref) > 0:
                ref = ref / np.linalg.norm(ref) * strength.max()
            fv, g = f[i : i + 11, j : j + 11].ravel(), win.ravel()
            m1, m2 = (g * ref).sum(), (g * fv).sum()
            s1, s2 = (g * (ref - m1) ** 2).sum(), (g * (fv - m2) ** 2).sum()
            s12 = (g * (ref - m1) * (fv - m2)).sum()
            scores.append((2 * s12 + c) / (s1 + s2 + c))
    return float(np.mean(scores))


def _halve(x: np.ndarray) -> np.ndarray:
    """MATLAB's imfilter(x, ones(2)/4, 'symmetric', 'same') then x(1:2:end, 1:2:end)."""
    h, w = x.shape
    out = np.zeros(((h + 1) // 2, (w + 1) // 2))
    for i in range(0, h, 2):
        for j in range(0, w, 2):
            rows, cols = [i, min(i + 1, h - 1)], [j, min(j + 1, w - 1)]
            out[i // 2, j // 2] = x[np.ix_(rows, cols)].mean()
    return out


def _bracket(shape, gains, seed=0):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]]
    scene = 0.5 + 0.3 * np.sin(xx / 3.0) * np.cos(yy / 4.0) + 0.15 * rng.standard_normal(shape)
    scene = scene * np.linspace(0.3, 1.6, shape[1])[None, :]
    return [np.round(np.clip(scene * g, 0, 1) * 255) for g in gains]


def test_single_scale_matches_the_patch_loop() -> None:
    seq = _bracket((19, 23), (0.4, 1.0, 2.6))
    fused = np.round(
        np.clip(np.mean(seq, axis=0) + np.random.default_rng(1).normal(0, 9, (19, 23)), 0, 255)
    )
    expected = _patch_loop(np.stack(seq), fused)
    got = mef_ssim([s.astype(np.uint8) for s in seq], fused.astype(np.uint8), scales=1)
    assert got == pytest.approx(expected, abs=1e-9)
    assert 0.2 < got < 0.99  # a real score, not a trivial one


def test_three_scales_match_the_published_combination() -> None:
    seq = [s.astype(np.uint8) for s in _bracket((45, 47), (0.5, 2.2), seed=3)]
    fused = np.round(np.clip(0.6 * seq[0] + 0.5 * seq[1], 0, 255)).astype(np.uint8)
    stack, f = np.stack(seq).astype(float), fused.astype(float)
    beta = np.array([0.0448, 0.2856, 0.3001]) / (0.0448 + 0.2856 + 0.3001)
    expected = 1.0
    for level in range(3):
        if level:
            stack, f = np.stack([_halve(s) for s in stack]), _halve(f)
        expected *= _patch_loop(stack, f) ** beta[level]
    assert mef_ssim(seq, fused) == pytest.approx(expected, abs=1e-9)


def test_properties() -> None:
    seq = [s / 255 for s in _bracket((48, 52), (0.45, 2.4), seed=5)]
    same = [seq[0], seq[0].copy()]
    assert mef_ssim(same, seq[0]) == pytest.approx(1.0, abs=1e-5)
    assert mef_ssim(same, seq[0], scales=1) == pytest.approx(1.0, abs=1e-5)
    # one exposure of a differing pair is not the fusion the model asks for
    assert mef_ssim(seq, seq[0]) < 0.9 and mef_ssim(seq, seq[1]) < 0.999
    # a float (N, H, W) stack and a list read the same; RGB is scored on its luma
    assert mef_ssim(np.stack(seq), seq[1]) == mef_ssim(seq, seq[1])
    rgb = [np.repeat(s[..., None], 3, axis=2) for s in seq]
    assert mef_ssim(rgb, rgb[1]) == pytest.approx(mef_ssim(seq, seq[1]), abs=1e-12)
    assert np.isnan(mef_ssim(seq, seq[0], scales=4))  # 48 / 8 < 11: too small


def test_refuses_bad_input() -> None:
    a = np.zeros((20, 20))
    with pytest.raises(ValueError, match="at least two"):
        mef_ssim([a], a)
    with pytest.raises(ValueError, match="one height and width"):
        mef_ssim([a, a], np.zeros((20, 21)))
    with pytest.raises(ValueError, match="scales"):
        mef_ssim([a, a], a, scales=0)
    with pytest.raises(ValueError, match=r"sources\[1\].*outside \[0, 1\]"):
        mef_ssim([a, a + 2.0], a)
