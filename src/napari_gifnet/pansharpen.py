"""Multispectral + panchromatic fusion (pansharpening) in Python: :func:`pansharpen`.

The published GIFNet release fuses one multispectral band with the
panchromatic image at a time and leaves assembling the bands to MATLAB. Here
every band is fused with the panchromatic image (band first, panchromatic
second, as the model was trained) and the bands are put back together in
the input's layout.

1. **Grid.** When the multispectral image is smaller than the panchromatic
   one, each band is resampled onto the panchromatic grid with cubic
   interpolation (:func:`scipy.ndimage.map_coordinates`, order 3, edges
   repeated), then rounded and clipped back to its dtype, so that it is
   normalised exactly as an image of that dtype. Where pixel sizes are given
   (``ms_scale``, ``pan_scale``: world units per pixel, as napari's layer
   ``scale``; ``ms_translate``, ``pan_translate`` as its ``translate``), the
   pixel centres follow napari's convention (pixel ``j`` at
   ``translate + j * scale``); without them both images are taken to cover the
   same extent (pixel corners aligned).
2. **Fusion.** Each band with the panchromatic image, by GIFNet or a
   baseline; the fused luma (float32 in [0, 1]) is kept in ``result.luma``.
3. **Range.** Each fused band goes back to its band's range (``rescale``):
   ``"range"`` (default) maps the fused luma's minimum..maximum linearly onto
   the (resampled) band's minimum..maximum, so each output band spans exactly
   the values its input band spanned; ``"moments"`` matches the band's mean
   and standard deviation instead (clipped to the band's dtype range);
   ``"none"`` inverts the band's input normalisation (uint8: x 255). Integer
   bands are rounded and keep their dtype; float bands come back as float32.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import __version__

__all__ = ["PansharpenResult", "pansharpen", "resample_band"]

RESCALES = ("range", "moments", "none")
Progress = Callable[[int, int], Any]


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
        (bands, 2): the (min, max) of each (resampled) input band.
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


def _band_axis(shape: tuple[int, ...], band_axis: int | None) -> int:
    if band_axis is not None:
        if band_axis not in (0, -1, 2):
            raise ValueError(f"band_axis must be 0 (bands, H, W) or -1 (H, W, bands), not {band_axis}")
        return 0 if band_axis == 0 else 2
    return 0 if shape[0] <= shape[2] else 2


def resample_band(
    band: np.ndarray,
    shape: tuple[int, int],
    *,
    src_scale: Sequence[float] | None = None,
    dst_scale: Sequence[float] | None = None,
    src_translate: Sequence[float] = (0.0, 0.0),
    dst_translate: Sequence[float] = (0.0, 0.0),
) -> np.ndarray:
    """Cubic resampling of a 2-D band onto a ``shape`` grid, keeping its dtype.

    Without scales the two grids cover the same extent (corners aligned);
    with them, pixel ``j`` of the target is at world ``dst_translate + j *
    dst_scale`` and sampled there in the source. Integer bands are rounded
    and clipped to their dtype.
    """
    from scipy import ndimage

    band = np.asarray(band)
    if band.shape == tuple(shape) and src_scale is None:
        return band
    coords = []
    for ax in range(2):
        j = np.arange(shape[ax], dtype=np.float64)
        if src_scale is None or dst_scale is None:
            c = (j + 0.5) * band.shape[ax] / shape[ax] - 0.5
        else:
            world = dst_translate[ax] + j * dst_scale[ax]
            c = (world - src_translate[ax]) / src_scale[ax]
        coords.append(c)
    grid = np.meshgrid(*coords, indexing="ij")
    out = ndimage.map_coordinates(band.astype(np.float64), grid, order=3, mode="nearest")
    if band.dtype.kind in "ui":
        info = np.iinfo(band.dtype)
        return np.clip(np.rint(out), info.min, info.max).astype(band.dtype)
    return out.astype(np.float32)


def _rescale(luma: np.ndarray, band: np.ndarray, rescale: str, meta: dict) -> np.ndarray:
    b = band.astype(np.float64)
    if rescale == "range":
        lo, hi = float(luma.min()), float(luma.max())
        t = (luma - lo) / (hi - lo) if hi > lo else np.zeros_like(luma, dtype=np.float64)
        out = b.min() + t * (b.max() - b.min())
    elif rescale == "moments":
        sd = float(luma.std())
        out = (luma - luma.mean()) * (b.std() / sd if sd > 0 else 0.0) + b.mean()
    else:
        lo, hi = meta.get("range", (0.0, 1.0))
        out = lo + luma.astype(np.float64) * (hi - lo)
    if band.dtype.kind in "ui":
        info = np.iinfo(band.dtype)
        return np.clip(np.rint(out), info.min, info.max).astype(band.dtype)
    if band.dtype.kind == "b":
        return out >= 0.5
    return out.astype(np.float32)


def pansharpen(
    ms: Any,
    pan: Any,
    *,
    band_axis: int | None = None,
    method: str = "gifnet",
    rescale: str = "range",
    ms_scale: Sequence[float] | None = None,
    pan_scale: Sequence[float] | None = None,
    ms_translate: Sequence[float] = (0.0, 0.0),
    pan_translate: Sequence[float] = (0.0, 0.0),
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
        (H, W); any real dtype. May be smaller than ``pan`` (upsampled first).
        Never modified.
    pan : array_like
        Panchromatic image, (H, W) (an RGB image is reduced to its luma by
        the fusion).
    band_axis : {0, -1}, optional
        Where the bands are; default: the shorter of the first and last axes.
    method : str
        ``"gifnet"`` or a baseline of :data:`napari_gifnet.baselines.BASELINES`.
    rescale : {"range", "moments", "none"}
        How each fused band returns to its band's values (module docstring).
    ms_scale, pan_scale : (float, float), optional
        Pixel sizes (y, x) in world units, e.g. napari layers' ``scale``;
        give both or neither.
    ms_translate, pan_translate : (float, float)
        World position of pixel (0, 0), e.g. napari layers' ``translate``
        (used with the scales).
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
        Unsupported shapes or dtypes, NaN or infinite values, only one of
        the two scales, a multispectral image larger than the panchromatic
        one, an unknown method or rescale rule.
    """
    from .baselines import fuse_with
    from .inputs import as_array
    from .layers import method_key

    start = time.perf_counter()
    method = method_key(method)
    if rescale not in RESCALES:
        raise ValueError(f"unknown rescale {rescale!r}; valid: {', '.join(RESCALES)}")
    if (ms_scale is None) != (pan_scale is None):
        raise ValueError("give both ms_scale and pan_scale, or neither")
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
    axis = 0 if single else _band_axis(ms_arr.shape, band_axis)
    bands = [ms_arr] if single else [np.take(ms_arr, i, axis=axis) for i in range(ms_arr.shape[axis])]
    ms_shape = bands[0].shape
    if ms_scale is None and (ms_shape[0] > pan_shape[0] or ms_shape[1] > pan_shape[1]):
        raise ValueError(
            f"the multispectral bands ({ms_shape[0]} x {ms_shape[1]}) are larger than the "
            f"panchromatic image ({pan_shape[0]} x {pan_shape[1]}); pass the pixel sizes "
            "(ms_scale, pan_scale) or swap the inputs"
        )
    for name, arr in (("ms", ms_arr), ("pan", pan_arr)):
        if arr.dtype.kind in "fc" and not np.isfinite(arr).all():
            raise ValueError(f"the {name} image holds NaN or infinite values")
    resampled = ms_shape != tuple(pan_shape) or ms_scale is not None
    n = len(bands)
    outputs, lumas, ranges, band_meta = [], [], [], []
    for i, band in enumerate(bands):
        if resampled:
            band = resample_band(
                band, tuple(pan_shape), src_scale=ms_scale, dst_scale=pan_scale,
                src_translate=ms_translate, dst_translate=pan_translate,
            )  # fmt: skip

        def report(done: int, total: int, i: int = i) -> None:
            if progress is not None:
                progress(i * total + done, n * total)

        opts: dict[str, Any] = {"normalization": normalization, "progress": report}
        if method == "gifnet":
            opts.update(weights=weights, device=device)
        res = fuse_with(method, band, pan_arr, **opts)
        luma = res.luma
        outputs.append(_rescale(luma, band, rescale, res.metadata["inputs"]["a"]))
        lumas.append(luma)
        ranges.append((float(band.min()), float(band.max())))
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
            "from": list(ms_shape), "to": list(pan_shape), "order": 3,
            "ms_scale": None if ms_scale is None else list(ms_scale),
            "pan_scale": None if pan_scale is None else list(pan_scale),
        } if resampled else None,
        "rescale": rescale,
        "band_ranges": ranges,
        **{k: first[k] for k in ("weights_sha256", "device") if k in first},
        "elapsed_s": round(elapsed, 4),
    }
    return PansharpenResult(image, np.stack(lumas), np.array(ranges), metadata, elapsed)
