"""``napari-gifnet register``: move the second image (or volume) onto the first's grid.

By mutual information (:func:`napari_gifnet.workflows.registration.register`),
from landmarks (:func:`napari_gifnet.workflows.landmarks.register_landmarks`),
or with a transform saved before (``--apply``), each input's spacing from its
TIFF calibration (the epilog); ``fuse --register`` shares :func:`pair_spacing`.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

from .common import REPLACES, Subcommand, UsageError, check_files, check_output

#: What ``--transform`` estimates (numbers: napari_gifnet.workflows.registration.TRANSFORMS).
TRANSFORMS = ("rigid", "similarity", "affine")

#: The options that give each input's spacing.
SPACING_OPTIONS = ("--fixed-spacing", "--moving-spacing")

_EPILOG = """\
spacing:
  each input's pixel spacing is read from its TIFF calibration (Y, X from the
  resolution and unit, Z of a volume from ImageJ's spacing: 1 unit, with a
  warning, where none is stated), or given with --fixed-spacing /
  --moving-spacing (one number for every axis, or Y,X or Z,Y,X in numpy
  order, in the unit of the other input's calibration); uncalibrated inputs
  are registered in pixels
  --apply: a transform file records the unit of its coordinates and is
  converted to the pair's; a transform in pixels on a calibrated pair, or in
  a length unit on a pair without pixel sizes, needs both --fixed-spacing and
  --moving-spacing, in the transform's unit
landmarks:
  a CSV file per input, one point per row in the same order, in pixel
  coordinates of its image: napari's Points export (columns axis-0, axis-1[,
  axis-2]), columns named y, x (and z), or (z,) y, x without a header
examples:
  napari-gifnet register mri.tif ct.tif -o ct_on_mri.tif --save-transform t.json
  napari-gifnet register --apply t.json mri2.tif ct2.tif -o ct2_on_mri2.tif
  napari-gifnet register a.tif b.tif -o b_on_a.tif --landmarks a.csv b.csv
"""


def _spacing_values(text: str) -> tuple[float, ...]:
    """argparse type of ``--fixed-spacing`` / ``--moving-spacing``: ``S`` or ``S,S[,S]``."""
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        values = ()
    if not values or len(values) > 3 or not all(0 < v < math.inf for v in values):
        raise argparse.ArgumentTypeError(f"invalid spacing {text!r}: one positive number, or "
                                         "Y,X or Z,Y,X")  # fmt: skip
    return values


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = _EPILOG
    parser.add_argument("fixed", metavar="FIXED",
                        help="the image or (Z, Y, X) volume to register onto")  # fmt: skip
    parser.add_argument("moving", metavar="MOVING", help="the image or volume moved onto FIXED")
    parser.add_argument("-o", "--output", metavar="MOVED", required=True,
                        help="MOVING resampled onto FIXED's grid: a .tif/.tiff in MOVING's dtype, "
                        f"with FIXED's pixel size and the transform as provenance; {REPLACES}")
    parser.add_argument("--transform", choices=TRANSFORMS,
                        help="what is estimated (default rigid): rigid (rotation, shift), "
                        "similarity (also one scale) or affine; by mutual information, so the two "
                        "may differ in contrast (CT and MRI), or from --landmarks")
    parser.add_argument("--landmarks", nargs=2, metavar=("FIXED.csv", "MOVING.csv"), help="fit "
                        "the transform to point pairs instead of the intensities")  # fmt: skip
    parser.add_argument("--apply", metavar="T.json",
                        help="move MOVING with a transform saved by --save-transform (no "
                        "estimation): another pair of the same setup")  # fmt: skip
    parser.add_argument("--save-transform", metavar="T.json", help="also save the transform "
                        f"as JSON (for --apply); {REPLACES}")  # fmt: skip
    for option, which in zip(SPACING_OPTIONS, ("FIXED", "MOVING")):
        parser.add_argument(option, type=_spacing_values, metavar="S", help="the pixel spacing "
                            f"of {which}, replacing its calibration: S, or Y,X / Z,Y,X")
    parser.add_argument("-q", "--quiet", action="store_true", help="print nothing but errors")


def _spacing_text(spacing: Any) -> str:
    return ",".join(f"{float(s):g}" for s in spacing)


def _z_step(path: str, x_unit: str) -> float | None:
    """The Z step of a TIFF volume in ``x_unit``: this project's ``scale`` or ImageJ's
    ``spacing``; None when the file states none."""
    from ..io.imagej_tiff import length_ratio, provenance
    from ..io.images import open_tiff

    try:
        with open_tiff(path, check=False) as (tif, _):
            stored, imagej = provenance(tif), tif.imagej_metadata or {}
    except Exception:  # noqa: BLE001 - its reader reports an unreadable file
        return None
    scale, units = stored.get("scale"), stored.get("units")
    if isinstance(scale, list) and len(scale) >= 3:
        unit = units[-3] if isinstance(units, list) and len(units) >= 3 else x_unit
        return abs(float(scale[-3])) * (length_ratio(str(unit), x_unit) or 1.0)
    spacing = imagej.get("spacing")
    return abs(float(spacing)) if isinstance(spacing, (int, float)) and spacing else None


def _file_spacing(path: str | None, ndim: int, option: str) -> tuple[tuple[float, ...], str] | None:
    """(spacing in numpy order, unit) from a TIFF's calibration, or None.

    A calibrated volume that states no Z step is taken as 1 unit deep (as
    ImageJ does: it omits a Z step of 1), with a warning naming ``option``.
    """
    import warnings

    from ..io.images import tiff_calibration

    calibration = tiff_calibration(path) if path else None
    if calibration is None:
        return None
    unit = calibration.units[1]
    spacing = tuple(float(s) for s in calibration.scale)
    if ndim == 3:
        z = _z_step(str(path), unit)
        if z is None:
            z = 1.0
            yx = _spacing_text(spacing)
            warnings.warn(f"{path} states no Z step: taken as 1 {unit} (ImageJ's default); "
                          f"give {option} Z,{yx} to set it", stacklevel=2)  # fmt: skip
        spacing = (z, *spacing)
    return spacing, unit


def _full(values: tuple[float, ...] | None, ndim: int, option: str) -> tuple[float, ...] | None:
    if values is None or len(values) == ndim:
        return values
    if len(values) == 1:
        return values * ndim
    raise UsageError(f"{option}: {len(values)} numbers for a {ndim}-D input: give 1 or {ndim}")


def pair_spacing(
    paths: tuple[str | None, str | None],
    ndim: int,
    given: tuple[tuple[float, ...] | None, tuple[float, ...] | None] = (None, None),
    fix: str = "give {option} (in {unit})",
) -> tuple[tuple[float, ...], tuple[float, ...], str | None]:
    """The two inputs' spacings in one unit, and that unit (None: pixels).

    A spacing ``given`` on the command line replaces the file's (in the unit of
    the other input's calibration). Two calibrated inputs in different length
    units are converted to the first's unit; one calibrated input and one that
    is not is refused (``UsageError`` naming both, then ``fix``, formatted with
    ``option``, the missing spacing's option, ``missing``, ``fixed``, ``moving``
    and ``unit``).
    """
    from ..io.imagej_tiff import length_ratio

    found = [_file_spacing(p, ndim, o) if g is None else None
             for p, g, o in zip(paths, given, SPACING_OPTIONS)]  # fmt: skip
    fixed, moving = (_full(g, ndim, o) for g, o in zip(given, SPACING_OPTIONS))
    units = [f[1] if f else None for f in found]
    unit = units[0] or units[1]
    if found[0] and found[1]:
        ratio = length_ratio(units[1], units[0])
        if ratio is None:
            raise ValueError(
                f"{paths[1]} has its pixel size in {units[1]} and the other input in {units[0]}: "
                "give both spacings in one unit (--fixed-spacing, --moving-spacing)"
            )
        fixed, moving = found[0][0], tuple(s * ratio for s in found[1][0])
    else:
        fixed = fixed or (found[0][0] if found[0] else None)
        moving = moving or (found[1][0] if found[1] else None)
    for i, value in enumerate((fixed, moving)):
        other = (fixed, moving)[1 - i]
        if value is None and other is not None and unit is not None:
            advice = fix.format(option=SPACING_OPTIONS[i], missing=paths[i], fixed=paths[0],
                                moving=paths[1], unit=unit)  # fmt: skip
            size = " x ".join(f"{s:g}" for s in other)
            raise UsageError(f"{paths[1 - i]} has a pixel size ({size} {unit}) and {paths[i]} "
                             f"none: {advice}")  # fmt: skip
    return fixed or (1.0,) * ndim, moving or (1.0,) * ndim, unit


def read_points(path: str, ndim: int) -> Any:
    """(N, ``ndim``) pixel coordinates in numpy order from a CSV file (see the epilog).

    Raises
    ------
    ValueError
        Naming the file: unreadable, no points, or columns that do not give
        ``ndim`` coordinates.
    """
    import csv

    import numpy as np

    with Path(path).open(newline="", encoding="utf-8", errors="replace") as fh:
        rows = [[c.strip() for c in row] for row in csv.reader(fh)
                if row and not row[0].lstrip().startswith("#")]  # fmt: skip
    if rows and all(len(r) == 1 for r in rows):  # whitespace-separated
        rows = [r[0].split() for r in rows]

    def numbers(row: list[str]) -> bool:
        try:
            [float(c) for c in row]
        except ValueError:
            return False
        return True

    header = [c.lower() for c in rows[0]] if rows and not numbers(rows[0]) else None
    body = rows[1:] if header else rows
    if header is None:
        columns = list(range(ndim))
        if body and len(body[0]) != ndim:
            raise ValueError(f"landmarks {path}: {len(body[0])} columns without a header; give "
                             f"{ndim} ({'z, ' if ndim == 3 else ''}y, x) or a header")  # fmt: skip
    else:
        axes = sorted((c for c in header if c.startswith("axis-")), key=lambda c: int(c[5:]))
        names = axes[-ndim:] if len(axes) >= ndim else ["z", "y", "x"][-ndim:]
        if not set(names) <= set(header):
            raise ValueError(f"landmarks {path}: the header {', '.join(rows[0])} names no "
                             f"{ndim}-D coordinates (axis-0.., or {', '.join(names)})")  # fmt: skip
        columns = [header.index(c) for c in names]
    try:
        points = np.array([[float(row[c]) for c in columns] for row in body], dtype=np.float64)
    except (ValueError, IndexError):
        raise ValueError(f"landmarks {path}: a row is not {ndim} numbers") from None
    if len(points) == 0:
        raise ValueError(f"landmarks {path}: no points")
    return points


def _tiff_output(path: str, option: str = "-o") -> Path:
    output = check_output(path, option=option)
    if output.suffix.lower() not in (".tif", ".tiff"):
        raise UsageError(f"{option} {path}: the moved image is written as a TIFF (.tif, .tiff)")
    return output


def json_output(path: str) -> Path:
    from ..util.safe_files import check_output_file

    if Path(path).suffix.lower() != ".json":
        raise UsageError(f"--save-transform {path}: the transform is saved as .json")
    return check_output_file(path, "--save-transform")


def _in_pair_unit(args: argparse.Namespace, stored: dict[str, Any], transform: Any,
                  spacing: tuple[tuple[float, ...], tuple[float, ...], str | None],
                  ) -> tuple[Any, tuple[float, ...], tuple[float, ...], str | None]:  # fmt: skip
    """The saved transform and the spacings it is applied with, in one unit, and that
    unit (None: pixels).

    The transform's world coordinates are in its stored ``unit`` (pixels where
    none is stored); the pair's are in its calibration's unit, converted
    (:func:`~napari_gifnet.io.imagej_tiff.length_ratio`). A transform in
    pixels on a calibrated pair, or in a length unit on a pair without pixel
    sizes, is refused unless both spacings are given (then in the transform's
    unit); an uncalibrated pair without spacings takes the stored ones.
    """
    import numpy as np

    from ..io.imagej_tiff import length_ratio

    fs, ms, unit = spacing
    saved = stored["unit"]
    pair = f"{args.fixed} and {args.moving}"
    if saved is None and unit is None:
        if args.fixed_spacing is None and args.moving_spacing is None:
            # an uncalibrated pair: the spacings the transform was estimated with
            fs = tuple(stored.get("fixed_spacing") or fs)
            ms = tuple(stored.get("moving_spacing") or ms)
        return transform, fs, ms, None
    if saved is None:
        was = ""
        if stored.get("fixed_spacing") and stored.get("moving_spacing"):
            was = (f" (it was saved with {_spacing_text(stored['fixed_spacing'])} and "
                   f"{_spacing_text(stored['moving_spacing'])})")  # fmt: skip
        raise UsageError(f"{args.apply} is in pixels (saved from inputs without a pixel size) "
                         f"and {pair} are calibrated in {unit}: give --fixed-spacing and "
                         f"--moving-spacing in the transform's pixels{was}")  # fmt: skip
    if unit is None:
        if args.fixed_spacing is None or args.moving_spacing is None:
            raise UsageError(f"{args.apply} is in {saved} and {pair} have no pixel size: give "
                             f"--fixed-spacing and --moving-spacing in {saved}")  # fmt: skip
        return transform, fs, ms, saved
    ratio = length_ratio(saved, unit)
    if ratio is None:
        raise UsageError(f"{args.apply} is in {saved} and {pair} are calibrated in {unit}, which "
                         f"cannot be converted: give --fixed-spacing and --moving-spacing in "
                         f"{saved}")  # fmt: skip
    matrix = np.array(transform.matrix, dtype=np.float64)
    matrix[:-1, -1] *= ratio  # a shift in the pair's unit; the linear part has no unit
    return type(transform)(transform.kind, matrix), fs, ms, unit


def _applied(args: argparse.Namespace, fixed: Any, moving: Any, ndim: int,
             spacing: tuple[tuple[float, ...], tuple[float, ...], str | None],
             ) -> tuple[Any, str | None]:  # fmt: skip
    """The Registration of ``--apply`` (the saved transform, MOVING resampled with it)
    and the unit of its world coordinates (None: pixels).

    The transform is checked (:func:`~napari_gifnet.workflows.registration.check_transform`,
    :func:`~napari_gifnet.workflows.registration.check_overlap`) before MOVING is resampled.
    """
    from ..io.transform_file import load_transform
    from ..workflows import registration as reg

    stored = load_transform(args.apply)
    transform = reg.Transform.from_dict(stored)
    if transform.ndim != ndim:
        raise ValueError(f"{args.apply} holds a {transform.ndim}-D transform; {args.fixed} and "
                         f"{args.moving} are {ndim}-D")  # fmt: skip
    transform, fs, ms, unit = _in_pair_unit(args, stored, transform, spacing)
    names = (str(args.fixed), str(args.moving))
    shape = fixed.shape[:ndim]
    reg.check_transform(transform, names)
    overlap = reg.check_overlap(transform, shape, moving.shape[:ndim], fixed_spacing=fs,
                                moving_spacing=ms, names=names)  # fmt: skip
    moved = reg.apply_registration(transform, moving, shape, fixed_spacing=fs, moving_spacing=ms)
    report = reg.RegistrationReport("transform file", None, None, 0, True,
                                    f"applied {args.apply}", overlap)  # fmt: skip
    return reg.Registration(transform, moved, report, fs, ms), unit


def _description(calibration: Any, ndim: int, fixed_spacing: tuple[float, ...],
                 metadata: dict[str, Any]) -> dict[str, Any]:  # fmt: skip
    """The TIFF description of the moved image: FIXED's calibration and the provenance."""
    from ..io.imagej_tiff import json_safe

    out: dict[str, Any] = {} if calibration is None else calibration.description(2)
    if ndim == 3:
        if out:
            out = {"scale": [fixed_spacing[0], *out["scale"]],
                   "units": [out["units"][-1], *out["units"]]}  # fmt: skip
        out["axis_labels"] = ["z", "y", "x"]
    out["metadata"] = json_safe(metadata)
    return out


def _run(args: argparse.Namespace) -> int:
    if args.apply and (args.landmarks or args.transform):
        raise UsageError("--apply moves MOVING with a saved transform: it takes no "
                         f"{'--landmarks' if args.landmarks else '--transform'}")  # fmt: skip
    from ..io import images as io
    from ..io.imagej_tiff import write_calibrated_tiff
    from ..workflows.registration import spatial_ndim

    output = _tiff_output(args.output)
    outputs: dict[str, Path | None] = {"-o": output}
    if args.save_transform:
        outputs["--save-transform"] = json_output(args.save_transform)
    check_files(outputs, [args.fixed, args.moving, *(args.landmarks or []),
                          *([args.apply] if args.apply else [])])  # fmt: skip
    named = [(args.apply, "transform file"), *((p, "landmarks file") for p in args.landmarks or [])]
    for path, what in named:
        if path and not Path(path).is_file():
            raise FileNotFoundError(f"{what} not found: {path}")
    if args.apply:
        from ..io.transform_file import load_transform

        load_transform(args.apply)  # a bad file is refused before the images are read
    fixed, moving = io.read_image(args.fixed), io.read_image(args.moving)
    ndim = spatial_ndim(fixed, args.fixed)
    fs, ms, unit = pair_spacing((args.fixed, args.moving), ndim,
                                (args.fixed_spacing, args.moving_spacing))  # fmt: skip
    names = {"fixed_name": args.fixed, "moving_name": args.moving}
    if args.apply:
        registration, unit = _applied(args, fixed, moving, ndim, (fs, ms, unit))
    elif args.landmarks:
        from ..workflows.landmarks import register_landmarks

        registration = register_landmarks(
            read_points(args.landmarks[0], ndim) * fs, read_points(args.landmarks[1], ndim) * ms,
            args.transform or "rigid", fixed=fixed, moving=moving, fixed_spacing=fs,
            moving_spacing=ms, **names,
        )  # fmt: skip
    else:
        from ..workflows.registration import register

        registration = register(fixed, moving, args.transform or "rigid", fixed_spacing=fs,
                                moving_spacing=ms, **names)  # fmt: skip
    metadata = {
        "registration": {**registration.provenance(), "unit": unit},
        "input_files": {"fixed": str(args.fixed), "moving": str(args.moving)},
        "transform_file": args.apply or args.save_transform,
    }
    description = _description(io.tiff_calibration(args.fixed), ndim, fs, metadata)
    write_calibrated_tiff(output, registration.moved, description,
                          rgb=ndim == 2 and registration.moved.ndim == 3,
                          what="the moved image")  # fmt: skip
    summary = (f"registered {args.moving} onto {args.fixed} -> {args.output} "
               f"({registration.transform.kind}): {registration.report.describe()}")  # fmt: skip
    if args.save_transform:
        from ..io.transform_file import save_transform

        save_transform(args.save_transform, registration, fixed=str(args.fixed),
                       moving=str(args.moving), unit=unit)  # fmt: skip
        summary += f"; transform -> {args.save_transform}"
    if not args.quiet:
        print(summary)
    return 0


#: The subcommand.
COMMAND = Subcommand(
    "register an image or volume onto another (rigid, similarity, affine; mutual information "
    "or landmarks) and write it resampled onto the first's grid",
    _add_arguments, _run,
)  # fmt: skip
