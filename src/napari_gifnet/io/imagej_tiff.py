"""One TIFF writer for the command line and napari: ImageJ-compatible, calibrated, with provenance.

:func:`write_calibrated_tiff` writes every TIFF this project makes; no napari, no Qt, no torch.

**What Fiji/ImageJ sees.** Data whose dtype ImageJ holds are written as an
ImageJ hyperstack (tifffile's ``imagej=True``), so Fiji opens them with their
calibration:

* axes: the last two are YX; leading axes become ImageJ's T, Z and C (from
  ``axis_labels`` when they say so, "t"/"time", "z"/"depth"/"plane",
  "c"/"channel"/"band", in TZC order; otherwise one leading axis is Z, two
  are TZ, three TZC). 8-bit RGB is written as ImageJ RGB (axes ``...YXS``);
  any other RGB(A) (float32, uint16, RGBA) as a composite image of 3 or 4
  channels (axes ``...CYX``, red, green, blue, grey LUTs).
* calibration: the pixel size (the last two ``scale`` entries) in the
  resolution tags (1 / pixel size, ResolutionUnit none) with ImageJ's
  ``unit`` (``micron``, ``nm``, ``mm``, ... from ``units``; ``yunit`` when Y
  differs), the Z step as ``spacing`` (in X's unit), a T step in a time unit
  as ``finterval`` (seconds), the ``translate`` as ``xorigin``/``yorigin``/
  ``zorigin`` (in pixels), and a grey image's colormap as its LUT.
* dtypes: uint8, uint16, int16 and float32 are written as they are; three
  are cast exactly into one ImageJ holds and cast back on reading
  (:func:`restore_layer_data`): bool -> uint8 0/255 (ImageJ's mask
  convention), int8 -> int16, float16 -> float32. Every other dtype
  (float64, (u)int32, (u)int64, complex, ...), and shapes ImageJ cannot hold
  (more than 3 leading axes; 2 for a composite), are written as a plain TIFF
  instead, pixels unchanged; its resolution tags are per centimetre for
  metric units, per inch for inches, otherwise without a unit.

**The provenance.** :func:`layer_description`'s JSON, which maps back onto
napari layer keywords, with ``"dtype"`` and ``"napari_gifnet_version"``
added. In an ImageJ file it is the ImageJ ``Info`` entry (Fiji: Image > Show
Info...), since ImageJ's own ImageDescription (``ImageJ=...``) has to stay
first; in a plain TIFF it is the ImageDescription (tifffile's "shaped" JSON,
with a leading ``"shape"``). :func:`provenance` finds it in either.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from ..util.safe_files import atomic_write, check_output_folder
from .formats import PathLike

#: The key that marks a TIFF as written by napari-gifnet (also in every result's metadata).
VERSION_KEY = "napari_gifnet_version"
#: The top-level keys of the writer's JSON (a file with only these is the writer's).
LAYER_KEYS = frozenset({
    "name", "scale", "translate", "units", "axis_labels", "rgb", "colormap", "metadata",
    "dtype", VERSION_KEY,
})
#: Data types an ImageJ hyperstack holds as they are.
IMAGEJ_DTYPES = ("uint8", "uint16", "int16", "float32")
#: Exact casts into an ImageJ data type, undone by :func:`restore_layer_data`.
IMAGEJ_CASTS = {"bool": "uint8", "int8": "int16", "float16": "float32"}
#: Length units (as napari/pint spell them) -> centimetres.
_CENTIMETRES = {
    "nanometer": 1e-7, "micrometer": 1e-4, "micron": 1e-4, "millimeter": 0.1,
    "centimeter": 1.0, "meter": 100.0, "nm": 1e-7, "um": 1e-4, "µm": 1e-4, "mm": 0.1,
    "cm": 1.0, "m": 100.0,
}
#: Length units -> how ImageJ spells them ("micron" shows as µm in Fiji).
_IMAGEJ_UNITS = {
    "nanometer": "nm", "nm": "nm", "micrometer": "micron", "micron": "micron",
    "um": "micron", "µm": "micron", "millimeter": "mm", "mm": "mm", "centimeter": "cm",
    "cm": "cm", "meter": "m", "m": "m", "inch": "inch", "in": "inch",
}
#: Time units -> seconds (ImageJ's ``finterval``).
_SECONDS = {
    "second": 1.0, "s": 1.0, "sec": 1.0, "millisecond": 1e-3, "ms": 1e-3,
    "microsecond": 1e-6, "us": 1e-6, "nanosecond": 1e-9, "ns": 1e-9, "minute": 60.0,
    "min": 60.0, "hour": 3600.0, "h": 3600.0,
}
#: Axis labels -> ImageJ axes.
_AXIS_WORDS = {
    "t": "T", "time": "T", "frame": "T", "frames": "T",
    "z": "Z", "depth": "Z", "slice": "Z", "slices": "Z", "plane": "Z", "planes": "Z",
    "c": "C", "ch": "C", "channel": "C", "channels": "C", "band": "C", "bands": "C",
}
_DEFAULT_AXES = {0: "", 1: "Z", 2: "TZ", 3: "TZC"}
#: The largest magnitude of a calibration entry (and the smallest of a scale
#: entry): beyond it, extents, origins and resolutions overflow or vanish.
CALIBRATION_LIMIT = 1e100
#: A TIFF resolution is a fraction of two 32-bit integers.
_RATIONAL_MAX = 2**32 - 1
#: The relative error a stored resolution may have.
_RATIONAL_TOLERANCE = 1e-6
#: numpy kinds a TIFF holds: bool, signed and unsigned integers, floats, complex.
TIFF_KINDS = "biufc"


class TiffWriteError(RuntimeError):
    """Data a TIFF cannot hold as they are (their values or calibration); names them.

    Not a ValueError: napari reads a writer's ValueError as "not a valid
    writer" and drops its message.
    """


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
    return str(value)  # a Path, or any other object


def _pixel_size(scale: list[float]) -> tuple[float, float] | None:
    """(x, y) pixel size from the last two scale entries, if both are finite and nonzero."""
    if len(scale) < 2:
        return None
    sy, sx = (abs(float(s)) for s in scale[-2:])
    if not (sx > 0 and sy > 0 and math.isfinite(sx) and math.isfinite(sy)):
        return None
    return sx, sy


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(
        value, (bool, np.bool_))


def calibration_problems(description: Mapping[str, Any]) -> dict[str, str]:
    """The ``scale`` and ``translate`` entries of a layer's JSON that no viewer can use.

    The rule, the same for writing and reading: a list of numbers, finite,
    at most :data:`CALIBRATION_LIMIT` in magnitude, and for ``scale`` nonzero
    and at least ``1 / CALIBRATION_LIMIT`` in magnitude.

    Returns
    -------
    dict
        Key -> what is wrong with it, in words (empty when all is well).
    """
    problems: dict[str, str] = {}
    for key in ("scale", "translate"):
        value = description.get(key)
        if value is None:
            continue
        if not isinstance(value, list) or not all(_is_number(v) for v in value):
            problems[key] = f"{key} {value!r} is not a list of numbers"
            continue
        shown = [float(v) for v in value]
        if not all(math.isfinite(v) for v in shown):
            problems[key] = f"{key} {shown} is not finite"
        elif any(abs(v) > CALIBRATION_LIMIT for v in shown):
            problems[key] = f"{key} {shown} is beyond {CALIBRATION_LIMIT:g} in magnitude"
        elif key == "scale" and any(abs(v) < 1 / CALIBRATION_LIMIT for v in shown):
            problems[key] = f"scale {shown} has an entry of 0 or below {1 / CALIBRATION_LIMIT:g}"
    return problems


def _rational_problem(value: float) -> str | None:
    """Why a resolution (pixels per unit) cannot be a TIFF RATIONAL to 6 digits, or None."""
    if not (math.isfinite(value) and value > 0):
        return "is not a positive finite number"
    if value > _RATIONAL_MAX:
        return f"is above {_RATIONAL_MAX}, the largest a TIFF resolution holds"
    fraction = Fraction(value).limit_denominator(min(_RATIONAL_MAX, int(_RATIONAL_MAX / value)))
    if fraction == 0 or abs(float(fraction) - value) > _RATIONAL_TOLERANCE * value:
        return "is too small for a TIFF resolution (a fraction of 32-bit integers)"
    return None


def _check_resolution(resolution: tuple[float, float] | None, scale: list[float],
                      unit: str, what: str, out: Path) -> None:
    for axis, value in zip("XY", resolution or ()):
        why = _rational_problem(value)
        if why is not None:
            raise TiffWriteError(
                f"cannot write {what} to {out}: its scale {scale} gives "
                f"{value:.6g} pixels per {unit or 'unit'} in {axis}, which {why}; "
                f"rescale it (e.g. change its units)"
            )


def _resolution(scale: list[float], units: list[str]
                ) -> tuple[tuple[float, float] | None, int | None]:
    """Plain TIFF: (x, y) pixels per unit and the ResolutionUnit (1 none, 2 inch, 3 cm),
    or ``(None, None)`` without a pixel size."""
    size = _pixel_size(scale)
    if size is None:
        return None, None
    sx, sy = size
    unit_y, unit_x = (units[-2:] if len(units) >= 2 else ["", ""])
    if unit_x == unit_y and unit_x in ("inch", "in"):
        return (1.0 / sx, 1.0 / sy), 2
    if unit_x == unit_y and unit_x in _CENTIMETRES:
        cm = _CENTIMETRES[unit_x]
        return (1.0 / (sx * cm), 1.0 / (sy * cm)), 3
    return (1.0 / sx, 1.0 / sy), 1


def _colormap(value: Any) -> dict[str, Any] | None:
    """A napari colormap (its ``model_dump()``, a Colormap or a name) as compact JSON."""
    if value is None:
        return None
    if isinstance(value, str):
        return {"name": value}
    if not isinstance(value, Mapping):
        dump = getattr(value, "model_dump", None)
        if dump is None:
            return None
        value = dump()
    out: dict[str, Any] = {"name": str(value.get("name", ""))}
    if value.get("colors") is not None:
        out["colors"] = np.round(np.asarray(value["colors"], np.float64).reshape(-1, 4), 6).tolist()
    if value.get("controls") is not None:
        out["controls"] = np.round(np.asarray(value["controls"], dtype=np.float64), 6).tolist()
    if value.get("interpolation") is not None:
        out["interpolation"] = str(getattr(value["interpolation"], "value",
                                           value["interpolation"]))
    return out


def layer_description(meta: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON-safe dict of a layer's attributes (the provenance, without the file's keys).

    Parameters
    ----------
    meta : mapping
        napari layer attributes (``name``, ``scale``, ``translate``,
        ``units``, ``axis_labels``, ``rgb``, ``colormap``, ``metadata``);
        missing ones are left out (``colormap`` also for an RGB layer).

    Returns
    -------
    dict
        ``name``, ``scale``, ``translate``, ``units`` and ``axis_labels`` (as
        strings), ``rgb``, ``colormap`` (name, colours, controls,
        interpolation) and ``metadata`` (the layer's metadata, JSON-safe).
    """
    out: dict[str, Any] = {}
    if meta.get("name") is not None:
        out["name"] = str(meta["name"])
    for key in ("scale", "translate"):
        if meta.get(key) is not None:
            out[key] = [float(v) for v in np.ravel(meta[key])]
    for key in ("units", "axis_labels"):
        if meta.get(key) is not None:
            out[key] = [str(u) for u in meta[key]]
    if meta.get("rgb") is not None:
        out["rgb"] = bool(meta["rgb"])
    colormap = None if meta.get("rgb") else _colormap(meta.get("colormap"))
    if colormap is not None:
        out["colormap"] = colormap
    out["metadata"] = json_safe(dict(meta.get("metadata") or {}))
    return out


@dataclass(frozen=True)
class Layout:
    """How a layer is stored: as an ImageJ hyperstack or a plain TIFF.

    ``shape``/``dtype`` are the stored ones; ``axes`` the ImageJ axes
    (empty for a plain TIFF); ``channels_first`` when the layer's colour
    axis (last) is stored as ImageJ's C axis before YX.
    """

    imagej: bool
    shape: tuple[int, ...]
    dtype: np.dtype
    axes: str = ""
    rgb: bool = False
    channels_first: bool = False


def _leading_axes(labels: list[str], count: int, allowed: str) -> str:
    """ImageJ letters for ``count`` leading axes: from the labels if they say so, else a default."""
    letters = "".join(_AXIS_WORDS.get(label.strip().lower(), "?") for label in labels[:count])
    order = [allowed.find(a) for a in letters]
    if len(letters) == count and -1 not in order and order == sorted(set(order)):
        return letters
    return _DEFAULT_AXES[count]


def plan_layout(shape: tuple[int, ...], dtype: Any, rgb: bool = False,
                axis_labels: list[str] | None = None) -> Layout:
    """Decide how an image of ``shape``/``dtype`` is stored (see the module docstring).

    Parameters
    ----------
    shape, dtype
        The layer data's.
    rgb : bool
        The layer is RGB(A): its last axis (3 or 4) is colour.
    axis_labels : list of str, optional
        The layer's axis labels, used to name the leading axes.

    Returns
    -------
    Layout
    """
    dtype = np.dtype(dtype)
    labels = list(axis_labels or [])
    cast = np.dtype(IMAGEJ_CASTS[dtype.name]) if dtype.name in IMAGEJ_CASTS else dtype
    plain = Layout(False, tuple(shape), np.dtype(np.uint8) if dtype.kind == "b" else dtype, rgb=rgb)
    if cast.name not in IMAGEJ_DTYPES:
        return plain
    lead = len(shape) - (3 if rgb else 2)
    if lead < 0:
        return plain
    if rgb and cast == np.uint8 and shape[-1] == 3:
        if lead > 3:
            return plain
        axes = _leading_axes(labels, lead, "TZC") + "YXS"
        return Layout(True, tuple(shape), cast, axes, rgb=True)
    if rgb:  # a composite: colour as ImageJ channels
        if lead > 2:
            return plain
        stored = (*shape[:lead], shape[-1], *shape[lead:-1])
        axes = _leading_axes(labels, lead, "TZ") + "CYX"
        return Layout(True, stored, cast, axes, rgb=True, channels_first=True)
    if lead > 3:
        return plain
    return Layout(True, tuple(shape), cast, _leading_axes(labels, lead, "TZC") + "YX")


def _cast(block: np.ndarray, dtype: np.dtype) -> np.ndarray:
    if block.dtype == bool:
        return block.astype(np.uint8) * np.uint8(255)
    return block.astype(dtype, copy=False)


def _planes(data: Any, layout: Layout, rgb: bool) -> Iterator[np.ndarray]:
    """The stored pages, reading ``data`` one plane (YX, with its colour) at a time."""
    shape = tuple(int(s) for s in data.shape)
    lead = shape[: len(shape) - (3 if rgb else 2)]
    for index in np.ndindex(*lead):
        block = _cast(np.asarray(data[index] if index else data), layout.dtype)
        if layout.channels_first:
            for channel in range(block.shape[-1]):
                yield np.ascontiguousarray(block[..., channel])
        else:
            yield np.ascontiguousarray(block)


def _ascii(text: str) -> str | None:
    text = str(text)
    return text if text.isascii() and text.isprintable() and "=" not in text else None


def _lut(colormap: Mapping[str, Any] | None) -> np.ndarray | None:
    """An ImageJ LUT (uint8, (3, 256)) sampled from a colormap's colours and controls."""
    if not colormap or not colormap.get("colors"):
        return None
    colors = np.asarray(colormap["colors"], dtype=np.float64)[:, :3]
    controls = np.asarray(colormap.get("controls") or np.linspace(0, 1, len(colors)))
    x = np.linspace(0.0, 1.0, 256)
    if colormap.get("interpolation") == "zero" and len(controls) == len(colors) + 1:
        index = np.clip(np.searchsorted(controls, x, side="right") - 1, 0, len(colors) - 1)
        rgb = colors[index]
    elif len(controls) == len(colors):
        rgb = np.stack([np.interp(x, controls, colors[:, i]) for i in range(3)], axis=1)
    else:
        return None
    return np.rint(np.clip(rgb, 0, 1) * 255).astype(np.uint8).T.copy()


def _channel_luts(channels: int) -> list[np.ndarray]:
    luts = []
    for c in range(channels):
        lut = np.zeros((3, 256), np.uint8)
        lut[[c] if c < 3 else [0, 1, 2]] = np.arange(256, dtype=np.uint8)
        luts.append(lut)
    return luts


def imagej_calibration(description: Mapping[str, Any], layout: Layout
                       ) -> tuple[dict[str, Any], tuple[float, float] | None]:
    """ImageJ metadata entries (unit, spacing, finterval, origins, LUTs) and the resolution.

    Parameters
    ----------
    description : mapping
        :func:`layer_description` of the layer.
    layout : Layout
        From :func:`plan_layout` (an ImageJ one).

    Returns
    -------
    metadata : dict
        For tifffile's ``metadata=`` (``axes`` included, ``Info`` not).
    resolution : (float, float) or None
        X and Y pixels per ``unit`` (1 / pixel size).
    """
    scale = list(description.get("scale") or [])
    units = list(description.get("units") or [])
    translate = list(description.get("translate") or [])
    spatial = layout.axes.replace("S", "")  # the layer's axes, in order
    if layout.channels_first:
        spatial = spatial.replace("C", "")
    meta: dict[str, Any] = {"axes": layout.axes}
    if layout.channels_first:
        meta["mode"] = "composite"
        meta["LUTs"] = _channel_luts(layout.shape[layout.axes.index("C")])
    elif "C" not in layout.axes and not layout.rgb:
        lut = _lut(description.get("colormap"))
        if lut is not None:
            meta["LUTs"] = [lut]
    if len(scale) != len(spatial):
        return meta, None
    unit = dict(zip(spatial, units)) if len(units) == len(spatial) else {}
    step = dict(zip(spatial, scale))
    x_unit = unit.get("X", "")
    ij_x = _IMAGEJ_UNITS.get(x_unit) or (_ascii(x_unit) if x_unit not in ("", "pixel") else None)
    if ij_x:
        meta["unit"] = ij_x
    y_unit = unit.get("Y", "")
    if y_unit != x_unit:
        ij_y = _IMAGEJ_UNITS.get(y_unit) or _ascii(y_unit)
        if ij_y:
            meta["yunit"] = ij_y
    if "Z" in step and math.isfinite(step["Z"]) and step["Z"]:
        meta["spacing"] = abs(step["Z"]) * (length_ratio(unit.get("Z", ""), x_unit) or 1.0)
    if "T" in step and unit.get("T") in _SECONDS and math.isfinite(step["T"]) and step["T"]:
        meta["finterval"] = abs(step["T"]) * _SECONDS[unit["T"]]
    if len(translate) == len(spatial):
        for axis, shift in zip(spatial, translate):
            if axis in "XYZ" and shift and step[axis]:
                meta[f"{axis.lower()}origin"] = -float(shift) / float(step[axis])
    size = _pixel_size(scale)
    return meta, (None if size is None else (1.0 / size[0], 1.0 / size[1]))


def _check_output(out: Path, what: str) -> None:
    """Before any work: ``out`` is not a folder and its folder is one or can be made."""
    try:
        check_output_folder(out.parent, "the folder")
    except ValueError as exc:
        raise NotADirectoryError(f"cannot write {what} to {out}: {exc}") from None
    if out.is_dir():
        raise IsADirectoryError(f"cannot write {what} to {out}: it is a folder")


def _check_data(out: Path, what: str, shape: tuple[int, ...], dtype: np.dtype) -> None:
    """The data are an image a TIFF holds: numbers, 2-D or more, not empty."""
    where = f"cannot write {what} to {out}"
    if dtype.kind not in TIFF_KINDS:
        raise TiffWriteError(f"{where}: its data type {dtype} is not numbers (a TIFF holds "
                              "bool, integers, floats and complex numbers)")
    if len(shape) < 2:
        raise TiffWriteError(f"{where}: an image needs at least 2 dimensions (Y, X), "
                              f"got shape {shape}")
    if math.prod(shape) == 0:
        raise TiffWriteError(f"{where}: it has no data (shape {shape})")


def write_calibrated_tiff(
    path: PathLike, data: Any, description: Mapping[str, Any], *, rgb: bool = False,
    what: str | None = None, imagej: bool = True,
) -> Path:
    """Write an image to an ImageJ-compatible TIFF with its calibration and provenance.

    Parameters
    ----------
    path
        Output file (written as given, atomically: no partial file, an
        existing one replaced only once the new one is complete).
    data : array-like
        Numpy, Dask or any array with ``shape``, ``dtype`` and indexing; read
        one plane (YX, with its colour) at a time.
    description : mapping
        :func:`layer_description`'s dict: ``name``, ``scale``, ``translate``,
        ``units``, ``axis_labels``, ``colormap`` and ``metadata`` (the
        provenance), each optional.
    rgb : bool
        The last axis (3 or 4) is colour.
    what : str, optional
        How messages name the data (default: ``the image``).
    imagej : bool
        False writes a plain TIFF whatever the dtype (for data whose axes
        ImageJ cannot name, e.g. bands last).

    Returns
    -------
    pathlib.Path
        ``path``.

    Raises
    ------
    TiffWriteError
        Before anything is written: empty data, fewer than 2 dimensions, a
        dtype that is not numbers, RGB data whose last axis is not 3 or 4, or
        a calibration that is not finite, absurd (:func:`calibration_problems`)
        or that a TIFF resolution cannot hold.
    NotADirectoryError, IsADirectoryError
        The output's folder is a file (or under one), or the output is a folder.
    OSError
        The file cannot be written ("cannot write PATH: no space left on device").
    """
    import tifffile

    from .. import __version__

    out = Path(path)
    what = what or "the image"
    _check_output(out, what)
    if not (hasattr(data, "shape") and hasattr(data, "dtype") and hasattr(data, "__getitem__")):
        data = np.asarray(data)
    shape, dtype = tuple(int(s) for s in data.shape), np.dtype(data.dtype)
    _check_data(out, what, shape, dtype)
    rgb = bool(rgb) and len(shape) >= 3
    if rgb and shape[-1] not in (3, 4):
        raise TiffWriteError(f"cannot write {what} to {out}: RGB data must end in 3 "
                             f"or 4 channels, got shape {shape}")
    description = dict(description)
    problems = calibration_problems(description)
    if problems:
        raise TiffWriteError(f"cannot write {what} to {out}: its "
                             + "; its ".join(problems.values()))
    description.pop("rgb", None)
    if rgb:
        description["rgb"] = True
    layout = plan_layout(shape, dtype, rgb, description.get("axis_labels"))
    if not imagej and layout.imagej:
        layout = Layout(False, shape, np.dtype(np.uint8) if dtype.kind == "b" else dtype, rgb=rgb)
    stored = {**description, "dtype": dtype.name, VERSION_KEY: __version__}
    options: dict[str, Any] = {"shape": layout.shape, "dtype": layout.dtype}
    scale = description.get("scale", [])
    if layout.imagej:
        ij_meta, resolution = imagej_calibration(description, layout)
        unit, resolution_unit = ij_meta.get("unit", "unit"), None
        options.update(imagej=True, metadata={**ij_meta, "Info": json.dumps(stored)})
        if layout.axes.endswith("S"):
            options["photometric"] = "rgb"
    else:
        options.update(
            photometric="rgb" if rgb else "minisblack",
            extrasamples=("unassalpha",) if rgb and shape[-1] == 4 else None,
            description=_description(stored, layout.shape),
            metadata=None,
        )
        resolution, resolution_unit = _resolution(scale, description.get("units", []))
        unit = {2: "inch", 3: "cm"}.get(resolution_unit, "unit")
    _check_resolution(resolution, scale, unit, what, out)
    if resolution is not None:
        options["resolution"] = resolution
    if resolution_unit is not None:
        options["resolutionunit"] = resolution_unit
    pixels: Any = _planes(data, layout, rgb)
    if layout.dtype.isnative:  # tifffile swaps the bytes of the others itself
        pixels = (piece for plane in pixels for piece in _pieces(plane))
    with atomic_write(out, make_folder=True) as fh:  # no partial file, an old one kept
        tifffile.imwrite(fh, pixels, **options)
    return out


def _json_object(text: Any) -> dict[str, Any] | None:
    try:
        value = json.loads(text)
    except (TypeError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def provenance(tif: Any) -> dict[str, Any]:
    """The JSON of an open TIFF: ImageJ's ``Info`` entry, else the ImageDescription
    without tifffile's ``"shape"`` entry; empty when there is none (or no page)."""
    if not len(tif.pages):
        return {}
    info = (tif.imagej_metadata or {}).get("Info")
    found = _json_object(info) if isinstance(info, str) else None
    if found is None:
        found = _json_object(tif.pages[0].description) or {}
        found.pop("shape", None)
    return found


def is_layer_description(description: Mapping[str, Any]) -> bool:
    """The JSON is the one writer's: a ``metadata`` object and only layer keys."""
    return isinstance(description.get("metadata"), dict) and set(description) <= LAYER_KEYS


def provenance_of(description: Mapping[str, Any]) -> dict[str, Any]:
    """The provenance in a file's JSON: the writer's ``metadata``, else the whole object."""
    if is_layer_description(description):
        return dict(description["metadata"])
    return dict(description)


def written_shape(tif: Any, series: Any) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype of an open TIFF's first series as :func:`restore_written` gives it."""
    shape, dtype = tuple(int(s) for s in series.shape), np.dtype(series.dtype)
    description = provenance(tif)
    if not is_layer_description(description):
        return shape, dtype
    axes = str(series.axes)
    if _channels_moved(description, axes, len(shape)):
        channel = axes.index("C")
        shape = (*shape[:channel], *shape[channel + 1:], shape[channel])
    wanted = description.get("dtype")
    if isinstance(wanted, str) and wanted in IMAGEJ_CASTS and dtype == IMAGEJ_CASTS[wanted]:
        dtype = np.dtype(wanted)
    return shape, dtype


def restore_written(tif: Any, series: Any) -> Any:
    """``pixels -> pixels``: the image of an open TIFF the one writer wrote, as written
    (:func:`restore_layer_data`); any other file's as they are."""
    description = provenance(tif)
    if not is_layer_description(description):
        return lambda data: data
    axes = str(series.axes)
    return lambda data: restore_layer_data(data, description, axes)


def _channels_moved(description: Mapping[str, Any], axes: str, ndim: int) -> bool:
    """The stored C axis is an RGB(A) image's colour, moved back to last on reading."""
    return bool(description.get("rgb")) and "C" in axes and "S" not in axes and ndim == len(axes)


def restore_layer_data(data: Any, description: Mapping[str, Any], axes: str = "") -> Any:
    """Stored pixels -> the layer's: colour axis back to last, exact casts undone.

    Parameters
    ----------
    data : array-like
        As read from the file (tifffile's first series).
    description : mapping
        The file's provenance (:func:`read_description`).
    axes : str
        The series' axes (tifffile), e.g. ``"ZCYX"`` for a composite.

    Returns
    -------
    array-like
        An RGB(A) composite with its channels last; bool, int8 and float16
        layers (stored as uint8 0/255, int16, float32) in their own dtype.
    """
    if _channels_moved(description, axes, data.ndim):
        data = np.moveaxis(data, axes.index("C"), -1)
    wanted = description.get("dtype")  # none stored (or not a dtype's name): as stored
    if isinstance(wanted, str) and wanted in IMAGEJ_CASTS and data.dtype == IMAGEJ_CASTS[wanted]:
        return data.astype(wanted)  # bool: uint8 0/255 -> False/True
    return data


#: ImageJ's and TIFF's length units -> the names napari (pint) knows.
_NAPARI_UNITS = {
    "micron": "micrometer", "microns": "micrometer", "um": "micrometer", "µm": "micrometer",
    "\u03bcm": "micrometer", "micrometer": "micrometer", "nm": "nanometer",
    "nanometer": "nanometer", "mm": "millimeter", "millimeter": "millimeter",
    "cm": "centimeter", "centimeter": "centimeter", "m": "meter", "meter": "meter",
    "inch": "inch", "in": "inch",
}


@dataclass(frozen=True)
class Calibration:
    """The pixel size of an image: ``scale`` (Y, X) in ``units`` (Y, X), napari's spelling."""

    scale: tuple[float, float]
    units: tuple[str, str]

    def description(self, ndim: int = 2) -> dict[str, Any]:
        """``scale`` and ``units`` entries for ``ndim`` axes (leading ones: 1 pixel)."""
        lead = ndim - 2
        return {"scale": [1.0] * lead + [float(s) for s in self.scale],
                "units": ["pixel"] * lead + list(self.units)}


def length_ratio(unit: str, target: str) -> float | None:
    """How many ``target`` one ``unit`` is (1.0 for one unit), or None where either is
    not a length unit this module knows."""
    if unit == target:
        return 1.0
    if unit in _CENTIMETRES and target in _CENTIMETRES:
        return _CENTIMETRES[unit] / _CENTIMETRES[target]
    return None


def _calibration(scale: list[Any], units: list[Any]) -> Calibration | None:
    size = _pixel_size([float(v) for v in scale]) if all(_is_number(v) for v in scale) else None
    if size is None or calibration_problems({"scale": [size[1], size[0]]}):
        return None
    names = [str(u) for u in units[-2:]] if len(units) >= 2 else ["pixel", "pixel"]
    if any(u in ("", "pixel") for u in names) and size == (1.0, 1.0):
        return None
    return Calibration((size[1], size[0]), (names[0], names[1]))


def calibration_of(tif: Any) -> Calibration | None:
    """The pixel size an open ``tifffile.TiffFile`` states, or None (see
    :func:`napari_gifnet.io.images.tiff_calibration`)."""
    if not len(tif.pages):
        return None
    stored = provenance(tif)
    if isinstance(stored.get("scale"), list):
        units = stored.get("units")
        return _calibration(stored["scale"], units if isinstance(units, list) else [])
    tags = tif.pages[0].tags
    if "XResolution" not in tags or "YResolution" not in tags:
        return None
    xres, yres = (tags[k].value for k in ("XResolution", "YResolution"))
    res_x, res_y = (n / d if d else 0.0 for n, d in (xres, yres))
    if not (res_x > 0 and res_y > 0):
        return None
    imagej = tif.imagej_metadata or {}
    unit = str(imagej.get("unit", "")).strip()
    if unit and unit.lower() not in ("pixel", "pixels"):
        napari_unit = _NAPARI_UNITS.get(unit, _NAPARI_UNITS.get(unit.lower()))
        if napari_unit is None:
            return None
        yunit = str(imagej.get("yunit", unit)).strip()
        napari_y = _NAPARI_UNITS.get(yunit, _NAPARI_UNITS.get(yunit.lower(), napari_unit))
        return _calibration([1 / res_y, 1 / res_x], [napari_y, napari_unit])
    if int(tags["ResolutionUnit"].value if "ResolutionUnit" in tags else 2) == 3:
        return _calibration([1e4 / res_y, 1e4 / res_x], ["micrometer", "micrometer"])
    return None


#: The most bytes of pixels handed to a TIFF file in one write.
_PIECE_BYTES = 16 * 1024 * 1024


def _pieces(data: np.ndarray) -> Iterator[np.ndarray]:
    """The pixels of ``data`` in C order, as flat pieces of at most :data:`_PIECE_BYTES`.

    tifffile writes each piece through the file's ``write()`` (atomic_write's
    file has no descriptor), copying one piece at a time, never the whole array
    (a C-contiguous ``data`` is not copied at all).
    """
    flat = np.ascontiguousarray(data).reshape(-1)
    step = max(1, _PIECE_BYTES // max(1, flat.itemsize))
    for start in range(0, flat.size, step):
        yield flat[start : start + step]


def _description(metadata: Mapping[str, Any], shape: tuple[int, ...]) -> str:
    # tifffile parses any JSON description holding '"shape":' as its own "shaped"
    # metadata, whose top-level "shape" must be the array's: so it comes first.
    if "shape" in metadata:
        raise ValueError("the metadata key 'shape' is reserved (tifffile stores the shape there)")
    return json.dumps({"shape": list(shape), **metadata}, default=json_safe)
