"""napari writer: one image layer -> an ImageJ-compatible TIFF with its provenance.

See ``napari.yaml``; :mod:`napari_gifnet.plugin.reader` opens the files again.
The file is written by :func:`napari_gifnet.io.imagej_tiff.write_calibrated_tiff`,
the one TIFF writer of this project, which says what Fiji/ImageJ sees and what is
refused; this module turns a layer into that writer's input.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..io import images as io
from ..io.imagej_tiff import layer_description, restore_layer_data, write_calibrated_tiff
from ..io.images import read_description

__all__ = ["EXTENSIONS", "read_fused_tiff", "read_series", "write_fused_tiff"]

#: Extensions the writer accepts; another suffix gets ``.tif`` appended.
EXTENSIONS = (".tif", ".tiff")


def write_fused_tiff(path: str, data: Any, meta: dict) -> list[str]:
    """Write one image layer to an ImageJ-compatible TIFF with its provenance (npe2 writer).

    Parameters
    ----------
    path : str
        Output file; ``.tif``/``.tiff`` (any other suffix gets ``.tif`` added).
    data : array-like
        The layer data (numpy, Dask or any array with ``shape``, ``dtype``
        and indexing), read one plane at a time; for a multiscale layer (a
        list of arrays) the full-resolution level is written.
    meta : dict
        napari layer attributes (``name``, ``scale``, ``translate``,
        ``units``, ``axis_labels``, ``colormap``, ``metadata``, ``rgb``, ...).

    Returns
    -------
    list of str
        The path written (atomically: no partial file, an existing one kept
        on failure).

    Raises
    ------
    napari_gifnet.io.imagej_tiff.TiffWriteError
        Naming the layer and the value, before anything is written
        (:func:`napari_gifnet.io.imagej_tiff.write_calibrated_tiff`'s refusals).
    NotADirectoryError, IsADirectoryError
        The output's folder is a file (or under one), or the output is a folder.
    OSError
        The file cannot be written (no partial file is left).
    """
    out = Path(path)
    if out.suffix.lower() not in EXTENSIONS:
        out = out.with_name(out.name + ".tif")
    layer = str(meta.get("name") or out.stem)
    if meta.get("multiscale") and not isinstance(data, np.ndarray):
        data = data[0]  # the full-resolution level (a list or napari's MultiScaleData)
    if not (hasattr(data, "shape") and hasattr(data, "dtype") and hasattr(data, "__getitem__")):
        data = np.asarray(data)
    rgb = bool(meta.get("rgb")) and len(data.shape) >= 3
    description = layer_description({**meta, "rgb": rgb})
    write_calibrated_tiff(out, data, description, rgb=rgb, what=f"layer {layer!r}")
    return [str(out)]


def read_fused_tiff(path: str | Path) -> tuple[np.ndarray, dict[str, Any]]:
    """Read back a file written by :func:`write_fused_tiff`.

    Returns
    -------
    data : numpy.ndarray
        The layer's pixels: shape and dtype as written (see
        :func:`~napari_gifnet.io.imagej_tiff.restore_layer_data`).
    description : dict
        The provenance as written: ``name``, ``scale``, ``translate``,
        ``units``, ``axis_labels``, ``rgb``, ``colormap``, ``metadata``,
        ``dtype`` and ``napari_gifnet_version`` (empty when the file has no
        JSON provenance).
    """
    description = read_description(path)
    data, axes, _ = read_series(path)
    return restore_layer_data(data, description, axes), description


def read_series(path: str | Path) -> tuple[np.ndarray, str, bool]:
    """The pixels and axes of a TIFF's first series, checked before they are read.

    The third value says the first page is stored as RGB (photometric).

    Raises
    ------
    ValueError
        Naming the file, as :func:`napari_gifnet.io.images.read_image`: not a
        complete TIFF, larger than the memory available, or data that cannot
        be decoded.
    """
    import tifffile

    with io.open_tiff(path) as (tif, series):
        axes = str(series.axes)
        photometric_rgb = tif.pages[0].photometric == tifffile.PHOTOMETRIC.RGB
    return io.read_image(path, as_stored=True), axes, photometric_rgb
