"""Writing files without losing any: outputs never replace inputs, every write is atomic.

The promises are listed in docs/engine.md ("What napari-gifnet promises about
your files"); :func:`check_output_set` and :func:`atomic_write` keep them.
No torch import happens here.
"""

from __future__ import annotations

import errno
import io
import os
import re
import secrets
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, BinaryIO, Union, cast

PathLike = Union[str, "os.PathLike[str]"]

#: Marks the temporary files of :func:`atomic_write` (``.NAME.<token>.partial.EXT``).
PARTIAL_MARK = ".partial"

_NO_SPACE = (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC))
#: numpy's ``tofile`` on a full disk: "65536 requested and 15304 written" (no errno).
_SHORT_WRITE = re.compile(r"\d+ requested and \d+ written")
#: The longest file name most file systems take, in bytes (``NAME_MAX``).
_NAME_MAX = 255


class OutputIsInputError(ValueError):
    """An output path names one of the inputs (or another output)."""


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
    if not parent.is_dir():
        ancestor = _existing_ancestor(parent)  # the parent itself when it is a file
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
    """The name a write to ``path`` replaces.

    Not resolved: links among its folders are followed, as the OS does, but
    a link at the name itself is the thing replaced, never the file it
    points at.
    """
    return Path(path).expanduser().absolute()


def _name_max(folder: Path) -> int:
    """The longest file name, in bytes, that ``folder`` takes (255 where unknown)."""
    try:
        return min(int(os.pathconf(folder, "PC_NAME_MAX")), _NAME_MAX)
    except (OSError, ValueError, AttributeError):  # no pathconf, or no such folder
        return _NAME_MAX


def _cut(text: str, room: int) -> str:
    """The longest start of ``text`` that takes at most ``room`` bytes as a file name."""
    while text and len(os.fsencode(text)) > room:
        text = text[:-1]
    return text


def _temporary_name(target: Path, token: str) -> str:
    """``.NAME.<token>.partial.EXT``, NAME shortened to keep within the folder's limit.

    The extension is kept unless it alone is too long; lengths are counted
    in bytes of the encoded name.
    """
    limit = _name_max(target.parent)
    tail = f".{token}{PARTIAL_MARK}{target.suffix}"
    if len(os.fsencode(tail)) + 1 > limit:
        tail = f".{token}{PARTIAL_MARK}"
    return f".{_cut(target.stem, limit - 1 - len(os.fsencode(tail)))}{tail}"


def _open_temporary(target: Path) -> tuple[BinaryIO, Path]:
    """A new file beside ``target``, opened for binary writing (mode 0666 less the umask).

    Created with ``O_CREAT | O_EXCL``: never through a link that is there.
    """
    for _ in range(100):
        tmp = target.with_name(_temporary_name(target, secrets.token_hex(4)))
        try:
            return open(tmp, "xb"), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"cannot create a temporary file beside {target}")  # pragma: no cover


def _folder_error(path: PathLike, target: Path, exc: OSError) -> OSError:
    """The error of a file that cannot be created at ``target``: names a folder that is a file."""
    folder = target.parent
    ancestor = _existing_ancestor(folder)
    if not ancestor.is_dir():
        return OSError(errno.ENOTDIR, f"cannot write {path}: {ancestor} is not a directory")
    if ancestor != folder and exc.errno == errno.ENOENT:
        return OSError(errno.ENOENT, f"cannot write {path}: the folder {folder} does not exist")
    return write_error(path, exc)


class _CheckedFile:
    """The temporary file of :func:`atomic_write`, as its writer sees it.

    Every byte goes through :meth:`write` to Python's buffered writer, which
    raises on a failed or short write; :meth:`fileno` is refused, so no
    encoder writes to the descriptor behind it (Pillow's does, ignoring short
    writes). :attr:`size` is the length the writer gave the file, which
    :func:`atomic_write` compares with the file on disk.
    """

    mode = "wb"

    def __init__(self, fh: BinaryIO, name: Path) -> None:
        self._fh = fh
        self.name = str(name)
        self.size = 0
        self.closed = False

    def write(self, data: Any) -> int:
        """Write ``data`` (bytes or any buffer) at the current position."""
        count = self._fh.write(data)
        self.size = max(self.size, self._fh.tell())
        return count

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        return self._fh.seek(offset, whence)

    def tell(self) -> int:
        return self._fh.tell()

    def truncate(self, size: int | None = None) -> int:
        """Cut (or extend) the file to ``size`` bytes (the position by default)."""
        self.size = self._fh.truncate(size)
        return self.size

    def flush(self) -> None:
        """Hand the buffered bytes to the OS (errors raised here)."""
        self._fh.flush()

    def fileno(self) -> int:
        """Refused: writes go through :meth:`write`, where a short write is an error."""
        raise io.UnsupportedOperation("fileno: atomic_write's file is written through write()")

    def close(self) -> None:
        """Mark closed; :func:`atomic_write` closes the file itself."""
        self.closed = True

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readable(self) -> bool:
        return False


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
def atomic_write(path: PathLike, *, make_folder: bool = False) -> Iterator[BinaryIO]:
    """Write a file completely or not at all.

    Yields a binary file object on a temporary file in the destination's
    folder (see :class:`_CheckedFile`: no descriptor, short writes are
    errors). When the block ends normally the file is flushed, its size on
    disk checked, synced and closed, then renamed onto ``path``: a symbolic
    link at ``path`` is replaced, never written through. When the block
    raises anything (KeyboardInterrupt included), or the flush, check, sync
    or close fails, the temporary file is removed and ``path`` is left as it
    was.

    Parameters
    ----------
    path
        The file to write; its folder must exist, unless ``make_folder``.
    make_folder
        Create the missing folders of ``path`` first.

    Raises
    ------
    OSError
        When writing fails: "cannot write PATH: no space left on device" for
        a full disk (or quota), "cannot write PATH: FOLDER is not a
        directory" where a folder of ``path`` is a file, else "cannot write
        PATH: <reason>". Other errors of the block (ValueError,
        KeyboardInterrupt, ...) pass through unchanged, after the clean-up.
    """
    target = _target(path)
    try:
        if make_folder:
            target.parent.mkdir(parents=True, exist_ok=True)
        fh, tmp = _open_temporary(target)
    except OSError as exc:
        raise _folder_error(path, target, exc) from exc
    view = _CheckedFile(fh, tmp)
    try:
        try:
            yield cast(BinaryIO, view)
            fh.flush()
            _check_size(tmp, view.size)
            _fsync(fh, tmp)
        finally:
            fh.close()  # an error here (a delayed write failure) is reported too
        os.replace(tmp, target)  # onto the name: a link there is replaced, not followed
    except BaseException as exc:
        with suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError) or _no_space(exc):
            raise write_error(path, exc) from exc
        raise
    _sync_folder(target.parent)


def _check_size(tmp: Path, size: int) -> None:
    """Raise unless the flushed file ``tmp`` holds the ``size`` bytes its writer gave it."""
    stored = os.stat(tmp).st_size
    if stored != size:
        raise OSError(errno.EIO, f"{stored} of {size} bytes reached the disk")


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
        with suppress(OSError):
            os.fsync(fd)
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


# -- the whole set of a command's outputs against the whole set of its inputs ---------


def _file_key(p: Path) -> tuple[int, int] | None:
    """``(device, inode)`` of an existing file, else None."""
    try:
        st = os.stat(p)
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


def _probe_folder(folder: Path) -> str:
    """Why no file can be created in ``folder`` ("" if one can): a temporary file is
    created and removed, so read-only file systems and the superuser are covered."""
    import tempfile

    try:
        fd, probe = tempfile.mkstemp(prefix=".napari-gifnet-probe-", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        return exc.strerror or type(exc).__name__
    return ""


def check_output_set(
    outputs: Mapping[str, PathLike | None],
    inputs: Iterable[PathLike] = (),
    folders: Iterable[PathLike] = (),
    *,
    writable: bool = True,
) -> None:
    """Check, before any work, every file a command will write against every file and
    folder it reads, and against each other.

    Parameters
    ----------
    outputs
        What to call each output in a message (``"-o"``, ``"stack 'x.tif' -o"``,
        ``"the checkpoint"``) -> its path; None entries are skipped.
    inputs
        Every file the command reads.
    folders
        Every folder whose contents the command reads (a pairs folder's
        ``first/`` and ``second/``, a ``--stacks`` folder): no output may lie
        in one, at any depth, where a later run would read it as an input.
    writable
        Also check that each output's folder, or its nearest existing
        ancestor when the folder is created later, takes a new file (a
        temporary file is created and removed).

    Raises
    ------
    OutputIsInputError
        An output is an input (the same path after resolving ``..`` and
        symbolic links, or the same file through a hard link), lies in an
        input folder, or names the same file as another output.
    ValueError
        An output is an existing directory, its folder is under a file, or
        its folder is not writable ("cannot write LABEL PATH: ...").
    """
    by_path: dict[Path, Path] = {}
    by_key: dict[tuple[int, int], Path] = {}
    for source in map(Path, inputs):
        by_path.setdefault(source.expanduser().resolve(), source)
        key = _file_key(source)
        if key is not None:
            by_key.setdefault(key, source)
    read_folders = {Path(f).expanduser().resolve(): Path(f) for f in folders}
    seen_path: dict[Path, tuple[str, Path]] = {}
    seen_key: dict[tuple[int, int], tuple[str, Path]] = {}
    checked = [(label, Path(value)) for label, value in outputs.items() if value is not None]
    found = [(label, path, path.expanduser().resolve(), _file_key(path)) for label, path in checked]
    for label, path, resolved, key in found:  # the most precise reason first: an input file
        source = by_path.get(resolved) or (by_key.get(key) if key is not None else None)
        if source is not None:
            alias = "" if str(path) == str(source) else f" (the same file as {source})"
            raise OutputIsInputError(f"{label} {path} is an input{alias}: inputs are never "
                                     "overwritten; choose another output name")  # fmt: skip
    for label, path, resolved, key in found:
        inside = next((read_folders[f] for f in (resolved, *resolved.parents)
                       if f in read_folders), None)  # fmt: skip
        if inside is not None:
            raise OutputIsInputError(f"{label} {path} is in the input folder {inside}, whose "
                                     "files are read as inputs: write outside it")  # fmt: skip
        earlier = seen_path.get(resolved) or (seen_key.get(key) if key is not None else None)
        if earlier is not None:
            raise OutputIsInputError(f"{label} {path} is also the {earlier[0]} output "
                                     f"({earlier[1]}): each output needs its own name")  # fmt: skip
        seen_path[resolved] = (label, path)
        if key is not None:
            seen_key[key] = (label, path)
    probed: dict[Path, str] = {}
    for label, path in checked:
        if path.is_dir():
            raise ValueError(f"cannot write {label} {path}: it is an existing directory")
        folder = _existing_ancestor(path.absolute().parent)
        if not folder.is_dir():
            raise ValueError(f"cannot write {label} {path}: {folder} is not a directory")
        if writable:
            if folder not in probed:
                probed[folder] = _probe_folder(folder)
            if probed[folder]:
                raise ValueError(f"cannot write {label} {path}: {folder} is not writable "
                                 f"({probed[folder]})")  # fmt: skip


def finished_output(path: PathLike) -> bool:
    """Whether ``path`` is a finished output: a regular file holding at least one byte
    (every output is written whole by :func:`atomic_write`, or not at all)."""
    import stat

    try:
        st = os.stat(path)
    except OSError:
        return False
    return stat.S_ISREG(st.st_mode) and st.st_size > 0
