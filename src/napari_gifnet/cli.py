"""The ``napari-gifnet`` command line.

Subcommands are registered in :data:`COMMANDS` (name -> :class:`Subcommand`),
so new ones are added by writing an ``add_arguments(parser)`` and a
``run(args) -> int`` function and adding an entry.

Exit status: 0 success, 1 an error during the run (missing or unreadable
file, unusable inputs, weights unavailable, out of memory), 2 an invalid
command line, 130 interrupted (Ctrl-C), 143 terminated (SIGTERM). Expected errors print one line
``napari-gifnet: error: <message>`` on stderr (followed, for the weights, by
indented instructions), never a traceback.

torch is imported only by the subcommands that need it, so ``--help`` and
``--version`` are fast.
"""

from __future__ import annotations

import argparse
import math
import sys
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from . import __version__

PROG = "napari-gifnet"
#: Exit status for errors during a run.
EXIT_ERROR = 1
#: Exit status for an invalid command line.
EXIT_USAGE = 2
#: Exit status after Ctrl-C.
EXIT_INTERRUPTED = 130
#: Exit status after SIGTERM.
EXIT_TERMINATED = 143

#: Errors reported as one line instead of a traceback (WeightsUnavailableError
#: is a RuntimeError, CheckpointError a ValueError).
EXPECTED_ERRORS = (FileNotFoundError, ValueError, RuntimeError, MemoryError, OSError)

_NORMALIZATIONS = ("auto", "dtype", "minmax", "percentile")


class UsageError(Exception):
    """An invalid command line found by a subcommand (exit status 2)."""


@dataclass(frozen=True)
class Subcommand:
    """One ``napari-gifnet`` subcommand.

    Attributes
    ----------
    help
        One-line description shown by ``napari-gifnet --help``.
    add_arguments
        Adds the subcommand's arguments to its parser.
    run
        Does the work and returns the exit status; raises :class:`UsageError`
        or one of :data:`EXPECTED_ERRORS` on failure.
    """

    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


# -- fuse -------------------------------------------------------------------


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


class _Progress:
    """``progress(done, total)`` callback printing a percentage on a terminal."""

    def __init__(self, stream: TextIO, enabled: bool) -> None:
        self.stream, self.enabled, self.last = stream, enabled, -1

    def __call__(self, done: int, total: int) -> None:
        percent = int(100 * done / total) if total > 0 else 100
        if self.enabled and percent != self.last:
            self.stream.write(f"\rfusing: {percent:3d}%")
            self.stream.flush()
            self.last = percent

    def close(self) -> None:
        if self.enabled and self.last >= 0:
            self.stream.write("\r" + " " * len("fusing: 100%") + "\r")
            self.stream.flush()
            self.last = -1


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


def check_output(path: str, inputs: Sequence[str], option: str = "-o") -> Path:
    """An output path checked before any work: a format that holds a float32 grey or
    RGB image (every format does, once the extension is known), not a directory,
    in an existing folder, and not one of the ``inputs`` (:mod:`napari_gifnet.safe_files`).
    """
    from . import io
    from .safe_files import check_output_file

    output = Path(path)
    try:
        io.check_writable(output, "float32")
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    check_output_file(output, option)
    _not_an_input({option: output}, inputs)
    return output


def _not_an_input(outputs: dict[str, Any], inputs: Sequence[str]) -> None:
    """:func:`napari_gifnet.safe_files.check_outputs`, as a usage error (exit status 2)."""
    from .safe_files import OutputIsInputError, check_outputs

    try:
        check_outputs(outputs, inputs)
    except OutputIsInputError as exc:
        raise UsageError(str(exc)) from None


def check_single_image(path: str) -> None:
    """Refuse, from the header, a file that holds a stack rather than one image."""
    from . import io

    shape, _ = io.image_info(path)
    colour = len(shape) == 3 and shape[-1] in (3, 4)
    if len(shape) > 2 and not colour:
        raise ValueError(
            f"{path} holds a stack (shape {tuple(shape)}), not one image: `{PROG} fuse` fuses "
            f"two images; for a focus stack use `{PROG} stack {path} -o OUT`"
        )


def _run_fuse(args: argparse.Namespace) -> int:
    from . import io
    from .safe_files import check_output_folder

    output = check_output(args.output, [args.a, args.b])
    if args.features:
        check_output_folder(args.features, "--features")
        _not_an_input({"--features": args.features}, [args.a, args.b])
    if args.tile_size is not None and args.tile_size < 8:
        raise UsageError(f"--tile-size {args.tile_size} is too small: the smallest tile is 8")
    from .devices import resolve_device  # imports torch

    try:
        resolve_device(args.device)
    except ValueError as exc:
        raise UsageError(f"--device: {exc}") from None
    for path in (args.a, args.b):
        check_single_image(path)
    a, b = io.read_image(args.a), io.read_image(args.b)

    from .engine import fuse

    progress = _Progress(sys.stderr, not args.quiet and sys.stderr.isatty())
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


# -- weights ----------------------------------------------------------------


def _add_weights_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--weights", metavar="W", help="a checkpoint file to include in the search")


def _run_weights(args: argparse.Namespace) -> int:
    from .weights import describe_weights_search  # imports torch

    text = describe_weights_search(args.weights)
    print(text)
    if "Found: nothing" in text or "Found: ERROR" in text:
        print("(informational: no usable weights file is on disk yet)")
    return 0


# -- evaluate ---------------------------------------------------------------

_DEFAULT_METHODS = "gifnet,mean,max,laplacian,dwt,guided,mertens"


def _add_evaluate_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "pairs", metavar="PAIRS_DIR", nargs="?",
        help="folder of pairs: first/ + second/ (+ truth/) with matching file names, "
        "or <name>/a_*.<ext> + <name>/b_*.<ext> subfolders",
    )
    parser.add_argument(
        "--multifocus-set", type=int, metavar="N",
        help="instead of PAIRS_DIR: a generated multi-focus set of N scenes with ground truth",
    )
    parser.add_argument(
        "--size", type=int, default=256, help="side of the generated scenes (default 256)"
    )
    parser.add_argument(
        "--methods", default=_DEFAULT_METHODS,
        help=f"comma-separated fusion methods (default {_DEFAULT_METHODS})",
    )
    parser.add_argument(
        "--out", required=True, metavar="DIR",
        help="output folder for metrics.csv and metrics.md (created if needed)",
    )
    parser.add_argument("--weights", metavar="W", help="GIFNet checkpoint file (default: search)")
    parser.add_argument(
        "--device", default="auto", help="auto (default), cpu, cuda, cuda:N or mps"
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="print nothing but errors")


def _run_evaluate(args: argparse.Namespace) -> int:
    from .baselines import BASELINES

    if (args.pairs is None) == (args.multifocus_set is None):
        raise UsageError("give either PAIRS_DIR or --multifocus-set N")
    methods = [m.strip().lower() for m in args.methods.split(",") if m.strip()]
    valid = ["gifnet", *BASELINES]
    unknown = [m for m in methods if m not in valid]
    if not methods or unknown:
        raise UsageError(
            f"--methods: unknown method(s) {', '.join(unknown) or '(none given)'}; "
            f"valid: {', '.join(valid)}"
        )
    from . import evaluation
    from .safe_files import check_output_folder

    check_output_folder(args.out, "--out")  # before any work
    if args.multifocus_set is not None:
        try:
            pairs = evaluation.generate_multifocus_set(args.multifocus_set, args.size)
        except ValueError as exc:
            raise UsageError(f"--multifocus-set: {exc}") from None
    else:
        pairs = evaluation.load_pair_folder(args.pairs)
    if "gifnet" in methods:
        from .devices import resolve_device  # imports torch

        try:
            resolve_device(args.device)
        except ValueError as exc:
            raise UsageError(f"--device: {exc}") from None
    from .safe_files import atomic_write_text, check_output_folder

    out = check_output_folder(args.out, "--out")
    out.mkdir(parents=True, exist_ok=True)

    def progress(done: int, total: int, label: str) -> None:
        if not args.quiet and sys.stderr.isatty():
            sys.stderr.write(f"\r\033[Kevaluating {done}/{total}: {label}")
            sys.stderr.flush()
            if done == total:
                sys.stderr.write("\r\033[K")

    rows = evaluation.evaluate_pairs(
        pairs, methods, weights=args.weights, device=args.device, progress=progress
    )
    evaluation.to_csv(rows, out / "metrics.csv")
    table = evaluation.to_markdown(rows)
    atomic_write_text(out / "metrics.md", table)
    if not args.quiet:
        print(evaluation.to_markdown(rows, per_pair=False), end="")
        print(f"wrote {out / 'metrics.csv'} and {out / 'metrics.md'}")
    return 0


def _training_cli() -> Any:
    """The ``train`` subcommand's module, imported lazily (it needs torch and timm)."""
    from .training import cli as training_cli

    return training_cli


#: The subcommands, by name.
COMMANDS: dict[str, Subcommand] = {
    "fuse": Subcommand("fuse two registered images", _add_fuse_arguments, _run_fuse),
    "weights": Subcommand(
        "explain where the GIFNet weights are looked for", _add_weights_arguments, _run_weights
    ),
    "evaluate": Subcommand(
        "score fusion methods on image pairs (metrics.csv, metrics.md)",
        _add_evaluate_arguments,
        _run_evaluate,
    ),
    "train": Subcommand(
        "train or fine-tune GIFNet on a folder of aligned pairs",
        lambda parser: _training_cli().add_arguments(parser),
        lambda args: _training_cli().run(args),
    ),
}


# -- stack, pansharpen, enhance (in _cli_more) ------------------------------

from ._cli_more import MORE_COMMANDS  # noqa: E402 - _cli_more imports this module

COMMANDS.update(MORE_COMMANDS)


# -- driver -----------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    """The argument parser, with one subparser per entry of :data:`COMMANDS`."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="GIFNet image fusion (Cheng et al., CVPR 2025) from the command line.",
        epilog="exit status: 0 success, 1 error during the run, 2 invalid command line,\n"
        "130 interrupted, 143 terminated",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, command in COMMANDS.items():
        child = sub.add_parser(name, help=command.help, description=command.help)
        command.add_arguments(child)
    return parser


def _error(message: str) -> None:
    first, *rest = message.strip().splitlines() or [""]
    lines = [f"{PROG}: error: {first}", *(f"  {line}" for line in rest)]
    print("\n".join(lines), file=sys.stderr)


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    if isinstance(exc, KeyError):  # str() of a KeyError is its repr
        text = str(exc.args[0]) if exc.args else ""
    elif isinstance(exc, OSError) and exc.filename is None and exc.strerror:
        text = exc.strerror  # "cannot write PATH: no space left on device", without "[Errno 28]"
    return text or type(exc).__name__


def _show_warning(message: Any, category: Any, *args: Any, **kwargs: Any) -> None:
    print(f"{PROG}: warning: {message}", file=sys.stderr)


#: Options whose value may be a range starting with a minus sign (``-1000,3000``).
_RANGE_OPTIONS = ("--normalization",)


def _join_negative_ranges(argv: Sequence[str]) -> list[str]:
    """``--normalization -1,1`` -> ``--normalization=-1,1`` (argparse takes ``-1,1``
    for an option otherwise)."""
    out: list[str] = []
    items = list(argv)
    i = 0
    while i < len(items):
        item = items[i]
        nxt = items[i + 1] if i + 1 < len(items) else None
        if item in _RANGE_OPTIONS and nxt is not None and nxt.startswith("-") and "," in nxt:
            out.append(f"{item}={nxt}")
            i += 2
            continue
        out.append(item)
        i += 1
    return out


class _Terminated(KeyboardInterrupt):
    """SIGTERM, handled like Ctrl-C: files being written are cleaned up."""


@contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """While running a command in the main thread, SIGTERM raises :class:`_Terminated`."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        raise _Terminated()

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status.

    Parameters
    ----------
    argv
        The arguments without the program name; None uses ``sys.argv[1:]``.
    """
    parser = build_parser()
    try:
        args = parser.parse_args(_join_negative_ranges(sys.argv[1:] if argv is None else argv))
    except SystemExit as exc:  # --help, --version, or a usage error (already printed)
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else EXIT_USAGE)
    if args.command is None:
        parser.print_usage(sys.stderr)
        _error(f"a command is required: {', '.join(COMMANDS)}")
        return EXIT_USAGE
    with warnings.catch_warnings(), _terminate_as_interrupt():
        warnings.showwarning = _show_warning
        try:
            return COMMANDS[args.command].run(args)
        except KeyboardInterrupt as exc:
            print(f"\n{PROG}: {'terminated' if isinstance(exc, _Terminated) else 'interrupted'}",
                  file=sys.stderr)  # fmt: skip
            return EXIT_TERMINATED if isinstance(exc, _Terminated) else EXIT_INTERRUPTED
        except UsageError as exc:
            _error(_describe(exc))
            return EXIT_USAGE
        except EXPECTED_ERRORS as exc:
            _error(_describe(exc))
            return EXIT_ERROR


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
