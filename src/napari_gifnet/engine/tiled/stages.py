"""The pieces of GIFNet's piece-by-piece evaluation, one tile at a time.

:class:`Pieces` evaluates the network's stages on regions of an image pair:
the shared encoder and patch embeddings (:meth:`Pieces.embeddings`), block 0
of both streams with the cross-fusion gate (:meth:`Pieces.gate`), and block 1
with the un-embedding and decoder (:meth:`Pieces.decode`). The normalisation
statistics each stage needs come from the whole image and are passed in.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import torch
import torch.nn.functional as F

from ...model.network import BRANCH_MULTIPLE, GIFNet
from ...model.windows import block_axis, conv_region, reflect_indices, take
from .grid import Range, crop, hull

Stats = tuple[torch.Tensor, torch.Tensor]


def padded_size(height: int, width: int) -> tuple[int, int]:
    """``height`` x ``width`` rounded up to the branch's grid (the extent of
    the maps that are stored)."""
    m = BRANCH_MULTIPLE
    return -(-height // m) * m, -(-width // m) * m


class Store(Protocol):
    """What the stages read maps from (see :mod:`napari_gifnet.engine.tiled.stores`)."""

    def region(self, rows: Range, cols: Range) -> torch.Tensor: ...


@dataclass
class NetStats:
    """The whole-image normalisation statistics: block 0's input for each
    stream, and block 1's input (the gated stream)."""

    mm: Stats
    dp: Stats
    gate: Stats

    def to(self, device: torch.device) -> NetStats:
        def move(s: Stats) -> Stats:
            return s[0].to(device), s[1].to(device)

        return NetStats(move(self.mm), move(self.dp), move(self.gate))


@dataclass
class Decoded:
    """A decoded tile and the maps around it (for the feature layers)."""

    fused: torch.Tensor
    photographic: torch.Tensor
    branch: torch.Tensor
    shared: torch.Tensor


class Pieces:
    """The network's stages, evaluated on regions of one image pair.

    Parameters
    ----------
    model
        An eval-mode :class:`GIFNet`.
    a, b
        (1, 1, h, w) inputs in [0, 1]: the whole images, or the window of them
        from ``origin`` on (how a chunk of a lazy array is computed alone).
    size
        (H, W) of the whole images (default: the shape of ``a``).
    origin
        Where ``a`` and ``b`` start in the whole images.
    """

    def __init__(
        self,
        model: GIFNet,
        a: torch.Tensor,
        b: torch.Tensor,
        size: tuple[int, int] | None = None,
        origin: tuple[int, int] = (0, 0),
    ) -> None:
        self.model, self.a, self.b, self.origin = model, a, b, origin
        self.h, self.w = size if size is not None else tuple(a.shape[-2:])
        self.hp, self.wp = padded_size(self.h, self.w)
        self.block0, self.block1 = model.branch.layer1.blocks
        #: Where S is kept once computed (None: recomputed when needed).
        self.s_store = None

    def _inputs(self, rows: Range, cols: Range) -> torch.Tensor:
        (r0, c0), (h, w) = self.origin, self.a.shape[-2:]
        if rows[0] < r0 or cols[0] < c0 or rows[1] > r0 + h or cols[1] > c0 + w:
            raise IndexError(f"input region {rows} x {cols} is outside the window held")
        part = (..., slice(rows[0] - r0, rows[1] - r0), slice(cols[0] - c0, cols[1] - c0))
        pair = torch.cat((self.a[part], self.b[part]), dim=1)
        if pair.device.type == "cpu":
            # channels-last from the start: the encoder's convolutions, and the
            # embeddings' that read S, are a third faster so on oneDNN
            pair = pair.contiguous(memory_format=torch.channels_last)
        return pair

    def encode(self, rows: Range, cols: Range) -> torch.Tensor:
        """Shared features S on ``rows`` x ``cols`` (the encoder, 3-pixel halo)."""
        enc = self.model.getSharedFeatures
        size = (self.h, self.w)
        rr, cc = [rows], [cols]
        for _ in range(3):
            rr.append(hull(*rr[-1], size[0]))
            cc.append(hull(*cc[-1], size[1]))
        x = self._inputs(rr[3], cc[3])
        for i, conv in enumerate((enc.conv_1, enc.conv_2, enc.conv_3)):
            origin = (rr[3 - i][0], cc[3 - i][0])
            y = F.relu_(conv_region(x, origin, rr[2 - i], cc[2 - i], size, conv.conv2d))
            x = torch.cat((crop(x, origin, rr[2 - i], cc[2 - i]), y), dim=1)
        return x

    def shared(self, rows: Range, cols: Range) -> torch.Tensor:
        """Shared features S on image rows ``rows`` and columns ``cols``."""
        if self.s_store is not None and self.s_store.complete:
            return self.s_store.region(rows, cols)
        return self.encode(rows, cols)

    def embeddings(self, rows: Range, cols: Range) -> tuple[torch.Tensor, torch.Tensor]:
        """Both streams' patch embeddings on a region of the padded grid."""
        # positions of the padded S the convolution reads, then where they are in S
        r_src = reflect_indices(rows[0] - 1, rows[1] + 1, self.hp)
        c_src = reflect_indices(cols[0] - 1, cols[1] + 1, self.wp)
        origin = (int(r_src.min()), int(c_src.min()))
        s_rows = reflect_indices(origin[0], int(r_src.max()) + 1, self.h)
        s_cols = reflect_indices(origin[1], int(c_src.max()) + 1, self.w)
        s_r = (int(s_rows.min()), int(s_rows.max()) + 1)
        s_c = (int(s_cols.min()), int(s_cols.max()) + 1)
        shared = self.shared(s_r, s_c)
        if self.s_store is not None and rows[0] < self.h and cols[0] < self.w:
            own_r, own_c = (rows[0], min(rows[1], self.h)), (cols[0], min(cols[1], self.w))
            self.s_store.write(own_r[0], crop(shared, (s_r[0], s_c[0]), own_r, own_c), own_c[0])
        padded = take(take(shared, s_rows - s_r[0], 2), s_cols - s_c[0], 3)
        size = (self.hp, self.wp)
        branch = self.model.branch
        return tuple(  # type: ignore[return-value]
            conv_region(padded, origin, rows, cols, size, embed.proj)
            for embed in (branch.patch_embed_ivif, branch.patch_embed_mfif)
        )

    def gate(
        self,
        stats: NetStats,
        rows: Range,
        cols: Range,
        embedded: tuple[Store, Store] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Block 0 of both streams and the gate on a region of the padded grid.

        ``embedded`` holds both streams' embeddings (recomputed when None).
        Returns the gated stream and the multimodal stream there.
        """
        ra = block_axis(*rows, self.hp, self.block0.shift)
        ca = block_axis(*cols, self.wp, self.block0.shift)
        src = (ra.src_start, ra.src_stop), (ca.src_start, ca.src_stop)
        if embedded is not None:
            mm_src, dp_src = embedded[0].region(*src), embedded[1].region(*src)
        else:
            mm_src, dp_src = self.embeddings(*src)
        dp_t, query = self.block0.region(dp_src, "dp", stats.dp, ra, ca)
        mm_t, _ = self.block0.region(mm_src, "mm", stats.mm, ra, ca, query)
        alpha = self.model.branch.layer1.weights_mfif[0]
        return torch.addcmul(dp_t, alpha, mm_t), mm_t

    def _decode_plan(self, rows: Range, cols: Range) -> tuple[list[Range], list[Range], Any, Any]:
        """For an output tile: the decoder's ranges (tile, then each 3x3
        convolution's input; the last is where z is read) and block 1's plan
        over the halo the un-embedding reads."""
        rr, cc = [rows], [cols]
        for _ in range(4):
            rr.append(hull(*rr[-1], self.h))
            cc.append(hull(*cc[-1], self.w))
        u_rows, u_cols = hull(*rr[-1], self.hp), hull(*cc[-1], self.wp)
        ra = block_axis(*u_rows, self.hp, self.block1.shift)
        ca = block_axis(*u_cols, self.wp, self.block1.shift)
        return rr, cc, ra, ca

    def decode_source(self, rows: Range, cols: Range) -> tuple[Range, Range]:
        """The region of the gated stream :meth:`decode` reads for a tile."""
        _, _, ra, ca = self._decode_plan(rows, cols)
        return (ra.src_start, ra.src_stop), (ca.src_start, ca.src_stop)

    def decode(self, stats: NetStats, gated: Store, rows: Range, cols: Range) -> Decoded:
        """Block 1, the un-embedding and the decoder on an output tile.

        Block 1 runs on the tile plus the halo the decoder's four 3x3
        convolutions and the un-embedding read.
        """
        model, h, w = self.model, self.h, self.w
        rr, cc, ra, ca = self._decode_plan(rows, cols)
        z_rows, z_cols = rr[-1], cc[-1]  # where the decoder reads z
        src = gated.region((ra.src_start, ra.src_stop), (ca.src_start, ca.src_stop))
        dp_t, _ = self.block1.region(src, "dp", stats.gate, ra, ca)
        u0 = (ra.src_start + ra.out, ca.src_start + ca.out)  # block 1's output origin
        unembed = model.branch.patch_unembed.proj[0]
        t = conv_region(dp_t, u0, z_rows, z_cols, (self.hp, self.wp), unembed)
        shared = self.shared(z_rows, z_cols)
        z = model.cnnDecoder.complement(shared, t)
        stack = model.cnnDecoder.decoder
        for i in range(4):
            origin = (rr[4 - i][0], cc[4 - i][0])
            z = conv_region(z, origin, rr[3 - i], cc[3 - i], (h, w), stack[3 * i + 1])
            z = torch.tanh(z) if i == 3 else F.relu_(z)
        z0 = (z_rows[0], z_cols[0])
        return Decoded(
            fused=z / 2 + 0.5,
            photographic=crop(dp_t, u0, rows, cols),
            branch=crop(t, z0, rows, cols),
            shared=crop(shared, z0, rows, cols),
        )
