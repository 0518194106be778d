"""The transform file: a registration saved as JSON, to reuse on another pair of one setup.

The file holds ``format`` (:data:`FORMAT`), ``version`` (:data:`VERSION`),
``kind``, ``ndim``, ``matrix`` (homogeneous, numpy axis order, world units,
fixed -> moving: see :mod:`napari_gifnet.workflows.registration`), ``unit``
(the length unit of those world coordinates and of the spacings, as the
inputs' calibration names it, e.g. ``"micrometer"``; null for pixels), and
where known ``parameters``, ``fixed_spacing``, ``moving_spacing``, ``report``
and any extra entries given to :func:`save_transform`. A file without
``unit`` (written before it was stored) is in pixels. This module knows the
file, not the registration (``Transform.from_dict`` or ``Transform.load`` make
the transform of :func:`load_transform`'s entries).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..util.safe_files import PathLike, atomic_write_text

__all__ = [
    "FORMAT",
    "PIXEL_UNITS",
    "TRANSFORM_KINDS",
    "VERSION",
    "load_transform",
    "save_transform",
]

#: The ``format`` entry of a transform file.
FORMAT = "napari-gifnet-transform"
#: The newest version written and read.
VERSION = 1
#: The kinds a transform file may hold.
TRANSFORM_KINDS = ("translation", "rigid", "similarity", "affine")
#: ``unit`` spellings that mean pixels (stored as null).
PIXEL_UNITS = ("", "pixel", "pixels", "px")


def _entries(item: Any) -> dict[str, Any]:
    if hasattr(item, "provenance"):
        return dict(item.provenance())
    if hasattr(item, "to_dict"):
        return dict(item.to_dict())
    if isinstance(item, Mapping):
        return dict(item)
    raise TypeError(f"save_transform takes a registration, a transform or a mapping, "
                    f"not {type(item).__name__}")  # fmt: skip


def _json_able(value: Any) -> Any:
    """numpy arrays and scalars as lists and Python numbers; NaN as None."""
    if isinstance(value, Mapping):
        return {str(k): _json_able(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [_json_able(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def _unit(value: Any, what: str) -> str | None:
    """A stored ``unit``: a length unit's name, or None for pixels."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f"{what}: its unit {value!r} is not a unit name")
    return None if value.strip().lower() in PIXEL_UNITS else value.strip()


def save_transform(
    path: PathLike, registration_or_transform: Any, *, unit: str | None = None, **extra: Any
) -> Path:
    """Write a transform file (atomically); returns its path.

    Parameters
    ----------
    path
        The ``.json`` file to write (its folder must exist).
    registration_or_transform
        A ``Registration`` (the transform, its report and spacings), a
        ``Transform``, or a mapping with ``kind`` and ``matrix``.
    unit
        The length unit of the world coordinates (the spacings' unit), as
        the inputs' calibration names it (``"micrometer"``); None: a mapping's
        own ``unit`` where it has one, else pixels (inputs without a pixel
        size).
    **extra
        More JSON-able entries (e.g. ``fixed="ct.tif"``).

    Raises
    ------
    ValueError
        The transform is not valid (see :func:`load_transform`'s checks).
    OSError
        The file cannot be written (``path`` is left as it was).
    """
    data = _json_able({**_entries(registration_or_transform), **extra})
    what = f"cannot save the transform to {path}"
    data = {"format": FORMAT, "version": VERSION, **data,
            "unit": _unit(data.get("unit") if unit is None else unit, what)}  # fmt: skip
    _check(data, what)
    return atomic_write_text(path, json.dumps(data, indent=2, allow_nan=False) + "\n")


def _check(data: Any, what: str) -> dict[str, Any]:
    """The checked entries of a transform file (matrix as a float64 array)."""
    if not isinstance(data, dict):
        raise ValueError(f"{what}: not a JSON object")
    if data.get("format") != FORMAT:
        raise ValueError(f"{what}: its format is {data.get('format')!r}, not {FORMAT!r}")
    version = data.get("version")
    if not isinstance(version, int) or not 1 <= version <= VERSION:
        raise ValueError(f"{what}: version {version!r} (this napari-gifnet reads 1..{VERSION})")
    kind = data.get("kind")
    if kind not in TRANSFORM_KINDS:
        raise ValueError(f"{what}: kind {kind!r} is not one of {', '.join(TRANSFORM_KINDS)}")
    try:
        matrix = np.asarray(data.get("matrix"), dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{what}: its matrix is not numbers") from None
    ndim = matrix.shape[0] - 1 if matrix.ndim == 2 else -1
    if ndim not in (2, 3) or matrix.shape != (ndim + 1, ndim + 1):
        raise ValueError(f"{what}: its matrix has shape {matrix.shape}, not 3 x 3 or 4 x 4")
    if data.get("ndim", ndim) != ndim:
        raise ValueError(f"{what}: ndim {data.get('ndim')!r} does not match its {matrix.shape} "
                         "matrix")  # fmt: skip
    if not np.all(np.isfinite(matrix)) or not np.allclose(matrix[ndim], np.eye(ndim + 1)[ndim]):
        raise ValueError(f"{what}: its matrix is not a finite homogeneous matrix")
    if abs(np.linalg.det(matrix)) < 1e-12:
        raise ValueError(f"{what}: its matrix is singular")
    for key in ("fixed_spacing", "moving_spacing"):
        value = data.get(key)
        if value is None:
            continue
        try:
            spacing = np.asarray(value, dtype=np.float64)
        except (TypeError, ValueError):
            raise ValueError(f"{what}: {key} is not numbers") from None
        if spacing.shape != (ndim,) or not np.all(np.isfinite(spacing)) or np.any(spacing <= 0):
            raise ValueError(f"{what}: {key} must be {ndim} positive numbers, not {value!r}")
    return {**data, "ndim": ndim, "matrix": matrix, "unit": _unit(data.get("unit"), what)}


def load_transform(path: PathLike) -> dict[str, Any]:
    """Read and check a transform file.

    Returns
    -------
    dict
        The file's entries, ``matrix`` as a float64 (ndim + 1)^2 array and
        ``ndim`` set; ``unit`` a length unit's name or None (pixels, also
        for a file that stores none); ``fixed_spacing`` and
        ``moving_spacing`` where stored.

    Raises
    ------
    ValueError
        One message naming ``path`` for a file that is not JSON or not a
        valid napari-gifnet transform file.
    OSError
        The file cannot be read.
    """
    what = f"{path} is not a valid napari-gifnet transform file"
    try:
        text = Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ValueError(f"{what}: not UTF-8 text") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{what}: not JSON ({exc.msg}, line {exc.lineno})") from None
    return _check(data, what)
