"""Pansharpening algorithms on arrays: component substitution and multiresolution analysis.

Every method takes the multispectral bands already on the panchromatic grid
(``ms``: (bands, H, W), float, e.g. cubic-upsampled), the panchromatic image
(``pan``: (H, W)) and the resolution ratio, and returns float64 (bands, H, W)
in the bands' units, unclipped. Each band keeps its colour: details are
*injected* into the band (the spectral model), the band itself is never
replaced.

The methods: :func:`gihs` (generalised / fast IHS, Tu et al. 2001),
:func:`brovey`, :func:`gsa` (Gram-Schmidt adaptive, Aiazzi et al. 2007;
:func:`gsa_detail` takes the details from another source, GIFNet's fusion of
I and P) and :func:`mtf_glp` (Aiazzi et al. 2006) with its injection rules.
MTF-GLP's low-pass is the MTF-matched Gaussian of :func:`lowpass` (gain
``nyquist_gain`` at the multispectral Nyquist frequency), reduced to the
multispectral grid and expanded back with the same cubic interpolation as
the bands (the generalised Laplacian pyramid).

The panchromatic image is first matched to the intensity (CS) or to each
band (MRA) by mean and standard deviation; the standard deviation matched is
that of its low-passed version (the part the bands can see), so the details
keep their full amplitude. (``"mtf_glp_rr"`` injects the unmatched details:
its regressed gains carry the scale.)

The grid convention is that of :func:`napari_gifnet.workflows.pan_grid.resample_band`
without scales: both grids cover the same extent (pixel corners aligned).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

__all__ = [
    "PANSHARPENING_METHODS", "brovey", "expand", "gihs", "gsa", "gsa_detail",
    "lowpass", "mtf_glp", "mtf_sigma", "pansharpen_bands", "reduce", "regression_intensity",
]  # fmt: skip

#: The spectral pansharpening methods by key, with display names, best measured first
#: (benchmarks/bench_pansharpen.py; docs/pansharpening.md has the table).
PANSHARPENING_METHODS: dict[str, str] = {
    "mtf_glp_rr": "MTF-GLP, reduced-resolution gains",
    "mtf_glp": "MTF-GLP",
    "gsa": "GSA",
    "gihs": "GIHS",
    "mtf_glp_hpm": "MTF-GLP-HPM",
    "brovey": "Brovey",
    "gsa_gifnet": "GSA + GIFNet detail",
}

#: Gain of the multispectral sensor's MTF at its Nyquist frequency (typical: 0.2-0.35).
NYQUIST_GAIN = 0.3


def mtf_sigma(ratio: float, nyquist_gain: float = NYQUIST_GAIN) -> float:
    """Standard deviation (pixels) of the Gaussian whose gain at 1 / (2 ratio) cycles/pixel is ``nyquist_gain``.

    A Gaussian's response is exp(-2 pi^2 sigma^2 f^2), so sigma = ratio
    sqrt(-2 ln g) / pi.
    """
    if not ratio > 0 or not 0 < nyquist_gain < 1:
        raise ValueError(
            f"need ratio > 0 and 0 < nyquist_gain < 1, got {ratio!r} and {nyquist_gain!r}"
        )
    return float(ratio * np.sqrt(-2.0 * np.log(nyquist_gain)) / np.pi)


def _check_2d(image: np.ndarray, name: str) -> np.ndarray:
    arr = np.asarray(image, dtype=np.float64)
    if arr.ndim != 2 or arr.size == 0:
        raise ValueError(f"{name} must be a non-empty 2-D array, got shape {arr.shape}")
    return arr


def lowpass(image: np.ndarray, ratio: float | tuple[float, float], nyquist_gain: float = NYQUIST_GAIN) -> np.ndarray:
    """The MTF-like Gaussian low-pass of a 2-D image for a resolution ``ratio`` (edges repeated)."""
    from scipy import ndimage

    img = _check_2d(image, "image")
    ry, rx = (ratio, ratio) if np.isscalar(ratio) else ratio  # type: ignore[misc]
    sigma = (mtf_sigma(float(ry), nyquist_gain), mtf_sigma(float(rx), nyquist_gain))
    return ndimage.gaussian_filter(img, sigma, mode="nearest", truncate=4.0)


def _centres(n_out: int, n_in: int) -> np.ndarray:
    """Source coordinates of ``n_out`` pixel centres over the extent of ``n_in`` pixels."""
    return (np.arange(n_out, dtype=np.float64) + 0.5) * n_in / n_out - 0.5


def reduce(image: np.ndarray, shape: tuple[int, int], nyquist_gain: float = NYQUIST_GAIN) -> np.ndarray:
    """Degrade a 2-D image to a coarser ``shape`` over the same extent, as a sensor would.

    The MTF-like Gaussian of :func:`lowpass` (ratio: input size / ``shape``
    per axis), then sampled at the coarse pixel centres (linear interpolation
    between the fine pixels).
    """
    from scipy import ndimage

    img = _check_2d(image, "image")
    h, w = (int(n) for n in shape)
    if h < 1 or w < 1 or h > img.shape[0] or w > img.shape[1]:
        raise ValueError(f"cannot reduce {img.shape} to {shape}")
    low = lowpass(img, (img.shape[0] / h, img.shape[1] / w), nyquist_gain)
    grid = np.meshgrid(_centres(h, img.shape[0]), _centres(w, img.shape[1]), indexing="ij")
    return ndimage.map_coordinates(low, grid, order=1, mode="nearest")


def expand(image: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Cubic (order-3 spline) resampling of a 2-D image onto a finer ``shape`` over the same extent.

    The interpolation :func:`napari_gifnet.workflows.pan_grid.resample_band`
    uses for the bands (edges repeated), without its clipping.
    """
    from scipy import ndimage

    img = _check_2d(image, "image")
    h, w = (int(n) for n in shape)
    if (h, w) == img.shape:
        return img.copy()
    grid = np.meshgrid(_centres(h, img.shape[0]), _centres(w, img.shape[1]), indexing="ij")
    return ndimage.map_coordinates(img, grid, order=3, mode="nearest")


def _low_shape(shape: tuple[int, ...], ratio: float) -> tuple[int, int]:
    return max(1, int(round(shape[0] / ratio))), max(1, int(round(shape[1] / ratio)))


def _pan_low(pan: np.ndarray, ratio: float, nyquist_gain: float) -> np.ndarray:
    """The panchromatic image as the bands see it: reduced to their grid and expanded back."""
    if ratio <= 1:
        return lowpass(pan, 1.0, nyquist_gain) if ratio == 1 else pan.copy()
    return expand(reduce(pan, _low_shape(pan.shape, ratio), nyquist_gain), pan.shape)


def _match(pan: np.ndarray, pan_low: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``pan`` and ``pan_low`` mapped by one affine map: mean of ``target``, std(pan_low) -> std(target)."""
    sd, mean = float(pan_low.std()), float(pan.mean())
    flat = sd <= 1e-9 * (abs(mean) + 1.0)  # a constant pan, up to the filters' rounding
    gain = 0.0 if flat else float(target.std()) / sd
    return (pan - mean) * gain + target.mean(), (pan_low - mean) * gain + target.mean()


def _check(ms: np.ndarray, pan: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    m = np.asarray(ms, dtype=np.float64)
    p = _check_2d(pan, "pan")
    if m.ndim != 3 or m.shape[1:] != p.shape or m.shape[0] == 0:
        raise ValueError(f"ms must be (bands, H, W) on the pan grid {p.shape}, got {m.shape}")
    return m, p


def _weights(weights: np.ndarray | None, bands: int) -> np.ndarray:
    if weights is None:
        return np.full(bands, 1.0 / bands)
    w = np.asarray(weights, dtype=np.float64).ravel()
    if w.shape != (bands,) or not np.isfinite(w).all() or w.sum() <= 0:
        raise ValueError(f"weights must be {bands} finite numbers with a positive sum, not {weights!r}")
    return w / w.sum()


def gihs(ms: np.ndarray, pan: np.ndarray, ratio: float = 4, *, weights: np.ndarray | None = None,
         nyquist_gain: float = NYQUIST_GAIN) -> np.ndarray:  # fmt: skip
    """Generalised (fast) IHS: out_k = MS_k + P - I, I the (weighted) mean of the bands."""
    m, p = _check(ms, pan)
    intensity = np.tensordot(_weights(weights, m.shape[0]), m, axes=1)
    sharp, _ = _match(p, _pan_low(p, ratio, nyquist_gain), intensity)
    return m + (sharp - intensity)[None]


def brovey(ms: np.ndarray, pan: np.ndarray, ratio: float = 4, *, weights: np.ndarray | None = None,
           nyquist_gain: float = NYQUIST_GAIN) -> np.ndarray:  # fmt: skip
    """Brovey transform: out_k = MS_k P / I (I as in :func:`gihs`; 0 where I is not positive)."""
    m, p = _check(ms, pan)
    intensity = np.tensordot(_weights(weights, m.shape[0]), m, axes=1)
    sharp, _ = _match(p, _pan_low(p, ratio, nyquist_gain), intensity)
    scale = np.divide(sharp, intensity, out=np.zeros_like(sharp), where=intensity > 0)
    return m * scale[None]


def regression_intensity(ms: np.ndarray, pan_low: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """GSA's intensity: the least-squares fit of ``pan_low`` by the bands and a constant.

    Returns
    -------
    (intensity, coefficients)
        I = sum_k c_k MS_k + c_0 (H, W), and (c_1, ..., c_bands, c_0).
    """
    m = np.asarray(ms, dtype=np.float64)
    design = np.concatenate([m.reshape(m.shape[0], -1), np.ones((1, m[0].size))]).T
    coef, *_ = np.linalg.lstsq(design, np.asarray(pan_low, np.float64).ravel(), rcond=None)
    return (design @ coef).reshape(m.shape[1:]), coef


def _cs_gains(ms: np.ndarray, intensity: np.ndarray) -> np.ndarray:
    """g_k = cov(MS_k, I) / var(I), shape (bands, 1, 1)."""
    d = intensity - intensity.mean()
    var = float(np.mean(d * d))
    if var == 0:
        return np.zeros((ms.shape[0], 1, 1))
    cov = np.mean((ms - ms.mean(axis=(1, 2), keepdims=True)) * d[None], axis=(1, 2))
    return (cov / var)[:, None, None]


def gsa(ms: np.ndarray, pan: np.ndarray, ratio: float = 4, *,
        nyquist_gain: float = NYQUIST_GAIN) -> np.ndarray:  # fmt: skip
    """Gram-Schmidt adaptive: regression intensity, out_k = MS_k + g_k (P - I)."""
    m, p = _check(ms, pan)
    pan_low = _pan_low(p, ratio, nyquist_gain)
    intensity, _ = regression_intensity(m, pan_low)
    sharp, _ = _match(p, pan_low, intensity)
    return m + _cs_gains(m, intensity) * (sharp - intensity)[None]


def gsa_detail(
    ms: np.ndarray,
    pan: np.ndarray,
    ratio: float,
    fuse: Callable[[np.ndarray, np.ndarray], np.ndarray],
    *,
    nyquist_gain: float = NYQUIST_GAIN,
) -> np.ndarray:
    """GSA with another spatial-detail source: the high-pass of fuse(I, P), injected with GSA's gains.

    ``fuse(intensity, sharp)`` fuses GSA's intensity with the matched
    panchromatic image (both (H, W) float, in the same units) and returns
    (H, W), e.g. GIFNet through
    :func:`napari_gifnet.workflows.pansharpening.pansharpen`. The fused image
    F is matched to the intensity like the panchromatic image (mean, and the
    standard deviation of its low-passed version), and its details F - F_low
    (the MTF-GLP low-pass) go into band k with GSA's gain g_k. (Injecting
    F - I instead carries the fusion's brightness and contrast changes into
    every band: it measured below plain upsampling.)
    """
    m, p = _check(ms, pan)
    pan_low = _pan_low(p, ratio, nyquist_gain)
    intensity, _ = regression_intensity(m, pan_low)
    sharp, _ = _match(p, pan_low, intensity)
    fused = np.asarray(fuse(intensity, sharp), dtype=np.float64)
    if fused.shape != intensity.shape:
        raise ValueError(f"the detail source returned shape {fused.shape}, not {intensity.shape}")
    fused_low = _pan_low(fused, ratio, nyquist_gain)
    fused, fused_low = _match(fused, fused_low, intensity)
    return m + _cs_gains(m, intensity) * (fused - fused_low)[None]


def mtf_glp(ms: np.ndarray, pan: np.ndarray, ratio: float = 4, *, injection: str = "unit",
            nyquist_gain: float = NYQUIST_GAIN) -> np.ndarray:  # fmt: skip
    """MTF-matched generalised Laplacian pyramid: the details P - P_low into every band.

    The panchromatic image is matched to each band first (P_k), so
    ``injection`` ``"unit"`` (default, g_k = 1) scales the details by
    std(MS_k) / std(P_low); ``"regression"`` multiplies that by g_k =
    cov(MS_k, P_k,low) / var(P_k,low), the bands' correlation with P_low (it
    measured lower); ``"reduced"``: the raw details P - P_low with a gain per
    band regressed one scale down (:func:`_reduced_gains`); ``"hpm"``:
    out_k = MS_k P_k / P_k,low, where P_k,low > 0.
    """
    m, p = _check(ms, pan)
    if injection not in ("regression", "unit", "hpm", "reduced"):
        raise ValueError(
            f"injection must be 'regression', 'unit', 'hpm' or 'reduced', not {injection!r}"
        )
    pan_low = _pan_low(p, ratio, nyquist_gain)
    out = np.empty_like(m)
    if injection == "reduced":
        return m + _reduced_gains(m, pan_low, ratio, nyquist_gain) * (p - pan_low)[None]
    for k, band in enumerate(m):
        sharp, low = _match(p, pan_low, band)
        if injection == "hpm":
            scale = np.divide(sharp, low, out=np.ones_like(sharp), where=low > 0)
            out[k] = band * scale
            continue
        gain = 1.0
        if injection == "regression":
            d = low - low.mean()
            var = float(np.mean(d * d))
            gain = float(np.mean((band - band.mean()) * d)) / var if var > 0 else 0.0
        out[k] = band + gain * (sharp - low)
    return out


def _reduced_gains(ms: np.ndarray, pan_low: np.ndarray, ratio: float,
                   nyquist_gain: float) -> np.ndarray:  # fmt: skip
    """Per-band detail gains measured one scale down: (bands, 1, 1).

    The bands' details between 1 / ratio^2 and 1 / ratio of the panchromatic
    resolution (MS - its own MTF low-pass at that scale) regressed on the
    low-passed panchromatic image's details in the same band of scales;
    the gain the details of the next scale up are injected with. Unit
    gains (after matching) where the image is too small for that scale.
    """
    shape = _low_shape(pan_low.shape, ratio * ratio)
    if ratio <= 1 or min(shape) < 2:
        return np.array([ms[k].std() / pan_low.std() if pan_low.std() > 0 else 0.0
                         for k in range(ms.shape[0])])[:, None, None]  # fmt: skip
    def detail(x: np.ndarray) -> np.ndarray:
        return x - expand(reduce(x, shape, nyquist_gain), x.shape)

    dp = detail(pan_low)
    energy = float(np.sum(dp * dp))
    if energy <= 0:
        return np.zeros((ms.shape[0], 1, 1))
    return np.array([float(np.sum(detail(b) * dp)) / energy for b in ms])[:, None, None]


def pansharpen_bands(method: str, ms: np.ndarray, pan: np.ndarray, ratio: float = 4,
                     **options: object) -> np.ndarray:  # fmt: skip
    """Run a method of :data:`PANSHARPENING_METHODS` (not ``"gsa_gifnet"``, which needs a detail source).

    Raises
    ------
    ValueError
        An unknown method.
    """
    table: dict[str, Callable[..., np.ndarray]] = {
        "gihs": gihs, "brovey": brovey, "gsa": gsa, "mtf_glp": mtf_glp,
        "mtf_glp_hpm": lambda m, p, r, **o: mtf_glp(m, p, r, injection="hpm", **o),
        "mtf_glp_rr": lambda m, p, r, **o: mtf_glp(m, p, r, injection="reduced", **o),
    }  # fmt: skip
    if method not in table:
        raise ValueError(f"unknown pansharpening method {method!r}; valid: {', '.join(table)}")
    return table[method](ms, pan, ratio, **options)
