"""``napari-gifnet fuse``: fuse two registered images, an offline sample, or a batch."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

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
    check_single_image,
    progress_line,
    run_batch,
    size_text,
)
from .register import TRANSFORMS as REGISTER_TRANSFORMS
from .register import json_output, pair_spacing

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
    raise argparse.ArgumentTypeError(f"invalid value {text!r}: use {', '.join(_NORMALIZATIONS)} "
                                     "or LO,HI (numbers, LO < HI)")  # fmt: skip

#: The offline samples ``--sample`` fuses (keys of napari_gifnet.data.synthetic.SAMPLES).
PAIR_SAMPLES = ("multifocus", "medical", "exposure", "fluorescence")
#: The feature maps ``--features DIR`` writes, DIR/<name>.tif each
#: (:attr:`napari_gifnet.engine.result.FusionResult.features`).
FEATURE_NAMES = ("shared", "multimodal", "photographic", "branch")
#: Output formats of a batch (``--pairs``): the file is OUTDIR/<pair name>.<format>.
BATCH_FORMATS = ("tif", "png", "jpg")
#: What to do when --register meets one input with a pixel size and one without
#: (:func:`~napari_gifnet.cli.register.pair_spacing`'s ``fix``).
_REGISTER_FIRST = ("`fuse --register` takes both pixel sizes from the files: give {missing} a "
                   "pixel size too, or register first with `napari-gifnet register {fixed} "
                   "{moving} -o MOVED.tif {option} S` (S in {unit}) and fuse {fixed} with "
                   "MOVED.tif")  # fmt: skip

_EPILOG = """\
inputs, one of:
  A B                 two image files (PNG, JPEG, TIFF)
  --sample NAME       an offline sample pair made on the fly (--list-samples)
  --pairs DIR         a batch: DIR/first/ + DIR/second/ with matching file names;
                      -o is then a folder outside first/ and second/, one
                      OUT/<name>.<format> per pair; a re-run skips every pair
                      whose output is written; --overwrite redoes them,
                      replacing each file atomically; a pair that fails is
                      reported and the others go on (exit status 1)
"""


def _add_fuse_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = _EPILOG
    parser.add_argument("a", metavar="A", nargs="?", help="first input (infrared, PET/SPECT/CT, "
                        "NIR, near focus, over-exposed, ...)")
    parser.add_argument("b", metavar="B", nargs="?", help="second input (visible, MRI, far focus, "
                        "under-exposed, panchromatic, ...)")
    parser.add_argument("-o", "--output", metavar="OUT",
                        help="fused image; format from the extension: .tif/.tiff (float32, "
                        f"{TIFF_OUTPUT.format('the first input')}), .png (8-bit), .jpg/.jpeg "
                        f"(8-bit); {REPLACES}; with --pairs, a folder: {SKIPS}")
    parser.add_argument("--sample", choices=PAIR_SAMPLES, metavar="NAME",
                        help=f"fuse an offline sample pair instead of files: {', '.join(PAIR_SAMPLES)}")
    parser.add_argument("--list-samples", action="store_true",
                        help="list the offline sample pairs and exit")
    parser.add_argument("--pairs", metavar="DIR", help="fuse every pair of DIR/first + DIR/second")
    parser.add_argument("--format", choices=BATCH_FORMATS, default="tif",
                        help="output format of a --pairs batch (default tif)")
    parser.add_argument("--overwrite", action="store_true",
                        help="with --pairs: fuse again the pairs whose output exists "
                        "(each replaced atomically)")
    parser.add_argument("--align", nargs="?", const="translation", choices=("translation", "scale"),
                        help="align the second input onto the first before fusing: translation "
                        "(phase correlation; the default of --align) or scale (also focus "
                        "breathing); for two photographs of one sensor")
    parser.add_argument("--register", choices=REGISTER_TRANSFORMS,
                        help="register the second input onto the first before fusing, by mutual "
                        "information (the two may differ in contrast: CT and MRI, infrared and "
                        "visible), each input's pixel size from its TIFF calibration; resampled "
                        "once, the transform in the output's provenance; not with --align (see "
                        "also napari-gifnet register)")
    parser.add_argument("--save-transform", metavar="T.json",
                        help="with --register: also save the transform as JSON (napari-gifnet "
                        f"register --apply reuses it); {REPLACES}")  # fmt: skip
    from ..methods.presets import task_keys

    parser.add_argument("--task", choices=task_keys(),
                        help="the pair's task: its default method is the one that measures best "
                        "on the task's ground truth (mfif: focus_pyramid, meif: laplacian, the "
                        "others: gifnet; see docs/quality.md); without --task and --method, "
                        "GIFNet")  # fmt: skip
    parser.add_argument("--method", metavar="M",
                        help="gifnet, focus (focus selection), focus_pyramid (focus selection "
                        "guiding a Laplacian pyramid blend) or a baseline (laplacian, guided, "
                        "dwt, mertens, mean, max); default: the --task's method, else "
                        "gifnet")  # fmt: skip
    add_common_gifnet(parser, quiet=False)
    parser.add_argument("--features", metavar="DIR",
                        help="also write the feature maps as float32 ImageJ channel stacks "
                        "<DIR>/<name>.tif (with the first input's pixel size); "
                        f"{REPLACES}")  # fmt: skip
    parser.add_argument("--normalization", type=_normalization, default="auto",
                        metavar="{auto,dtype,minmax,percentile,LO,HI}",
                        help="how non-uint8 inputs are mapped to [0, 1] (default: auto); a range "
                        "may start below zero: --normalization -1000,3000 or "
                        "--normalization=-1000,3000")
    parser.add_argument("--storage", choices=("auto", "memory", "disk", "recompute"),
                        default="auto", help="where the maps that outlive a pass are kept "
                        "(default: auto, from free memory)")
    parser.add_argument("--tile-size", type=int, metavar="N", help="tile edge in pixels, at "
                        "least 8 (default: from the free memory)")  # fmt: skip
    parser.add_argument("--precision", choices=("float32", "tf32", "bfloat16", "float16"),
                        default="float32", help="network arithmetic (default float32, exact; "
                        "the others are faster on a GPU, with the differences measured in "
                        "docs/scaling.md)")
    parser.add_argument("-q", "--quiet", action="store_true", help="print nothing but errors")


def _list_samples() -> int:
    from ..data.synthetic import SAMPLES

    for key in PAIR_SAMPLES:
        sample = SAMPLES[key]()
        first, second = _sample_inputs(sample)
        print(f"{key:13s} {sample.title}: first {first[0]!r}, second {second[0]!r}")
    return 0


def _sample_inputs(sample: object) -> tuple[tuple[str, object], tuple[str, object]]:
    """(name, data) of a sample's first and second inputs (by their metadata role)."""
    by_role = {kw.get("metadata", {}).get("role"): (name, data)
               for name, data, kw in sample.layers}  # type: ignore[attr-defined]  # fmt: skip
    return by_role["first input"], by_role["second input"]


def _check_sources(args: argparse.Namespace) -> str:
    """Which input the command line names: "files", "sample" or "pairs" (usage errors)."""
    given = [name for name, on in (("A B", args.a is not None), ("--sample", args.sample),
                                   ("--pairs", args.pairs)) if on]  # fmt: skip
    if len(given) != 1:
        raise UsageError("give two input files A B, or --sample NAME, or --pairs DIR "
                         f"(got {' and '.join(given) or 'none'})")  # fmt: skip
    if args.a is not None and args.b is None:
        raise UsageError("the second input B is missing")
    if args.output is None:
        raise UsageError("the following arguments are required: -o/--output")
    if args.pairs and args.features:
        raise UsageError("--features is for one pair, not a --pairs batch")
    if args.register and args.align:
        raise UsageError("--register and --align both move the second input onto the first: "
                         "give one of them")  # fmt: skip
    if args.save_transform and not args.register:
        raise UsageError("--save-transform saves the transform of --register: add --register")
    if args.pairs and args.save_transform:
        raise UsageError("--save-transform is for one pair, not a --pairs batch")
    return {"A B": "files", "--sample": "sample", "--pairs": "pairs"}[given[0]]


def _fuse_arrays(a: object, b: object, args: argparse.Namespace, progress: object,
                 names: tuple[str, str], paths: tuple[str | None, str | None]) -> tuple:
    """Register (--register) or align (--align) and fuse one pair (GIFNet, or the
    --task / --method choice); returns (result, metadata extras, the registration's
    or alignment's one-line description or None, the Registration or None).
    ``names`` name the inputs in messages; ``paths`` are the files whose pixel
    sizes a registration uses (None: pixels)."""
    from ..workflows.tasks import fuse

    extra: dict = {}
    described = registration = None
    if args.register:
        from ..workflows.registration import register

        fs, ms, unit = pair_spacing(paths, 2, fix=_REGISTER_FIRST)  # type: ignore[arg-type]
        registration = register(a, b, args.register, fixed_spacing=fs, moving_spacing=ms,
                                fixed_name=names[0], moving_name=names[1])  # fmt: skip
        b = registration.moved
        extra["registration"] = {**registration.provenance(), "unit": unit}
        described = f"{args.register} {registration.report.describe()}"
    if args.align:
        from ..workflows.pair_alignment import align_pair

        b, alignment = align_pair(a, b, args.align, names=names)
        extra["alignment"] = alignment.provenance()
        described = alignment.describe()
    result = fuse(
        a, b, task=args.task, method=args.method, weights=args.weights, device=args.device,
        return_features=bool(args.features), normalization=args.normalization,
        progress=progress, storage=args.storage, tile_size=args.tile_size,
        precision=args.precision,
    )  # fmt: skip
    return result, extra, described, registration


def _check_run_options(args: argparse.Namespace) -> None:
    """Usage errors for an unknown --method, --features without GIFNet, a --tile-size
    under 8 or an unusable --device."""
    from ..workflows.tasks import resolve_method

    try:
        key, _ = resolve_method(args.task, args.method)
    except ValueError as exc:
        raise UsageError(f"--method: {exc}") from None
    if args.features and key != "gifnet":
        raise UsageError(f"--features: only GIFNet has feature maps; the method is {key!r}")
    if args.tile_size is not None and args.tile_size < 8:
        raise UsageError(f"--tile-size {args.tile_size} is too small: the smallest tile is 8")
    check_device(args)


def _read_pair(a: str | Path, b: str | Path) -> tuple:
    """The two images, each refused first (from its header) if it holds a stack."""
    from ..io import images as io

    check_single_image(str(a))
    check_single_image(str(b))
    return io.read_image(a), io.read_image(b)


def _run_fuse(args: argparse.Namespace) -> int:
    if args.list_samples:
        return _list_samples()
    source = _check_sources(args)
    if source == "pairs":
        return _run_batch(args)
    from ..io import images as io
    from ..util.safe_files import check_output_folder

    paths = (args.a, args.b)  # (None, None) for a --sample
    output = check_output(args.output)
    outputs: dict[str, Path] = {"-o": output}
    if args.save_transform:
        outputs["--save-transform"] = json_output(args.save_transform)
    if args.features:
        features = check_output_folder(args.features, "--features")
        outputs.update({f"--features {name}": features / f"{name}.tif" for name in FEATURE_NAMES})
    check_files(outputs, [p for p in paths if p is not None])
    _check_run_options(args)
    if source == "files":
        a, b = _read_pair(args.a, args.b)
        names, described = {"a": str(args.a), "b": str(args.b)}, f"{args.a} + {args.b}"
    else:
        from ..data.synthetic import SAMPLES

        (name_a, a), (name_b, b) = _sample_inputs(SAMPLES[args.sample]())
        names = {"sample": args.sample, "a": name_a, "b": name_b}
        described = f"sample {args.sample!r} ({name_a} + {name_b})"
    with progress_line(args.quiet) as progress:
        result, extra, align_text, registration = _fuse_arrays(a, b, args, progress,
                                                               (names["a"], names["b"]), paths)
    metadata = {**result.metadata, **extra, "input_files": names}
    calibration = io.tiff_calibration(args.a) if source == "files" else None  # the first input's
    io.write_image(output, result.image, metadata, calibration=calibration)
    summary = (f"fused {described} -> {args.output}: {size_text(*result.luma.shape[:2])}, "
               f"device {result.device}, {result.elapsed:.1f} s")  # fmt: skip
    if args.task or args.method:
        summary += f", method {result.metadata['method']}"
    if align_text:
        summary += f"; {align_text}"
    if args.save_transform:
        from ..io.transform_file import save_transform

        save_transform(args.save_transform, registration, fixed=names["a"], moving=names["b"],
                       unit=extra["registration"]["unit"])  # fmt: skip
        summary += f"; transform -> {args.save_transform}"
    if args.features:
        written = io.write_features(args.features, result.features, metadata,
                                    calibration=calibration)
        summary += f"; features {', '.join(p.stem for p in written)} -> {args.features}"
    if not args.quiet:
        print(summary)
    return 0


def _run_batch(args: argparse.Namespace) -> int:
    """``--pairs DIR -o OUTDIR``: every pair, one model load, failures reported by name."""
    from ..io import formats
    from ..io import images as io
    from ..io.pairs import pair_folder, pair_inputs
    from ..util.safe_files import check_output_folder

    folder = pair_folder(args.pairs)
    outdir = check_output_folder(args.output, "-o")
    ext = "." + args.format
    jobs = [(name, a, b, outdir / f"{name}{ext}") for name, a, b in folder.pairs]
    check_files({f"pair {name!r} -o": out for name, _, _, out in jobs}, *pair_inputs(folder.root))
    _check_run_options(args)
    formats.check_writable(outdir / f"x{ext}", "float32")

    def job(name: str, a_path: Path, b_path: Path, out: Path) -> BatchJob:
        def run() -> None:
            pair = (str(a_path), str(b_path))
            result, extra, _, _ = _fuse_arrays(*_read_pair(*pair), args, None, pair, pair)
            metadata = {**result.metadata, **extra, "input_files": {"a": pair[0], "b": pair[1]}}
            io.write_image(out, result.image, metadata, calibration=io.tiff_calibration(a_path))

        return BatchJob(name, (out,), run)

    from ..engine import fusion_run

    with fusion_run():  # one heap and one set of maps for all the pairs
        return run_batch(
            [job(*item) for item in jobs], kind="pair", source=folder.root, outdir=outdir,
            overwrite=args.overwrite, quiet=args.quiet,
            failed=[(name, f"no partner in {side}/") for name, side in folder.unmatched],
        )  # fmt: skip


#: The subcommand.
COMMAND = Subcommand("fuse two registered images (or a sample, or a folder of pairs); "
                     "--register or --align moves the second onto the first",
                     _add_fuse_arguments, _run_fuse)  # fmt: skip
