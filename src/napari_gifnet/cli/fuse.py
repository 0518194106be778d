"""``napari-gifnet fuse``: fuse two registered images."""

from __future__ import annotations

import argparse
import math
import sys

from .common import Progress, Subcommand, UsageError, check_output, check_single_image, not_an_input

_NORMALIZATIONS = ("auto", "dtype", "minmax", "percentile")

def _normalization(text: str) -> str | tuple[float, float]:
    """argparse type for ``--normalization``: a rule name or ``LO,HI``."""
    value = text.strip().lower()
    if value in _NORMALIZATIONS:
        return value
    parts = value.split(",")
    try:
        lo, hi = (float(p) for p in parts)
    except ValueError:
        lo = hi = math.nan
    if len(parts) == 2 and math.isfinite(lo) and math.isfinite(hi) and lo < hi:
        return (lo, hi)
    raise argparse.ArgumentTypeError(
        f"invalid value {text!r}: use {', '.join(_NORMALIZATIONS)} or LO,HI (numbers, LO < HI)"
    )

def _add_fuse_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "a", metavar="A", help="first input (infrared, PET/SPECT/CT, NIR, near focus, ...)"
    )
    parser.add_argument(
        "b", metavar="B", help="second input (visible, MRI, far focus, panchromatic, ...)"
    )
    parser.add_argument(
        "-o", "--output", required=True, metavar="OUT",
        help="fused image; format from the extension: .tif/.tiff (float32 with JSON "
        "metadata), .png (8-bit), .jpg/.jpeg (8-bit)",
    )
    parser.add_argument("--weights", metavar="W", help="GIFNet checkpoint file (default: search)")
    parser.add_argument(
        "--device", default="auto", help="auto (default), cpu, cuda, cuda:N or mps"
    )
    parser.add_argument(
        "--features", metavar="DIR",
        help="also write the feature maps as float32 TIFF stacks <DIR>/<name>.tif",
    )
    parser.add_argument(
        "--normalization", type=_normalization, default="auto",
        metavar="{auto,dtype,minmax,percentile,LO,HI}",
        help="how non-uint8 inputs are mapped to [0, 1] (default: auto); a range may "
        "start below zero: --normalization -1000,3000 or --normalization=-1000,3000",
    )
    parser.add_argument(
        "--storage", choices=("auto", "memory", "disk", "recompute"), default="auto",
        help="where the maps that outlive a pass are kept (default: auto, from free memory)",
    )
    parser.add_argument(
        "--tile-size", type=int, metavar="N",
        help="tile edge in pixels, at least 8 (default: from the free memory)",
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="print nothing but errors")

def _run_fuse(args: argparse.Namespace) -> int:
    from ..io import images as io
    from ..util.safe_files import check_output_folder

    output = check_output(args.output, [args.a, args.b])
    if args.features:
        check_output_folder(args.features, "--features")
        not_an_input({"--features": args.features}, [args.a, args.b])
    if args.tile_size is not None and args.tile_size < 8:
        raise UsageError(f"--tile-size {args.tile_size} is too small: the smallest tile is 8")
    from ..engine.devices import resolve_device  # imports torch

    try:
        resolve_device(args.device)
    except ValueError as exc:
        raise UsageError(f"--device: {exc}") from None
    for path in (args.a, args.b):
        check_single_image(path)
    a, b = io.read_image(args.a), io.read_image(args.b)

    from ..engine.fusion import fuse

    progress = Progress(sys.stderr, not args.quiet and sys.stderr.isatty())
    try:
        result = fuse(
            a,
            b,
            weights=args.weights,
            device=args.device,
            return_features=bool(args.features),
            normalization=args.normalization,
            progress=progress,
            storage=args.storage,
            tile_size=args.tile_size,
        )
    finally:
        progress.close()
    metadata = {**result.metadata, "input_files": {"a": str(args.a), "b": str(args.b)}}
    io.write_image(output, result.image, metadata)
    summary = (
        f"fused {args.a} + {args.b} -> {args.output}: "
        f"{result.luma.shape[0]} x {result.luma.shape[1]}, device {result.device}, "
        f"{result.elapsed:.1f} s"
    )
    if args.features:
        written = io.write_features(args.features, result.features, metadata)
        summary += f"; features {', '.join(p.stem for p in written)} -> {args.features}"
    if not args.quiet:
        print(summary)
    return 0


#: The subcommand.
COMMAND = Subcommand("fuse two registered images", _add_fuse_arguments, _run_fuse)
