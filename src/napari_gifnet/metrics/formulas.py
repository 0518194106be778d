"""The reference-free metrics' formulas, on prepared 0-255 grey arrays.

Each function takes 2-D float64 arrays already brought to the 0-255 scale by
:func:`napari_gifnet.metrics.fusion.to_metric_scale` and of equal shapes; the
conventions and degenerate cases are described in :mod:`napari_gifnet.metrics.fusion`,
which computes its metrics through ``_COMPUTE`` (metric name -> function of
``(fused, a, b)``) and ``_ssim``; ``_COMPUTE_CDDFUSE`` and
``_COMPUTE_VIFB_BAND`` hold the two literature conventions' variants.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy import ndimage

_EPS = 1e-10  # VIF's small-variance threshold
_SSIM_MIN_SIDE = 11  # Gaussian window: sigma 1.5, truncated at 3.5 sigma
_UNIFORM_SSIM_SIDE = 7  # the CDDFuse evaluator's SSIM: skimage's default window


def _corr(x: np.ndarray, y: np.ndarray) -> float:
    """Pearson correlation over all pixels; NaN when either is constant."""
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan")
    xm, ym = x - x.mean(), y - y.mean()
    return float(np.sum(xm * ym) / np.sqrt(np.sum(xm * xm) * np.sum(ym * ym)))


def _levels(x: np.ndarray) -> np.ndarray:
    """Integer labels 0..n-1 of the rounded values of ``x`` (flattened)."""
    r = np.rint(x.ravel()).astype(np.int64)
    r -= r.min()
    if r.max() < 1 << 16:
        return r
    return np.unique(r, return_inverse=True)[1].ravel()


def _mutual_information(x: np.ndarray, y: np.ndarray) -> float:
    """MI in nats of the joint histogram of the integer grey levels."""
    lx, ly = _levels(x), _levels(y)
    ny = int(ly.max()) + 1
    codes = lx * ny + ly
    if codes.max() < 1 << 24:
        counts = np.bincount(codes)
        codes = np.flatnonzero(counts)
        counts = counts[codes]
    else:
        codes, counts = np.unique(codes, return_counts=True)
    pij, px, py = counts / lx.size, np.bincount(lx) / lx.size, np.bincount(ly) / lx.size
    return max(0.0, float(np.sum(pij * np.log(pij / (px[codes // ny] * py[codes % ny])))))


def _vif_window(n: int) -> np.ndarray:
    """1-D factor of the MATLAB-style ``fspecial('gaussian', n, n / 5)`` window.

    The 2-D window is the outer product of this with itself: for these sizes
    no tap falls below ``eps * max`` (the smallest is about 0.002 * max), so
    MATLAB's zeroing of tiny taps changes nothing and the window is separable.
    """
    sd, m = n / 5.0, (n - 1) / 2.0
    g = np.exp(-((np.arange(n) - m) ** 2) / (2.0 * sd * sd))
    assert np.outer(g, g).min() >= np.finfo(float).eps * g.max() ** 2
    return g / g.sum()


def _valid(x: np.ndarray, g: np.ndarray) -> np.ndarray:
    """Separable 'valid' filtering of ``x`` with the window ``outer(g, g)``."""
    r = len(g) // 2
    y = ndimage.correlate1d(x, g, axis=0, mode="constant")[r:-r]
    return ndimage.correlate1d(y, g, axis=1, mode="constant")[:, r:-r]


def _vif(ref: np.ndarray, dist: np.ndarray) -> float:
    """Pixel-domain multi-scale VIF of ``dist`` with respect to ``ref``."""
    num = den = 0.0
    for scale in range(1, 5):
        g = _vif_window(2 ** (5 - scale) + 1)
        if scale > 1:
            ref, dist = _valid(ref, g)[::2, ::2], _valid(dist, g)[::2, ::2]
        if min(ref.shape) < len(g):
            return float("nan")  # too small for this scale's window
        mu1, mu2 = _valid(ref, g), _valid(dist, g)
        s1 = np.maximum(_valid(ref * ref, g) - mu1 * mu1, 0.0)
        s2 = np.maximum(_valid(dist * dist, g) - mu2 * mu2, 0.0)
        s12 = _valid(ref * dist, g) - mu1 * mu2
        gain = s12 / (s1 + _EPS)
        sv = s2 - gain * s12
        low1, low2 = s1 < _EPS, s2 < _EPS
        gain[low1], sv[low1], s1[low1] = 0.0, s2[low1], 0.0
        gain[low2], sv[low2] = 0.0, 0.0
        neg = gain < 0
        sv[neg], gain[neg] = s2[neg], 0.0
        sv = np.maximum(sv, _EPS)
        num += float(np.sum(np.log10(1.0 + gain * gain * s1 / (sv + 2.0))))
        den += float(np.sum(np.log10(1.0 + s1 / 2.0)))
    return num / den if den > 0 else 1.0  # 0 / 0 (a flat reference) counts as 1


# Qabf's Sobel kernels, applied by correlation: gx = right minus left and
# gy = top minus bottom (the y axis points up). Only the relative sign of the
# two matters, through the pi/2 given where gx = 0: this pair reproduces the
# reference evaluator (convolve2d with [[-1,0,1],[-2,0,2],[-1,0,1]] and
# [[1,2,1],[0,0,0],[-1,-2,-1]]); flipping one of them changes Qabf by ~0.5 %.
_SOBEL_X = np.array([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])
_SOBEL_Y = np.array([[1.0, 2.0, 1.0], [0.0, 0.0, 0.0], [-1.0, -2.0, -1.0]])


def _edges(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Qabf's Sobel strength and orientation ``atan(gy / gx)`` (pi/2 where gx = 0)."""
    gx = ndimage.correlate(x, _SOBEL_X, mode="constant")
    gy = ndimage.correlate(x, _SOBEL_Y, mode="constant")
    ratio = np.divide(gy, gx, out=np.full_like(gx, np.inf), where=gx != 0)
    return np.hypot(gx, gy), np.arctan(ratio)


def _edge_preservation(g_in: np.ndarray, a_in: np.ndarray, g_f: np.ndarray, a_f: np.ndarray) -> np.ndarray:
    """Xydeas-Petrovic per-pixel preservation Q of one input's edges in F."""
    rel = np.divide(np.minimum(g_in, g_f), np.maximum(g_in, g_f), out=g_f.copy(), where=g_in != g_f)
    orient = 1.0 - np.abs(a_in - a_f) / (np.pi / 2)
    q_g = 0.9994 / (1.0 + np.exp(-15.0 * (rel - 0.5)))
    q_a = 0.9879 / (1.0 + np.exp(-22.0 * (orient - 0.8)))
    return q_g * q_a


def _qabf(f: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    (g_a, a_a), (g_b, a_b), (g_f, a_f) = _edges(a), _edges(b), _edges(f)
    den = float(np.sum(g_a + g_b))
    if den == 0:
        return float("nan")
    q_af = _edge_preservation(g_a, a_a, g_f, a_f)
    q_bf = _edge_preservation(g_b, a_b, g_f, a_f)
    return float(np.sum(q_af * g_a + q_bf * g_b)) / den


def _ssim(x: np.ndarray, y: np.ndarray) -> float:
    if min(x.shape) < _SSIM_MIN_SIDE:
        return float("nan")
    from skimage.metrics import structural_similarity

    return float(
        structural_similarity(
            x, y, data_range=255, gaussian_weights=True, sigma=1.5, use_sample_covariance=False
        )
    )


def _ssim_uniform(x: np.ndarray, y: np.ndarray) -> float:
    """The CDDFuse/EMMA evaluator's SSIM: scikit-image's defaults on float data.

    A 7 x 7 uniform window, sample covariance (N / (N - 1)), K1 = 0.01,
    K2 = 0.03 and the data range 2 that scikit-image up to 0.19 took for
    float data given without one (its float range -1..1), although the data
    is on the 0-255 scale: C1 and C2 are then negligible. NaN under 7 pixels
    on a side.
    """
    if min(x.shape) < _UNIFORM_SSIM_SIDE:
        return float("nan")
    from skimage.metrics import structural_similarity

    return float(
        structural_similarity(
            x, y, data_range=2.0, win_size=_UNIFORM_SSIM_SIDE, gaussian_weights=False,
            use_sample_covariance=True,
        )
    )  # fmt: skip


def _vifb_levels(x: np.ndarray) -> np.ndarray:
    """VIFB's MI quantisation: min-max to 0..255, rounded half away from zero.

    A constant image gives all zeros. On integer data this relabels the
    levels one to one (the range never shrinks), so MI is unchanged.
    """
    lo, hi = float(x.min()), float(x.max())
    if hi == lo:
        return np.zeros_like(x)
    return np.floor((x - lo) / (hi - lo) * 255.0 + 0.5)


def _average_gradient_vifb(f: np.ndarray) -> float:
    """VIFB's AG: the gradient magnitudes summed over all pixels / ((H - 1)(W - 1))."""
    if min(f.shape) < 2:
        return 0.0
    gy, gx = np.gradient(f)
    total = float(np.sum(np.sqrt((gx * gx + gy * gy) / 2.0)))
    return total / ((f.shape[0] - 1) * (f.shape[1] - 1))


def _spatial_frequency_vifb(bands: list[np.ndarray]) -> float:
    """VIFB's SF: the bands side by side as one H x (W * bands) image (MATLAB's
    two-output ``size`` of an RGB array), squared differences summed and divided
    by the pixel count, not the difference count; the seams between bands count."""
    f = np.concatenate(bands, axis=1)
    rows = float(np.sum((f[:, 1:] - f[:, :-1]) ** 2))
    cols = float(np.sum((f[1:, :] - f[:-1, :]) ** 2))
    return float(np.sqrt((rows + cols) / f.size))


def _entropy(f: np.ndarray) -> float:
    hist = np.bincount(np.clip(np.rint(f), 0, 255).astype(np.uint8).ravel(), minlength=256)
    p = hist[hist > 0] / f.size
    return float(0.0 - np.sum(p * np.log2(p)))  # +0.0, not -0.0, for a flat image


def _spatial_frequency(f: np.ndarray) -> float:
    rf = np.mean((f[:, 1:] - f[:, :-1]) ** 2) if f.shape[1] > 1 else 0.0
    cf = np.mean((f[1:, :] - f[:-1, :]) ** 2) if f.shape[0] > 1 else 0.0
    return float(np.sqrt(rf + cf))


def _average_gradient(f: np.ndarray) -> float:
    if min(f.shape) < 2:
        return 0.0
    gy, gx = np.gradient(f)
    return float(np.mean(np.sqrt((gx * gx + gy * gy) / 2.0)))


def _edge_intensity(f: np.ndarray) -> float:
    gx = ndimage.sobel(f, axis=1, mode="nearest")
    gy = ndimage.sobel(f, axis=0, mode="nearest")
    return float(np.mean(np.hypot(gx, gy)))


_COMPUTE: dict[str, Callable[[np.ndarray, np.ndarray, np.ndarray], float]] = {
    "EN": lambda f, a, b: _entropy(f),
    "SD": lambda f, a, b: float(np.std(f)),
    "SF": lambda f, a, b: _spatial_frequency(f),
    "AG": lambda f, a, b: _average_gradient(f),
    "EI": lambda f, a, b: _edge_intensity(f),
    "MI": lambda f, a, b: _mutual_information(f, a) + _mutual_information(f, b),
    "SCD": lambda f, a, b: _corr(f - b, a) + _corr(f - a, b),
    "VIF": lambda f, a, b: _vif(a, f) + _vif(b, f),
    "Qabf": _qabf,
    "SSIM": lambda f, a, b: _ssim(f, a) + _ssim(f, b),
}

#: The CDDFuse/EMMA evaluator's convention: the same formulas, its SSIM.
_COMPUTE_CDDFUSE = {
    **_COMPUTE,
    "SSIM": lambda f, a, b: _ssim_uniform(f, a) + _ssim_uniform(f, b),
}

#: VIFB's per-band formulas (one fused band ``f`` against one band or grey
#: image of each input); SF is computed over all bands at once, not here.
_COMPUTE_VIFB_BAND = {
    **_COMPUTE,
    "AG": lambda f, a, b: _average_gradient_vifb(f),
    "MI": lambda f, a, b: (
        _mutual_information(_vifb_levels(f), _vifb_levels(a))
        + _mutual_information(_vifb_levels(f), _vifb_levels(b))
    ),
}
