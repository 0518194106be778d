"""Where the band-by-band evaluation keeps its few whole-image feature maps.

The network's normalisations need statistics of whole maps before the next
pass can start, so a handful of 98-channel maps must outlive a band. A
:class:`MemoryStore` keeps one as a tensor; a :class:`DiskStore` keeps it in
an unlinked scratch file and reads and writes row ranges with ``pread`` and
``pwrite``, so the process's resident memory stays bounded whatever the image
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

    def __init__(self, channels: int, height: int, width: int, device: torch.device) -> None:
        fmt = torch.channels_last if device.type == "cpu" else torch.contiguous_format
        self.data = torch.empty((1, channels, height, width), device=device, memory_format=fmt)
        #: Set by the writer once every row has been written.
        self.complete = False

    def rows(self, start: int, stop: int) -> torch.Tensor:
        """Rows ``start`` to ``stop`` (a view)."""
        return self.data[:, :, start:stop]

    def write(self, start: int, values: torch.Tensor) -> None:
        """Store ``values`` (1, C, rows, W) from row ``start`` on."""
        self.data[:, :, start : start + values.shape[2]] = values

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
        n = stop - start
        buf = np.empty((n, self.width, self.channels), np.float32)
        got = os.preadv(self.fd, [memoryview(buf).cast("B")], start * self.row_bytes)
        if got != buf.nbytes:
            raise OSError(f"scratch file read {got} of {buf.nbytes} bytes")
        t = torch.from_numpy(buf).to(self.device)
        return t.permute(2, 0, 1).unsqueeze(0)

    def write(self, start: int, values: torch.Tensor) -> None:
        """Store ``values`` (1, C, rows, W) from row ``start`` on."""
        nhwc = values[0].permute(1, 2, 0).contiguous().cpu().numpy()
        view = memoryview(nhwc).cast("B")
        offset, done = start * self.row_bytes, 0
        while done < len(view):
            done += os.pwrite(self.fd, view[done:], offset + done)

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
