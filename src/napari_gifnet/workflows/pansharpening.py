"""Multispectral + panchromatic fusion (pansharpening) in Python: :func:`pansharpen`.

The published GIFNet release fuses one multispectral band with the
panchromatic image at a time and leaves assembling the bands to MATLAB. Here
every band is fused with the panchromatic image (band first, panchromatic
second, as the model was trained) and the bands are put back together in
the input's layout.

1. **Grid.** When the multispectral image is smaller than the panchromatic
   one, each band is resampled onto the panchromatic grid with cubic
   interpolation (:func:`scipy.ndimage.map_coordinates`, order 3, edges
   repeated), clipped to that band's own minimum..maximum (cubic
   interpolation overshoots at edges) and brought back to its dtype (integers
   rounded, bool thresholded at 0.5, float as float32), so that it is
   normalised exactly as an image of that dtype. Where pixel sizes are given
   (``ms_scale``, ``pan_scale``: world units per pixel, as napari's layer
   ``scale``; ``ms_translate``, ``pan_translate`` as its ``translate``), the
   pixel centres follow napari's convention (pixel ``j`` at
   ``translate + j * scale``); without them both images are taken to cover the
   same extent (pixel corners aligned), so the bands must have the
   panchromatic image's aspect ratio. A multispectral grid that does not
   cover the panchromatic one (often a wrong ``band_axis``) is refused.
2. **Fusion.** Each band with the panchromatic image, by GIFNet or a
   baseline; the fused luma (float32 in [0, 1]) is kept in ``result.luma``.
3. **Range.** Each fused band goes back to its band's range (``rescale``):
   ``"range"`` (default) maps the fused luma's minimum..maximum linearly onto
   the original (not resampled) band's minimum..maximum, so each output band
   spans exactly the values its input band spanned; ``"moments"`` matches
   the (resampled) band's mean and standard deviation instead (clipped to the
   band's dtype range); ``"none"`` inverts the band's input normalisation
   (uint8: x 255). Integer bands are rounded and keep their dtype, bool bands
   are thresholded at 0.5; float bands come back as float32.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .. import __version__
from ..util.progress import Progress
from ._dtype_cast import cast_to_dtype
from .pan_grid import check_grid, pair_arg, resample_band

__all__ = ["PansharpenResult", "pansharpen", "resample_band"]

RESCALES = ("range", "moments", "none")


@dataclass
class PansharpenResult:
    """What :func:`pansharpen` returns.

    Attributes
    ----------
    image
        The pansharpened multiband image in the input's layout (band axis
        where it was) on the panchromatic grid, in the input's dtype (float
        input: float32).
    luma
        float32 (bands, H, W): the network output of each band, in [0, 1].
    band_ranges
        (bands, 2): the (min, max) of each input band, as given (before any
        upsampling).
    metadata
        Provenance: method, band axis, resampling, rescaling, per-band fusion
        metadata (weights, device), time.
    elapsed
        Wall time in seconds.
    """

    image: np.ndarray
    luma: np.ndarray
    band_ranges: np.ndarray
    metadata: dict[str, Any] = field(default_factory=dict)
    elapsed: float = 0.0


def band_axis_of(shape: tuple[int, ...], band_axis: int | None) -> int:
    """The band axis (0 or 2) of a multiband image of ``shape``.

    ``band_axis`` 0 or -1 (2) as given; None picks the shorter end axis.
    Raises ValueError for another value (shown by its repr).
    """
    if band_axis is not None:
        integer = isinstance(band_axis, (int, np.integer)) and not isinstance(band_axis, bool)
        if not integer or band_axis not in (0, -1, 2):
            raise ValueError(
                f"band_axis must be 0 (bands, H, W) or -1 (H, W, bands), not {band_axis!r}"
            )
        return 0 if band_axis == 0 else 2
    return 0 if shape[0] <= shape[2] else 2


def _rescale(
    luma: np.ndarray, band: np.ndarray, span: tuple[float, float], rescale: str, meta: dict
) -> np.ndarray:
    """Bring a fused luma back to the values of ``band`` (original range ``span``)."""
    b = band.astype(np.float64)
    lo, hi = span
    if rescale == "range":
        l_lo, l_hi = float(luma.min()), float(luma.max())
        t = (luma - l_lo) / (l_hi - l_lo) if l_hi > l_lo else np.zeros_like(luma, dtype=np.float64)
        out = np.clip(lo + t * (hi - lo), lo, hi)
    elif rescale == "moments":
        sd = float(luma.std())
        out = (luma - luma.mean()) * (b.std() / sd if sd > 0 else 0.0) + b.mean()
    else:
        n_lo, n_hi = meta.get("range", (0.0, 1.0))
        out = n_lo + luma.astype(np.float64) * (n_hi - n_lo)
    dtype = np.float32 if band.dtype.kind == "f" else band.dtype  # float bands: float32
    return cast_to_dtype(out, dtype, within=span if rescale == "range" else None)


def pansharpen(
    ms: Any,
    pan: Any,
    *,
    band_axis: int | None = None,
    method: str = "gifnet",
    rescale: str = "range",
    ms_scale: Sequence[float] | float | None = None,
    pan_scale: Sequence[float] | float | None = None,
    ms_translate: Sequence[float] | float = (0.0, 0.0),
    pan_translate: Sequence[float] | float = (0.0, 0.0),
    normalization: Any = "auto",
    weights: Any = None,
    device: Any = "auto",
    progress: Progress | None = None,
) -> PansharpenResult:
    """Fuse every band of a multispectral image with a panchromatic image.

    Parameters
    ----------
    ms : array_like
        Multispectral image, (bands, H, W) or (H, W, bands), or one band
        (H, W); bool, integer or float. May be smaller than ``pan``
        (upsampled first). Never modified.
    pan : array_like
        Panchromatic image, (H, W) (an RGB image is reduced to its luma by
        the fusion).
    band_axis : {0, -1}, optional
        Where the bands are; default: the shorter of the first and last axes.
        Bands whose grid does not fit the panchromatic one (see Raises) are
        refused, with a hint to pass the other band axis.
    method : str
        ``"gifnet"`` or a baseline of :data:`napari_gifnet.methods.classical.BASELINES`.
    rescale : {"range", "moments", "none"}
        How each fused band returns to its band's values (module docstring).
    ms_scale, pan_scale : float or (float, float), optional
        Pixel sizes (y, x) in world units, e.g. napari layers' ``scale``
        (one number: the same on both axes); positive and finite; give both
        or neither.
    ms_translate, pan_translate : float or (float, float)
        World position of pixel (0, 0), e.g. napari layers' ``translate``
        (one number: the same on both axes); finite; only with the scales.
    normalization, weights, device
        Passed to each fusion (:func:`napari_gifnet.fuse`; baselines ignore
        weights and device).
    progress : callable, optional
        ``progress(done, total)``, counting bands of the computation over all
        spectral bands; an exception raised by it stops the run.

    Returns
    -------
    PansharpenResult

    Raises
    ------
    ValueError
        Unsupported shapes or dtypes, empty images or no bands, NaN or
        infinite values, an unknown method or rescale rule; scales or
        translates that are not one or two finite numbers (scales: > 0),
        only one of the two scales, translates without scales. And a
        multispectral grid that does not fit the panchromatic one: without
        scales, bands larger than the panchromatic image or of another aspect
        ratio (one common resolution ratio, integer or not, within one
        multispectral pixel per axis); with scales, a panchromatic pixel
        centre outside the multispectral extent widened by one
        multispectral pixel. A wrong ``band_axis`` shows up this way.
    """
    from ..engine.inputs import as_array
    from ..methods.classical import fuse_with
    from ..methods.registry import method_key

    start = time.perf_counter()
    method = method_key(method)
    if rescale not in RESCALES:
        raise ValueError(f"unknown rescale {rescale!r}; valid: {', '.join(RESCALES)}")
    if (ms_scale is None) != (pan_scale is None):
        raise ValueError("give both ms_scale and pan_scale, or neither")
    translates = (
        pair_arg(ms_translate, "ms_translate", positive=False),
        pair_arg(pan_translate, "pan_translate", positive=False),
    )
    scales = None
    if ms_scale is not None and pan_scale is not None:
        scales = (pair_arg(ms_scale, "ms_scale", positive=True),
                  pair_arg(pan_scale, "pan_scale", positive=True))  # fmt: skip
    elif translates != ((0.0, 0.0), (0.0, 0.0)):
        raise ValueError(
            "ms_translate and pan_translate need the pixel sizes (ms_scale, pan_scale)"
        )
    ms_arr, pan_arr = as_array(ms, "ms"), as_array(pan, "pan")
    if pan_arr.ndim == 3 and pan_arr.shape[-1] in (3, 4):
        pan_shape = pan_arr.shape[:2]
    elif pan_arr.ndim == 2:
        pan_shape = pan_arr.shape
    else:
        raise ValueError(f"the panchromatic image must be (H, W), got shape {pan_arr.shape}")
    single = ms_arr.ndim == 2
    if ms_arr.ndim not in (2, 3):
        raise ValueError(
            f"the multispectral image must be (bands, H, W), (H, W, bands) or (H, W), "
            f"got shape {ms_arr.shape}"
        )
    for name, arr in (("multispectral", ms_arr), ("panchromatic", pan_arr)):
        if arr.dtype.kind not in "buif":
            raise ValueError(
                f"the {name} image must be bool, integer or float data, not {arr.dtype}"
            )
    axis = 0 if single else band_axis_of(ms_arr.shape, band_axis)
    if not single and ms_arr.shape[axis] == 0:
        raise ValueError(
            f"the multispectral image {ms_arr.shape} has no bands along axis "
            f"{0 if axis == 0 else -1}"
        )
    hw = [n for i, n in enumerate(ms_arr.shape) if single or i != axis]
    ms_shape, pan_hw = (int(hw[0]), int(hw[1])), (int(pan_shape[0]), int(pan_shape[1]))
    if 0 in ms_shape or 0 in pan_hw:
        raise ValueError(f"empty image: multispectral {ms_arr.shape}, panchromatic {pan_arr.shape}")
    hint = ""
    if not single:
        other = -1 if axis == 0 else 0
        how = "given" if band_axis is not None else "chosen as the shorter end axis"
        hint = (
            f"; the bands were taken along axis {0 if axis == 0 else -1} ({how}) of the "
            f"multispectral image {ms_arr.shape}: pass band_axis={other} if they lie there"
        )
    check_grid(ms_shape, pan_hw, scales, translates, hint)
    for name, arr in (("multispectral", ms_arr), ("panchromatic", pan_arr)):
        if arr.dtype.kind == "f" and not np.isfinite(arr).all():
            raise ValueError(f"the {name} image holds NaN or infinite values")
    bands = (
        [ms_arr] if single else [np.take(ms_arr, i, axis=axis) for i in range(ms_arr.shape[axis])]
    )
    resampled = ms_shape != pan_hw or scales is not None
    n = len(bands)
    outputs, lumas, ranges, band_meta = [], [], [], []
    for i, band in enumerate(bands):
        span = (float(band.min()), float(band.max()))  # the original band's range
        if resampled:
            band = resample_band(
                band, pan_hw, src_scale=None if scales is None else scales[0],
                dst_scale=None if scales is None else scales[1],
                src_translate=translates[0], dst_translate=translates[1],
            )  # fmt: skip

        def report(done: int, total: int, i: int = i) -> None:
            if progress is not None:
                progress(i * total + done, n * total)

        opts: dict[str, Any] = {"normalization": normalization, "progress": report}
        if method == "gifnet":
            opts.update(weights=weights, device=device)
        res = fuse_with(method, band, pan_arr, **opts)
        luma = res.luma
        outputs.append(_rescale(luma, band, span, rescale, res.metadata["inputs"]["a"]))
        lumas.append(luma)
        ranges.append(span)
        band_meta.append(res.metadata)
    image = outputs[0] if single else np.stack(outputs, axis=axis)
    elapsed = time.perf_counter() - start
    first = band_meta[0]
    metadata = {
        "method": first.get("method", method),
        "napari_gifnet_version": __version__,
        "task": "pansharpening: each multispectral band (first input) + panchromatic (second)",
        "bands": n,
        "band_axis": None if single else (0 if axis == 0 else -1),
        "output_shape": list(image.shape),
        "dtype": str(image.dtype),
        "resampled": {
            "from": list(ms_shape),
            "to": list(pan_hw),
            "order": 3,
            "clipped_to_band_range": True,
            "ms_scale": None if scales is None else list(scales[0]),
            "pan_scale": None if scales is None else list(scales[1]),
            "ms_translate": None if scales is None else list(translates[0]),
            "pan_translate": None if scales is None else list(translates[1]),
        }
        if resampled
        else None,
        "rescale": rescale,
        "band_ranges": ranges,
        **{k: first[k] for k in ("weights_sha256", "device") if k in first},
        "elapsed_s": round(elapsed, 4),
    }
    return PansharpenResult(image, np.stack(lumas), np.array(ranges), metadata, elapsed)
