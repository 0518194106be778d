"""Band-by-band GIFNet inference: the same values, a fraction of the memory.

:meth:`GIFNet.forward` evaluates every layer on the whole image at once, so
each of its dozens of intermediate maps (98 to 294 channels) is a full-size
allocation. :func:`fuse_streamed` evaluates the network in horizontal bands
and keeps only the maps that whole-image statistics force it to keep:

1. shared features ``S``, band by band (encoder with a 3-row halo);
2. both streams' patch embeddings, band by band, accumulating the first
   block's normalisation statistics;
3. block 0 and the cross-fusion gate, band by band on the window grid,
   accumulating the second block's statistics;
4. block 1, band by band, into the map the embeddings used;
5. patch un-embedding and the global decoder, band by band with a 5-row
   halo, straight into the output.

Every band reads its inputs through the reflections whole-map evaluation
would use (see :mod:`napari_gifnet._regions`), so results agree with
:meth:`GIFNet.forward` to float32 rounding. Peak memory is about four
98-channel maps instead of a dozen.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from ._regions import CHANNELS, RunningMoments, block_axis, reflect_indices, row_bands
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


def fuse_streamed(
    model: GIFNet,
    a: torch.Tensor,
    b: torch.Tensor,
    *,
    band_pixels: int = 1 << 17,
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
    features
        A dict to receive ``shared``, ``multimodal``, ``photographic`` and
        ``branch`` as (1, 98, H, W) maps, or None.
    progress
        Called after each band with (done, total) over all five passes.
    """
    if a.shape[0] != 1:
        raise ValueError("fuse_streamed works on one image pair at a time")
    h, w = a.shape[-2:]
    hp, wp = -(-h // BRANCH_MULTIPLE) * BRANCH_MULTIPLE, -(-w // BRANCH_MULTIPLE) * BRANCH_MULTIPLE
    band = _band_rows(hp, wp, band_pixels)
    branch = model.branch
    block0, block1 = branch.layer1.blocks
    dev, fmt = a.device, torch.channels_last if a.device.type == "cpu" else torch.contiguous_format

    def new_map(rows: int, cols: int) -> torch.Tensor:
        return torch.empty((1, CHANNELS, rows, cols), device=dev, memory_format=fmt)

    passes = [
        list(row_bands(h, 0, band)),
        list(row_bands(hp, 0, band)),
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

    # 1. Shared features.
    shared = new_map(h, w)
    for r0, r1 in passes[0]:
        shared[:, :, r0:r1] = _encode_rows(model, a, b, (r0, r1))
        tick()
    # 2. Patch embeddings of S reflect-padded to multiples of 4, with statistics.
    cols_p = reflect_indices(0, wp, w).to(dev)
    mm, dp = new_map(hp, wp), new_map(hp, wp)
    mm_moments, dp_moments = RunningMoments(), RunningMoments()
    for r0, r1 in passes[1]:
        # rows of the padded map the convolution reads, as rows of S
        src = reflect_indices(r0 - 1, r1 + 1, hp)
        s_rows = reflect_indices(int(src.min()), int(src.max()) + 1, h)
        padded = _rows(shared, s_rows)[..., cols_p] if wp != w else _rows(shared, s_rows)
        for target, embed, moments in (
            (mm, branch.patch_embed_ivif, mm_moments),
            (dp, branch.patch_embed_mfif, dp_moments),
        ):
            y = conv_rows(padded, int(src.min()), (r0, r1), hp, embed.proj)
            moments.add(y)
            target[:, :, r0:r1] = y
        tick()
    eps = block0.norm1.eps
    mm_stats, dp_stats = mm_moments.statistics(eps), dp_moments.statistics(eps)
    # 3. Block 0 for both streams, then the gate; statistics for block 1.
    gated = new_map(hp, wp)
    mm_out = new_map(hp, wp) if features is not None else None
    cols0 = block_axis(0, wp, wp, block0.shift)
    gate_moments = RunningMoments()
    alpha = branch.layer1.weights_mfif[0]
    for r0, r1 in passes[2]:
        rows = block_axis(r0, r1, hp, block0.shift)
        src = slice(rows.src_start, rows.src_stop)
        dp_b, query = block0.region(dp[:, :, src], "dp", dp_stats, rows, cols0)
        mm_b, _ = block0.region(mm[:, :, src], "mm", mm_stats, rows, cols0, query)
        g = torch.addcmul(dp_b, alpha, mm_b)
        gate_moments.add(g)
        gated[:, :, r0:r1] = g
        if mm_out is not None:
            mm_out[:, :, r0:r1] = mm_b
        tick()
    del mm, dp
    stats1 = gate_moments.statistics(eps)
    # 4. Block 1 (photographic stream only).
    dp1 = new_map(hp, wp)
    cols1 = block_axis(0, wp, wp, block1.shift)
    for r0, r1 in passes[3]:
        rows = block_axis(r0, r1, hp, block1.shift)
        src = slice(rows.src_start, rows.src_stop)
        dp1[:, :, r0:r1] = block1.region(gated[:, :, src], "dp", stats1, rows, cols1)[0]
        tick()
    del gated
    # 5. Un-embedding and decoder, straight to the output.
    decoder = model.cnnDecoder
    first, _, second = decoder.fuseComplementFeatures.mlp
    w_s, w_t = first.weight[:, :CHANNELS].contiguous(), first.weight[:, CHANNELS:].contiguous()
    stack = decoder.decoder
    fused = torch.empty((1, 1, h, w), device=dev)
    branch_out = new_map(h, w) if features is not None else None
    for r0, r1 in passes[4]:
        ranges = [(r0, r1)]
        for _ in range(4):
            ranges.append(_hull(*ranges[-1], h, 1))
        z0, z1 = ranges[-1]  # rows of z the decoder reads
        t = conv_rows(dp1, 0, (z0, z1), hp, branch.patch_unembed.proj[0])[..., :w]
        z = F.conv2d(shared[:, :, z0:z1], w_s)
        z += F.conv2d(t, w_t)
        z = second(F.relu_(z))
        start = z0
        for i in range(4):
            out_rows = ranges[3 - i]
            z = conv_rows(z, start, out_rows, h, stack[3 * i + 1])
            z = torch.tanh(z) if i == 3 else F.relu_(z)
            start = out_rows[0]
        fused[:, :, r0:r1] = z / 2 + 0.5
        if branch_out is not None:
            branch_out[:, :, r0:r1] = t[:, :, r0 - z0 : r1 - z0]
        tick()
    if features is not None:
        features["shared"] = shared
        features["multimodal"] = mm_out[:, :, :h, :w]  # type: ignore[index]
        features["photographic"] = dp1[:, :, :h, :w]
        features["branch"] = branch_out  # type: ignore[assignment]
    return fused
