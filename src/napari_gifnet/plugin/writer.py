"""napari writer: one image layer -> a TIFF with its provenance (see ``napari.yaml``).

The pixels are written as they are (a float32 fusion stays float32, RGB(A)
layers as (H, W, 3|4) with photometric RGB). The ImageDescription holds JSON
that maps straight back onto napari layer keywords::

    {"shape": [...], "name": ..., "scale": [...], "translate": [...],
     "units": [...], "metadata": {...the layer's metadata...}}

(``"shape"`` is the entry tifffile needs; :func:`napari_gifnet.io.images.read_tiff_metadata`
drops it when reading.) The metadata is made JSON-safe: numpy scalars and
arrays become numbers and lists, tuples become lists, mapping keys become
strings and any other object its ``str``. The pixel size (the last two
``scale`` entries) also goes into the TIFF resolution tags: per centimetre
when the layer's units are metric lengths, per inch for inches, otherwise
with no unit.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..io import images as io
from ..util.safe_files import atomic_write

#: Extensions the writer accepts; another suffix gets ``.tif`` appended.
EXTENSIONS = (".tif", ".tiff")
#: Length units (as napari/pint spell them) -> centimetres.
_CENTIMETRES = {
    "nanometer": 1e-7, "micrometer": 1e-4, "micron": 1e-4, "millimeter": 0.1,
    "centimeter": 1.0, "meter": 100.0, "nm": 1e-7, "um": 1e-4, "µm": 1e-4, "mm": 0.1,
    "cm": 1.0, "m": 100.0,
}


def json_safe(value: Any) -> Any:
    """Return ``value`` as plain JSON types (dict, list, str, int, float, bool, None).

    Parameters
    ----------
    value : Any
        Possibly nested mappings, sequences, numpy scalars and arrays.

    Returns
    -------
    Any
        Mappings with string keys, lists, Python numbers; other objects as ``str``.
    """
    if value is None or isinstance(value, (bool, str, int, float)):
        return value
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [json_safe(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return str(value)


def _resolution(scale: list[float], units: list[str]) -> tuple[tuple[float, float], int] | None:
    """(x, y) pixels per unit and the TIFF ResolutionUnit (1 none, 2 inch, 3 cm)."""
    if len(scale) < 2:
        return None
    sy, sx = (abs(float(s)) for s in scale[-2:])
    if not (sx > 0 and sy > 0 and math.isfinite(sx) and math.isfinite(sy)):
        return None
    unit_y, unit_x = (units[-2:] if len(units) >= 2 else ["", ""])
    if unit_x == unit_y and unit_x in ("inch", "in"):
        return (1.0 / sx, 1.0 / sy), 2
    if unit_x == unit_y and unit_x in _CENTIMETRES:
        cm = _CENTIMETRES[unit_x]
        return (1.0 / (sx * cm), 1.0 / (sy * cm)), 3
    return (1.0 / sx, 1.0 / sy), 1


def layer_description(meta: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON-safe dict stored in the ImageDescription (without ``"shape"``).

    Parameters
    ----------
    meta : mapping
        napari layer attributes (``name``, ``scale``, ``translate``,
        ``units``, ``metadata``); missing ones are left out.

    Returns
    -------
    dict
        ``name``, ``scale``, ``translate``, ``units`` (as strings) and
        ``metadata`` (the layer's metadata, JSON-safe).
    """
    out: dict[str, Any] = {}
    if meta.get("name") is not None:
        out["name"] = str(meta["name"])
    for key in ("scale", "translate"):
        if meta.get(key) is not None:
            out[key] = [float(v) for v in np.ravel(meta[key])]
    if meta.get("units") is not None:
        out["units"] = [str(u) for u in meta["units"]]
    out["metadata"] = json_safe(dict(meta.get("metadata") or {}))
    return out


def write_fused_tiff(path: str, data: Any, meta: dict) -> list[str]:
    """Write one image layer to a TIFF, with its metadata as JSON (npe2 writer).

    Parameters
    ----------
    path : str
        Output file; ``.tif``/``.tiff`` (any other suffix gets ``.tif`` added).
    data : array-like
        The layer data; for a multiscale layer (a list of arrays) the
        full-resolution level is written. bool data are stored as uint8.
    meta : dict
        napari layer attributes (``name``, ``scale``, ``translate``,
        ``units``, ``metadata``, ``rgb``, ...).

    Returns
    -------
    list of str
        The path written.

    Raises
    ------
    ValueError
        Empty data, or an RGB layer whose last axis is not 3 or 4.
    """
    import tifffile

    out = Path(path)
    if out.suffix.lower() not in EXTENSIONS:
        out = out.with_name(out.name + ".tif")
    if isinstance(data, (list, tuple)) and meta.get("multiscale"):
        data = data[0]
    arr = np.asarray(data)
    if arr.size == 0:
        raise ValueError(f"cannot write {out}: the layer has no data (shape {arr.shape})")
    if arr.dtype == bool:
        arr = arr.astype(np.uint8)
    rgb = bool(meta.get("rgb")) and arr.ndim >= 3
    if rgb and arr.shape[-1] not in (3, 4):
        raise ValueError(f"cannot write {out}: RGB data must end in 3 or 4 channels, "
                         f"got shape {arr.shape}")
    description = layer_description(meta)
    options: dict[str, Any] = {}
    resolution = _resolution(description.get("scale", []), description.get("units", []))
    if resolution is not None:
        options["resolution"], options["resolutionunit"] = resolution
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(out) as fh:  # no partial file, an existing one kept on failure
        tifffile.imwrite(
            fh, arr,
            photometric="rgb" if rgb else "minisblack",
            extrasamples=("unassalpha",) if rgb and arr.shape[-1] == 4 else None,
            description=io._description(description, arr.shape),
            metadata=None,
            **options,
        )
    return [str(out)]


def read_fused_tiff(path: str | Path) -> tuple[np.ndarray, dict[str, Any]]:
    """Read back a file written by :func:`write_fused_tiff`.

    Returns
    -------
    data : numpy.ndarray
        The pixels, as stored.
    description : dict
        ``name``, ``scale``, ``translate``, ``units`` and ``metadata`` as
        written (empty when the file has no JSON description).
    """
    return io.read_image(path), io.read_tiff_metadata(path)
