"""The ``stack``, ``pansharpen`` and ``enhance`` subcommands of the command line.

Focus stacks (:mod:`napari_gifnet.stack`), multispectral + panchromatic
fusion (:mod:`napari_gifnet.pansharpen`) and single-image enhancement
(:mod:`napari_gifnet.enhance`); registered in :data:`napari_gifnet.cli.COMMANDS`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from .cli import Subcommand, UsageError, _not_an_input, _Progress, check_output, check_single_image


def _add_common_gifnet(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--weights", metavar="W", help="GIFNet checkpoint file (default: search)")
    parser.add_argument(
        "--device", default="auto", help="auto (default), cpu, cuda, cuda:N or mps"
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="print nothing but errors")


def _check_output(
    path: str, inputs: list[str], allowed: tuple[str, ...] | None = None, option: str = "-o"
) -> Path:
    """An output path whose format holds a float32 grey or RGB image, in an existing folder,
    that is none of the ``inputs`` (:func:`napari_gifnet.cli.check_output`).

    That is what ``enhance`` writes, and any format holds it once the
    extension is known: :func:`napari_gifnet.io.check_writable` refuses the
    others. ``stack`` checks its outputs' dtypes once the stack is open
    (:func:`_check_stack_outputs`).
    """
    output = check_output(path, inputs, option)
    if allowed is not None and output.suffix.lower() not in allowed:
        raise UsageError(f"{output}: use one of {', '.join(allowed)}")
    return output


def _input_files(inputs: list[str]) -> list[str]:
    """The files named by ``inputs``, a folder standing for the images in it."""
    from . import io

    files: list[str] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            files.extend(str(f) for f in sorted(p.iterdir()) if f.suffix.lower() in io.READ_EXTENSIONS)
        files.append(item)
    return files


def _check_device(args: argparse.Namespace, method: str = "gifnet") -> None:
    if method != "gifnet":
        return
    from .devices import resolve_device  # imports torch

    try:
        resolve_device(args.device)
    except ValueError as exc:
        raise UsageError(f"--device: {exc}") from None


def _read_stack(inputs: list[str], axis: int = 0) -> Any:
    from . import io
    from ._stack_planes import FileStack
    from .tiff_stack import TiffPlanes, open_tiff_stack

    paths = [Path(p) for p in inputs]
    folder = len(paths) == 1 and paths[0].is_dir()
    if (folder or len(paths) > 1) and axis != 0:
        raise UsageError(
            f"--axis {axis}: a folder or a list of files is stacked along axis 0 "
            "(one file per plane); --axis is for a multi-dimensional TIFF"
        )
    if folder:
        files = sorted(
            p for p in paths[0].iterdir() if p.suffix.lower() in io.READ_EXTENSIONS
        )
        if len(files) < 2:
            raise ValueError(f"{paths[0]}: a stack folder needs at least 2 image files")
        return FileStack(files)
    if len(paths) == 1:
        if paths[0].suffix.lower() in io.TIFF_EXTENSIONS:
            stack = open_tiff_stack(paths[0])  # page by page where possible
            if isinstance(stack, TiffPlanes) and axis not in (0, -stack.ndim):
                stack.close()  # the focus axis is not the page axis
                return io.read_image(paths[0])
            return stack
        return io.read_image(paths[0])
    for p in paths:
        if not p.is_file():
            raise FileNotFoundError(f"image file not found: {p}")
    return FileStack(paths)


def _check_stack_outputs(
    outputs: dict[str, Path], layout: Any, keep_dtype: bool, inputs: list[Path]
) -> None:
    """Refuse, before fusing, outputs whose format cannot hold what goes there.

    ``outputs`` maps an option name (``-o``, ``--depth-map``, ``--confidence``)
    to its path; ``layout`` (a :class:`~napari_gifnet._stack_planes.Planes`)
    gives the planes' dtype and shape. What each format holds is
    :func:`napari_gifnet.io.check_writable`'s rule, with the bit depth
    ``write_image(..., bit_depth=None)`` picks: ``-o`` gets float32 in [0, 1]
    or, with ``--keep-dtype``, the stack's dtype on its own scale; the depth
    map gets uint16 plane indices (the confidence map, float32, goes to .tif,
    checked by :func:`_check_output`). No two outputs may name the same file,
    and none may name one of the ``inputs``.
    """
    import numpy as np

    from . import io
    _not_an_input(outputs, inputs)  # resolved: "..", symbolic and hard links name one file
    output, dtype = outputs["-o"], layout.dtype if keep_dtype else np.float32
    try:
        io.check_writable(output, dtype, layout.plane_shape, bit_depth=None,
                          unit_floats=not keep_dtype)  # fmt: skip
    except io.FormatError as exc:  # float32 in [0, 1] goes anywhere: --keep-dtype is on
        stack = f"{layout.dtype}{' RGB' if layout.rgb else ''}"
        raise UsageError(
            f"-o {output}: the stack is {stack}; with --keep-dtype that {exc.needs}"
        ) from None
    depth = outputs.get("--depth-map")
    if depth is not None:
        try:
            io.check_writable(depth, np.uint16, layout.plane_shape[:2], bit_depth=None)
        except io.FormatError as exc:
            what = "a depth map (uint16 plane indices)"
            raise UsageError(f"--depth-map {depth}: {what} {exc.needs}") from None


def _add_stack_arguments(parser: argparse.ArgumentParser) -> None:
    from .stack import STRATEGIES

    parser.add_argument(
        "inputs", nargs="+", metavar="INPUT",
        help="a multi-page TIFF, a folder of images (sorted by name) or several image files",
    )
    parser.add_argument(
        "-o", "--output", required=True, metavar="OUT",
        help="all-in-focus image (.tif: float32 in [0, 1] or the input dtype with "
        "--keep-dtype, with JSON metadata; .png: 16-bit grey or 8-bit RGB; .jpg: 8-bit; "
        "--keep-dtype with data other than uint8/uint16 needs .tif)",
    )
    parser.add_argument("--axis", type=int, default=0,
                        help="focus axis of a TIFF (default 0; a folder or files: 0 only)")
    parser.add_argument(
        "--method", default="default",
        help="gifnet, focus, or a baseline (laplacian, guided, dwt, mertens, mean, max); "
        "default: the benchmark winner (see docs/stacks.md)",
    )
    parser.add_argument("--strategy", choices=STRATEGIES, default=None,
                        help="pair folding for pairwise methods (default: tree)")
    parser.add_argument("--select", action="store_true",
                        help="copy pixels from the plane of the depth map")
    parser.add_argument("--align", action="store_true",
                        help="align the planes first (translation, phase correlation)")
    parser.add_argument("--align-scale", action="store_true",
                        help="align the planes first for translation and focus breathing "
                        "(a magnification change between planes); implies --align")
    parser.add_argument("--depth-map", metavar="PATH",
                        help="also write the depth (plane index) map (.tif or 16-bit .png)")
    parser.add_argument("--confidence", metavar="PATH", help="also write the confidence map (.tif)")
    parser.add_argument("--keep-dtype", action="store_true",
                        help="write the input dtype (e.g. 16-bit) instead of float32")
    _add_common_gifnet(parser)


def _run_stack(args: argparse.Namespace) -> int:
    import numpy as np

    from . import io
    from ._stack_planes import Planes
    from .stack import DEFAULT_METHOD, DEFAULT_STRATEGY, fuse_stack

    inputs = _input_files(args.inputs)
    output = _check_output(args.output, inputs)
    depth_path = _check_output(args.depth_map, inputs, option="--depth-map") if args.depth_map \
        else None
    conf_path = _check_output(args.confidence, inputs, io.TIFF_EXTENSIONS, "--confidence") \
        if args.confidence else None
    method = DEFAULT_METHOD if args.method == "default" else args.method.strip().lower()
    _check_device(args, method)
    align = "scale" if args.align_scale else bool(args.align)
    stack = _read_stack(args.inputs, args.axis)
    progress = _Progress(sys.stderr, not args.quiet and sys.stderr.isatty())
    try:
        layout = Planes(stack, args.axis)  # shape and dtype only: nothing is read yet
        outputs = {"-o": output, "--depth-map": depth_path, "--confidence": conf_path}
        _check_stack_outputs(
            {k: v for k, v in outputs.items() if v is not None}, layout, args.keep_dtype,
            getattr(stack, "files", [Path(p) for p in args.inputs]),
        )  # fmt: skip
        result = fuse_stack(
            stack, args.axis, method, strategy=args.strategy or DEFAULT_STRATEGY,
            select=args.select, align=align, keep_dtype=args.keep_dtype,
            weights=args.weights, device=args.device, progress=progress,
        )  # fmt: skip
    finally:
        progress.close()
        if hasattr(stack, "close"):
            stack.close()
    metadata = {**result.metadata, "input_files": [str(p) for p in args.inputs]}
    io.write_image(output, result.image, metadata, bit_depth=None)  # as checked above
    if depth_path is not None:
        io.write_image(depth_path, result.depth_map.astype(np.uint16), metadata, bit_depth=None)
    if conf_path is not None:
        io.write_image(conf_path, result.confidence, metadata)
    if not args.quiet:
        shifts = ""
        if align:
            worst = float(np.abs(result.shifts).max())
            shifts = f"; aligned, largest shift {worst:.2f} px"
            if align == "scale":
                shifts += f", scales {result.scales.min():.4f}-{result.scales.max():.4f}"
        print(
            f"fused {result.metadata['planes']} planes -> {output}: "
            f"{result.luma.shape[0]} x {result.luma.shape[1]}, {result.metadata['method']}"
            f"{shifts}, {result.elapsed:.1f} s"
        )
    return 0


def _pair_of_floats(text: str) -> tuple[float, float]:
    """``S`` or ``SY,SX``: a pixel size, checked by :func:`~napari_gifnet._pan_grid.pair_arg`."""
    from ._pan_grid import pair_arg

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
    from .pansharpen import RESCALES

    parser.add_argument(
        "inputs", nargs="+", metavar="FILE",
        help="MS PAN: a multiband file (bands first or last) or several single-band files, "
        "then the panchromatic file",
    )
    parser.add_argument("-o", "--output", required=True, metavar="OUT",
                        help="pansharpened image, .tif (multiband, with JSON metadata)")
    parser.add_argument("--band-axis", type=int, choices=(0, -1), default=None,
                        help="band axis of a multiband file (default: the shorter end axis)")
    parser.add_argument("--method", default="gifnet", help="gifnet (default) or a baseline")
    parser.add_argument("--rescale", choices=RESCALES, default="range",
                        help="how each fused band returns to its band's values (default range)")
    parser.add_argument("--ms-scale", type=_pair_of_floats, metavar="S",
                        help="multispectral pixel size (S or SY,SX); with --pan-scale")
    parser.add_argument("--pan-scale", type=_pair_of_floats, metavar="S",
                        help="panchromatic pixel size (S or SY,SX); with --ms-scale")
    _add_common_gifnet(parser)


def _run_pansharpen(args: argparse.Namespace) -> int:
    import numpy as np

    from . import io

    if len(args.inputs) < 2:
        raise UsageError("give the multispectral file(s), then the panchromatic file")
    output = _check_output(args.output, args.inputs, io.TIFF_EXTENSIONS)  # bands: TIFF only
    method = args.method.strip().lower()
    _check_device(args, method)
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
    from .pansharpen import pansharpen

    progress = _Progress(sys.stderr, not args.quiet and sys.stderr.isatty())
    try:
        result = pansharpen(
            ms, pan, band_axis=band_axis, method=method, rescale=args.rescale,
            ms_scale=args.ms_scale, pan_scale=args.pan_scale, weights=args.weights,
            device=args.device, progress=progress,
        )  # fmt: skip
    finally:
        progress.close()
    metadata = {**result.metadata, "input_files": {"ms": ms_files, "pan": str(pan_file)}}
    io.write_tiff(output, result.image, metadata)
    if not args.quiet:
        print(
            f"pansharpened {result.metadata['bands']} band(s) -> {output}: "
            f"shape {tuple(result.image.shape)}, {result.image.dtype}, {result.elapsed:.1f} s"
        )
    return 0


def _add_enhance_arguments(parser: argparse.ArgumentParser) -> None:
    from .enhance import VARIANTS

    parser.add_argument("image", metavar="IMAGE", help="the image to enhance")
    parser.add_argument("-o", "--output", required=True, metavar="OUT",
                        help="enhanced image (.tif float32 with metadata, .png, .jpg)")
    parser.add_argument("--variant", choices=VARIANTS, default="self",
                        help="self: the image as both inputs; exposure: x**gamma + x")
    parser.add_argument("--gamma", type=float, default=0.5, help="exposure variant (default 0.5)")
    _add_common_gifnet(parser)


def _run_enhance(args: argparse.Namespace) -> int:
    from . import io

    output = _check_output(args.output, [args.image])
    _check_device(args)
    check_single_image(args.image)
    image = io.read_image(args.image)
    from .enhance import enhance

    progress = _Progress(sys.stderr, not args.quiet and sys.stderr.isatty())
    try:
        result = enhance(image, variant=args.variant, gamma=args.gamma, weights=args.weights,
                         device=args.device, progress=progress)
    finally:
        progress.close()
    io.write_image(output, result.image, {**result.metadata, "input_file": str(args.image)})
    if not args.quiet:
        print(f"enhanced {args.image} -> {output} ({args.variant}), {result.elapsed:.1f} s")
    return 0


#: The subcommands this module adds to :data:`napari_gifnet.cli.COMMANDS`.
MORE_COMMANDS: dict[str, Subcommand] = {
    "stack": Subcommand(
        "fuse a focus stack into an all-in-focus image (+ depth map)",
        _add_stack_arguments,
        _run_stack,
    ),
    "pansharpen": Subcommand(
        "fuse every multispectral band with a panchromatic image",
        _add_pansharpen_arguments,
        _run_pansharpen,
    ),
    "enhance": Subcommand(
        "enhance one image by fusing it with itself", _add_enhance_arguments, _run_enhance
    ),
}
