"""``napari-gifnet stack``: fuse a focus stack into an all-in-focus image."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from .common import (
    REPLACES,
    SKIPS,
    TIFF_OUTPUT,
    BatchJob,
    Subcommand,
    UsageError,
    add_common_gifnet,
    check_device,
    check_files,
    check_output,
    input_files,
    progress_line,
    run_batch,
    size_text,
)


def _read_stack(inputs: list[str], axis: int = 0) -> Any:
    from ..io import formats
    from ..io import images as io
    from ..io.tiff_stack import TiffPlanes, open_tiff_stack
    from ..workflows.planes import FileStack

    paths = [Path(p) for p in inputs]
    folder = len(paths) == 1 and paths[0].is_dir()
    if (folder or len(paths) > 1) and axis != 0:
        raise UsageError(f"--axis {axis}: a folder or a list of files is stacked along axis "
                         "0 (one file per plane); --axis is for a multi-dimensional TIFF")
    if folder:
        readable = formats.READ_EXTENSIONS
        files = sorted(p for p in paths[0].iterdir() if p.suffix.lower() in readable)
        if len(files) < 2:
            raise ValueError(f"{paths[0]}: a stack folder needs at least 2 image files")
        return FileStack(files)
    if len(paths) == 1:
        if paths[0].suffix.lower() in formats.TIFF_EXTENSIONS:
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

def _check_stack_outputs(output: Path, depth: Path | None, layout: Any, keep_dtype: bool
                         ) -> None:  # fmt: skip
    """Refuse, before fusing, an ``-o`` or ``--depth-map`` whose format cannot hold what
    goes there.

    ``layout`` (a :class:`~napari_gifnet.workflows.planes.Planes`) gives the
    planes' dtype and shape. The rule is :func:`napari_gifnet.io.formats.check_writable`'s,
    with the bit depth ``write_image(..., bit_depth=None)`` picks: ``-o`` gets float32
    in [0, 1] or, with ``--keep-dtype``, the stack's dtype; the depth map uint16.
    """
    import numpy as np

    from ..io import formats

    dtype = layout.dtype if keep_dtype else np.float32
    try:
        formats.check_writable(output, dtype, layout.plane_shape, bit_depth=None,
                               unit_floats=not keep_dtype)  # fmt: skip
    except formats.FormatError as exc:  # float32 in [0, 1] goes anywhere: --keep-dtype is on
        stack = f"{layout.dtype}{' RGB' if layout.rgb else ''}"
        raise UsageError(f"-o {output}: the stack is {stack}; with --keep-dtype that "
                         f"{exc.needs}") from None  # fmt: skip
    if depth is not None:
        try:
            formats.check_writable(depth, np.uint16, layout.plane_shape[:2], bit_depth=None)
        except formats.FormatError as exc:
            what = "a depth map (uint16 plane indices)"
            raise UsageError(f"--depth-map {depth}: {what} {exc.needs}") from None

def _add_stack_arguments(parser: argparse.ArgumentParser) -> None:
    from ..workflows.focus_stack import STRATEGIES, TASKS

    parser.add_argument("inputs", nargs="*", metavar="INPUT",
                        help="a multi-page TIFF, a folder of images (sorted by name) or several "
                        "image files")  # fmt: skip
    parser.add_argument("--stacks", metavar="DIR",
                        help="instead of INPUT: every stack in DIR (each multi-page TIFF, and "
                        "each sub-folder of images, is one stack); -o is then a folder outside "
                        f"DIR, one OUT/<name>.<format> per stack; {SKIPS}; a stack that fails is "
                        "reported and the others go on (exit status 1)")
    parser.add_argument("--format", choices=("tif", "png", "jpg"), default="tif",
                        help="output format of a --stacks batch (default tif)")
    parser.add_argument("--maps", action="store_true",
                        help="with --stacks: also write <name>_depth.tif and <name>_confidence.tif")
    parser.add_argument("--overwrite", action="store_true",
                        help="with --stacks: fuse again the stacks whose output exists "
                        "(each replaced atomically)")
    parser.add_argument("-o", "--output", required=True, metavar="OUT",
                        help="all-in-focus image (.tif: float32 in [0, 1] or the input dtype with "
                        f"--keep-dtype, {TIFF_OUTPUT.format('the first file')}; .png: 16-bit "
                        "grey or 8-bit RGB; .jpg: 8-bit; --keep-dtype with data other than "
                        f"uint8/uint16 needs .tif); {REPLACES}")
    parser.add_argument("--axis", type=int, default=0,
                        help="focus axis of a TIFF (default 0; a folder or files: 0 only)")
    parser.add_argument("--method", default="default",
                        help="gifnet, focus, or a baseline (laplacian, guided, dwt, mertens, "
                        "mean, max); default: the benchmark winner (see docs/stacks.md)")
    parser.add_argument("--task", choices=tuple(TASKS), default=None,
                        help="the stack's task, which picks the default method: focus (focus "
                        "selection) or exposure (an exposure fusion; never focus selection); "
                        "default focus")
    parser.add_argument("--strategy", choices=STRATEGIES, default=None,
                        help="how a blending method meets the planes: pairs folded in sequence or "
                        "as a tree, or all planes at once (laplacian and mertens); default: "
                        "all for --task exposure, else tree")
    parser.add_argument("--select", action="store_true",
                        help="copy pixels from the plane of the depth map")
    parser.add_argument("--align", action="store_true",
                        help="align the planes first (translation, phase correlation); "
                        "without an --align option the planes' motion is measured and they "
                        "are aligned only where they move (focus stacks)")
    parser.add_argument("--no-align", action="store_true",
                        help="never align the planes (not even where they move)")
    parser.add_argument("--align-scale", action="store_true",
                        help="align the planes first for translation and focus breathing "
                        "(a magnification change between planes); implies --align")
    parser.add_argument("--align-similarity", action="store_true",
                        help="align the planes first for rotation, magnification and "
                        "translation (hand-held stacks); implies --align")
    parser.add_argument("--depth-map", metavar="PATH",
                        help="also write the depth (plane index) map (.tif or 16-bit .png); "
                        "replaced as -o is")
    parser.add_argument("--confidence", metavar="PATH",
                        help="also write the confidence map (.tif); replaced as -o is")
    parser.add_argument("--keep-dtype", action="store_true",
                        help="write the input dtype (e.g. 16-bit) instead of float32")
    add_common_gifnet(parser)

def _run_stack(args: argparse.Namespace) -> int:
    import numpy as np

    from ..io import formats

    if bool(args.inputs) == bool(args.stacks):
        raise UsageError("give the stack as INPUT (a TIFF, a folder or files), or --stacks DIR")
    _align(args)  # conflicting alignment options: refused before anything is read
    if args.stacks:
        if args.depth_map or args.confidence:
            raise UsageError("with --stacks, --maps writes every stack's depth and confidence")
        return _run_batch(args)
    output = check_output(args.output)
    depth_path = check_output(args.depth_map, option="--depth-map") if args.depth_map else None
    conf_path = check_output(args.confidence, formats.TIFF_EXTENSIONS, "--confidence") \
        if args.confidence else None
    folders = [p for p in args.inputs if Path(p).is_dir()]  # no output goes where images are read
    check_files({"-o": output, "--depth-map": depth_path, "--confidence": conf_path},
                input_files(args.inputs), folders)  # fmt: skip
    check_device(args, _method(args) == "gifnet")
    with progress_line(args.quiet) as progress:
        result = _fuse_one(args.inputs, output, depth_path, conf_path, args, progress)
    align = result.metadata.get("alignment")  # what was done ("auto" decides by the data)
    if not args.quiet:
        shifts = ""
        if align not in (None, False, "none"):
            worst = float(np.abs(result.shifts).max())
            shifts = f"; aligned, largest shift {worst:.2f} px"
            if align in ("scale", "similarity"):
                shifts += f", scales {result.scales.min():.4f}-{result.scales.max():.4f}"
            if align == "similarity":
                shifts += (f", rotations {result.rotations.min():.2f} to "
                           f"{result.rotations.max():.2f} deg")  # fmt: skip
        print(f"fused {result.metadata['planes']} planes -> {output}: "
              f"{size_text(*result.luma.shape[:2])}, {result.metadata['method']}{shifts}, "
              f"{result.elapsed:.1f} s")  # fmt: skip
    return 0


def _method(args: argparse.Namespace) -> str:
    """The method --method names, or the --task's default (focus selection without one)."""
    from ..workflows.focus_stack import task_method

    given = None if args.method == "default" else args.method.strip().lower()
    return task_method(args.task, given)


def _align(args: argparse.Namespace) -> str | bool:
    """fuse_stack's ``align``: the mode asked for, else ``"auto"`` (the data decide)."""
    if args.align_scale and args.align_similarity:
        raise UsageError("give one of --align-scale and --align-similarity (similarity "
                         "already includes the magnification)")  # fmt: skip
    if args.no_align and (args.align or args.align_scale or args.align_similarity):
        raise UsageError("--no-align cannot be combined with an --align option")
    modes = ((args.no_align, False), (args.align_similarity, "similarity"),
             (args.align_scale, "scale"), (args.align, True))  # fmt: skip
    return next((mode for asked, mode in modes if asked), "auto")


def _fuse_one(inputs: list[str], output: Path, depth_path: Path | None, conf_path: Path | None,
              args: argparse.Namespace, progress: Any) -> Any:  # fmt: skip
    """Open one stack, check its outputs against it, fuse it and write the outputs."""
    import numpy as np

    from ..io import images as io
    from ..workflows.focus_stack import fuse_stack
    from ..workflows.planes import Planes

    method, align = _method(args), _align(args)
    stack = _read_stack(inputs, args.axis)
    try:
        layout = Planes(stack, args.axis)  # shape and dtype only: nothing is read yet
        _check_stack_outputs(output, depth_path, layout, args.keep_dtype)
        result = fuse_stack(
            stack, args.axis, method, task=args.task, strategy=args.strategy, select=args.select,
            align=align, keep_dtype=args.keep_dtype, weights=args.weights, device=args.device,
            progress=progress,
        )  # fmt: skip
    finally:
        if hasattr(stack, "close"):
            stack.close()
    metadata = {**result.metadata, "input_files": [str(p) for p in inputs]}
    files = input_files(inputs)  # the pixel size of the stack's first file
    calibration = io.tiff_calibration(files[0]) if files else None
    io.write_image(output, result.image, metadata, bit_depth=None,  # as checked above
                   calibration=calibration)
    if depth_path is not None:
        io.write_image(depth_path, result.depth_map.astype(np.uint16), metadata, bit_depth=None,
                       calibration=calibration)
    if conf_path is not None:
        io.write_image(conf_path, result.confidence, metadata, calibration=calibration)
    return result


def stacks_in(folder: Path) -> list[tuple[str, Path]]:
    """The stacks of a ``--stacks`` folder: ``(name, path)`` of every TIFF file and every
    sub-folder holding images, sorted by name."""
    from ..io import formats

    found = []
    for entry in sorted(folder.iterdir()):
        if entry.is_file() and entry.suffix.lower() in formats.TIFF_EXTENSIONS:
            found.append((entry.stem, entry))
        elif entry.is_dir() and any(
            p.suffix.lower() in formats.READ_EXTENSIONS for p in entry.iterdir()
        ):
            found.append((entry.name, entry))
    return found


def _run_batch(args: argparse.Namespace) -> int:
    """``--stacks DIR -o OUTDIR``: every stack, failures reported by name, finished skipped."""
    from ..util.safe_files import check_output_folder

    folder = Path(args.stacks)
    if not folder.is_dir():
        raise FileNotFoundError(f"stacks folder not found: {folder}")
    stacks = stacks_in(folder)
    if not stacks:
        raise ValueError(f"{folder} holds no stacks (multi-page TIFF files or folders of images)")
    outdir = check_output_folder(args.output, "-o")
    ext = "." + args.format
    jobs: list[tuple[str, Path, Path, Path | None, Path | None]] = []
    outputs: dict[str, Path | None] = {}
    for name, path in stacks:
        out = outdir / f"{name}{ext}"
        maps = (outdir / f"{name}_depth.tif", outdir / f"{name}_confidence.tif") if args.maps \
            else (None, None)
        label = f"stack {path.name + ('/' if path.is_dir() else '')!r}"
        outputs.update({f"{label} -o": out, f"{label} --maps depth": maps[0],
                        f"{label} --maps confidence": maps[1]})  # fmt: skip
        jobs.append((name, path, out, *maps))
    # every output of every stack at once: none in the stacks folder (a re-run would
    # take it for a stack), none an input, no two stacks writing one file
    check_files(outputs, input_files([str(path) for _, path in stacks]), [folder])
    check_device(args, _method(args) == "gifnet")

    def job(name: str, path: Path, out: Path, depth: Path | None, conf: Path | None) -> BatchJob:
        written = tuple(p for p in (out, depth, conf) if p is not None)
        return BatchJob(name, written, lambda: _fuse_one([str(path)], out, depth, conf, args, None))

    return run_batch([job(*item) for item in jobs], kind="stack", source=folder, outdir=outdir,
                     overwrite=args.overwrite, quiet=args.quiet)  # fmt: skip


#: The subcommand.
COMMAND = Subcommand("fuse a focus stack into an all-in-focus image (+ depth map)",
                     _add_stack_arguments, _run_stack)  # fmt: skip
