"""Image fusion quality metrics, with the conventions of ``spec/fusion-metrics.md``.

Papers in the field report the same metric names computed by different code,
so numbers only compare when the conventions match. The ten reference-free
metrics of :func:`fusion_metrics` follow the widely used public Python
evaluator of the field (EN, SD, SF, AG, MI, SCD, VIF, Qabf), EI as in the VIFB
benchmark, and a standard Gaussian-window SSIM. Where a ground truth exists,
:func:`reference_metrics` gives PSNR and SSIM against it.

The 0-255 luma scale
--------------------
Every metric works on 2-D float64 arrays on the 0-255 scale of 8-bit images,
brought there explicitly by :func:`to_metric_scale` (the rule of each data
type is in its docstring). Rounding to integer grey levels reproduces the
published convention (a fused result is evaluated as the 8-bit image it would
be saved as: ``F = round(fused * 255)``). MI bins the rounded values (each
integer level its own bin): the reference evaluator's every-distinct-value
binning on integer data, and meaningful for ``scaled=True`` float data too.

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

Conventions
-----------
``convention`` selects how a paper's numbers were computed, so a user can put
theirs beside it: :data:`CONVENTIONS` names them, ``docs/evaluation.md`` (its
table) says what differs and why.

The formulas of the ten metrics live in :mod:`napari_gifnet.metrics.formulas`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from ..engine.colour import LUMA_WEIGHTS
from ..engine.preprocess import check_grey_rgb, grey_rgb_channel, published_luma_uint8
from .formulas import (
    _COMPUTE,
    _COMPUTE_CDDFUSE,
    _COMPUTE_VIFB_BAND,
    _spatial_frequency_vifb,
    _ssim,
    _ssim_uniform,
)

__all__ = [
    "CONVENTIONS", "METRICS", "REFERENCE_METRICS", "fusion_metrics", "outside_unit_range", "psnr",
    "reference_metrics", "ssim", "to_metric_scale",
]  # fmt: skip

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

#: The metric conventions: name -> one-line description.
CONVENTIONS: dict[str, str] = {
    "project": "grey luma; reference evaluator's formulas, VIFB's EI, Gaussian SSIM (range 255)",
    "cddfuse": "CDDFuse/EMMA evaluator: rounded grey luma, 7 x 7 uniform SSIM (range 2)",
    "vifb": "VIFB: each colour band against each input, averaged; VIFB's AG and SF",
}

#: MATLAB's ``rgb2gray`` weights (VIFB's grey conversion).
_MATLAB_LUMA = (0.298936021293775, 0.587043074451121, 0.114020904255103)


def _check_convention(convention: str) -> str:
    if convention not in CONVENTIONS:
        raise ValueError(f"unknown convention {convention!r}; valid: {', '.join(CONVENTIONS)}")
    return convention


# --------------------------------------------------------------------------- inputs
def _checked(image: Any, name: str) -> tuple[np.ndarray, str]:
    """The image as an array without alpha, and its description for messages."""
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
    return (arr[..., :3] if arr.ndim == 3 else arr), what


def outside_unit_range(arr: np.ndarray) -> tuple[float, float] | None:
    """``(min, max)`` of float data that leaves [0, 1] (the range the metrics read float
    images in), else None; integer and bool data are scaled by their type and always fit."""
    if arr.dtype.kind != "f":
        return None
    lo, hi = float(arr.min()), float(arr.max())
    return (lo, hi) if lo < 0.0 or hi > 1.0 else None


def _values(arr: np.ndarray, scaled: bool, what: str, *, rounded: bool = True) -> np.ndarray:
    """Every value on the 0-255 scale by the data type's rule (float64, a new
    array); rounded to integer levels unless ``scaled`` or not ``rounded``."""
    if scaled or arr.dtype == np.uint8:
        return arr.astype(np.float64)
    if arr.dtype.kind == "b":
        return arr.astype(np.float64) * 255.0
    if arr.dtype.kind in "ui":
        info = np.iinfo(arr.dtype)
        x = (arr.astype(np.float64) - info.min) * (255.0 / (float(info.max) - info.min))
    else:
        outside = outside_unit_range(arr)
        if outside is not None:
            lo, hi = outside
            raise ValueError(
                f"{what} has values in [{lo:g}, {hi:g}], outside [0, 1]; pass "
                "scaled=True if it is already on the 0-255 scale, or normalise it first"
            )
        x = arr.astype(np.float64) * 255.0
    return np.rint(x) if rounded else x


def _luma(x: np.ndarray, weights: tuple[float, float, float]) -> np.ndarray:
    return weights[0] * x[..., 0] + weights[1] * x[..., 1] + weights[2] * x[..., 2]


def to_metric_scale(
    image: Any,
    *,
    scaled: bool = False,
    name: str = "image",
    convention: str = "project",
    grey_rgb: str = "exact",
) -> np.ndarray:
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
        0-255 scale already and are used unchanged (float64, not rounded or
        clipped; RGB reduced to its float luma).
    name : str
        Name used in error messages.
    convention : {"project", "cddfuse", "vifb"}
        Whose grey conversion of colour data: ``"project"``: the published
        truncated luma for uint8 RGB, the float BT.601 luma rounded for other
        RGB; ``"cddfuse"``: each channel as an 8-bit file holds it, then the
        BT.601 luma rounded (OpenCV's ``COLOR_BGR2GRAY`` and ``np.round``);
        ``"vifb"``: likewise with MATLAB's ``rgb2gray`` weights.
    grey_rgb : {"exact", "published"}
        ``"exact"`` (default): RGB with R = G = B at every pixel is its one
        channel. ``"published"``: it is converted like colour (under the
        project convention, uint8 then loses one level on 65 of 256).

    Returns
    -------
    numpy.ndarray
        float64 array of shape (H, W) (a new array).

    Raises
    ------
    ValueError
        An unsupported shape or dtype, an empty array, NaN or infinite
        values, (with ``scaled=False``) float data outside [0, 1], or an
        unknown ``convention`` or ``grey_rgb``.
    """
    _check_convention(convention)
    check_grey_rgb(grey_rgb)
    arr, what = _checked(image, name)
    if arr.ndim == 3 and grey_rgb == "exact":
        grey = grey_rgb_channel(arr)
        arr = arr if grey is None else grey
    if arr.ndim == 2:
        return _values(arr, scaled, what)
    if convention != "project":
        weights = LUMA_WEIGHTS if convention == "cddfuse" else _MATLAB_LUMA
        x = _luma(_values(arr, scaled, what), weights)
        return x if scaled else np.rint(x)
    if arr.dtype == np.uint8 and not scaled:
        return published_luma_uint8(arr).astype(np.float64)
    x = _luma(_values(arr, scaled, what, rounded=False), LUMA_WEIGHTS)
    return x if scaled else np.rint(x)


def _bands(image: Any, scaled: bool, name: str) -> list[np.ndarray]:
    """VIFB's view of an image: its bands as stored (one for grey), each on the
    0-255 scale by the data type's rule."""
    arr, what = _checked(image, name)
    x = _values(arr, scaled, what)
    return [x] if x.ndim == 2 else [x[..., k] for k in range(x.shape[2])]


def _prepare(
    images: dict[str, Any], scaled: bool, convention: str = "project", grey_rgb: str = "exact"
) -> list[np.ndarray]:
    out = [
        to_metric_scale(v, scaled=scaled, name=k, convention=convention, grey_rgb=grey_rgb)
        for k, v in images.items()
    ]
    _same_size(images, out)
    return out


def _same_size(images: dict[str, Any], arrays: list[np.ndarray]) -> None:
    if len({x.shape[:2] for x in arrays}) > 1:
        detail = ", ".join(f"{k} is {np.shape(v)}" for k, v in images.items())
        raise ValueError(f"the images must have the same height and width: {detail}")


def _vifb_metrics(fused: Any, a: Any, b: Any, scaled: bool, wanted: list[str]) -> dict[str, float]:
    """VIFB's scoring: each fused band against each input's band (or grey), averaged."""
    images = {"fused": fused, "a": a, "b": b}
    f, x, y = (_bands(v, scaled, k) for k, v in images.items())
    _same_size(images, [f[0], x[0], y[0]])
    if len(f) == 1:  # grey fused: colour inputs through MATLAB's rgb2gray
        x, y = ([to_metric_scale(v, scaled=scaled, name=k, convention="vifb", grey_rgb="published")]
                for k, v in (("a", a), ("b", b)))  # fmt: skip
    x, y = (bands * len(f) if len(bands) == 1 else bands for bands in (x, y))
    out = {}
    for m in METRICS:
        if m not in wanted:
            continue
        if m == "SF":
            out[m] = _spatial_frequency_vifb(f)
        else:
            out[m] = float(np.mean([_COMPUTE_VIFB_BAND[m](*band) for band in zip(f, x, y)]))
    return out


# --------------------------------------------------------------------------- public
def fusion_metrics(
    fused: Any,
    a: Any,
    b: Any,
    *,
    scaled: bool = False,
    metrics: Iterable[str] | None = None,
    convention: str = "project",
    grey_rgb: str = "exact",
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
    convention : {"project", "cddfuse", "vifb"}
        Whose conventions (keys of :data:`CONVENTIONS`, see the module
        docstring): the project's (default), the CDDFuse/EMMA evaluator's or
        VIFB's (per colour band; the three images keep their bands).
    grey_rgb : {"exact", "published"}
        How RGB with R = G = B is read (see :func:`to_metric_scale`); not
        used by ``"vifb"``, which scores the bands as stored.

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
        unknown metric name, convention or ``grey_rgb``.
    """
    _check_convention(convention)
    check_grey_rgb(grey_rgb)
    wanted = list(METRICS) if metrics is None else list(metrics)
    unknown = [m for m in wanted if m not in METRICS]
    if unknown:
        raise ValueError(f"unknown metric(s) {unknown}; valid names are {list(METRICS)}")
    if convention == "vifb":
        return _vifb_metrics(fused, a, b, scaled, wanted)
    f, x, y = _prepare({"fused": fused, "a": a, "b": b}, scaled, convention, grey_rgb)
    compute = _COMPUTE_CDDFUSE if convention == "cddfuse" else _COMPUTE
    return {m: compute[m](f, x, y) for m in METRICS if m in wanted}


def _psnr(f: np.ndarray, t: np.ndarray, data_range: float) -> float:
    mse = float(np.mean((f - t) ** 2))
    return float("inf") if mse == 0 else float(10.0 * np.log10(data_range**2 / mse))


def psnr(
    fused: Any, truth: Any, data_range: float = 255, *, scaled: bool = False,
    grey_rgb: str = "exact",
) -> float:  # fmt: skip
    """Peak signal-to-noise ratio of ``fused`` against ``truth``, in dB.

    ``10 log10(data_range^2 / MSE)`` on the 0-255 grey scale of
    :func:`to_metric_scale` (``fused``, ``truth``: grey or RGB, same height
    and width; ``scaled`` and ``grey_rgb`` as there). ``inf`` for identical
    images.

    Returns
    -------
    float
    """
    images = {"fused": fused, "truth": truth}
    return _psnr(*_prepare(images, scaled, grey_rgb=grey_rgb), data_range)


def _ssim_of(convention: str) -> Any:
    return _ssim_uniform if _check_convention(convention) == "cddfuse" else _ssim


def ssim(
    fused: Any, truth: Any, *, scaled: bool = False, convention: str = "project",
    grey_rgb: str = "exact",
) -> float:  # fmt: skip
    """Structural similarity of ``fused`` to ``truth`` (Wang et al. 2004).

    Gaussian window sigma 1.5 (11 x 11), K1 = 0.01, K2 = 0.03, data range
    255, population covariance, mean of the SSIM map, on the 0-255 grey
    scale of :func:`to_metric_scale` (``scaled``, ``convention`` and
    ``grey_rgb`` as there). NaN for images under 11 pixels on a side. With
    ``convention="cddfuse"``: that evaluator's SSIM (7 x 7 uniform window,
    sample covariance, data range 2; NaN under 7 pixels).

    Returns
    -------
    float
    """
    images = {"fused": fused, "truth": truth}
    return _ssim_of(convention)(*_prepare(images, scaled, convention, grey_rgb))


def reference_metrics(
    fused: Any, truth: Any, *, scaled: bool = False, convention: str = "project",
    grey_rgb: str = "exact",
) -> dict[str, float]:  # fmt: skip
    """PSNR (dB, data range 255) and SSIM of ``fused`` against a ground truth.

    Both on the grey images of :func:`to_metric_scale` (``scaled``,
    ``convention`` and ``grey_rgb`` as there; ``"vifb"`` converts colour
    with MATLAB's ``rgb2gray``).

    Returns
    -------
    dict[str, float]
        ``{"PSNR": ..., "SSIM": ...}``, as :func:`psnr` and :func:`ssim` give.
    """
    f, t = _prepare({"fused": fused, "truth": truth}, scaled, convention, grey_rgb)
    return {"PSNR": _psnr(f, t, 255.0), "SSIM": _ssim_of(convention)(f, t)}
