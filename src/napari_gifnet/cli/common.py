"""What every command shares: exit codes, the usage error, the subcommand record,
the progress line and the checks made before any work (outputs, inputs, device)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

PROG = "napari-gifnet"

#: What every command's single output does to an existing file (said in each --help).
REPLACES = ("an existing file is replaced atomically: only once the new one is complete "
            "(a failed or interrupted run leaves it as it was)")

#: What a batch (``fuse --pairs``, ``stack --stacks``) does with the outputs of a
#: former run (said in each --help).
SKIPS = ("a re-run skips every item whose outputs are all written; --overwrite redoes "
         "them, replacing each file atomically")

#: What a TIFF output holds (said in each --help; ``{}``: the input whose pixel size it gets).
TIFF_OUTPUT = ("an ImageJ-compatible TIFF with the provenance as JSON and the pixel size of "
               "{}, when that is a TIFF that has one")

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


def size_text(height: int, width: int) -> str:
    """An image's size as every command prints it: ``"W x H px (width x height)"``."""
    return f"{width} x {height} px (width x height)"


class UsageError(Exception):
    """An invalid command line found by a subcommand (exit status 2)."""

@dataclass(frozen=True)
class Subcommand:
    """One ``napari-gifnet`` subcommand: its one-line ``help`` (shown by ``napari-gifnet
    --help``), ``add_arguments(parser)``, and ``run(args)``, which does the work and returns
    the exit status, raising :class:`UsageError` or one of :data:`EXPECTED_ERRORS` on failure.
    """

    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]

class Progress:
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

def check_output(path: str, allowed: tuple[str, ...] | None = None, option: str = "-o") -> Path:
    """An output path checked before any work: a format that holds a float32 grey or
    RGB image (every format does, once the extension is known:
    :func:`napari_gifnet.io.formats.check_writable` refuses the others), one of the
    ``allowed`` extensions, not a directory, in an existing folder.
    :func:`check_files` then checks it against the inputs.
    """
    from ..io import formats
    from ..util.safe_files import check_output_file

    output = Path(path)
    try:
        formats.check_writable(output, "float32")
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    check_output_file(output, option)
    if allowed is not None and output.suffix.lower() not in allowed:
        raise UsageError(f"{output}: use one of {', '.join(allowed)}")
    return output

def check_files(outputs: Mapping[str, Path | str | None], inputs: Iterable[Path | str] = (),
                folders: Iterable[Path | str] = ()) -> None:  # fmt: skip
    """The one check of every command, before any work: every file it will write
    against every file and folder it reads, and against each other, and the
    output folders writable (:func:`napari_gifnet.util.safe_files.check_output_set`).

    An output that is an input, lies in an input folder or is also another
    output is a usage error (exit status 2); an output that cannot be written
    (a directory, a read-only folder) a ``ValueError`` (exit status 1).
    """
    from ..util.safe_files import OutputIsInputError, check_output_set

    try:
        check_output_set(outputs, inputs, folders)
    except OutputIsInputError as exc:
        raise UsageError(str(exc)) from None

def check_single_image(path: str) -> None:
    """Refuse, from the header, a file that holds a stack rather than one image."""
    from ..io import images as io

    shape, _ = io.image_info(path)
    colour = len(shape) == 3 and shape[-1] in (3, 4)
    if len(shape) == 3 and shape[-1] == 2:  # samples per pixel, not planes
        raise ValueError(f"{path} is a 2-channel image (shape {tuple(shape)}), not one grey or "
                         "RGB image: save the channel to fuse as its own file")  # fmt: skip
    if len(shape) > 2 and not colour:
        raise ValueError(f"{path} holds a stack (shape {tuple(shape)}), not one image: `{PROG} "
                         f"fuse` fuses two images; for a focus stack use `{PROG} stack {path} "
                         "-o OUT`")  # fmt: skip

def add_common_gifnet(parser: argparse.ArgumentParser, quiet: bool = True) -> None:
    """``--weights`` and ``--device``, then (``quiet``) ``-q/--quiet``."""
    parser.add_argument("--weights", metavar="W", help="GIFNet checkpoint file (default: search)")
    parser.add_argument("--device", default="auto", help="auto (default), cpu, cuda, cuda:N or mps")
    if quiet:
        parser.add_argument("-q", "--quiet", action="store_true", help="print nothing but errors")

def input_files(inputs: list[str]) -> list[str]:
    """The files named by ``inputs``, a folder standing for the images in it."""
    from ..io import formats

    files: list[str] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            files.extend(str(f) for f in sorted(p.iterdir())
                         if f.suffix.lower() in formats.READ_EXTENSIONS)  # fmt: skip
        files.append(item)
    return files

def check_device(args: argparse.Namespace, needed: bool = True) -> None:
    """Refuse an unusable ``--device`` (a usage error) where the method ``needed`` it."""
    if not needed:
        return
    from ..engine.devices import resolve_device  # imports torch

    try:
        resolve_device(args.device)
    except ValueError as exc:
        raise UsageError(f"--device: {exc}") from None


@contextmanager
def progress_line(quiet: bool) -> Iterator[Progress]:
    """A :class:`Progress` on stderr (shown on a terminal unless ``quiet``), closed at the end."""
    progress = Progress(sys.stderr, not quiet and sys.stderr.isatty())
    try:
        yield progress
    finally:
        progress.close()


@dataclass(frozen=True)
class BatchJob:
    """One item of a batch (``fuse --pairs``, ``stack --stacks``): its name, every
    file it writes and the work that writes them; a re-run skips it when :attr:`finished`."""

    name: str
    outputs: tuple[Path, ...]
    run: Callable[[], None]

    @property
    def finished(self) -> bool:
        """Whether every output is written: a non-empty regular file (a 0-byte file or a
        folder named like an output is not)."""
        from ..util.safe_files import finished_output

        return all(finished_output(p) for p in self.outputs)


def run_batch(jobs: Sequence[BatchJob], *, kind: str, source: Path, outdir: Path, overwrite: bool,
              quiet: bool, failed: Sequence[tuple[str, str]] = ()) -> int:  # fmt: skip
    """Run a batch into ``outdir`` (made if needed): finished outputs skipped unless
    ``overwrite``, a tqdm bar, a job that fails (one of :data:`EXPECTED_ERRORS` or a
    :class:`UsageError`) reported by name while the others go on, a summary; returns
    :data:`EXIT_ERROR` if anything failed.

    ``kind`` names an item in the messages (``"pair"``, ``"stack"``); ``failed``
    holds items refused before the batch (name, why).
    """
    from tqdm.auto import tqdm

    outdir.mkdir(parents=True, exist_ok=True)
    failures = list(failed)
    todo = [job for job in jobs if overwrite or not job.finished]
    skipped, done = len(jobs) - len(todo), 0
    bar = tqdm(todo, unit=kind, desc=f"{kind}s", disable=quiet or not todo, file=sys.stderr,
               dynamic_ncols=True)  # fmt: skip
    try:
        for job in bar:
            bar.set_postfix_str(job.name, refresh=False)
            try:
                job.run()
                done += 1
            except (UsageError, *EXPECTED_ERRORS) as exc:
                text = str(exc).strip()
                failures.append((job.name, text.splitlines()[0] if text else type(exc).__name__))
                bar.write(f"{PROG}: {kind} {job.name!r} failed: {failures[-1][1]}", file=sys.stderr)
    finally:
        bar.close()
    if not quiet:
        again = " (already written; --overwrite fuses them again)" if skipped else ""
        print(f"fused {done} {kind}(s) from {source} -> {outdir}, skipped {skipped}{again}, "
              f"failed {len(failures)}")  # fmt: skip
    for name, why in failures:
        print(f"  failed: {name}: {why}", file=sys.stderr)
    return EXIT_ERROR if failures else 0
