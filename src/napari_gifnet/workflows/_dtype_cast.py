"""Float values back to a stored dtype: :func:`cast_to_dtype`.

Used where computed values (fusions mapped back to an input's scale,
resampled bands) return to the input's dtype: focus stacks with
``keep_dtype`` and pansharpening.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def float32_within(out: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """``out`` as float32, clipped to the float32 values inside ``lo..hi`` (when there are any)."""
    lo32, hi32 = np.float32(lo), np.float32(hi)
    if float(lo32) < lo:
        lo32 = np.nextafter(lo32, np.float32(np.inf))
    if float(hi32) > hi:
        hi32 = np.nextafter(hi32, np.float32(-np.inf))
    if lo32 > hi32:  # no float32 inside lo..hi: the nearest one
        lo32 = hi32 = np.float32(lo)
    return np.clip(out.astype(np.float32), lo32, hi32)


def cast_to_dtype(
    values: np.ndarray, dtype: Any, *, within: tuple[float, float] | None = None
) -> np.ndarray:
    """``values`` (on the scale of ``dtype``) as ``dtype``.

    Integers are rounded to nearest and clipped to the dtype's range; bool is
    ``values >= 0.5``; floats are cast to ``dtype``, or with ``within=(lo,
    hi)`` made float32 and clipped to the float32 values inside lo..hi
    (:func:`float32_within`: rounding to float32 cannot leave the range).
    Other than with ``within``, values already of ``dtype`` are returned as
    they are (not copied).
    """
    dtype = np.dtype(dtype)
    if dtype.kind == "f" and within is not None:
        return float32_within(values, *within)
    if values.dtype == dtype:
        return values
    if dtype.kind == "b":
        return values >= 0.5
    if dtype.kind in "ui":
        info = np.iinfo(dtype)
        return np.clip(np.rint(values), info.min, info.max).astype(dtype)
    return values.astype(dtype)
