"""napari reader (npe2): the TIFFs napari-gifnet writes open again as they were saved.

A file is this plugin's by its JSON provenance (ImageJ's ``Info`` entry or the
ImageDescription): the one TIFF writer's
(:func:`napari_gifnet.io.imagej_tiff.write_calibrated_tiff`, also the commands'
``-o x.tif``) comes back as saved (:func:`layer_kwargs`), its pixels in their own
shape and dtype; an older command's (a JSON object holding
``"napari_gifnet_version"``) is named after the file, with that JSON as its
``metadata``. Any other file gets ``None``, so napari's other readers take it.
The pixels are read into memory after the file is checked from its headers (one
that holds no image, is incomplete or larger than the memory available is
refused with a ValueError naming it). Layer attributes napari cannot use (not
finite, a refused colormap, the wrong type) are dropped, each with a warning
naming the file; the pixels still open.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..io.imagej_tiff import (
    VERSION_KEY,
    calibration_problems,
    is_layer_description,
    restore_layer_data,
)
from ..io.images import read_description
from .writer import EXTENSIONS, read_series

LayerData = tuple[Any, dict[str, Any], str]


def project_description(path: str | Path) -> dict[str, Any] | None:
    """The provenance of a TIFF napari-gifnet wrote, or None for any other file."""
    p = Path(path)
    if p.suffix.lower() not in EXTENSIONS or not p.is_file():
        return None
    try:
        description = read_description(p, check=False)
    except Exception:  # noqa: BLE001 - not a TIFF this reader can take: let others try
        return None
    # a command's file carries VERSION_KEY; the napari writer's, a layer description
    ours = VERSION_KEY in description or is_layer_description(description)
    return description if ours else None


def _units_known(units: Sequence[str]) -> bool:
    try:
        import pint
    except ImportError:  # napari brings pint; without it, let napari decide
        return True
    registry = pint.get_application_registry()
    try:
        for unit in units:
            registry.parse_expression(unit)
    except Exception:  # noqa: BLE001 - pint raises several kinds for a bad name
        return False
    return True


def _colormap(value: Any) -> Any:
    """A napari colormap from the stored one: its name if napari's matches, else a Colormap."""
    if not isinstance(value, Mapping) or not value.get("name"):
        return None
    from napari.utils.colormaps import AVAILABLE_COLORMAPS, Colormap

    name = str(value["name"])
    known = AVAILABLE_COLORMAPS.get(name)
    if "colors" not in value:
        return name if known is not None else None
    try:
        colors = np.asarray(value["colors"], dtype=np.float64)
        same = known is not None and known.colors.shape == colors.shape
        if same and np.allclose(known.colors, colors, atol=1e-5):
            return name
        return Colormap(colors=colors, controls=value.get("controls"), name=name,
                        interpolation=value.get("interpolation", "linear"))  # fmt: skip
    except Exception:  # noqa: BLE001 - a colormap napari refuses: its default instead
        return None


def _strings(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def _drop(path: str | Path, what: str) -> None:
    warnings.warn(f"{path}: {what}; left out", UserWarning, stacklevel=4)


def layer_kwargs(
    description: Mapping[str, Any], data: Any, path: str | Path, rgb: bool
) -> dict[str, Any]:
    """napari ``add_image`` keywords from a file's provenance.

    Parameters
    ----------
    description : mapping
        The file's JSON provenance.
    data : array-like
        The pixels as the layer will hold them (after :func:`restore_layer_data`).
    path : path-like
        The file (its stem names a command's output).
    rgb : bool
        The pixels are RGB(A) (last axis colour).

    Returns
    -------
    dict
        ``name``, ``metadata`` and, for the writer's files, ``scale``,
        ``translate``, ``units``, ``axis_labels``, ``colormap`` where they
        fit the data (entries of the wrong length are left out), and ``rgb``.
    """
    if not is_layer_description(description):  # a command's output: its JSON is provenance
        return {"name": Path(path).stem, "metadata": dict(description), "rgb": rgb}
    ndim = data.ndim - (1 if rgb else 0)
    name = description.get("name")
    if name is not None and not isinstance(name, str):
        _drop(path, f"its layer name {name!r} is not text")
    out: dict[str, Any] = {
        "name": name if isinstance(name, str) and name else Path(path).stem,
        "metadata": dict(description.get("metadata") or {}),
        "rgb": rgb,
    }
    bad = calibration_problems(description)
    for key in ("scale", "translate"):
        if key in bad:
            _drop(path, f"its {bad[key]}")
    for key in ("scale", "translate", "units", "axis_labels"):
        value = description.get(key)
        if key in bad or not isinstance(value, list) or len(value) != ndim:
            continue
        if key in ("units", "axis_labels") and not _strings(value):
            _drop(path, f"its {key} {value!r} are not text")
            continue
        out[key] = tuple(value)
    if "units" in out and not _units_known(out["units"]):
        _drop(path, f"its units {list(out.pop('units'))} are not units napari knows")
    stored = description.get("colormap")
    if not rgb and stored is not None:
        colormap = _colormap(stored)
        if colormap is None:
            _drop(path, "its colormap is not one napari can use")
        else:
            out["colormap"] = colormap
    return out


def read_layer(path: str | Path) -> LayerData:
    """One file -> ``(data, kwargs, "image")``.

    Raises
    ------
    ValueError
        Naming the file: not a TIFF napari-gifnet wrote, holds no image, is
        incomplete, is larger than the memory available, or cannot be
        decoded (:func:`napari_gifnet.plugin.writer.read_series`).
    """
    description = project_description(path)
    if description is None:
        raise ValueError(f"cannot read {path}: not a TIFF written by napari-gifnet")
    stored, axes, photometric_rgb = read_series(path)
    data = restore_layer_data(stored, description, axes)
    colour = data.ndim >= 3 and data.shape[-1] in (3, 4)
    rgb = bool(description.get("rgb", photometric_rgb)) and colour
    return data, layer_kwargs(description, data, path, rgb), "image"


def read_layers(paths: str | Path | Sequence[str | Path]) -> list[LayerData]:
    """Each file -> one image layer (the reader function napari calls)."""
    if isinstance(paths, (str, Path)):
        paths = [paths]
    return [read_layer(p) for p in paths]


def get_reader(path: str | Sequence[str]) -> Callable[..., list[LayerData]] | None:
    """npe2 reader: :func:`read_layers` for napari-gifnet's TIFFs, None for anything else.

    Parameters
    ----------
    path : str or list of str
        One path, or several (napari's "open as stack"): all must be this
        plugin's files.
    """
    paths = [path] if isinstance(path, (str, Path)) else list(path)
    if not paths or any(project_description(p) is None for p in paths):
        return None
    return read_layers
