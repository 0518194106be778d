"""Where the band-by-band evaluation keeps its few whole-image feature maps.

The network's normalisations need statistics of whole maps before the next
pass can start, so a handful of 98-channel maps must outlive a band. A
:class:`MemoryStore` keeps one as a tensor; a :class:`DiskStore` keeps it in
an unlinked scratch file and reads and writes rectangles with ``pread`` and
``pwrite`` (one call per row, or one for full-width rows), so the process's resident memory stays bounded whatever the image
size (the operating system's page cache still speeds it up when RAM allows).
"""

from __future__ import annotations

import os
import tempfile

import numpy as np
import torch

#: Environment variable naming the folder for scratch files (default: the
#: system's temporary folder).
SCRATCH_ENV = "NAPARI_GIFNET_SCRATCH"


class MemoryStore:
    """A (1, C, H, W) map held in memory (channels-last on the CPU)."""

    def __init__(
        self,
        channels: int,
        height: int,
        width: int,
        device: torch.device,
        origin: tuple[int, int] = (0, 0),
    ) -> None:
        fmt = torch.channels_last if device.type == "cpu" else torch.contiguous_format
        self.data = torch.empty((1, channels, height, width), device=device, memory_format=fmt)
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
        del self.data


class DiskStore:
    """A (1, C, H, W) float32 map in an anonymous scratch file, row-major."""

    def __init__(self, channels: int, height: int, width: int, device: torch.device) -> None:
        self.channels, self.height, self.width, self.device = channels, height, width, device
        self.row_bytes = channels * width * 4
        folder = os.environ.get(SCRATCH_ENV) or tempfile.gettempdir()
        fd, path = tempfile.mkstemp(prefix="napari-gifnet-", suffix=".scratch", dir=folder)
        os.unlink(path)  # the file vanishes with the descriptor, even on a crash
        self.fd: int | None = fd
        os.ftruncate(fd, self.row_bytes * height)

    def rows(self, start: int, stop: int) -> torch.Tensor:
        """Rows ``start`` to ``stop``, read from the file (channels-last)."""
        return self.region((start, stop), (0, self.width))

    def _read(self, buf: np.ndarray, offset: int) -> None:
        view, done = memoryview(buf).cast("B"), 0
        while done < len(view):
            got = os.preadv(self.fd, [view[done:]], offset + done)
            if got <= 0:
                raise OSError(f"scratch file read {done} of {len(view)} bytes")
            done += got

    def _write(self, buf: np.ndarray, offset: int) -> None:
        view, done = memoryview(buf).cast("B"), 0
        while done < len(view):
            done += os.pwrite(self.fd, view[done:], offset + done)

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
        """Store ``values`` (1, C, rows, cols) from row ``start``, column ``col`` on."""
        nhwc = values[0].permute(1, 2, 0).contiguous().cpu().numpy()
        if col == 0 and nhwc.shape[1] == self.width:
            self._write(nhwc, start * self.row_bytes)
            return
        pixel = self.channels * 4
        for i in range(nhwc.shape[0]):
            self._write(nhwc[i], (start + i) * self.row_bytes + col * pixel)

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def __del__(self) -> None:
        self.close()


def scratch_free_bytes() -> int:
    """Free space in the scratch folder."""
    folder = os.environ.get(SCRATCH_ENV) or tempfile.gettempdir()
    st = os.statvfs(folder)
    return st.f_bavail * st.f_frsize
