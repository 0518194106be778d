"""Band-by-band GIFNet inference: the same values, bounded memory.

:meth:`GIFNet.forward` evaluates every layer on the whole image at once, so
each of its dozens of intermediate maps (98 to 294 channels) is a full-size
allocation. :func:`fuse_streamed` evaluates the network in horizontal bands
in three passes, keeping only the maps that whole-image statistics force it
to keep (three 98-channel maps, in memory or in scratch files):

1. shared features and both streams' patch embeddings, band by band (the
   encoder with a 4-row halo), accumulating the first block's normalisation
   statistics;
2. block 0 for both streams and the cross-fusion gate, band by band on the
   window grid, accumulating the second block's statistics;
3. block 1, band by band;
4. the patch un-embedding and the global decoder, band by band with the
   5-row halo they read (the shared features recomputed), straight into the
   output.

Every band reads its inputs through the reflections whole-map evaluation
would use (see :mod:`napari_gifnet._regions`), so results agree with
:meth:`GIFNet.forward` to float32 rounding.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from ._regions import CHANNELS, RunningMoments, block_axis, reflect_indices, row_bands
from ._stores import DiskStore, MemoryStore, scratch_free_bytes
from .network import BRANCH_MULTIPLE, GIFNet

#: Called after each band with (bands done, bands in all).
Progress = Callable[[int, int], None]


def _hull(start: int, stop: int, length: int, halo: int) -> tuple[int, int]:
    """Rows read by ``halo`` stacked reflect-padded 3x3 convolutions."""
    for _ in range(halo):
        idx = reflect_indices(start - 1, stop + 1, length)
        start, stop = int(idx.min()), int(idx.max()) + 1
    return start, stop


def _rows(x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """Rows ``idx`` of ``x`` (a view when they are consecutive)."""
    first = int(idx[0])
    if torch.equal(idx, torch.arange(first, first + idx.numel())):
        return x[:, :, first : first + idx.numel()]
    return x.index_select(2, idx.to(x.device))


def conv_rows(
    x: torch.Tensor, x_start: int, out: tuple[int, int], length: int, conv: nn.Conv2d
) -> torch.Tensor:
    """Rows ``out`` of a reflect-padded 3x3 ``conv`` of a map of ``length`` rows.

    ``x`` holds the input's rows from ``x_start`` on and all its columns; the
    rows the output reads (reflections included) must be in it.
    """
    xr = _rows(x, reflect_indices(out[0] - 1, out[1] + 1, length) - x_start)
    w = xr.shape[-1]
    y = F.conv2d(xr, conv.weight, conv.bias, padding=(0, 1))
    if w >= 2:  # the first and last columns read reflected neighbours
        y[..., :1] = F.conv2d(xr[..., [1, 0, 1]], conv.weight, conv.bias)
        y[..., -1:] = F.conv2d(xr[..., [w - 2, w - 1, w - 2]], conv.weight, conv.bias)
    return y


def _encode_rows(model: GIFNet, a: torch.Tensor, b: torch.Tensor, out: tuple[int, int]) -> torch.Tensor:
    """Shared features S on rows ``out`` (the encoder with its 3-row halo)."""
    enc = model.getSharedFeatures
    h = a.shape[2]
    r2 = _hull(*out, h, 1)
    r1 = _hull(*r2, h, 1)
    r0 = _hull(*r1, h, 1)
    x0 = torch.cat((a[:, :, r0[0] : r0[1]], b[:, :, r0[0] : r0[1]]), dim=1)
    x1 = F.relu_(conv_rows(x0, r0[0], r1, h, enc.conv_1.conv2d))
    x01 = torch.cat((x0[:, :, r1[0] - r0[0] : r1[1] - r0[0]], x1), dim=1)
    x2 = F.relu_(conv_rows(x01, r1[0], r2, h, enc.conv_2.conv2d))
    x012 = torch.cat((x01[:, :, r2[0] - r1[0] : r2[1] - r1[0]], x2), dim=1)
    x3 = F.relu_(conv_rows(x012, r2[0], out, h, enc.conv_3.conv2d))
    return torch.cat((x012[:, :, out[0] - r2[0] : out[1] - r2[0]], x3), dim=1)


def _band_rows(height: int, width: int, band_pixels: int) -> int:
    return max(8, band_pixels // max(width, 1) // 8 * 8)


#: Storage choices for the maps that outlive a band (see :func:`fuse_streamed`).
STORAGE = ("auto", "memory", "disk", "recompute")


def _available_memory(device: torch.device) -> int:
    """Memory a fusion may use: free device memory, or the system's available
    memory (``MemAvailable``, which counts reclaimable page cache)."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):  # neither: assume 4 GB
        return 4 << 30


def choose_storage(height: int, width: int, device: torch.device) -> str:
    """``"memory"`` when three 98-channel maps take under 40% of the free
    memory, else ``"disk"`` when they fit in 80% of the scratch folder, else
    ``"recompute"`` (one map on disk)."""
    one_map = CHANNELS * height * width * 4
    if 3 * one_map <= 0.4 * _available_memory(device):
        return "memory"
    return "disk" if 3 * one_map <= 0.8 * scratch_free_bytes() else "recompute"


class _Net:
    """The network's pieces, evaluated on row ranges of one image pair."""

    def __init__(self, model: GIFNet, a: torch.Tensor, b: torch.Tensor) -> None:
        self.model, self.a, self.b = model, a, b
        self.h, self.w = a.shape[-2:]
        m = BRANCH_MULTIPLE
        self.hp, self.wp = -(-self.h // m) * m, -(-self.w // m) * m
        self.cols_p = reflect_indices(0, self.wp, self.w).to(a.device)
        #: Where S is kept once computed (None: recomputed when needed).
        self.s_store: MemoryStore | None = None

    def shared(self, rows: tuple[int, int]) -> torch.Tensor:
        """Shared features S on image rows ``rows``."""
        if self.s_store is not None and self.s_store.complete:
            return self.s_store.rows(*rows)
        return _encode_rows(self.model, self.a, self.b, rows)

    def embeddings(self, lo: int, hi: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Both streams' patch embeddings on rows ``lo..hi`` of the padded grid."""
        # rows of the padded S the convolution reads, then the rows of S they are
        src = reflect_indices(lo - 1, hi + 1, self.hp)
        s_rows = reflect_indices(int(src.min()), int(src.max()) + 1, self.h)
        s_lo, s_hi = int(s_rows.min()), int(s_rows.max()) + 1
        shared = self.shared((s_lo, s_hi))
        if self.s_store is not None and lo < self.h:  # keep this band's own rows
            top = min(hi, self.h)
            self.s_store.write(lo, shared[:, :, lo - s_lo : top - s_lo])
        padded = _rows(shared, s_rows - s_lo)
        if self.wp != self.w:
            padded = padded[..., self.cols_p]
        branch = self.model.branch
        return tuple(  # type: ignore[return-value]
            conv_rows(padded, int(src.min()), (lo, hi), self.hp, embed.proj)
            for embed in (branch.patch_embed_ivif, branch.patch_embed_mfif)
        )


def fuse_streamed(
    model: GIFNet,
    a: torch.Tensor,
    b: torch.Tensor,
    *,
    band_pixels: int | None = None,
    storage: str = "auto",
    features: dict[str, torch.Tensor] | None = None,
    progress: Progress | None = None,
) -> torch.Tensor:
    """Fuse two (1, 1, H, W) images band by band; returns (1, 1, H, W).

    Parameters
    ----------
    model
        An eval-mode :class:`GIFNet`.
    a, b
        The inputs in [0, 1], at least 5 x 5 (the engine pads smaller ones).
    band_pixels
        About how many pixels each band holds (bands are at least 8 rows).
        None: 2**17 when the maps are in memory, 2**16 otherwise (a smaller
        working set where memory is what matters).
    storage
        Where the three maps that outlive a band (both streams' embeddings,
        and the gated stream) are kept: ``"memory"``, ``"disk"`` (scratch
        files: resident memory stays bounded), ``"recompute"`` (the
        embeddings are recomputed where needed, only the gated stream goes to
        disk: least disk, about 30% more time) or ``"auto"`` (memory when it
        fits comfortably, see :func:`choose_storage`). All give the same
        values.
    features
        A dict to receive ``shared``, ``multimodal``, ``photographic`` and
        ``branch`` as (1, 98, H, W) maps (held in memory), or None.
    progress
        Called after each band with (done, total) over all passes.
    """
    if a.shape[0] != 1:
        raise ValueError("fuse_streamed works on one image pair at a time")
    if storage not in STORAGE:
        raise ValueError(f"unknown storage {storage!r}: use one of {', '.join(STORAGE)}")
    net = _Net(model, a, b)
    h, w, hp, wp = net.h, net.w, net.hp, net.wp
    dev = a.device
    if storage == "auto":
        storage = choose_storage(hp, wp, dev)
    if band_pixels is None:
        band_pixels = 1 << 17 if storage == "memory" else 1 << 16
    band = _band_rows(hp, wp, band_pixels)
    branch = model.branch
    block0, block1 = branch.layer1.blocks
    passes = [
        [] if storage == "recompute" else list(row_bands(hp, 0, band)),
        list(row_bands(hp, block0.shift, band)),
        list(row_bands(hp, block1.shift, band)),
        list(row_bands(h, 0, band)),
    ]
    total, done = sum(len(p) for p in passes), 0

    def tick() -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(done, total)

    def store() -> MemoryStore | DiskStore:
        kind = MemoryStore if storage == "memory" else DiskStore
        return kind(CHANNELS, hp, wp, dev)

    feats = None if features is None else {
        name: MemoryStore(CHANNELS, h if name in ("shared", "branch") else hp,
                          w if name in ("shared", "branch") else wp, dev)
        for name in ("shared", "multimodal", "photographic", "branch")
    }
    eps = block0.norm1.eps
    # 1. Both streams' embeddings and the statistics of block 0's inputs.
    mm_store = dp_store = None
    mm_moments, dp_moments = RunningMoments(), RunningMoments()
    if storage == "recompute":
        for r0, r1 in row_bands(hp, 0, band):  # statistics only; no progress step
            mm_b, dp_b = net.embeddings(r0, r1)
            mm_moments.add(mm_b)
            dp_moments.add(dp_b)
    else:
        mm_store, dp_store = store(), store()
        if storage == "memory":  # S too, so that the decoder need not recompute it
            net.s_store = MemoryStore(CHANNELS, h, w, dev)
        for r0, r1 in passes[0]:
            mm_b, dp_b = net.embeddings(r0, r1)
            mm_moments.add(mm_b)
            dp_moments.add(dp_b)
            mm_store.write(r0, mm_b)
            dp_store.write(r0, dp_b)
            tick()
        if net.s_store is not None:
            net.s_store.complete = True
    mm_stats, dp_stats = mm_moments.statistics(eps), dp_moments.statistics(eps)
    # 2. Block 0 for both streams, then the gate; statistics for block 1.
    gated = MemoryStore(CHANNELS, hp, wp, dev) if storage == "memory" else DiskStore(CHANNELS, hp, wp, dev)
    cols0 = block_axis(0, wp, wp, block0.shift)
    gate_moments = RunningMoments()
    alpha = branch.layer1.weights_mfif[0]
    for r0, r1 in passes[1]:
        rows = block_axis(r0, r1, hp, block0.shift)
        if mm_store is not None and dp_store is not None:
            mm_src = mm_store.rows(rows.src_start, rows.src_stop)
            dp_src = dp_store.rows(rows.src_start, rows.src_stop)
        else:
            mm_src, dp_src = net.embeddings(rows.src_start, rows.src_stop)
        dp_b, query = block0.region(dp_src, "dp", dp_stats, rows, cols0)
        mm_b, _ = block0.region(mm_src, "mm", mm_stats, rows, cols0, query)
        g = torch.addcmul(dp_b, alpha, mm_b)
        gate_moments.add(g)
        gated.write(r0, g)
        if feats is not None:
            feats["multimodal"].write(r0, mm_b)
        tick()
    for s in (mm_store, dp_store):
        if s is not None:
            s.close()
    stats1 = gate_moments.statistics(eps)
    # 3. Block 1 (photographic stream only).
    dp1 = MemoryStore(CHANNELS, hp, wp, dev) if storage == "memory" else DiskStore(CHANNELS, hp, wp, dev)
    cols1 = block_axis(0, wp, wp, block1.shift)
    for r0, r1 in passes[2]:
        rows = block_axis(r0, r1, hp, block1.shift)
        out, _ = block1.region(gated.rows(rows.src_start, rows.src_stop), "dp", stats1, rows, cols1)
        dp1.write(r0, out)
        if feats is not None:
            feats["photographic"].write(r0, out)
        tick()
    gated.close()
    # 4. Un-embedding and decoder, straight to the output.
    decoder = model.cnnDecoder
    first, _, second = decoder.fuseComplementFeatures.mlp
    w_s, w_t = first.weight[:, :CHANNELS].contiguous(), first.weight[:, CHANNELS:].contiguous()
    stack = decoder.decoder
    fused = torch.empty((1, 1, h, w), device=dev)
    for r0, r1 in passes[3]:
        ranges = [(r0, r1)]
        for _ in range(4):
            ranges.append(_hull(*ranges[-1], h, 1))
        z0, z1 = ranges[-1]  # rows of z the decoder reads
        u0, u1 = _hull(z0, z1, hp, 1)  # rows of block 1's output the un-embedding reads
        t = conv_rows(dp1.rows(u0, u1), u0, (z0, z1), hp, branch.patch_unembed.proj[0])[..., :w]
        shared = net.shared((z0, z1))
        z = F.conv2d(shared, w_s)
        z += F.conv2d(t, w_t)
        z = second(F.relu_(z))
        start = z0
        for i in range(4):
            out_rows = ranges[3 - i]
            z = conv_rows(z, start, out_rows, h, stack[3 * i + 1])
            z = torch.tanh(z) if i == 3 else F.relu_(z)
            start = out_rows[0]
        fused[:, :, r0:r1] = z / 2 + 0.5
        if feats is not None:
            feats["shared"].write(r0, shared[:, :, r0 - z0 : r1 - z0])
            feats["branch"].write(r0, t[:, :, r0 - z0 : r1 - z0])
        tick()
    dp1.close()
    if features is not None and feats is not None:
        for name, s in feats.items():
            features[name] = s.data[:, :, :h, :w]
    return fused
