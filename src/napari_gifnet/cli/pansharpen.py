"""``napari-gifnet pansharpen``: fuse every multispectral band with a panchromatic image."""

from __future__ import annotations

import argparse
from typing import Any

from .common import (
    REPLACES,
    TIFF_OUTPUT,
    Subcommand,
    UsageError,
    add_common_gifnet,
    check_device,
    check_files,
    check_output,
    progress_line,
    size_text,
)


def _pair_of_floats(text: str) -> tuple[float, float]:
    """``S`` or ``SY,SX``: a pixel size, checked by :func:`~napari_gifnet.workflows.pan_grid.pair_arg`."""
    from ..workflows.pan_grid import pair_arg

    value: Any = text  # not numbers: pair_arg refuses the text
    try:
        numbers = [float(v) for v in text.split(",")]
        value = numbers[0] if len(numbers) == 1 else numbers
    except ValueError:
        pass
    try:
        return pair_arg(value, "the pixel size (S or SY,SX)", positive=True)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"invalid value {text!r}: {exc}") from None

def _add_pansharpen_arguments(parser: argparse.ArgumentParser) -> None:
    from ..workflows.pansharpening import DEFAULT_METHOD, RESCALES, pansharpen_method_names

    parser.add_argument("inputs", nargs="+", metavar="FILE",
                        help="MS PAN: a multiband file (bands first or last) or several "
                        "single-band files, then the panchromatic file")  # fmt: skip
    parser.add_argument("-o", "--output", required=True, metavar="OUT",
                        help="pansharpened image, .tif (multiband: "
                        f"{TIFF_OUTPUT.format('the panchromatic file')}; bands last: a plain "
                        f"TIFF); {REPLACES}")
    parser.add_argument("--band-axis", type=int, choices=(0, -1), default=None,
                        help="band axis of a multiband file (default: the shorter end axis)")
    parser.add_argument(
        "--method", default=DEFAULT_METHOD, choices=pansharpen_method_names(), metavar="METHOD",
        type=lambda text: text.strip().lower().replace("-", "_"),
        help=f"{DEFAULT_METHOD} (default: the best measured under Wald's protocol, see "
        "docs/pansharpening.md), another spectral method (mtf_glp, gsa, gihs, mtf_glp_hpm, "
        "brovey, gsa_gifnet: GSA with GIFNet's details), gifnet (each band fused by the "
        "network) or a per-band fusion baseline; one of: %(choices)s",
    )
    parser.add_argument("--rescale", choices=RESCALES, default="range",
                        help="how each fused band returns to its band's values (default range)")
    parser.add_argument("--ms-scale", type=_pair_of_floats, metavar="S",
                        help="multispectral pixel size (S or SY,SX); with --pan-scale")
    parser.add_argument("--pan-scale", type=_pair_of_floats, metavar="S",
                        help="panchromatic pixel size (S or SY,SX); with --ms-scale")
    add_common_gifnet(parser)

def _run_pansharpen(args: argparse.Namespace) -> int:
    import numpy as np

    from ..io import formats
    from ..io import images as io

    if len(args.inputs) < 2:
        raise UsageError("give the multispectral file(s), then the panchromatic file")
    output = check_output(args.output, formats.TIFF_EXTENSIONS)  # bands: TIFF only
    check_files({"-o": output}, args.inputs)
    check_device(args, args.method in ("gifnet", "gsa_gifnet"))
    *ms_files, pan_file = args.inputs
    pan = io.read_image(pan_file)
    bands = [io.read_image(p) for p in ms_files]
    if len(bands) > 1:
        shapes = {b.shape for b in bands}
        if len(shapes) > 1 or bands[0].ndim != 2:
            raise ValueError(f"single-band files must be 2-D and equal in shape, got {shapes}")
        ms, band_axis = np.stack(bands), 0
    else:
        ms, band_axis = bands[0], args.band_axis
    from ..workflows.pansharpening import pansharpen

    with progress_line(args.quiet) as progress:
        result = pansharpen(
            ms, pan, band_axis=band_axis, method=args.method, rescale=args.rescale,
            ms_scale=args.ms_scale, pan_scale=args.pan_scale, weights=args.weights,
            device=args.device, progress=progress,
        )  # fmt: skip
    metadata = {**result.metadata, "input_files": {"ms": ms_files, "pan": str(pan_file)}}
    _write_bands(output, result.image, metadata, pan_file)
    if not args.quiet:
        shape = tuple(result.image.shape)
        size = size_text(*_plane_shape(shape, result.metadata.get("band_axis")))
        print(
            f"pansharpened {result.metadata['bands']} band(s) -> {output}: {size}, "
            f"array shape {shape}, {result.image.dtype}, {result.elapsed:.1f} s"
        )
    return 0


def _plane_shape(shape: tuple[int, ...], band_axis: int | None) -> tuple[int, ...]:
    """(height, width) of the bands: ``shape`` (H, W), (B, H, W) or (H, W, B)."""
    return shape[1:3] if len(shape) == 3 and band_axis == 0 else shape[:2]


def _write_bands(output: Any, image: Any, metadata: dict, pan_file: str) -> None:
    """Write the bands with the panchromatic file's pixel size (the output's grid): bands
    first as ImageJ channels, bands last as a plain TIFF (ImageJ has no axis for them)."""
    from ..io import images as io

    if image.ndim == 2 or metadata.get("band_axis") == 0:
        labels = None if image.ndim == 2 else ["band", "y", "x"]
        io.write_tiff(output, image, metadata, calibration=io.tiff_calibration(pan_file),
                      axis_labels=labels)  # fmt: skip
    else:
        io.write_tiff(output, image, metadata, imagej=False)


#: The subcommand.
COMMAND = Subcommand("fuse every multispectral band with a panchromatic image",
                     _add_pansharpen_arguments, _run_pansharpen)  # fmt: skip
