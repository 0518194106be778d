"""The multispectral grid of :func:`napari_gifnet.workflows.pansharpening.pansharpen`:
argument checks (:func:`check_grid`, :func:`pair_arg`) and resampling (:func:`resample_band`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ._dtype_cast import cast_to_dtype


def pair_arg(value: Any, name: str, *, positive: bool) -> tuple[float, float]:
    """Validate a (y, x) pair of finite numbers (a single number: the same on both axes).

    Raises
    ------
    ValueError
        Anything but one number or two, non-numeric, NaN or infinite values,
        or (``positive``) values that are not greater than zero.
    """
    what = "positive " if positive else ""
    usage = f"{name} must be a {what}finite number or a (y, x) pair of them"
    if isinstance(value, (str, bytes)):
        raise ValueError(f"{usage}, not {value!r}")
    try:
        arr = np.asarray(value)
    except Exception as exc:  # noqa: BLE001 - anything numpy cannot read
        raise ValueError(f"{usage}, not {value!r}") from exc
    if arr.dtype.kind not in "iuf":
        raise ValueError(f"{usage}, not {value!r}")
    if arr.ndim == 0:
        arr = np.repeat(arr, 2)
    if arr.shape != (2,):
        raise ValueError(f"{usage}, not {value!r} ({arr.size} value(s))")
    y, x = float(arr[0]), float(arr[1])
    if not (np.isfinite(y) and np.isfinite(x)):
        raise ValueError(f"{usage}, not {value!r} (NaN or infinite)")
    if positive and not (y > 0 and x > 0):
        raise ValueError(f"{usage}, not {value!r} (pixel sizes must be > 0)")
    return y, x


def _extent(translate: float, scale: float, n: int) -> str:
    """World extent of ``n`` pixels (napari convention: pixel ``j`` centred at translate + j*scale)."""
    return f"{translate - scale / 2:.6g}..{translate + (n - 0.5) * scale:.6g}"


def check_grid(
    ms_shape: tuple[int, int],
    pan_shape: tuple[int, int],
    scales: tuple[tuple[float, float], tuple[float, float]] | None,
    translates: tuple[tuple[float, float], tuple[float, float]],
    hint: str,
) -> None:
    """Refuse a multispectral grid that does not cover the panchromatic one.

    Without scales both images are taken to cover the same extent, so the
    multispectral bands must be no larger than the panchromatic image and have
    its aspect ratio (one common resolution ratio, integer or not, within one
    multispectral pixel per axis). With
    scales, every panchromatic pixel centre must lie within the multispectral
    image's extent, widened by one multispectral pixel at each side.
    """
    (mh, mw), (ph, pw) = ms_shape, pan_shape
    if scales is None:
        if mh > ph or mw > pw:
            raise ValueError(
                f"the multispectral bands ({mh} x {mw}) are larger than the "
                f"panchromatic image ({ph} x {pw}); pass the pixel sizes "
                f"(ms_scale, pan_scale) or swap the inputs{hint}"
            )

        # ratios r (panchromatic / multispectral pixels) with |pan / r - ms| <= 1 on an axis
        def ratios(m: int, p: int) -> tuple[float, float]:
            return p / (m + 1), (p / (m - 1) if m > 1 else np.inf)

        (ylo, yhi), (xlo, xhi) = ratios(mh, ph), ratios(mw, pw)
        if max(ylo, xlo) > min(yhi, xhi):
            raise ValueError(
                f"the multispectral bands ({mh} x {mw}) do not have the aspect ratio of the "
                f"panchromatic image ({ph} x {pw}): upsampling would stretch them by "
                f"{ph / mh:.3g} in y but {pw / mw:.3g} in x{hint}, or give the pixel sizes "
                "(ms_scale, pan_scale) when the two images do not cover the same extent"
            )
        return
    (ms_scale, pan_scale), (ms_translate, pan_translate) = scales, translates
    for ax, label in enumerate("yx"):
        m, p = ms_shape[ax], pan_shape[ax]
        first = (pan_translate[ax] - ms_translate[ax]) / ms_scale[ax]
        last = first + (p - 1) * pan_scale[ax] / ms_scale[ax]
        if first < -1.5 or last > m + 0.5:
            raise ValueError(
                f"the multispectral bands ({mh} x {mw}, pixel size {ms_scale[0]:g} x "
                f"{ms_scale[1]:g}) do not cover the panchromatic image ({ph} x {pw}, pixel "
                f"size {pan_scale[0]:g} x {pan_scale[1]:g}) along {label}: world "
                f"{_extent(ms_translate[ax], ms_scale[ax], m)} against "
                f"{_extent(pan_translate[ax], pan_scale[ax], p)}{hint}, or check the scales "
                "and translates"
            )


def resample_band(
    band: np.ndarray,
    shape: tuple[int, int],
    *,
    src_scale: Sequence[float] | float | None = None,
    dst_scale: Sequence[float] | float | None = None,
    src_translate: Sequence[float] | float = (0.0, 0.0),
    dst_translate: Sequence[float] | float = (0.0, 0.0),
    float64: bool = False,
) -> np.ndarray:
    """Cubic resampling of a 2-D band onto a ``shape`` grid, within the band's range.

    Parameters
    ----------
    band : array_like
        (H, W), bool, integer or float. Never modified.
    shape : (int, int)
        The target grid's (height, width).
    src_scale, dst_scale : float or (float, float), optional
        Pixel sizes (y, x) of the band and of the target grid (positive);
        give both or neither. Without them the two grids cover the same
        extent (pixel corners aligned); with them, pixel ``j`` of the target
        is at world ``dst_translate + j * dst_scale`` and sampled there in
        the source.
    src_translate, dst_translate : float or (float, float)
        World positions of the two grids' pixel (0, 0) (used with the scales).
    float64 : bool
        Keep a float64 band in float64 (as the spectral methods of
        :func:`~napari_gifnet.workflows.pansharpening.pansharpen` do) instead
        of float32.

    Returns
    -------
    numpy.ndarray
        The resampled band, clipped to the band's own minimum..maximum (cubic
        interpolation overshoots at edges), in the band's dtype: integers
        rounded, bool thresholded at 0.5; float bands as float32 (float64
        ones as float64 with ``float64``).

    Raises
    ------
    ValueError
        A band that is not 2-D, empty, complex or not numeric; a bad
        ``shape``; invalid scales or translates (see
        :func:`~napari_gifnet.workflows.pansharpening.pansharpen`).
    """
    from scipy import ndimage

    band = np.asarray(band)
    if band.ndim != 2 or band.size == 0:
        raise ValueError(f"the band must be a non-empty 2-D array, got shape {band.shape}")
    if band.dtype.kind not in "buif":
        raise ValueError(f"the band must be bool, integer or float data, not {band.dtype}")
    target = tuple(int(n) for n in shape)
    if len(target) != 2 or min(target) < 1:
        raise ValueError(f"shape must be two positive sizes (height, width), not {shape!r}")
    if (src_scale is None) != (dst_scale is None):
        raise ValueError("give both src_scale and dst_scale, or neither")
    if band.shape == target and src_scale is None:
        return band
    coords = []
    if src_scale is None or dst_scale is None:
        for ax in range(2):
            j = np.arange(target[ax], dtype=np.float64)
            coords.append((j + 0.5) * band.shape[ax] / target[ax] - 0.5)
    else:
        src_s = pair_arg(src_scale, "src_scale", positive=True)
        dst_s = pair_arg(dst_scale, "dst_scale", positive=True)
        src_t = pair_arg(src_translate, "src_translate", positive=False)
        dst_t = pair_arg(dst_translate, "dst_translate", positive=False)
        for ax in range(2):
            world = dst_t[ax] + np.arange(target[ax], dtype=np.float64) * dst_s[ax]
            coords.append((world - src_t[ax]) / src_s[ax])
    grid = np.meshgrid(*coords, indexing="ij")
    src = band.astype(np.float64)
    lo, hi = float(src.min()), float(src.max())
    out = np.clip(ndimage.map_coordinates(src, grid, order=3, mode="nearest"), lo, hi)
    if float64 and band.dtype == np.float64:
        return out
    dtype = np.float32 if band.dtype.kind == "f" else band.dtype  # float bands: float32
    return cast_to_dtype(out, dtype, within=(lo, hi))
