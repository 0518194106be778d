"""Writing files without losing any: outputs never replace inputs, every write is atomic.

The promises (docs/engine.md, "What napari-gifnet promises about your files"):

* An output that resolves to an input (the same path after ``..`` and
  symbolic links are resolved, or the same file through a hard link) is
  refused by :func:`check_outputs` before anything is read or computed.
* :func:`atomic_write` writes a file to a temporary name in the destination
  folder and renames it over the target only once it is complete, flushed
  and synced: Ctrl-C, a crash or a full disk leave no partial file, and an
  existing file at the target stays as it was.
* A failed write is an error, never a success: the file object is flushed,
  synced and closed explicitly, not in a destructor, and a full disk is
  reported as ``OSError`` "cannot write PATH: no space left on device".

No torch import happens here.
"""

from __future__ import annotations

import errno
import os
import re
import secrets
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, Union

PathLike = Union[str, "os.PathLike[str]"]

#: Marks the temporary files of :func:`atomic_write` (``.NAME.<token>.partial.EXT``).
PARTIAL_MARK = ".partial"

_NO_SPACE = (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC))
#: numpy's ``tofile`` on a full disk: "65536 requested and 15304 written" (no errno).
_SHORT_WRITE = re.compile(r"\d+ requested and \d+ written")


class OutputIsInputError(ValueError):
    """An output path names one of the inputs (or another output)."""


def same_file(a: PathLike, b: PathLike) -> bool:
    """Whether two paths name the same file.

    The same after resolving ``..`` and symbolic links, or, where both
    exist, the same file on disk (``os.path.samefile``: hard links too).
    """
    pa, pb = Path(a).expanduser(), Path(b).expanduser()
    if pa.resolve() == pb.resolve():
        return True
    try:
        return os.path.samefile(pa, pb)
    except OSError:  # one of them does not exist (yet)
        return False


def check_outputs(
    outputs: Mapping[str, PathLike | None], inputs: Iterable[PathLike]
) -> None:
    """Refuse outputs that are inputs, or that name the same file twice.

    Parameters
    ----------
    outputs
        What to call each output in a message (e.g. ``"-o"``,
        ``"--depth-map"``) -> its path; None entries are skipped.
    inputs
        The input files (or folders: an output inside an input folder is
        fine, an output that *is* one is not).

    Raises
    ------
    OutputIsInputError
        Naming the option, its path and the input it resolves to.
    """
    sources = [Path(p) for p in inputs]
    seen: list[tuple[str, Path]] = []
    for option, value in outputs.items():
        if value is None:
            continue
        path = Path(value)
        for source in sources:
            if same_file(path, source):
                alias = "" if str(path) == str(source) else f" (the same file as {source})"
                raise OutputIsInputError(
                    f"{option} {path} is an input{alias}: inputs are never overwritten; "
                    "choose another output name"
                )
        for other, earlier in seen:
            if same_file(path, earlier):
                raise OutputIsInputError(f"{option} {path} is also the {other} output")
        seen.append((option, path))


def check_output_file(path: PathLike, option: str = "output") -> Path:
    """Check, before any work, that a file can be created at ``path``.

    ``path`` must not be an existing directory and its folder must exist and
    be a directory.

    Raises
    ------
    FileNotFoundError
        The folder does not exist.
    ValueError
        ``path`` is a directory, or its folder is a file.
    """
    p = Path(path)
    if p.is_dir():
        raise ValueError(f"{option} {p} is an existing directory: name a file")
    parent = p.absolute().parent
    if parent.exists() and not parent.is_dir():
        raise ValueError(f"{option} {p}: {parent} is not a directory")
    if not parent.is_dir():
        ancestor = _existing_ancestor(parent)
        if not ancestor.is_dir():
            raise ValueError(f"{option} {p}: {ancestor} is not a directory")
        raise FileNotFoundError(f"output folder does not exist: {parent}")
    return p


def check_output_folder(path: PathLike, option: str = "output folder") -> Path:
    """Check, before any work, that ``path`` is a folder or can be created as one.

    Raises
    ------
    ValueError
        ``path`` (or the nearest of its ancestors that exists) is not a
        directory.
    """
    p = Path(path)
    ancestor = _existing_ancestor(p.absolute())
    if not ancestor.is_dir():
        what = "is an existing file" if ancestor == p.absolute() else f"is under the file {ancestor}"
        raise ValueError(f"{option} {p} {what}: name a folder")
    return p


def _existing_ancestor(p: Path) -> Path:
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def _target(path: PathLike) -> Path:
    """The file a write to ``path`` replaces (a symbolic link is written through)."""
    p = Path(path).expanduser()
    return p.resolve() if p.is_symlink() else p.absolute()


def _open_temporary(target: Path) -> tuple[BinaryIO, Path]:
    """A new file beside ``target``, opened for binary writing (mode 0666 less the umask)."""
    for _ in range(100):
        tmp = target.with_name(
            f".{target.stem}.{secrets.token_hex(4)}{PARTIAL_MARK}{target.suffix}"
        )
        try:
            return open(tmp, "xb"), tmp  # O_CREAT | O_EXCL, mode 0666 less the umask
        except FileExistsError:
            continue
    raise FileExistsError(f"cannot create a temporary file beside {target}")  # pragma: no cover


def _no_space(exc: BaseException) -> bool:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno in _NO_SPACE:
            return True
        text = str(current).lower()
        if "no space left" in text or _SHORT_WRITE.search(text):
            return True
        current = current.__cause__ or current.__context__
    return False


def write_error(path: PathLike, exc: BaseException) -> OSError:
    """The one-line ``OSError`` that reports a failed write of ``path``."""
    if _no_space(exc):
        return OSError(errno.ENOSPC, f"cannot write {path}: no space left on device")
    reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    message = f"cannot write {path}: {reason or type(exc).__name__}"
    code = exc.errno if isinstance(exc, OSError) else None
    return OSError(code, message) if code is not None else OSError(message)


@contextmanager
def atomic_write(path: PathLike) -> Iterator[BinaryIO]:
    """Write a file completely or not at all.

    Yields a binary file object open on a temporary file in the
    destination's folder (its name keeps the extension). When the block ends
    normally the file is flushed, synced to disk and closed, then renamed
    over ``path`` (a symbolic link at ``path`` is written through, to the
    file it points at). When the block raises anything (KeyboardInterrupt
    included), or the flush, sync or close fails, the temporary file is
    removed and ``path`` is left as it was.

    Parameters
    ----------
    path
        The file to write; its folder must exist.

    Raises
    ------
    OSError
        When writing fails: "cannot write PATH: no space left on device" for
        a full disk (or quota), else "cannot write PATH: <reason>". Other
        errors of the block (ValueError, KeyboardInterrupt, ...) pass through
        unchanged, after the clean-up.
    """
    target = _target(path)
    try:
        fh, tmp = _open_temporary(target)
    except OSError as exc:
        raise write_error(path, exc) from exc
    try:
        try:
            yield fh
            fh.flush()
            _fsync(fh, tmp)
        finally:
            fh.close()  # an error here (a delayed write failure) is reported too
        os.replace(tmp, target)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(exc, OSError) or _no_space(exc):
            raise write_error(path, exc) from exc
        raise
    _sync_folder(target.parent)


def _fsync(fh: BinaryIO, tmp: Path) -> None:
    """Sync a flushed file to disk (through its path when the object has no descriptor)."""
    try:
        fd = fh.fileno()
    except (OSError, AttributeError, ValueError):  # io.UnsupportedOperation is both
        with open(tmp, "rb+") as again:
            os.fsync(again.fileno())
        return
    os.fsync(fd)


def _sync_folder(folder: Path) -> None:
    """Make the rename durable where the OS allows syncing a directory."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_bytes(path: PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` with :func:`atomic_write`; returns ``Path(path)``."""
    with atomic_write(path) as fh:
        fh.write(data)
    return Path(path)


def atomic_write_text(path: PathLike, text: str, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` with :func:`atomic_write`; returns ``Path(path)``."""
    return atomic_write_bytes(path, text.encode(encoding))
