"""``napari-gifnet evaluate``: score fusion methods on image pairs."""

from __future__ import annotations

import argparse
import sys

from .common import Subcommand, UsageError, check_files


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
        "--methods", default=None,
        help="comma-separated fusion methods (default: all, gifnet and every baseline)",
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
    from ..methods.registry import method_keys, method_names

    if (args.pairs is None) == (args.multifocus_set is None):
        raise UsageError("give either PAIRS_DIR or --multifocus-set N")
    names = list(method_names()) if args.methods is None else [
        m for m in args.methods.split(",") if m.strip()]
    if not names:
        raise UsageError(f"--methods: none given; valid: {', '.join(method_names())}")
    try:
        methods = method_keys(names)
    except ValueError as exc:
        raise UsageError(f"--methods: {exc}") from None
    from ..metrics import evaluation
    from ..util.safe_files import check_output_folder

    out = check_output_folder(args.out, "--out")  # before any work
    check_files({"--out metrics.csv": out / "metrics.csv", "--out metrics.md": out / "metrics.md"},
                folders=[args.pairs] if args.pairs is not None else [])  # fmt: skip
    if args.multifocus_set is not None:
        try:
            pairs = evaluation.generate_multifocus_set(args.multifocus_set, args.size)
        except ValueError as exc:
            raise UsageError(f"--multifocus-set: {exc}") from None
    else:
        pairs = evaluation.load_pair_folder(args.pairs)
    if "gifnet" in methods:
        from ..engine.devices import resolve_device  # imports torch

        try:
            resolve_device(args.device)
        except ValueError as exc:
            raise UsageError(f"--device: {exc}") from None
    from ..util.safe_files import atomic_write_text, check_output_folder

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


#: The subcommand.
COMMAND = Subcommand(
    "score fusion methods on image pairs (metrics.csv, metrics.md)",
    _add_evaluate_arguments,
    _run_evaluate,
)
