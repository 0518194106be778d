"""``napari-gifnet train``: train or fine-tune GIFNet on a folder of aligned pairs."""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Callable
from typing import Any

from .common import PROG, Subcommand, UsageError

_EPILOG = """\
The folder holds DIR/first/ (the modality input: infrared, fluorescence, ...)
and DIR/second/ (the aligned reference image the near/far focus pair is made
from), with matching file names; PNG, JPEG or TIFF, any bit depth.

Written next to OUT (e.g. run.pth): run.pth (the weights, loadable wherever
the published checkpoint is: --weights run.pth), run.train.pt (optimiser state
for --resume), run.log.csv (loss terms per step), run.loss.png (loss curves),
run.train.json (settings and provenance). They are written together at each
checkpoint. Before training starts OUT's folder is checked (writable, none of
the five a directory, an input file or in DIR/first/ or DIR/second/) and every
image is decoded once.

The common loss uses the published training code's MS-SSIM (--ssim published,
the default: 5 levels, data range from the reconstruction, (x + 1) / 2) or
the standard one (--ssim standard: data range 1, fewer scales on small crops).

DenseNet-121 weights for the information-weighted loss: --densenet-weights,
else GIFNET_DENSENET_WEIGHTS, else timm's hub, else a randomly initialised
DenseNet-121 (said in one note line at the start, recorded in run.train.json).
Offline, pass a saved ImageNet DenseNet-121 state_dict with --densenet-weights.
"""


def _number(convert: Callable[[str], Any], valid: Callable[[Any], bool], needed: str
            ) -> Callable[[str], Any]:  # fmt: skip
    """An argparse type: ``convert(text)`` where ``valid``, else an error asking for ``needed``."""

    def parse(text: str) -> Any:
        try:
            value = convert(text)
        except ValueError:
            value = None
        if value is None or not valid(value):
            raise argparse.ArgumentTypeError(f"invalid value {text!r}: {needed} is needed")
        return value

    return parse


_positive_int = _number(int, lambda v: v >= 1, "a positive integer")
_workers = _number(int, lambda v: v >= 0, "0 or a positive integer")
_positive_float = _number(float, lambda v: 0 < v < float("inf"), "a positive number")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``train`` subcommand's arguments to ``parser``."""
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = _EPILOG
    parser.add_argument("--pairs", required=True, metavar="DIR",
                        help="training folder with first/ and second/ subfolders")
    parser.add_argument("--out", required=True, metavar="CKPT",
                        help="checkpoint to write (other outputs are named after it); "
                        "without --resume, an existing CKPT and its other outputs are "
                        "replaced by the new run's, each atomically, at its first checkpoint")
    parser.add_argument("--init", default="published", metavar="published|scratch|FILE",
                        help="start from the published checkpoint (default), random weights, "
                        "or a checkpoint file")
    parser.add_argument("--epochs", type=_positive_int, default=None, metavar="N",
                        help="passes over the folder (default 2, or unlimited with --max-steps)")
    parser.add_argument("--max-steps", type=_positive_int, default=None, metavar="N",
                        help="stop after N steps (batches; two optimiser steps each)")
    parser.add_argument("--batch-size", type=_positive_int, default=8, metavar="N",
                        help="pairs per batch (default 8)")
    parser.add_argument("--crop", type=_positive_int, default=128, metavar="N",
                        help="side of the random square crops (default 128, at least 29: "
                        "DenseNet-121 of the multimodal loss needs it)")
    parser.add_argument("--lr", type=_positive_float, default=1e-3, metavar="X",
                        help="Adam learning rate (default 1e-3, the published one; try 1e-4 "
                        "to fine-tune)")
    parser.add_argument("--seed", type=int, default=0, metavar="N", help="random seed (default 0)")
    parser.add_argument("--device", default="auto", metavar="D",
                        help="auto (default), cpu, cuda, cuda:N or mps")
    parser.add_argument("--checkpoint-every", type=_positive_int, default=200, metavar="N",
                        help="write the checkpoint every N steps (default 200) and at the end")
    parser.add_argument("--resume", action="store_true",
                        help="continue the run that wrote CKPT (same pairs, crop, batch size, "
                        "seed and lr)")
    parser.add_argument("--densenet-weights", default=None, metavar="FILE",
                        help="local DenseNet-121 weights file (timm or torchvision state_dict)")
    parser.add_argument("--no-hub", action="store_true",
                        help="do not try timm's hub for the DenseNet-121 weights")
    parser.add_argument("--ssim", choices=("published", "standard"), default="published",
                        help="MS-SSIM of the common loss: the published training code's variant "
                        "(default) or the standard definition (data range 1)")
    parser.add_argument("--workers", type=_workers, default=None, metavar="N",
                        help="processes building the training samples (default min(2, CPUs), "
                        "0 on one CPU; 0: in the training process); no value changes")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    """Run ``napari-gifnet train``; returns the exit status."""
    from ..training.dataset import CROP_REASON, MIN_CROP, check_crop
    from ..training.loop import TrainConfig, train

    try:  # here, not as an argparse type: usage errors of a run print one line
        check_crop(args.crop)
    except ValueError:
        raise UsageError(f"argument --crop: invalid value {args.crop}: at least {MIN_CROP} is "
                         f"needed ({CROP_REASON})") from None  # fmt: skip
    init = args.init.strip()
    config = TrainConfig(
        pairs=args.pairs, out=args.out, init=init.lower() if init.lower() in ("published", "scratch")
        else init, epochs=args.epochs, max_steps=args.max_steps, batch_size=args.batch_size,
        crop=args.crop, lr=args.lr, seed=args.seed, device=args.device,
        checkpoint_every=args.checkpoint_every, resume=args.resume,
        densenet_weights=args.densenet_weights, densenet_hub=not args.no_hub, ssim=args.ssim,
        workers=args.workers, progress=not args.no_progress and sys.stderr.isatty(),
    )  # fmt: skip
    result = _train_with_notes(train, config)
    summary = f"trained {result.steps} steps; weights: {result.checkpoint}; log: {result.log}"
    if result.rows:
        summary += f"; last total loss {result.rows[-1]['total']:.4f}"
    if result.plot is not None:
        summary += f"; curves: {result.plot}"
    print(summary)
    return 0


def _train_with_notes(train: Any, config: Any) -> Any:
    """``train(config)``, printing the DenseNet-121 fallback as one note line on stderr."""
    from ..training.features import DenseNetFallbackWarning

    with warnings.catch_warnings():
        warnings.simplefilter("always", DenseNetFallbackWarning)
        shown = warnings.showwarning

        def show(message: Any, category: Any, *args: Any, **kwargs: Any) -> None:
            if issubclass(category, DenseNetFallbackWarning):
                print(f"{PROG} train: note: {message}", file=sys.stderr, flush=True)
            else:
                shown(message, category, *args, **kwargs)

        warnings.showwarning = show
        return train(config)


#: The subcommand (torch and timm are imported only when it runs).
COMMAND = Subcommand("train or fine-tune GIFNet on a folder of aligned pairs", add_arguments, run)
