"""Where the band-by-band evaluation keeps its few whole-image feature maps.

The network's normalisations need statistics of whole maps before the next
pass can start, so a handful of 98-channel maps must outlive a band: a
:class:`MemoryStore` keeps one as a tensor (reused across a run of fusions
inside :func:`keep_stores`), a :class:`DiskStore` in a scratch file, so the
process's resident memory stays bounded whatever the image size (the
operating system's page cache still speeds it up when RAM allows).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch

#: Environment variable naming the folder for scratch files (default: the
#: system's temporary folder).
SCRATCH_ENV = "NAPARI_GIFNET_SCRATCH"
#: Whether positional reads and writes (``preadv``, ``pwrite``: POSIX) are
#: available; elsewhere (Windows) a :class:`DiskStore` seeks under a lock.
POSITIONAL_IO = hasattr(os, "preadv") and hasattr(os, "pwrite")


class ScratchError(OSError):
    """The scratch folder cannot be used, or has too little space."""


def human_bytes(n: float) -> str:
    """``n`` bytes in the largest decimal unit that keeps it at least 1:
    ``"512 B"``, ``"3.1 kB"``, ``"42.0 MB"``, ``"1.3 GB"``..."""
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    raise AssertionError("unreachable")


def scratch_folder() -> str:
    """The folder for scratch files: ``NAPARI_GIFNET_SCRATCH`` or the
    system's temporary folder.

    Raises
    ------
    ScratchError
        ``NAPARI_GIFNET_SCRATCH`` names something that is not a folder.
    """
    folder = os.environ.get(SCRATCH_ENV)
    if not folder:
        return tempfile.gettempdir()
    if not os.path.isdir(folder):
        what = "does not exist" if not os.path.exists(folder) else "is not a folder"
        raise ScratchError(
            f"the scratch folder {folder!r} ({SCRATCH_ENV}) {what}: point {SCRATCH_ENV} "
            "at an existing folder, unset it, or use storage='memory'"
        )
    return folder


def _scratch_problem(folder: str, exc: OSError) -> ScratchError:
    named = f" ({SCRATCH_ENV})" if os.environ.get(SCRATCH_ENV) else ""
    reason = exc.strerror or str(exc)
    return ScratchError(
        f"the scratch folder {folder!r}{named} cannot be used: {reason}; point {SCRATCH_ENV} "
        "at a writable folder or use storage='memory'"
    )


class StorePool:
    """CPU store tensors kept for the next store of their shape, while held.

    A store whose shape finds nothing kept frees everything kept first (a
    fusion of another size has begun), so the pool never holds more than
    one fusion's maps, whatever the sizes of a run. Re-entrant and
    thread-safe; everything kept is freed when the last holder leaves.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._holders = 0
        self._kept: list[torch.Tensor] = []

    def hold(self) -> None:
        """Start keeping closed stores' tensors (one more holder)."""
        with self._lock:
            self._holders += 1

    def release(self) -> None:
        """One holder fewer; the last one's leaving frees everything kept."""
        with self._lock:
            self._holders -= 1
            if self._holders == 0:
                self._kept.clear()

    def take(self, shape: tuple[int, ...]) -> torch.Tensor | None:
        """A kept float32 tensor of ``shape`` made in the current inference
        mode; None, after freeing all kept, if none is."""
        inference = torch.is_inference_mode_enabled()
        with self._lock:
            for i, t in enumerate(self._kept):
                if tuple(t.shape) == shape and t.dtype == torch.float32 and (
                    t.is_inference() == inference
                ):
                    return self._kept.pop(i)
            self._kept.clear()  # another size: what is kept would serve nothing
            return None

    def retain(self, shapes: set[tuple[int, ...]]) -> None:
        """Free the kept tensors whose shape is not in ``shapes`` (a fusion
        that will not use them has begun)."""
        with self._lock:
            self._kept = [t for t in self._kept if tuple(t.shape) in shapes]

    def give(self, tensor: torch.Tensor) -> None:
        """Keep ``tensor`` for a later :meth:`take` while held; else let it go."""
        with self._lock:
            if self._holders > 0:
                self._kept.append(tensor)

    def __len__(self) -> int:
        """How many tensors are kept."""
        return len(self._kept)

    def nbytes(self) -> int:
        """Bytes the kept tensors hold (memory the next fusion can use)."""
        with self._lock:
            return sum(t.element_size() * t.numel() for t in self._kept)


#: The pool :class:`MemoryStore` uses (see :func:`keep_stores`).
POOL = StorePool()


@contextmanager
def keep_stores() -> Iterator[None]:
    """Let closed CPU :class:`MemoryStore` tensors serve the next stores of
    their size until the block ends (then they are freed)."""
    POOL.hold()
    try:
        yield
    finally:
        POOL.release()


class MemoryStore:
    """A (1, C, H, W) map held in memory (channels-last on the CPU).

    On the CPU the tensor comes from, and on :meth:`close` goes back to,
    :data:`POOL` (which keeps it only inside :func:`keep_stores`).
    """

    def __init__(
        self,
        channels: int,
        height: int,
        width: int,
        device: torch.device,
        origin: tuple[int, int] = (0, 0),
    ) -> None:
        cpu = device.type == "cpu"
        shape = (1, channels, height, width)
        kept = POOL.take(shape) if cpu else None
        fmt = torch.channels_last if cpu else torch.contiguous_format
        self.data = (
            kept if kept is not None
            else torch.empty(shape, device=device, memory_format=fmt)
        )  # fmt: skip
        #: Map position of ``data[..., 0, 0]`` (a store may hold part of a map).
        self.origin = origin
        #: Set by the writer once every row has been written.
        self.complete = False

    def rows(self, start: int, stop: int) -> torch.Tensor:
        """Rows ``start`` to ``stop`` (a view)."""
        return self.data[:, :, start - self.origin[0] : stop - self.origin[0]]

    def region(self, rows: tuple[int, int], cols: tuple[int, int]) -> torch.Tensor:
        """Rows ``rows[0]:rows[1]`` and columns ``cols[0]:cols[1]`` (a view)."""
        (r0, c0), (h, w) = self.origin, self.data.shape[2:]
        if rows[0] < r0 or cols[0] < c0 or rows[1] > r0 + h or cols[1] > c0 + w:
            raise IndexError(f"region {rows} x {cols} is outside the stored part")
        return self.data[:, :, rows[0] - r0 : rows[1] - r0, cols[0] - c0 : cols[1] - c0]

    def write(self, start: int, values: torch.Tensor, col: int = 0) -> None:
        """Store ``values`` (1, C, rows, cols) from row ``start``, column ``col`` on."""
        r, c = values.shape[2:]
        self.region((start, start + r), (col, col + c)).copy_(values)

    def close(self) -> None:
        """Drop the map (left to :data:`POOL` on the CPU).

        The store, and every view of its data, must not be used after: inside
        :func:`keep_stores` the tensor may already serve another store.
        """
        if self.data.device.type == "cpu":
            POOL.give(self.data)
        del self.data


class DiskStore:
    """A (1, C, H, W) float32 map in an anonymous scratch file, row-major.

    The file is a :func:`tempfile.TemporaryFile`: on POSIX systems it has no
    name (it vanishes with the descriptor, even on a crash); elsewhere it is
    deleted when closed. Rectangles are read and written with ``preadv`` and
    ``pwrite`` where they exist (:data:`POSITIONAL_IO`), else by seeking and
    reading or writing under a lock.

    Raises
    ------
    ScratchError
        The scratch folder cannot be used (see :func:`scratch_folder`).
    """

    def __init__(self, channels: int, height: int, width: int, device: torch.device) -> None:
        self.channels, self.height, self.width, self.device = channels, height, width, device
        self.row_bytes = channels * width * 4
        folder = scratch_folder()
        try:
            self.file = tempfile.TemporaryFile(
                prefix="napari-gifnet-", suffix=".scratch", dir=folder, buffering=0
            )
        except OSError as exc:
            raise _scratch_problem(folder, exc) from exc
        self.fd: int | None = self.file.fileno()
        self.positional = POSITIONAL_IO
        self._lock = threading.Lock()
        self.file.truncate(self.row_bytes * height)

    def rows(self, start: int, stop: int) -> torch.Tensor:
        """Rows ``start`` to ``stop``, read from the file (channels-last)."""
        return self.region((start, stop), (0, self.width))

    def _read(self, buf: np.ndarray, offset: int) -> None:
        view, done = memoryview(buf).cast("B"), 0
        if not self.positional:
            with self._lock:
                self.file.seek(offset)
                while done < len(view):
                    got = self.file.readinto(view[done:])
                    if not got:
                        break
                    done += got
        else:
            while done < len(view):
                got = os.preadv(self.fd, [view[done:]], offset + done)
                if got <= 0:
                    break
                done += got
        if done < len(view):
            raise OSError(f"scratch file read {done} of {len(view)} bytes")

    def _write(self, buf: np.ndarray, offset: int) -> None:
        view, done = memoryview(buf).cast("B"), 0
        if self.positional:
            while done < len(view):
                done += os.pwrite(self.fd, view[done:], offset + done)
            return
        with self._lock:
            self.file.seek(offset)
            while done < len(view):
                done += self.file.write(view[done:]) or 0

    def region(self, rows: tuple[int, int], cols: tuple[int, int]) -> torch.Tensor:
        """Rows ``rows[0]:rows[1]``, columns ``cols[0]:cols[1]``, read from the
        file (channels-last)."""
        (r0, r1), (c0, c1) = rows, cols
        buf = np.empty((r1 - r0, c1 - c0, self.channels), np.float32)
        pixel = self.channels * 4
        if c0 == 0 and c1 == self.width:
            self._read(buf, r0 * self.row_bytes)
        else:
            for i in range(r1 - r0):
                self._read(buf[i], (r0 + i) * self.row_bytes + c0 * pixel)
        return torch.from_numpy(buf).to(self.device).permute(2, 0, 1).unsqueeze(0)

    def write(self, start: int, values: torch.Tensor, col: int = 0) -> None:
        """Store ``values`` (1, C, rows, cols) from row ``start``, column ``col`` on.

        Values of another floating type (float16 or bfloat16 maps computed
        under autocast) are stored as float32, as :class:`MemoryStore` stores
        them, so every storage reads back the same numbers.
        """
        nhwc = values[0].permute(1, 2, 0).to(torch.float32).contiguous().cpu().numpy()
        if col == 0 and nhwc.shape[1] == self.width:
            self._write(nhwc, start * self.row_bytes)
            return
        pixel = self.channels * 4
        for i in range(nhwc.shape[0]):
            self._write(nhwc[i], (start + i) * self.row_bytes + col * pixel)

    def close(self) -> None:
        """Close (and so delete) the scratch file; idempotent."""
        if self.fd is not None:
            self.fd = None
            self.file.close()

    def __del__(self) -> None:
        if getattr(self, "fd", None) is not None:
            self.close()


def scratch_free_bytes() -> int:
    """Free space in the scratch folder (:func:`scratch_folder`).

    Raises
    ------
    ScratchError
        The folder cannot be used.
    """
    folder = scratch_folder()
    try:
        return int(shutil.disk_usage(folder).free)
    except OSError as exc:
        raise _scratch_problem(folder, exc) from exc
