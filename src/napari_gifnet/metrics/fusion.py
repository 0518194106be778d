"""Image fusion quality metrics, with the conventions of ``spec/fusion-metrics.md``.

Papers in the field report the same metric names computed by different code,
so numbers only compare when the conventions match. The ten reference-free
metrics of :func:`fusion_metrics` follow the widely used public Python
evaluator of the field (EN, SD, SF, AG, MI, SCD, VIF, Qabf), EI as in the VIFB
benchmark, and a standard Gaussian-window SSIM. Where a ground truth exists,
:func:`reference_metrics` gives PSNR and SSIM against it.

The 0-255 luma scale
--------------------
Every metric works on 2-D float64 arrays on the 0-255 scale of 8-bit images.
:func:`to_metric_scale` brings any input there, explicitly:

* grey uint8: the values as they are;
* bool: False -> 0, True -> 255;
* other integer types: the full range of the data type mapped to 0..255
  (uint16 ``x / 65535 * 255``; signed types from their minimum to maximum),
  then rounded;
* float data: must lie in [0, 1] (what :func:`napari_gifnet.fuse` returns);
  it is multiplied by 255 and rounded. Float data outside [0, 1] is refused
  unless ``scaled=True``;
* RGB (H, W, 3) and RGBA (alpha ignored): uint8 RGB gives the luma GIFNet is
  fed (BT.601 ``0.299 R + 0.587 G + 0.114 B``, truncated to uint8, see
  :func:`napari_gifnet.engine.preprocess.published_luma_uint8`); other RGB is first
  scaled as above, then its BT.601 luma is taken in float and rounded.

Rounding to integer grey levels reproduces the published convention (a fused
result is evaluated as the 8-bit image it would be saved as:
``F = round(fused * 255)``). With ``scaled=True`` the data is taken to be on
the 0-255 scale already and used unchanged (float64, not rounded or clipped;
RGB is reduced to its float BT.601 luma).

MI bins the rounded values (each integer level its own bin): the reference
evaluator's every-distinct-value binning on integer data, and meaningful
for ``scaled=True`` float data too.

Degenerate inputs
-----------------
Arrays of different height and width, and NaN or infinite values, raise
``ValueError``. Flat (constant) images never raise or warn: EN, SD, SF, AG,
EI and MI are then 0; SCD is NaN where one of its correlations is undefined
(a constant ``A``, ``B``, ``F - A`` or ``F - B``); Qabf is NaN when neither
input has an edge (all zeros: the zero padding of its Sobel filters makes
the border of a flat non-zero image an edge); VIF is 1 for a constant input
(the convention's 0 / 0 rule). Images too small for a window give NaN: SSIM
under 11 pixels on a side, VIF under 41 (its four scales).

The formulas of the ten metrics live in :mod:`napari_gifnet.metrics.formulas`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from ..engine.preprocess import published_luma_uint8
from .formulas import _COMPUTE, _ssim

__all__ = [
    "METRICS",
    "REFERENCE_METRICS",
    "fusion_metrics",
    "psnr",
    "reference_metrics",
    "ssim",
    "to_metric_scale",
]

#: The reference-free metrics: name -> (better direction, one-line description).
METRICS: dict[str, tuple[str, str]] = {
    "EN": ("higher", "entropy of the fused image's 256-bin histogram, in bits"),
    "SD": ("higher", "standard deviation of the fused image (contrast)"),
    "SF": ("higher", "spatial frequency: RMS of horizontal and vertical differences"),
    "AG": ("higher", "average gradient magnitude (sharpness)"),
    "EI": ("higher", "edge intensity: mean Sobel gradient magnitude"),
    "MI": ("higher", "mutual information of the fused image with each input, summed (nats)"),
    "SCD": ("higher", "sum of the correlations of differences (Aslantas & Bendes)"),
    "VIF": ("higher", "visual information fidelity to each input, summed (Sheikh & Bovik)"),
    "Qabf": ("higher", "edge information transferred from the inputs (Xydeas & Petrovic)"),
    "SSIM": ("higher", "structural similarity to each input, summed (Wang et al.)"),
}
#: Metrics against a ground truth: name -> (better direction, description).
REFERENCE_METRICS: dict[str, tuple[str, str]] = {
    "PSNR": ("higher", "peak signal-to-noise ratio to the ground truth, in dB"),
    "SSIM": ("higher", "structural similarity to the ground truth"),
}

_LUMA = (0.299, 0.587, 0.114)


# --------------------------------------------------------------------------- inputs
def to_metric_scale(image: Any, *, scaled: bool = False, name: str = "image") -> np.ndarray:
    """Bring an image to the metrics' grey 0-255 scale.

    Parameters
    ----------
    image : array_like
        (H, W) grey, (H, W, 3) RGB or (H, W, 4) RGBA (alpha ignored) data of
        type bool, integer or float. Never modified.
    scaled : bool
        False (default): map by data type (uint8 as is; bool to 0/255; other
        integers from the dtype's full range; float data in [0, 1] times
        255), then round to integer grey levels. True: the values are on the
        0-255 scale already and are used unchanged (float64).
    name : str
        Name used in error messages.

    Returns
    -------
    numpy.ndarray
        float64 array of shape (H, W) (a new array).

    Raises
    ------
    ValueError
        An unsupported shape or dtype, an empty array, NaN or infinite
        values, or (with ``scaled=False``) float data outside [0, 1].
    """
    arr = np.asarray(image)
    what = f"{name} (shape {arr.shape}, dtype {arr.dtype})"
    if arr.dtype.kind not in "buif":
        raise ValueError(f"{what}: expected bool, integer or float data")
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (3, 4)):
        raise ValueError(f"{what}: expected (H, W), (H, W, 3) or (H, W, 4)")
    if arr.size == 0:
        raise ValueError(f"{what} is empty")
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        raise ValueError(f"{what} contains NaN or infinite values")
    rgb = arr.ndim == 3
    if rgb:
        arr = arr[..., :3]
    if scaled:
        x = arr.astype(np.float64)
    elif arr.dtype == np.uint8:
        if rgb:
            return published_luma_uint8(arr).astype(np.float64)
        return arr.astype(np.float64)
    elif arr.dtype.kind == "b":
        x = arr.astype(np.float64) * 255.0
    elif arr.dtype.kind in "ui":
        info = np.iinfo(arr.dtype)
        x = (arr.astype(np.float64) - info.min) * (255.0 / (float(info.max) - info.min))
    else:
        lo, hi = float(arr.min()), float(arr.max())
        if lo < 0.0 or hi > 1.0:
            raise ValueError(
                f"{what} has values in [{lo:g}, {hi:g}], outside [0, 1]; pass "
                "scaled=True if it is already on the 0-255 scale, or normalise it first"
            )
        x = arr.astype(np.float64) * 255.0
    if rgb:
        x = _LUMA[0] * x[..., 0] + _LUMA[1] * x[..., 1] + _LUMA[2] * x[..., 2]
    return x if scaled else np.rint(x)


def _prepare(images: dict[str, Any], scaled: bool) -> list[np.ndarray]:
    out = [to_metric_scale(v, scaled=scaled, name=k) for k, v in images.items()]
    if len({x.shape for x in out}) > 1:
        detail = ", ".join(f"{k} is {np.shape(v)}" for k, v in images.items())
        raise ValueError(f"the images must have the same height and width: {detail}")
    return out


# --------------------------------------------------------------------------- public
def fusion_metrics(
    fused: Any,
    a: Any,
    b: Any,
    *,
    scaled: bool = False,
    metrics: Iterable[str] | None = None,
) -> dict[str, float]:
    """Reference-free quality metrics of a fused image and its two inputs.

    Parameters
    ----------
    fused, a, b : array_like
        The fused image and the two inputs it was made from (any order of
        inputs gives the same values), each grey or RGB, of the same height
        and width. Converted with :func:`to_metric_scale`.
    scaled : bool
        Passed to :func:`to_metric_scale`: True when all three are already
        float data on the 0-255 grey scale.
    metrics : iterable of str, optional
        The names to compute (keys of :data:`METRICS`); default all ten.

    Returns
    -------
    dict[str, float]
        Name -> value, in the order of :data:`METRICS`: EN, SD, SF, AG, EI,
        MI, SCD, VIF, Qabf, SSIM (see ``spec/fusion-metrics.md`` and this
        module's docstring for the definitions and the degenerate cases).

    Raises
    ------
    ValueError
        Different heights and widths, NaN or infinite values, unsupported
        data, float data outside [0, 1] without ``scaled=True``, or an
        unknown metric name.
    """
    wanted = list(METRICS) if metrics is None else list(metrics)
    unknown = [m for m in wanted if m not in METRICS]
    if unknown:
        raise ValueError(f"unknown metric(s) {unknown}; valid names are {list(METRICS)}")
    f, x, y = _prepare({"fused": fused, "a": a, "b": b}, scaled)
    return {m: _COMPUTE[m](f, x, y) for m in METRICS if m in wanted}


def _psnr(f: np.ndarray, t: np.ndarray, data_range: float) -> float:
    mse = float(np.mean((f - t) ** 2))
    return float("inf") if mse == 0 else float(10.0 * np.log10(data_range**2 / mse))


def psnr(fused: Any, truth: Any, data_range: float = 255, *, scaled: bool = False) -> float:
    """Peak signal-to-noise ratio of ``fused`` against ``truth``, in dB.

    ``10 log10(data_range^2 / MSE)`` on the 0-255 grey scale of
    :func:`to_metric_scale` (``fused``, ``truth``: grey or RGB, same height
    and width; ``scaled`` as there). ``inf`` for identical images.

    Returns
    -------
    float
    """
    return _psnr(*_prepare({"fused": fused, "truth": truth}, scaled), data_range)


def ssim(fused: Any, truth: Any, *, scaled: bool = False) -> float:
    """Structural similarity of ``fused`` to ``truth`` (Wang et al. 2004).

    Gaussian window sigma 1.5 (11 x 11), K1 = 0.01, K2 = 0.03, data range
    255, population covariance, mean of the SSIM map, on the 0-255 grey
    scale of :func:`to_metric_scale` (``scaled`` as there). NaN for images
    under 11 pixels on a side.

    Returns
    -------
    float
    """
    return _ssim(*_prepare({"fused": fused, "truth": truth}, scaled))


def reference_metrics(fused: Any, truth: Any, *, scaled: bool = False) -> dict[str, float]:
    """PSNR (dB, data range 255) and SSIM of ``fused`` against a ground truth.

    Returns
    -------
    dict[str, float]
        ``{"PSNR": ..., "SSIM": ...}``, as :func:`psnr` and :func:`ssim` give.
    """
    f, t = _prepare({"fused": fused, "truth": truth}, scaled)
    return {"PSNR": _psnr(f, t, 255.0), "SSIM": _ssim(f, t)}
