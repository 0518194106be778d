"""Reading input images and writing fused images and feature maps.

Formats are chosen by file extension (case-insensitive): ``.png``, ``.jpg``
and ``.jpeg`` through :mod:`imageio.v3` (Pillow), ``.tif`` and ``.tiff``
through :mod:`tifffile` and :mod:`napari_gifnet.io.imagej_tiff`; what each
holds: :mod:`napari_gifnet.io.formats`. No torch import happens here, so the
command line stays quick to start.
"""

from __future__ import annotations

import logging
import sys
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from ..util.safe_files import atomic_write, check_output_folder
from .formats import (
    READ_EXTENSIONS,
    TIFF_EXTENSIONS,
    PathLike,
    UnreadableFileError,
    _extension,
    check_fits_memory,
    check_tiff,
    check_writable,
)
from .imagej_tiff import (
    Calibration,
    calibration_of,
    json_safe,
    provenance,
    provenance_of,
    restore_written,
    write_calibrated_tiff,
    written_shape,
)

#: JPEG quality used by :func:`write_image`.
JPEG_QUALITY = 95


def _warn_if_png_truncated(path: Path) -> None:
    # Pillow decodes 16-bit colour PNGs (RGB, RGBA, grey+alpha) to 8 bits.
    with open(path, "rb") as fh:
        head = fh.read(26)
    if head[:8] == b"\x89PNG\r\n\x1a\n" and head[24] == 16 and head[25] in (2, 4, 6):
        message = f"{path} is a 16-bit colour PNG, read with 8 bits per channel (Pillow)"
        warnings.warn(message + "; save it as TIFF to keep 16 bits", UserWarning, stacklevel=3)


def read_image(path: PathLike, *, as_stored: bool = False) -> np.ndarray:
    """Read an image file as stored.

    Parameters
    ----------
    path
        A ``.png``, ``.jpg``/``.jpeg`` or ``.tif``/``.tiff`` file.
    as_stored
        TIFF: the first series as stored, also for a file this project wrote.

    Returns
    -------
    numpy.ndarray
        PNG/JPEG: uint8 (or uint16 for 16-bit grey PNG), shape (H, W),
        (H, W, 3) or (H, W, 4); palette images are expanded to RGB(A).
        TIFF: the first series, any dtype and shape (a multi-page file gives
        a stack), as stored, or for a file this project wrote as written
        (an RGB composite with its colour last, bool, int8 and float16 in
        their own dtype); :func:`napari_gifnet.engine.fusion.fuse` validates it.

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    ValueError
        If the extension is unsupported, the path is not a file, or the file
        cannot be decoded: holds no image, is incomplete (e.g. truncated) or
        declares more pixels than the memory holds (checked from the header,
        before any allocation).
    """
    p, ext = _readable(path)
    image_info(p)  # what cannot be read safely is refused from the headers
    with _decoding(p, ext):
        if ext in TIFF_EXTENSIONS:
            import tifffile

            with open_tiff(p) as (tif, series):
                restore = restore_written(tif, series)
            data = np.asarray(tifffile.imread(p))
            return data if as_stored else restore(data)
        import imageio.v3 as iio

        if ext == ".png":
            _warn_if_png_truncated(p)
        return np.asarray(iio.imread(p, plugin="pillow"))


@contextmanager
def open_tiff(path: PathLike, *, check: bool = True) -> Iterator[tuple[Any, Any]]:
    """Open a TIFF checked from its headers: ``(tifffile.TiffFile, first series)``.

    The checks are :func:`napari_gifnet.io.formats.check_tiff`'s (an image,
    all of its pages, data inside the file); nothing is read beyond the
    headers. The file is closed when the block ends.

    ``check=False`` opens any TIFF, however damaged, to peek at its headers
    (the series is None): tifffile's log lines are dropped, and a failure in
    the block reads as the file's ("cannot read P: not a valid TIFF file").

    Raises
    ------
    FileNotFoundError
        If nothing is at ``path``.
    ValueError
        Not a ``.tif``/``.tiff`` file, not a TIFF, no image, or incomplete;
        the message names the file.
    """
    if not check:
        import tifffile

        p, ext = _readable(path, TIFF_EXTENSIONS)
        with _decoding(p, ext, warn=False), tifffile.TiffFile(p) as tif:
            yield tif, None
        return
    tif, series = open_checked_tiff(path)
    with tif:
        yield tif, series


def open_checked_tiff(path: PathLike) -> tuple[Any, Any]:
    """:func:`open_tiff` for a file kept open: the caller closes the ``TiffFile``."""
    import tifffile

    p, ext = _readable(path, TIFF_EXTENSIONS)
    with _decoding(p, ext):  # tifffile's log lines become warnings once the file passes
        tif = tifffile.TiffFile(p)
        try:
            return tif, check_tiff(p, tif)
        except BaseException:
            tif.close()
            raise


def _readable(
    path: PathLike, allowed: tuple[str, ...] = READ_EXTENSIONS, action: str = "read"
) -> tuple[Path, str]:
    """``(path, extension)`` of an existing file with an ``allowed`` extension: else
    FileNotFoundError if nothing is at ``path``, ValueError for another extension
    (the message says "cannot ``action``") or a path that is not a file."""
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"image file not found: {p}")
    ext = _extension(p, allowed, action)
    if not p.is_file():
        raise ValueError(f"cannot read {p}: not a file")
    return p, ext


@contextmanager
def _quiet_logger(name: str) -> Iterator[logging.handlers.BufferingHandler]:
    """Collect the warnings of logger ``name`` in the block (the handler's ``buffer``)
    instead of printing them."""
    import logging.handlers  # not at import: it loads socket, queue, ...

    logger = logging.getLogger(name)
    collect, propagate = logging.handlers.BufferingHandler(sys.maxsize), logger.propagate
    collect.setLevel(logging.WARNING)
    logger.addHandler(collect)
    logger.propagate = False
    try:
        yield collect
    finally:
        logger.removeHandler(collect)
        logger.propagate = propagate


def _bomb(exc: BaseException) -> BaseException | None:
    """Pillow's DecompressionBombError in the chain of ``exc``, if any."""
    current: BaseException | None = exc
    for _ in range(8):
        if current is None:
            return None
        if type(current).__name__ == "DecompressionBombError":
            return current
        current = current.__cause__ or current.__context__
    return None


@contextmanager
def _decoding(p: Path, ext: str, warn: bool = True) -> Iterator[None]:
    """Report any failure of the decoder in the block as one ValueError.

    The message reads ``cannot read P: not a valid TIFF file (<reason>)``
    (PNG, JPEG after the extension); a MemoryError is passed on as it is.
    tifffile's log lines are held back: after a failure they are dropped
    (the error says what is wrong), after a success each becomes a warning
    naming the file (``warn``; else they are dropped too).
    """
    with _quiet_logger("tifffile") as log:
        try:
            yield
        except (MemoryError, UnreadableFileError):
            raise
        except Exception as exc:  # noqa: BLE001 - every decoder failure reads the same
            kind = "TIFF" if ext in TIFF_EXTENSIONS else ext[1:].upper().replace("JPG", "JPEG")
            bomb = _bomb(exc)
            if bomb is not None:
                raise ValueError(
                    f"cannot read {p}: the {kind} declares too many pixels for a safe read, "
                    f"a possible decompression bomb ({bomb}); if the file is genuine, "
                    "convert it to TIFF"
                ) from exc
            raise ValueError(f"cannot read {p}: not a valid {kind} file ({exc})") from exc
    for record in log.buffer if warn else ():
        warnings.warn(f"{p}: {record.getMessage()}", UserWarning, stacklevel=3)


def _pillow_info(p: Path) -> tuple[tuple[int, ...], np.dtype]:
    from PIL import Image

    with Image.open(p) as im:
        mode = im.palette.mode if im.mode == "P" and im.palette is not None else im.mode
        if im.format == "PNG" and mode == "I":  # read as uint16 (imageio's pillow plugin)
            mode = "I;16"
        shape: tuple[int, ...] = (im.height, im.width)
        frames = int(getattr(im, "n_frames", 1))
        if getattr(im, "custom_mimetype", None) == "image/apng":
            shape = (frames, *shape)  # imageio reads every frame of an animated PNG
    dummy = np.asarray(Image.new(mode, (1, 1)))  # how numpy sees this mode
    return (*shape, *dummy.shape[2:]), dummy.dtype


def image_info(path: PathLike) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype that :func:`read_image` would return, from the header only.

    Returns ``(shape, dtype)``: for TIFF those of the first series
    (tifffile); for PNG and JPEG from the Pillow mode and size (palette
    images as their palette's mode, 16-bit grey PNG as uint16). No pixels
    are decoded. Raises as :func:`read_image` does (a header that cannot be
    parsed, a TIFF without its pages or data, or an image larger than the
    memory available: ValueError).
    """
    p, ext = _readable(path)
    if ext in TIFF_EXTENSIONS:
        with open_tiff(p) as (tif, series):
            shape, dtype = written_shape(tif, series)
    else:
        with _decoding(p, ext):
            shape, dtype = _pillow_info(p)
    check_fits_memory(p, shape, dtype)
    return shape, dtype


def _to_integer(image: np.ndarray, bits: int, path: Path) -> np.ndarray:
    """Data that :func:`check_writable` accepts -> uint8/uint16.

    Floats in [0, 1] are clipped, scaled and rounded to nearest; bool becomes
    0 / top value; the unsigned type of ``bits`` stays as it is.
    """
    dtype = np.dtype(np.uint8 if bits == 8 else np.uint16)
    if image.dtype == dtype:
        return image
    top = np.iinfo(dtype).max
    if image.dtype.kind == "b":
        return image.astype(dtype) * dtype.type(top)
    if not np.all(np.isfinite(image)):
        raise ValueError(f"cannot write {path}: the image contains NaN or infinite values")
    return np.rint(np.clip(image, 0.0, 1.0) * float(top)).astype(dtype)


def _tiff_description(
    metadata: Mapping[str, Any] | None, calibration: Calibration | None, ndim: int,
    axis_labels: list[str] | None = None,
) -> dict[str, Any]:
    """The writer's JSON for a command's output: ``metadata`` as the provenance, the
    pixel size of ``calibration`` for ``ndim`` axes (the last two Y, X)."""
    out: dict[str, Any] = {}
    if calibration is not None:
        out.update(calibration.description(ndim))
    if axis_labels is not None:
        out["axis_labels"] = list(axis_labels)
    out["metadata"] = json_safe(dict(metadata or {}))
    return out


def write_image(
    path: PathLike,
    image: np.ndarray,
    metadata: Mapping[str, Any] | None = None,
    *,
    bit_depth: int | None = 8,
    calibration: Calibration | None = None,
) -> Path:
    """Write an image; the format follows the extension.

    Parameters
    ----------
    path
        Output file. ``.tif``/``.tiff``: the array is written unchanged (a
        float32 fusion stays float32) by
        :func:`napari_gifnet.io.imagej_tiff.write_calibrated_tiff`: an ImageJ
        image (8-bit RGB as ImageJ RGB, other colour data as a composite of 3
        or 4 channels, bool as 0/255) with ``calibration`` and ``metadata``.
        ``.png``: 8-bit, or 16-bit (grey only: Pillow cannot write 16-bit
        colour PNG). ``.jpg``/``.jpeg``: 8-bit, quality :data:`JPEG_QUALITY`,
        grey or RGB. For PNG and JPEG, float data are clipped to [0, 1],
        scaled by 255 (or 65535) and rounded to nearest (``numpy.rint``:
        halves to even), bool data become 0 and the top value, and
        ``metadata`` and ``calibration`` are dropped; the rules are
        :func:`check_writable`'s.
    image
        (H, W), (H, W, 3) or (H, W, 4) array; never modified.
    metadata
        JSON-serialisable mapping (numpy scalars and other objects are
        converted); TIFF only, read back by :func:`read_tiff_metadata`.
    bit_depth
        8 or 16 (PNG only), or None: 16 for grey PNG of uint16 or float data,
        else 8.
    calibration
        The pixel size (TIFF only), e.g. an input's
        (:func:`tiff_calibration`); None writes none.

    Returns
    -------
    pathlib.Path
        ``path``.

    Raises
    ------
    ValueError
        Unsupported extension, shape, dtype or bit depth (see
        :func:`check_writable`), or NaN values (PNG, JPEG).
    OSError
        If the file cannot be written ("cannot write PATH: no space left on
        device" for a full disk). The file is written atomically
        (:func:`napari_gifnet.util.safe_files.atomic_write`): a failed or
        interrupted write leaves no partial file and an existing one intact.
    """
    p = Path(path)
    arr = np.asarray(image)
    bits = check_writable(p, arr.dtype, arr.shape, bit_depth=bit_depth)
    ext = p.suffix.lower()
    if ext in TIFF_EXTENSIONS:
        rgb = arr.ndim == 3 and arr.shape[-1] in (3, 4)
        description = _tiff_description(metadata, calibration, 2)
        return write_calibrated_tiff(p, arr, description, rgb=rgb)
    import imageio.v3 as iio

    data = _to_integer(arr, bits, p)
    options: dict[str, Any] = {"quality": JPEG_QUALITY} if ext != ".png" else {}
    with atomic_write(p) as fh:  # our own file object: a failed write raises here
        iio.imwrite(fh, data, plugin="pillow", extension=ext, **options)
    return p


def write_tiff(
    path: PathLike, data: np.ndarray, metadata: Mapping[str, Any] | None = None, *,
    calibration: Calibration | None = None, axis_labels: list[str] | None = None,
    imagej: bool = True,
) -> Path:
    """Write an array of any shape and dtype to a grey TIFF, atomically.

    For multiband or stacked results (e.g. pansharpened bands), which
    :func:`write_image` does not take; written as :func:`write_image` writes
    a TIFF, its leading axes named by ``axis_labels`` (e.g. ``["band", "y",
    "x"]`` for ImageJ's channels; see
    :func:`napari_gifnet.io.imagej_tiff.plan_layout`). ``imagej=False``
    writes a plain TIFF (for axes ImageJ cannot name, such as bands last);
    its ``calibration`` then applies to the last two axes, so give none
    unless they are Y, X.

    Raises
    ------
    ValueError
        If ``path`` is not a ``.tif``/``.tiff`` file.
    OSError
        If the file cannot be written (no partial file is left).
    """
    p = Path(path)
    _extension(p, TIFF_EXTENSIONS, "write")
    arr = np.asarray(data)
    description = _tiff_description(metadata, calibration, arr.ndim, axis_labels)
    return write_calibrated_tiff(p, arr, description, imagej=imagej)


def write_features(
    directory: PathLike,
    features: Mapping[str, np.ndarray],
    metadata: Mapping[str, Any] | None = None,
    *,
    calibration: Calibration | None = None,
) -> list[Path]:
    """Write each feature map as a float32 TIFF stack ``<directory>/<name>.tif``.

    Parameters
    ----------
    directory
        Output folder; created (with parents) if needed.
    features
        Name -> array of shape (C, H, W), e.g. ``FusionResult.features``
        (C = 98). Names must be plain file names.
    metadata
        Provenance stored as JSON in every file, with ``"feature"`` (the name)
        and ``"axes": "CYX"`` added.
    calibration
        The pixel size of the fused image (its Y and X), or None.

    Returns
    -------
    list of pathlib.Path
        The files written, in the order of ``features``: ImageJ channel
        stacks (axes CYX), as :func:`write_tiff` writes them.

    Raises
    ------
    ValueError
        A name that is not a plain file name, an array that is not 3-D, or a
        ``directory`` that is a file (or under one).
    OSError
        If a file cannot be written; each is written atomically.
    """
    folder = check_output_folder(directory, "the features folder")
    for name, arr in features.items():
        if not name or Path(name).name != name or name in (".", ".."):
            raise ValueError(f"feature name {name!r} is not a plain file name")
        if np.ndim(arr) != 3:
            raise ValueError(f"feature {name!r} must be (C, H, W), got shape {np.shape(arr)}")
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, arr in features.items():
        meta = {**(metadata or {}), "feature": name, "axes": "CYX"}
        arr = np.asarray(arr, dtype=np.float32)
        written.append(write_tiff(folder / f"{name}.tif", arr, meta, calibration=calibration,
                                  axis_labels=["channel", "y", "x"]))  # fmt: skip
    return written


def read_tiff_metadata(path: PathLike) -> dict[str, Any]:
    """Return the provenance this project stored in a TIFF.

    For a file of the one TIFF writer, the image's ``metadata`` (without the
    calibration and layer entries, :func:`read_description` has them); for
    any other JSON ImageDescription, that object without tifffile's
    ``"shape"`` entry. Returns an empty dict when the file has no JSON.
    Raises as :func:`open_tiff` (a file that is not a complete TIFF:
    ValueError naming it).
    """
    return provenance_of(read_description(path))


def read_description(path: str | Path, *, check: bool = True) -> dict[str, Any]:
    """The provenance JSON of a TIFF: ImageJ's ``Info`` entry, else the ImageDescription.

    Where :func:`~napari_gifnet.io.imagej_tiff.write_calibrated_tiff` puts it
    in an ImageJ file and in a plain TIFF; empty when the file holds no JSON
    object. Raises ValueError naming the file for one that is not a complete
    TIFF (:func:`open_tiff`); ``check=False`` reads the headers of the first
    page only, as tifffile finds them (for telling this project's files from
    others, however damaged).
    """
    with open_tiff(path, check=check) as (tif, _):
        return provenance(tif)


def tiff_calibration(path: PathLike) -> Calibration | None:
    """The pixel size a TIFF states, or None (not a TIFF, or no pixel size).

    Read, in this order, from this project's provenance (``scale`` and
    ``units``), from ImageJ's ``unit`` (and ``yunit``) with the resolution
    tags, or from resolution tags per centimetre (as micrometres). Resolution
    tags without a unit, or per inch (a print size, e.g. 72 dpi), are no
    pixel size. Nothing but the headers is read; a file that cannot be read
    gives None (its reader reports the problem).
    """
    p = Path(path)
    if p.suffix.lower() not in TIFF_EXTENSIONS or not p.is_file():
        return None
    try:
        with open_tiff(p, check=False) as (tif, _):
            return calibration_of(tif)
    except Exception:  # noqa: BLE001 - no calibration from a file its reader refuses
        return None
