"""Pansharpening quality: the indices of the field, reduced and full resolution.

Reduced resolution (Wald's protocol: the original multispectral image is the
truth): :func:`pansharpening_metrics`; full resolution (no truth): :func:`qnr`.

Conventions (those of the pansharpening toolboxes, e.g. Vivone et al. 2015
and 2020, unless said otherwise):

* images are multiband, bands last by default (``band_axis=-1``; pass 0 for
  (bands, H, W)); computed in float64 on the values as given (no rescaling);
* Q (UIQI, Wang and Bovik 2002): the index in every 32 x 32 sliding window
  (all positions inside the image; along an axis shorter than 32, the
  window spans the axis),
  averaged over windows and then over bands; a window where both images are
  constant scores 2 mu_x mu_y / (mu_x^2 + mu_y^2) (1 when both are zero);
* Q2n (Q4 for four bands; Alparone et al. 2004, Garzelli and Nencini 2009):
  each pixel's spectrum as a hypercomplex number of 2^n components (bands
  padded with zero bands; Cayley-Dickson algebra, quaternions for four),
  Q = |sigma_zz'| / (sigma_z sigma_z') * 2 sigma_z sigma_z' / (sigma_z^2 +
  sigma_z'^2) * 2 |mu_z| |mu_z'| / (|mu_z|^2 + |mu_z'|^2) on non-overlapping
  32 x 32 blocks (image mirrored at its far edges up to a whole number of
  blocks), averaged over blocks. As in the toolbox, each band of a block is
  first normalised by the truth block's mean and standard deviation,
  ``(x - m) / s + 1``, the same for both images (the toolbox also rounds both
  images to uint16 first; here they stay float);
* sCC: the correlation coefficient of the Laplacian-filtered
  (``[[0, 1, 0], [1, -4, 1], [0, 1, 0]]``, edges repeated) fused and truth
  bands, averaged over bands (Zhou et al. 1998 high-pass details; some
  toolboxes use a Sobel gradient magnitude instead);
* QNR = (1 - D_lambda)^alpha (1 - D_s)^beta (Alparone et al. 2008, p = q =
  alpha = beta = 1), Q on non-overlapping blocks of 32 at the panchromatic
  scale and 32 / ratio at the multispectral scale, the panchromatic image
  brought to the multispectral scale by the MTF-like Gaussian of
  :func:`napari_gifnet.methods.pansharpening.reduce` (gain 0.3 at Nyquist).
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = [
    "PANSHARPENING_METRICS", "band_psnr", "ergas", "pansharpening_metrics", "q2n", "q_index",
    "qnr", "sam", "scc", "uiqi",
]  # fmt: skip

#: The reduced-resolution indices of :func:`pansharpening_metrics`, and whether higher is better.
PANSHARPENING_METRICS: dict[str, bool] = {
    "PSNR": True, "ERGAS": False, "SAM": False, "Q": True, "Q2n": True, "sCC": True,
}  # fmt: skip


def _bands(image: Any, band_axis: int, name: str) -> np.ndarray:
    """(bands, H, W) float64 of a multiband image (a 2-D image is one band)."""
    arr = np.asarray(image)
    if arr.dtype.kind not in "buif":
        raise ValueError(f"{name} must be bool, integer or float data, not {arr.dtype}")
    if arr.ndim == 2:
        arr = arr[None]
    elif arr.ndim == 3:
        if band_axis not in (0, -1, 2):
            raise ValueError(f"band_axis must be 0 or -1, not {band_axis!r}")
        arr = np.moveaxis(arr, band_axis, 0)
    else:
        raise ValueError(f"{name} must be (H, W) or a multiband image, got shape {arr.shape}")
    if 0 in arr.shape:
        raise ValueError(f"{name} is empty (shape {arr.shape})")
    out = arr.astype(np.float64)
    if not np.isfinite(out).all():
        raise ValueError(f"{name} holds NaN or infinite values")
    return out


def _pair(fused: Any, truth: Any, band_axis: int) -> tuple[np.ndarray, np.ndarray]:
    f, t = _bands(fused, band_axis, "fused"), _bands(truth, band_axis, "truth")
    if f.shape != t.shape:
        raise ValueError(f"fused {f.shape} and truth {t.shape} differ in shape (bands, H, W)")
    return f, t


def band_psnr(fused: Any, truth: Any, data_range: float = 255, *, band_axis: int = -1) -> float:
    """PSNR in dB over all bands and pixels: 10 log10(data_range^2 / MSE); inf when equal."""
    f, t = _pair(fused, truth, band_axis)
    mse = float(np.mean((f - t) ** 2))
    return float("inf") if mse == 0 else float(10 * np.log10(data_range**2 / mse))


def ergas(fused: Any, truth: Any, ratio: float = 4, *, band_axis: int = -1) -> float:
    """ERGAS (Wald 2002): 100 / ratio * sqrt(mean over bands of (RMSE_k / mean_k)^2).

    ``mean_k`` is the truth band's mean, ``ratio`` the panchromatic /
    multispectral resolution ratio (4 for most sensors); 0 is perfect. Raises ValueError for a truth band of mean 0 or a ratio <= 0.
    """
    if not ratio > 0:
        raise ValueError(f"ratio must be > 0, not {ratio!r}")
    f, t = _pair(fused, truth, band_axis)
    means = t.mean(axis=(1, 2))
    if np.any(means == 0):
        raise ValueError("ERGAS needs truth bands with a non-zero mean")
    rmse2 = np.mean((f - t) ** 2, axis=(1, 2))
    return float(100.0 / ratio * np.sqrt(np.mean(rmse2 / means**2)))


def sam(fused: Any, truth: Any, *, band_axis: int = -1) -> float:
    """Spectral angle mapper in degrees: the mean over pixels of the angle between spectra.

    Pixels where either spectrum is all zero are left out (0.0 when none is left).
    """
    f, t = _pair(fused, truth, band_axis)
    dot = np.sum(f * t, axis=0)
    norms = np.sqrt(np.sum(f * f, axis=0) * np.sum(t * t, axis=0))
    valid = norms > 0
    if not valid.any():
        return 0.0
    cos = np.clip(dot[valid] / norms[valid], -1.0, 1.0)
    return float(np.degrees(np.mean(np.arccos(cos))))


def _window_sums(x: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Sums of ``x`` over every ``size`` (h, w) window inside it (integral image)."""
    h, w = size
    c = np.zeros((x.shape[0] + 1, x.shape[1] + 1))
    c[1:, 1:] = x.cumsum(0).cumsum(1)
    return c[h:, w:] - c[:-h, w:] - c[h:, :-w] + c[:-h, :-w]


def _q_from_moments(
    mx: np.ndarray, my: np.ndarray, vx: np.ndarray, vy: np.ndarray, cxy: np.ndarray
) -> np.ndarray:
    """UIQI from means, variances and covariance (Wang-Bovik's cases for zero denominators)."""
    var_sum, mean_sq = vx + vy, mx * mx + my * my
    q = np.ones_like(mx)
    flat = (var_sum == 0) & (mean_sq != 0)
    q[flat] = 2 * mx[flat] * my[flat] / mean_sq[flat]
    ok = (var_sum != 0) & (mean_sq != 0)
    q[ok] = 4 * cxy[ok] * mx[ok] * my[ok] / (var_sum[ok] * mean_sq[ok])
    # variance but both means 0: the index is 0 (no luminance agreement can be measured)
    q[(var_sum != 0) & (mean_sq == 0)] = 0.0
    return q


def uiqi(a: Any, b: Any, block: int = 32) -> float:
    """Wang-Bovik universal image quality index of two 2-D images, sliding ``block`` windows.

    The mean over every ``block`` x ``block`` window inside the image (along
    an axis shorter than a block, the window spans that axis) of
    4 cov_ab mu_a mu_b / ((var_a + var_b)(mu_a^2 + mu_b^2)).
    """
    x, y = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if x.ndim != 2 or x.shape != y.shape:
        raise ValueError(f"uiqi needs two 2-D images of one shape, got {x.shape} and {y.shape}")
    if int(block) < 1:
        raise ValueError(f"block must be a positive size, not {block!r}")
    size = (min(int(block), x.shape[0]), min(int(block), x.shape[1]))
    n = float(size[0] * size[1])
    sx, sy = _window_sums(x, size), _window_sums(y, size)
    sxx, syy, sxy = _window_sums(x * x, size), _window_sums(y * y, size), _window_sums(x * y, size)
    mx, my = sx / n, sy / n
    vx, vy, cxy = sxx / n - mx * mx, syy / n - my * my, sxy / n - mx * my
    # rounding can leave tiny negative variances on constant windows
    vx, vy = np.maximum(vx, 0.0), np.maximum(vy, 0.0)
    vx[vx < 1e-12 * (mx * mx + 1)] = 0.0
    vy[vy < 1e-12 * (my * my + 1)] = 0.0
    return float(np.mean(_q_from_moments(mx, my, vx, vy, cxy)))


def q_index(fused: Any, truth: Any, block: int = 32, *, band_axis: int = -1) -> float:
    """Q: :func:`uiqi` of each band (sliding ``block`` windows), averaged over bands; 1 is perfect."""
    f, t = _pair(fused, truth, band_axis)
    return float(np.mean([uiqi(fb, tb, block) for fb, tb in zip(f, t)]))


def _block_q(a: np.ndarray, b: np.ndarray, block: int) -> float:
    """UIQI on non-overlapping ``block`` x ``block`` blocks (the far remainder left out), averaged."""
    size = max(1, min(int(block), *a.shape))
    h, w = (a.shape[0] // size) * size, (a.shape[1] // size) * size

    def tiles(x: np.ndarray) -> np.ndarray:
        return x[:h, :w].reshape(h // size, size, w // size, size).swapaxes(1, 2)

    ta, tb = tiles(a), tiles(b)
    ma, mb = ta.mean(axis=(2, 3)), tb.mean(axis=(2, 3))
    da, db = ta - ma[..., None, None], tb - mb[..., None, None]
    va, vb = (da * da).mean(axis=(2, 3)), (db * db).mean(axis=(2, 3))
    cab = (da * db).mean(axis=(2, 3))
    return float(np.mean(_q_from_moments(ma, mb, va, vb, cab)))


def _cd_conj(x: np.ndarray) -> np.ndarray:
    """Conjugate of hypercomplex numbers along axis 0: the first component kept, the others negated."""
    out = -x
    out[0] = x[0]
    return out


def _cd_mult(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Cayley-Dickson product along axis 0 (2^n components): (a, b)(c, d) = (ac - d*b, da + bc*).

    Components 1, 2, 4 give the complex numbers, quaternions (Hamilton's
    product) and octonions.
    """
    n = x.shape[0]
    if n == 1:
        return x * y
    h = n // 2
    a, b, c, d = x[:h], x[h:], y[:h], y[h:]
    first = _cd_mult(a, c) - _cd_mult(_cd_conj(d), b)
    second = _cd_mult(d, a) + _cd_mult(b, _cd_conj(c))
    return np.concatenate([first, second])


def _q2n_block(t: np.ndarray, f: np.ndarray) -> float:
    """Q2n of one block: ``t`` (truth) and ``f`` (fused) as (2^n, h, w) hypercomplex images."""
    m = t.mean(axis=(1, 2), keepdims=True)
    s = t.std(axis=(1, 2), ddof=1, keepdims=True) if t[0].size > 1 else np.zeros_like(m)
    s = np.where(s == 0, np.finfo(float).eps, s)
    z, zf = (t - m) / s + 1, (f - m) / s + 1  # the toolbox's block normalisation
    k = z[0].size
    unbias = k / (k - 1) if k > 1 else 1.0
    mz, mf = z.mean(axis=(1, 2)), zf.mean(axis=(1, 2))
    mod_mz, mod_mf = np.sqrt(np.sum(mz**2)), np.sqrt(np.sum(mf**2))
    var_z = unbias * (np.mean(np.sum(z**2, axis=0)) - mod_mz**2)
    var_f = unbias * (np.mean(np.sum(zf**2, axis=0)) - mod_mf**2)
    mean_term = 2 * mod_mz * mod_mf / (mod_mz**2 + mod_mf**2)
    if var_z + var_f == 0:
        return float(mean_term)
    zc, mfc = _cd_conj(zf), _cd_conj(mf[:, None, None])
    cov = unbias * (_cd_mult(z, zc).mean(axis=(1, 2)) - _cd_mult(mz[:, None, None], mfc)[:, 0, 0])
    return float(np.sqrt(np.sum(cov**2)) * 2 / (var_z + var_f) * mean_term)


def q2n(fused: Any, truth: Any, block: int = 32, *, band_axis: int = -1) -> float:
    """Q2n (Q4 for four bands): the hypercomplex quality index on ``block`` x ``block`` blocks.

    See the module docstring for the convention; 1 is perfect.
    """
    f, t = _pair(fused, truth, band_axis)
    size = int(block)
    if size < 2:
        raise ValueError(f"block must be at least 2, not {block!r}")
    bands, h, w = t.shape
    ph, pw = -(-h // size) * size - h, -(-w // size) * size - w
    if ph > h or pw > w:  # smaller than a block: one block, the whole image
        size, ph, pw = None, 0, 0
    if ph or pw:  # mirror the far edges up to a whole number of blocks
        f, t = (np.pad(x, ((0, 0), (0, ph), (0, pw)), mode="symmetric") for x in (f, t))
    n = 1 << int(np.ceil(np.log2(bands)))
    if n > bands:
        zeros = np.zeros((n - bands, *t.shape[1:]))
        f, t = np.concatenate([f, zeros]), np.concatenate([t, zeros])
    if size is None:
        return _q2n_block(t, f)
    values = [
        _q2n_block(t[:, i : i + size, j : j + size], f[:, i : i + size, j : j + size])
        for i in range(0, t.shape[1], size)
        for j in range(0, t.shape[2], size)
    ]
    return float(np.mean(values))


def scc(fused: Any, truth: Any, *, band_axis: int = -1) -> float:
    """Spatial correlation coefficient: Pearson correlation of the Laplacian-filtered bands, averaged.

    1 is perfect; a band whose details are all zero in either image counts 0.
    """
    from scipy import ndimage

    f, t = _pair(fused, truth, band_axis)
    kernel = np.array([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]])
    values = []
    for fb, tb in zip(f, t):
        hf = ndimage.convolve(fb, kernel, mode="nearest").ravel()
        ht = ndimage.convolve(tb, kernel, mode="nearest").ravel()
        hf, ht = hf - hf.mean(), ht - ht.mean()
        den = np.sqrt(np.sum(hf * hf) * np.sum(ht * ht))
        values.append(float(np.sum(hf * ht) / den) if den > 0 else 0.0)
    return float(np.mean(values))


def qnr(
    fused: Any,
    ms: Any,
    pan: Any,
    ratio: int = 4,
    *,
    block: int = 32,
    alpha: float = 1.0,
    beta: float = 1.0,
    p: float = 1.0,
    q: float = 1.0,
    band_axis: int = -1,
) -> dict[str, float]:
    """Quality with no reference (Alparone et al. 2008) at full resolution.

    Parameters
    ----------
    fused : array_like
        The pansharpened image on the panchromatic grid (H, W, bands).
    ms : array_like
        The original multispectral image (H / ratio, W / ratio, bands).
    pan : array_like
        The panchromatic image (H, W).
    ratio : int
        The resolution ratio (an integer dividing ``block``).
    block, alpha, beta, p, q
        Block size at the panchromatic scale and the exponents.

    Returns
    -------
    dict
        ``{"QNR": ..., "D_lambda": ..., "D_s": ...}``: QNR 1 and the
        distortions 0 are ideal. D_lambda is the mean |Q(F_l, F_r) -
        Q(MS_l, MS_r)|^p over band pairs l != r (to the power 1/p), D_s the
        mean |Q(F_l, P) - Q(MS_l, P_low)|^q over bands (to the power 1/q).
    """
    from ..methods.pansharpening import reduce

    r = int(ratio)
    if r != ratio or r < 1 or block % r:
        raise ValueError(f"ratio must be a positive integer dividing block ({block}), not {ratio!r}")
    f, m = _bands(fused, band_axis, "fused"), _bands(ms, band_axis, "ms")
    p_img = _bands(pan, 0, "pan")
    if p_img.shape[0] != 1:
        raise ValueError(f"pan must be 2-D (H, W), got shape {np.asarray(pan).shape}")
    pan2 = p_img[0]
    if f.shape[1:] != pan2.shape or f.shape[0] != m.shape[0]:
        raise ValueError(f"fused {f.shape} needs the pan's grid {pan2.shape} and the ms's bands")
    if m.shape[1:] != (pan2.shape[0] // r, pan2.shape[1] // r) or pan2.shape[0] % r or pan2.shape[1] % r:
        raise ValueError(
            f"the ms grid {m.shape[1:]} must be the pan grid {pan2.shape} divided by {r}"
        )
    small = block // r
    n = f.shape[0]
    if n > 1:
        pairs = [(i, j) for i in range(n) for j in range(n) if i != j]
        d_l = np.mean([abs(_block_q(f[i], f[j], block) - _block_q(m[i], m[j], small)) ** p
                       for i, j in pairs]) ** (1 / p)  # fmt: skip
    else:
        d_l = 0.0
    pan_low = reduce(pan2, m.shape[1:])
    d_s = np.mean([abs(_block_q(f[i], pan2, block) - _block_q(m[i], pan_low, small)) ** q
                   for i in range(n)]) ** (1 / q)  # fmt: skip
    value = (1 - d_l) ** alpha * (1 - d_s) ** beta
    return {"QNR": float(value), "D_lambda": float(d_l), "D_s": float(d_s)}


def pansharpening_metrics(
    fused: Any,
    truth: Any,
    ratio: float = 4,
    data_range: float = 255,
    *,
    block: int = 32,
    band_axis: int = -1,
) -> dict[str, float]:
    """The reduced-resolution indices of a pansharpened image against its truth.

    Returns
    -------
    dict
        ``PSNR`` (dB, ``data_range``), ``ERGAS`` (``ratio``), ``SAM``
        (degrees), ``Q`` and ``Q2n`` (``block``), ``sCC``; see
        :data:`PANSHARPENING_METRICS` for which way is better.
    """
    f, t = _pair(fused, truth, band_axis)
    return {
        "PSNR": band_psnr(f, t, data_range, band_axis=0),
        "ERGAS": ergas(f, t, ratio, band_axis=0),
        "SAM": sam(f, t, band_axis=0),
        "Q": q_index(f, t, block, band_axis=0),
        "Q2n": q2n(f, t, block, band_axis=0),
        "sCC": scc(f, t, band_axis=0),
    }
