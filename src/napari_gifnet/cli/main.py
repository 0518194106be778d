"""The ``napari-gifnet`` command line.

Each command is a module of this package, of the command's name, defining
``COMMAND``, a :class:`~napari_gifnet.cli.common.Subcommand` (help,
``add_arguments(parser)``, ``run(args) -> int``), listed in :data:`COMMAND_MODULES`.

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
import sys
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from importlib import import_module
from typing import Any

from .. import __version__
from .common import (
    EXIT_ERROR,
    EXIT_INTERRUPTED,
    EXIT_TERMINATED,
    EXIT_USAGE,
    EXPECTED_ERRORS,
    PROG,
    Subcommand,
    UsageError,
)

#: The commands, in the order ``--help`` lists them, each the module of this package
#: defining its ``COMMAND``; imported when the parser is built (none imports torch).
COMMAND_MODULES = ("fuse", "register", "weights", "evaluate", "train", "stack", "pansharpen",
                   "enhance")  # fmt: skip


def commands() -> dict[str, Subcommand]:
    """The subcommands, by name."""
    return {name: import_module(f"{__package__}.{name}").COMMAND for name in COMMAND_MODULES}


def build_parser() -> argparse.ArgumentParser:
    """The argument parser, with one subparser per command."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="GIFNet image fusion (Cheng et al., CVPR 2025) from the command line.",
        epilog="exit status: 0 success, 1 error during the run, 2 invalid command line,\n"
        "130 interrupted, 143 terminated",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, command in commands().items():
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
    for item in argv:
        if out and out[-1] in _RANGE_OPTIONS and item.startswith("-") and "," in item:
            out[-1] = f"{out[-1]}={item}"
        else:
            out.append(item)
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
        _error(f"a command is required: {', '.join(COMMAND_MODULES)}")
        return EXIT_USAGE
    with warnings.catch_warnings(), _terminate_as_interrupt():
        warnings.showwarning = _show_warning
        try:
            return commands()[args.command].run(args)
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
