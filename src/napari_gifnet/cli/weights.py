"""``napari-gifnet weights``: explain where the GIFNet weights are looked for."""

from __future__ import annotations

import argparse

from .common import Subcommand


def _add_weights_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--weights", metavar="W", help="a checkpoint file to include in the search")

def _run_weights(args: argparse.Namespace) -> int:
    from ..model.weights import describe_weights_search  # imports torch

    text = describe_weights_search(args.weights)
    print(text)
    if "Found: nothing" in text or "Found: ERROR" in text:
        print("(informational: no usable weights file is on disk yet)")
    return 0


#: The subcommand.
COMMAND = Subcommand(
    "explain where the GIFNet weights are looked for", _add_weights_arguments, _run_weights
)
