"""MEF-SSIM: quality of a multi-exposure fusion against its source sequence.

Ma, Zeng & Wang, "Perceptual Quality Assessment for Multi-Exposure Image
Fusion", IEEE TIP 24(11), 2015, as their published MATLAB code computes it
(``mef_ssim.m``, the per-scale score, and ``mef_ms_ssim.m``, the overall
score; grey images on the 0-255 scale):

For every 11 x 11 patch position (``'valid'``: patches inside the image) the
source patches ``x_k`` are split into mean ``mu_k`` (the box mean), signal
strength ``e_k = ||x_k - mu_k|| + 0.001`` and structure ``(x_k - mu_k) / e_k``.
The reference patch the fusion should have is

* contrast: the largest strength, ``max_k e_k``;
* structure: the weighted mean of the source structures, normalised to unit
  length, with weights ``w_k = (e_k / 11)^p + eps`` (normalised over ``k``),
  ``p = tan(pi R / 2)`` capped at 10, where the structural consistency
  ``R = ||sum_k (x_k - mu_k)|| / sum_k ||x_k - mu_k||`` (``(. + eps) / (. + eps)``,
  kept inside ``(0, 1)``);
* no luminance: the mean intensity is not compared.

The reference patch ``r`` (zero where the weighted structure is the zero
vector) is compared with the fused patch by SSIM's contrast-structure term
under an 11 x 11 Gaussian window (sigma 1.5, sum 1):
``q = (2 s_rf + C) / (s_r^2 + s_f^2 + C)``, ``C = (0.03 * 255)^2``, with
weighted means, variances and covariance. A scale's score is the mean of
``q`` over the positions. The overall score (``scales=3``, the paper's
MEF-SSIM) is ``prod_l Q_l ^ beta_l`` over 3 scales, ``beta`` = MS-SSIM's
``(0.0448, 0.2856, 0.3001)`` normalised to sum to 1; each coarser scale is
the previous one averaged over 2 x 2 blocks (the last row and column repeated
for an odd side) and subsampled. ``eps`` is 2.220446e-16 (MATLAB's ``eps``).

Everything is computed from box and Gaussian filters of the sources, their
products and the fused image (closed forms of the per-patch sums), so a
score costs a few dozen filters.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import ndimage

from .fusion import to_metric_scale

__all__ = ["MEF_SSIM_SCALE_WEIGHTS", "mef_ssim"]

#: MS-SSIM's scale weights (Wang, Simoncelli & Bovik 2003); the first
#: ``scales`` are used, normalised to sum to 1 (3: Ma et al.'s default).
MEF_SSIM_SCALE_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
_WIN = 11
_SIGMA = 1.5
_K = 0.03
_EPS = float(np.finfo(np.float64).eps)


def _valid(x: np.ndarray, taps: np.ndarray) -> np.ndarray:
    """Separable 'valid' correlation of the last two axes with ``taps`` (both axes)."""
    bd = len(taps) // 2
    out = ndimage.correlate1d(x, taps, axis=-1, mode="nearest")
    out = ndimage.correlate1d(out, taps, axis=-2, mode="nearest")
    return out[..., bd:-bd, bd:-bd]


def _gaussian_taps() -> np.ndarray:
    t = np.arange(_WIN) - _WIN // 2
    g = np.exp(-(t * t) / (2.0 * _SIGMA**2))
    return g / g.sum()


def _single_scale(seq: np.ndarray, fused: np.ndarray) -> float:
    """Mean MEF-SSIM map of one scale: ``seq`` (K, H, W), ``fused`` (H, W), 0-255."""
    n = _WIN * _WIN
    box, gauss = np.full(_WIN, 1.0 / _WIN), _gaussian_taps()
    k = seq.shape[0]
    mu = _valid(seq, box)  # (K, h, w)
    var = np.maximum(_valid(seq * seq, box) - mu * mu, 0.0)
    norm = np.sqrt(n * var)  # ||x_k - mu_k||
    strength = norm + 0.001
    total = seq.sum(axis=0)
    mu_t = _valid(total, box)
    num = np.sqrt(n * np.maximum(_valid(total * total, box) - mu_t * mu_t, 0.0))
    consistency = np.clip((num + _EPS) / (norm.sum(axis=0) + _EPS), _EPS, 1.0 - _EPS)
    p = np.minimum(np.tan(np.pi / 2.0 * consistency), 10.0)
    w = (strength / _WIN) ** p + _EPS
    coef = w / w.sum(axis=0) / strength  # c_k: the reference patch is sum_k c_k (x_k - mu_k)
    # Box (N * covariance) and Gaussian moments of the source pairs and the fused image.
    g_x = _valid(seq, gauss)
    g_f = _valid(fused, gauss)
    ref_sq = np.zeros_like(g_f)  # ||sum_k c_k (x_k - mu_k)||^2
    ref_g2 = np.zeros_like(g_f)  # sum_window g * (sum_k c_k (x_k - mu_k))^2
    for i in range(k):
        for j in range(i, k):
            prod = seq[i] * seq[j]
            times = 1.0 if i == j else 2.0
            cc = times * coef[i] * coef[j]
            ref_sq += cc * n * (_valid(prod, box) - mu[i] * mu[j])
            ref_g2 += cc * (_valid(prod, gauss) - mu[i] * g_x[j] - mu[j] * g_x[i] + mu[i] * mu[j])
    ref_norm = np.sqrt(np.maximum(ref_sq, 0.0))
    scale = np.where(
        ref_norm > 0, strength.max(axis=0) / np.where(ref_norm > 0, ref_norm, 1.0), 0.0
    )
    mean_r = scale * np.sum(coef * (g_x - mu), axis=0)
    var_r = scale * scale * ref_g2 - mean_r * mean_r
    cross = scale * np.sum(coef * (_valid(seq * fused, gauss) - mu * g_f), axis=0)
    cov = cross - mean_r * g_f
    var_f = _valid(fused * fused, gauss) - g_f * g_f
    c = (_K * 255.0) ** 2
    return float(np.mean((2.0 * cov + c) / (var_r + var_f + c)))


def _downsample(x: np.ndarray) -> np.ndarray:
    """2 x 2 block means of the last two axes, the last row/column repeated for an odd side."""
    pad = [(0, 0)] * (x.ndim - 2) + [(0, 1), (0, 1)]
    p = np.pad(x, pad, mode="symmetric")
    s = p[..., :-1, :-1] + p[..., 1:, :-1] + p[..., :-1, 1:] + p[..., 1:, 1:]
    return s[..., ::2, ::2] / 4.0


def mef_ssim(sources: Sequence[Any], fused: Any, *, scales: int = 3, scaled: bool = False) -> float:
    """MEF-SSIM of a fused image against its exposure sequence (Ma, Zeng & Wang 2015).

    Parameters
    ----------
    sources : sequence of array_like
        The N >= 2 source exposures, (H, W) grey, (H, W, 3) RGB or (H, W, 4)
        RGBA, each brought to grey 0-255 by
        :func:`~napari_gifnet.metrics.to_metric_scale` (float data in [0, 1]
        times 255 and rounded, uint8 as it is; RGB by its luma). Never modified.
    fused : array_like
        The fused image, same height and width, the same rules.
    scales : int
        1: the single-scale score (``mef_ssim.m``'s ``Q``); 3 (default): the
        paper's overall MEF-SSIM (``mef_ms_ssim.m``'s ``oQ``); 2 to 5 weight
        the scales by the first ``scales`` MS-SSIM weights, normalised.
    scaled : bool
        As for :func:`~napari_gifnet.metrics.to_metric_scale`: the data is on
        the 0-255 scale already and is used unchanged.

    Returns
    -------
    float
        The score, 1 for a perfect fusion (larger is better). NaN when the
        coarsest scale is smaller than the 11 x 11 window
        (``min(H, W) / 2^(scales - 1) < 11``).

    Raises
    ------
    ValueError
        Fewer than two sources, images of different heights and widths,
        ``scales`` outside 1..5, or anything ``to_metric_scale`` refuses.
    """
    if isinstance(sources, np.ndarray) and sources.ndim >= 3 and sources.shape[-1] not in (3, 4):
        sources = list(sources)  # a (N, H, W) stack of grey images
    if len(sources) < 2:
        raise ValueError(f"mef_ssim needs at least two source exposures, got {len(sources)}")
    if not isinstance(scales, (int, np.integer)) or not 1 <= scales <= len(MEF_SSIM_SCALE_WEIGHTS):
        raise ValueError(f"scales must be an integer from 1 to 5, got {scales!r}")
    seq = [to_metric_scale(s, scaled=scaled, name=f"sources[{i}]") for i, s in enumerate(sources)]
    f = to_metric_scale(fused, scaled=scaled, name="fused")
    shapes = {x.shape for x in seq} | {f.shape}
    if len(shapes) > 1:
        detail = ", ".join(f"sources[{i}] is {np.shape(s)}" for i, s in enumerate(sources))
        raise ValueError(
            f"mef_ssim needs images of one height and width: {detail}, fused is {np.shape(fused)}"
        )
    if min(f.shape) / 2 ** (scales - 1) < _WIN:
        return float("nan")
    stack = np.stack(seq)
    beta = np.asarray(MEF_SSIM_SCALE_WEIGHTS[:scales])
    beta = beta / beta.sum()
    score = 1.0
    for level in range(scales):
        if level:
            stack, f = _downsample(stack), _downsample(f)
        score *= _single_scale(stack, f) ** beta[level]
    return float(score)
