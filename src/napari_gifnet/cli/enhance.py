"""``napari-gifnet enhance``: enhance one image by fusing it with itself."""

from __future__ import annotations

import argparse

from .common import (
    REPLACES,
    TIFF_OUTPUT,
    Subcommand,
    add_common_gifnet,
    check_device,
    check_files,
    check_output,
    check_single_image,
    progress_line,
    size_text,
)


def _add_enhance_arguments(parser: argparse.ArgumentParser) -> None:
    from ..workflows.enhancement import VARIANTS

    parser.add_argument("image", metavar="IMAGE", help="the image to enhance")
    parser.add_argument("-o", "--output", required=True, metavar="OUT",
                        help=f"enhanced image (.tif: float32, {TIFF_OUTPUT.format('IMAGE')}; "
                        f".png, .jpg); {REPLACES}")
    parser.add_argument("--variant", choices=VARIANTS, default="self",
                        help="self: the image as both inputs; exposure: x**gamma + x")
    parser.add_argument("--gamma", type=float, default=0.5, help="exposure variant (default 0.5)")
    add_common_gifnet(parser)

def _run_enhance(args: argparse.Namespace) -> int:
    from ..io import images as io

    output = check_output(args.output)
    check_files({"-o": output}, [args.image])
    check_device(args)
    check_single_image(args.image)
    image = io.read_image(args.image)
    from ..workflows.enhancement import enhance

    with progress_line(args.quiet) as progress:
        result = enhance(image, variant=args.variant, gamma=args.gamma, weights=args.weights,
                         device=args.device, progress=progress)  # fmt: skip
    io.write_image(output, result.image, {**result.metadata, "input_file": str(args.image)},
                   calibration=io.tiff_calibration(args.image))  # fmt: skip
    if not args.quiet:
        print(f"enhanced {args.image} -> {output} ({args.variant}): "
              f"{size_text(*result.image.shape[:2])}, {result.elapsed:.1f} s")
    return 0


#: The subcommand.
COMMAND = Subcommand("enhance one image by fusing it with itself", _add_enhance_arguments,
                     _run_enhance)  # fmt: skip
