"""``napari-gifnet evaluate``: score fusion methods on image pairs."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .common import Subcommand, UsageError, add_common_gifnet, check_device, check_files


def _add_evaluate_arguments(parser: argparse.ArgumentParser) -> None:
    from ..methods.presets import task_keys
    from ..metrics.fusion import CONVENTIONS

    parser.add_argument("pairs", metavar="PAIRS_DIR", nargs="?",
                        help="folder of pairs: first/ + second/ (+ truth/) with matching file "
                        "names, or <name>/a_*.<ext> + <name>/b_*.<ext> subfolders; with --truth "
                        "it may instead hold results already made (images, or one subfolder of "
                        "images per method)")  # fmt: skip
    parser.add_argument("--truth", metavar="DIR",
                        help="folder of ground-truth images, matched by name: scores PSNR and "
                        "SSIM (and the --task's metrics) against them")  # fmt: skip
    parser.add_argument("--task", choices=task_keys(), default=None,
                        help="the task, for its own metrics against --truth (remote: ERGAS, SAM, "
                        "Q, Q2n, sCC of every band)")  # fmt: skip
    parser.add_argument("--convention", choices=tuple(CONVENTIONS), default="project",
                        help="whose metric conventions: project (default), cddfuse (the "
                        "CDDFuse/EMMA evaluator) or vifb (VIFB, per colour band); see "
                        "docs/evaluation.md")  # fmt: skip
    parser.add_argument("--multifocus-set", type=int, metavar="N",
                        help="instead of PAIRS_DIR: a generated multi-focus set of N scenes with "
                        "ground truth")  # fmt: skip
    parser.add_argument("--size", type=int, default=256,
                        help="side of the generated scenes (default 256)")  # fmt: skip
    parser.add_argument("--methods", default=None,
                        help="comma-separated fusion methods (default: all, gifnet and every "
                        "baseline)")  # fmt: skip
    parser.add_argument("--out", required=True, metavar="DIR",
                        help="output folder for metrics.csv and metrics.md (created if needed); "
                        "an existing metrics.csv or metrics.md there is replaced atomically (a "
                        "failed run leaves it as it was)")  # fmt: skip
    add_common_gifnet(parser)

def _run_evaluate(args: argparse.Namespace) -> int:
    from ..methods.registry import method_keys, method_names

    if (args.pairs is None) == (args.multifocus_set is None):
        raise UsageError("give either PAIRS_DIR or --multifocus-set N")
    if args.task is not None and args.truth is None:
        raise UsageError("--task chooses the metrics against --truth: give --truth DIR too")
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
                folders=[f for f in (args.pairs, args.truth) if f is not None])  # fmt: skip
    if args.truth is not None and args.pairs is not None \
            and not evaluation.is_pair_folder(args.pairs):  # results already made: score them
        rows = evaluation.score_folder(args.pairs, args.truth, task=args.task,
                                       convention=args.convention)  # fmt: skip
        return _write(rows, out, args.quiet)
    if args.multifocus_set is not None:
        try:
            pairs = evaluation.generate_multifocus_set(args.multifocus_set, args.size)
        except ValueError as exc:
            raise UsageError(f"--multifocus-set: {exc}") from None
    else:
        pairs = evaluation.load_pair_folder(args.pairs)
    if args.truth is not None:
        pairs = evaluation.attach_truths(pairs, args.truth)
    check_device(args, "gifnet" in methods)

    def progress(done: int, total: int, label: str) -> None:
        if not args.quiet and sys.stderr.isatty():
            sys.stderr.write(f"\r\033[Kevaluating {done}/{total}: {label}")
            sys.stderr.flush()
            if done == total:
                sys.stderr.write("\r\033[K")

    rows = evaluation.evaluate_pairs(pairs, methods, weights=args.weights, device=args.device,
                                     progress=progress, convention=args.convention)  # fmt: skip
    return _write(rows, out, args.quiet)


def _write(rows: list, out: Path, quiet: bool) -> int:
    """Write metrics.csv and metrics.md to ``out``; print the summary unless ``quiet``."""
    from ..metrics import evaluation
    from ..util.safe_files import atomic_write_text

    out.mkdir(parents=True, exist_ok=True)
    evaluation.to_csv(rows, out / "metrics.csv")
    atomic_write_text(out / "metrics.md", evaluation.to_markdown(rows))
    if not quiet:
        print(evaluation.to_markdown(rows, per_pair=False), end="")
        print(f"wrote {out / 'metrics.csv'} and {out / 'metrics.md'}")
    return 0


#: The subcommand.
COMMAND = Subcommand("score fusion methods on image pairs (metrics.csv, metrics.md)",
                     _add_evaluate_arguments, _run_evaluate)  # fmt: skip
