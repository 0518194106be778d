"""Turn one input image into the grey [0, 1] luma that GIFNet fuses.

:func:`to_luma_unit`'s docstring gives the accepted inputs and the rules.
Why ``"auto"`` picks what it does: uint8 is divided by 255 exactly as the
published GIFNet runs; 12-bit microscopy data in uint16 divided by 65535
would be nearly black, so integers other than uint8 take the robust
``"percentile"`` range, where a few hot or dead pixels do not set the
contrast. A grey image stored as RGB (as in TNO, the Harvard medical sets and
many infrared files) is read as its one channel (:func:`grey_rgb_channel`):
the published script's BT.601 weights sum to slightly under 1 in floating
point, so its truncated luma lowers 65 of the 256 grey levels by one.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any, Union

import numpy as np

from .colour import LUMA_WEIGHTS

#: The named normalisation rules; a ``(lo, hi)`` pair is also accepted.
NORMALIZATIONS = ("auto", "dtype", "minmax", "percentile")
#: Percentiles used by the ``"percentile"`` rule.
PERCENTILES = (0.1, 99.9)
#: How a grey image stored as RGB (R = G = B) is read: ``"exact"`` (its one
#: channel) or ``"published"`` (the published script's luma, like colour).
GREY_RGB = ("exact", "published")

Normalization = Union[str, Sequence[float]]

_VALID_TEXT = (
    "valid choices are 'auto', 'dtype', 'minmax', 'percentile' "
    "or a (lo, hi) pair of finite numbers with lo < hi"
)


def _check_normalization(normalization: Any) -> str | tuple[float, float]:
    """Return a named rule or a validated ``(lo, hi)`` pair."""
    if isinstance(normalization, str):
        if normalization not in NORMALIZATIONS:
            raise ValueError(f"unknown normalization {normalization!r}; {_VALID_TEXT}")
        return normalization
    try:
        lo, hi = (float(v) for v in normalization)
    except (TypeError, ValueError):
        raise ValueError(f"invalid normalization {normalization!r}; {_VALID_TEXT}") from None
    if not (np.isfinite(lo) and np.isfinite(hi) and lo < hi):
        raise ValueError(f"invalid normalization range {normalization!r}; {_VALID_TEXT}")
    return (lo, hi)


def unsupported_dtype_message(name: str, shape: tuple[int, ...], dtype: Any) -> str:
    """The message for an input whose data type cannot be fused."""
    return (
        f"input {name!r} (shape {tuple(shape)}, dtype {dtype}) has an unsupported data type; "
        "expected bool, integer or float data"
    )


def _shape_hint(shape: tuple[int, ...]) -> str:
    """A hint for a shape that is not (H, W), (H, W, 3) or (H, W, 4)."""
    if len(shape) < 3:
        return ""
    stack = (
        "for a stack of planes, pass Dask arrays to fuse() or use "
        "napari_gifnet.engine.lazy.fuse_dask, which fuse plane by plane"
    )
    if len(shape) == 3 and shape[0] in (3, 4):
        return (
            " (it looks channel-first; RGB images are (H, W, 3): use "
            f"np.moveaxis(x, 0, -1); {stack})"
        )
    return f" ({stack})"


def check_finite(image: Any, name: str) -> None:
    """Refuse NaN or infinite values in a float input, giving how many there are.

    Raises
    ------
    ValueError
        Naming the input, its shape and dtype, and the count.
    """
    arr = np.asarray(image)
    if arr.dtype.kind == "f":
        bad = int(arr.size - np.count_nonzero(np.isfinite(arr)))
        if bad:
            raise ValueError(
                f"input {name!r} (shape {arr.shape}, dtype {arr.dtype}) contains {bad} "
                "non-finite value(s) (NaN or inf)"
            )


def _validate(image: Any, name: str, warn_alpha: bool) -> tuple[np.ndarray, bool, bool]:
    """Check an input array; return (array without alpha, is_rgb, alpha_dropped).

    The returned array may be a view of the caller's data: never write to it.
    """
    arr = np.asarray(image)
    what = f"{name!r} (shape {arr.shape}, dtype {arr.dtype})"
    if arr.dtype.kind not in "buif":
        raise ValueError(unsupported_dtype_message(name, arr.shape, arr.dtype))
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (3, 4)):
        raise ValueError(
            f"input {what} has an unsupported shape; expected (H, W) grey, "
            "(H, W, 3) RGB or (H, W, 4) RGBA" + _shape_hint(arr.shape)
        )
    if arr.size == 0:
        raise ValueError(f"input {what} is empty")
    check_finite(arr, name)
    rgb = arr.ndim == 3
    alpha = rgb and arr.shape[2] == 4
    if alpha:
        arr = arr[..., :3]
        if warn_alpha:
            warnings.warn(
                f"input {name!r} is RGBA; its alpha channel is ignored", UserWarning, stacklevel=3
            )
    return arr, rgb, alpha


def _dtype_range(dtype: np.dtype) -> tuple[float, float]:
    """The range the ``"dtype"`` rule maps to [0, 1]."""
    if dtype.kind in "ui":
        info = np.iinfo(dtype)
        return float(info.min), float(info.max)
    return 0.0, 1.0  # bool, and float data assumed to be in [0, 1]


def _resolve(arr: np.ndarray, rule: str | tuple[float, float]) -> tuple[str, float, float]:
    """Pick the rule actually used and its range ``(lo, hi)`` for ``arr``."""
    if isinstance(rule, tuple):
        return "fixed", rule[0], rule[1]
    kind = arr.dtype.kind
    if rule == "auto":
        if kind == "b" or arr.dtype == np.uint8:
            rule = "dtype"
        elif kind == "f" and float(arr.min()) >= 0.0 and float(arr.max()) <= 1.0:
            return "unchanged", 0.0, 1.0
        else:
            rule = "percentile"
    if rule == "dtype":
        return "dtype", *_dtype_range(arr.dtype)
    if rule == "percentile" and kind != "b":
        if np.isfinite(float(arr.max()) - float(arr.min())):
            lo, hi = np.percentile(arr, PERCENTILES)
        else:  # a range beyond float64 (values near +-1.7e308): interpolate on halves
            lo, hi = 2.0 * np.percentile(arr.astype(np.float64) / 2.0, PERCENTILES)
        if lo < hi:
            return "percentile", float(lo), float(hi)
    # minmax, bool data under percentile, or a degenerate percentile range
    return "minmax", float(arr.min()), float(arr.max())


def _scale(arr: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Map ``lo..hi`` to 0..1 in float64, clipped; zeros when ``lo == hi``.

    A range wider than float64 holds (``hi - lo`` overflows, e.g. values near
    +-1.7e308) is scaled as ``(x/2 - lo/2) / (hi/2 - lo/2)``, which stays
    finite; every other range exactly as ``(x - lo) / (hi - lo)``.
    """
    x = arr.astype(np.float64)  # always a new array: the input is untouched
    if hi <= lo:
        return np.zeros_like(x)
    span = hi - lo
    with np.errstate(over="ignore"):  # x - lo beyond float64 is +-inf: clipped to 0 or 1
        if np.isfinite(span):
            x -= lo
            x /= span
        else:
            x /= 2.0
            x -= lo / 2.0
            x /= hi / 2.0 - lo / 2.0
    return np.clip(x, 0.0, 1.0, out=x)


def check_grey_rgb(grey_rgb: str) -> str:
    """Return ``grey_rgb`` if it is one of :data:`GREY_RGB`, else raise ``ValueError``."""
    if grey_rgb not in GREY_RGB:
        raise ValueError(f"unknown grey_rgb {grey_rgb!r}; valid choices are 'exact' or 'published'")
    return grey_rgb


def grey_rgb_channel(rgb: np.ndarray) -> np.ndarray | None:
    """The one channel of an RGB image whose three channels are equal, else None.

    Parameters
    ----------
    rgb : numpy.ndarray
        (H, W, 3) or (H, W, 4) array (a fourth, alpha, channel is ignored).

    Returns
    -------
    numpy.ndarray or None
        A view of the first channel, (H, W), when R = G = B exactly at every
        pixel (a grey image stored as RGB); None otherwise.
    """
    arr = np.asarray(rgb)
    r = arr[..., 0]
    if np.array_equal(r, arr[..., 1]) and np.array_equal(r, arr[..., 2]):
        return r
    return None


def published_luma_uint8(rgb_uint8: np.ndarray) -> np.ndarray:
    """Luma of a uint8 RGB image exactly as the published GIFNet runs made it.

    ``Y = 0.299 R + 0.587 G + 0.114 B`` is computed in float64 from the uint8
    values, clipped to [0, 255] and truncated (not rounded) to uint8. For
    example pure red (255, 0, 0) gives 76.245 -> 76, pure green 149.685 -> 149.

    Parameters
    ----------
    rgb_uint8 : numpy.ndarray
        uint8 array of shape (H, W, 3); a fourth (alpha) channel is ignored.

    Returns
    -------
    numpy.ndarray
        uint8 array of shape (H, W).
    """
    arr = np.asarray(rgb_uint8)
    if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] not in (3, 4):
        raise ValueError(
            f"expected a uint8 (H, W, 3) array, got shape {arr.shape} and dtype {arr.dtype}"
        )
    r, g, b = (arr[..., i].astype(np.float64) for i in range(3))
    y = LUMA_WEIGHTS[0] * r + LUMA_WEIGHTS[1] * g + LUMA_WEIGHTS[2] * b
    return np.clip(y, 0.0, 255.0).astype(np.uint8)


def to_luma_unit(
    image: Any,
    *,
    normalization: Normalization = "auto",
    name: str = "input",
    grey_rgb: str = "exact",
) -> tuple[np.ndarray, dict[str, Any]]:
    """Check one input image and convert it to a float32 (H, W) luma in [0, 1].

    Parameters
    ----------
    image : array_like
        Grey ``(H, W)``, RGB ``(H, W, 3)`` or RGBA ``(H, W, 4)`` data of type
        bool, integer or float. RGBA: the alpha channel is dropped with a
        ``UserWarning``. The array is never modified.
    normalization : {"auto", "dtype", "minmax", "percentile"} or (lo, hi)
        How values are mapped to [0, 1]; values outside the chosen range are
        clipped.

        * ``"dtype"``: the data type's full range (uint8 / 255, uint16 /
          65535, signed integers from their min..max, bool 0..1); float data
          is taken to be in [0, 1] and clipped.
        * ``"minmax"``: the image's minimum..maximum.
        * ``"percentile"``: the image's 0.1th..99.9th percentiles (its
          minimum..maximum if those are equal).
        * ``(lo, hi)``: a fixed range, ``lo < hi``.
        * ``"auto"``: uint8 and bool -> ``"dtype"``; uint16 and other
          integers -> ``"percentile"``; float data already within [0, 1] ->
          unchanged; other float data -> ``"percentile"``.

        A constant image under ``"minmax"`` or ``"percentile"`` becomes all
        zeros. uint8 RGB under ``"dtype"`` (or ``"auto"``) gives the
        published luma: BT.601 ``0.299 R + 0.587 G + 0.114 B`` truncated to
        uint8, then / 255 (:func:`published_luma_uint8`). Other RGB data is
        normalised with one range for all channels, then its luma is
        computed with the same weights in float, without truncation.
    name : str
        Name of the input, used in warnings and error messages.
    grey_rgb : {"exact", "published"}
        How an RGB input with R = G = B at every pixel is read. ``"exact"``
        (default): as the grey image it is (its one channel, normalised like
        grey data). ``"published"``: like any colour image (for uint8, the
        published truncated luma, which lowers 65 of the 256 grey levels by
        one).

    Returns
    -------
    luma : numpy.ndarray
        float32, shape (H, W), values in [0, 1], a new C-contiguous array.
    metadata : dict
        ``name``, ``shape`` and ``dtype`` (of the input), ``rgb`` (bool: the
        input has colour channels),
        ``alpha_dropped`` (bool), ``normalization`` (the rule actually
        used: ``"dtype"``, ``"minmax"``, ``"percentile"``, ``"fixed"`` or
        ``"unchanged"``; ``"minmax"`` also where ``"percentile"`` fell back
        to it), ``requested`` (the option as given), ``range``
        (the ``(lo, hi)`` mapped to [0, 1]), ``constant`` (True when
        ``lo == hi``), ``published_uint8`` (True when the exact published
        uint8 path was used) and ``grey_rgb`` (True when an RGB input with
        R = G = B was read as grey).

    Raises
    ------
    ValueError
        For an unsupported shape or data type, an empty array, NaN or
        infinite values, or an invalid ``normalization``.
    """
    rule = _check_normalization(normalization)
    check_grey_rgb(grey_rgb)
    shape, dtype = np.shape(image), np.asarray(image).dtype
    arr, rgb, alpha = _validate(image, name, warn_alpha=True)
    grey = grey_rgb_channel(arr) if rgb and grey_rgb == "exact" else None
    if grey is not None:
        arr = grey
    used, lo, hi = _resolve(arr, rule)
    published = arr.dtype == np.uint8 and used == "dtype"
    rgb_luma = rgb and grey is None
    if published and rgb_luma:
        luma = published_luma_uint8(arr).astype(np.float32) / np.float32(255)
    elif published:
        luma = arr.astype(np.float32) / np.float32(255)
    else:
        x = _scale(arr, lo, hi)
        if rgb_luma:
            w = LUMA_WEIGHTS
            x = w[0] * x[..., 0] + w[1] * x[..., 1] + w[2] * x[..., 2]
        luma = x.astype(np.float32)
    meta: dict[str, Any] = dict(
        name=name, shape=tuple(shape), dtype=str(dtype), rgb=rgb, alpha_dropped=alpha,
        normalization=used, requested=normalization, range=(lo, hi), constant=lo == hi,
        published_uint8=bool(published), grey_rgb=grey is not None,
    )  # fmt: skip
    return np.ascontiguousarray(luma), meta


def to_rgb_unit(
    image: Any, normalization: Normalization = "auto", *, name: str = "input"
) -> np.ndarray | None:
    """Convert a colour input to float32 RGB in [0, 1]; ``None`` for grey input.

    The same validation and normalisation rules as :func:`to_luma_unit` are
    used (one range for all three channels), so the two agree on the range.
    uint8 under ``"dtype"``/``"auto"`` is divided by 255 (no luma truncation
    is involved here). An alpha channel is dropped silently:
    :func:`to_luma_unit` is the one that warns about it.

    Parameters
    ----------
    image : array_like
        ``(H, W)``, ``(H, W, 3)`` or ``(H, W, 4)`` data.
    normalization : {"auto", "dtype", "minmax", "percentile"} or (lo, hi)
        As for :func:`to_luma_unit`.
    name : str
        Name of the input, used in error messages.

    Returns
    -------
    numpy.ndarray or None
        float32 array of shape (H, W, 3), or ``None`` when ``image`` is grey.
    """
    rule = _check_normalization(normalization)
    arr, rgb, _ = _validate(image, name, warn_alpha=False)
    if not rgb:
        return None
    _, lo, hi = _resolve(arr, rule)
    return np.ascontiguousarray(_scale(arr, lo, hi).astype(np.float32))
