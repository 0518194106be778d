"""Tile-by-tile GIFNet inference: the same values, bounded memory.

:meth:`GIFNet.forward` evaluates every layer on the whole image at once, so
each of its dozens of intermediate maps (98 to 294 channels) is a full-size
allocation. :func:`fuse_streamed` evaluates the network in tiles (full-width
bands or squares, see :func:`napari_gifnet._tiles.tile_shape`) in three
passes, keeping only the maps that whole-image statistics force it to keep
(three 98-channel maps, in memory or in scratch files):

1. shared features S and both streams' patch embeddings, tile by tile (the
   encoder with a 3-pixel halo), accumulating the first block's
   normalisation statistics;
2. block 0 for both streams and the cross-fusion gate, tile by tile on the
   window grid, accumulating the second block's statistics;
3. block 1, the patch un-embedding and the global decoder, tile by tile:
   block 1 is evaluated on the tile plus the 5-pixel halo the decoder and
   un-embedding read, S is read back (or recomputed), and the result goes
   straight into the output.

Every tile reads its inputs through the reflections whole-map evaluation
would use, so results agree with :meth:`GIFNet.forward` to float32 rounding
whatever the tile size.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import torch
import torch.nn.functional as F

from ._regions import CHANNELS, RunningMoments, block_axis, reflect_indices
from ._stores import SCRATCH_ENV, DiskStore, MemoryStore, scratch_free_bytes
from ._tiles import Range, conv_region, count_tiles, crop, hull, take, tile_shape, tiles
from .network import BRANCH_MULTIPLE, GIFNet

#: Called after each tile with (tiles done, tiles in all).
Progress = Callable[[int, int], None]


def _encode(model: GIFNet, a: torch.Tensor, b: torch.Tensor, rows: Range, cols: Range) -> torch.Tensor:
    """Shared features S on ``rows`` x ``cols`` (the encoder with its 3-pixel halo)."""
    enc = model.getSharedFeatures
    size = a.shape[-2:]
    rr, cc = [rows], [cols]
    for _ in range(3):
        rr.append(hull(*rr[-1], size[0]))
        cc.append(hull(*cc[-1], size[1]))
    x = torch.cat((a[..., slice(*rr[3]), slice(*cc[3])], b[..., slice(*rr[3]), slice(*cc[3])]), dim=1)
    for i, conv in enumerate((enc.conv_1, enc.conv_2, enc.conv_3)):
        origin = (rr[3 - i][0], cc[3 - i][0])
        y = F.relu_(conv_region(x, origin, rr[2 - i], cc[2 - i], size, conv.conv2d))
        x = torch.cat((crop(x, origin, rr[2 - i], cc[2 - i]), y), dim=1)
    return x
#: Storage choices for the maps that outlive a pass (see :func:`fuse_streamed`).
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
    """``"memory"`` when the four 98-channel maps memory storage keeps (both
    embeddings, the gated stream and S) take under half the available memory,
    else ``"disk"`` when its three maps fit in 80% of the scratch folder, else
    ``"recompute"`` (one map on disk)."""
    one_map = CHANNELS * height * width * 4
    if 4 * one_map <= 0.5 * _available_memory(device):
        return "memory"
    return "disk" if 3 * one_map <= 0.8 * scratch_free_bytes() else "recompute"


def _check_scratch(storage: str, height: int, width: int) -> None:
    """Refuse, before any work, a storage whose scratch files cannot fit."""
    maps = {"disk": 3, "recompute": 1}.get(storage, 0)
    need = maps * CHANNELS * height * width * 4
    free = scratch_free_bytes()
    if need > free:
        raise OSError(
            f"storage={storage!r} needs {need / 1e9:.1f} GB of scratch space for a "
            f"{height} x {width} image but the scratch folder has {free / 1e9:.1f} GB free; "
            f"point {SCRATCH_ENV} at a bigger folder or use storage='recompute'"
        )


#: Bytes of working memory a tile needs per pixel (the block's qkv, attention
#: and MLP maps; measured on the CPU), used to size tiles from free memory.
TILE_BYTES_PER_PIXEL = 6 * 1024
#: Largest automatic tile on the CPU (larger tiles are no faster there) and
#: on a GPU.
_CPU_TILE_PIXELS = {"memory": 1 << 17, "disk": 1 << 16, "recompute": 1 << 16}
_GPU_TILE_PIXELS = 1 << 22
_MIN_TILE_PIXELS = 1 << 12


def auto_tile_pixels(height: int, width: int, device: torch.device, storage: str) -> int:
    """Pixels per tile that fit in a quarter of the memory left once the
    stored maps are counted, capped at what runs fastest on the device."""
    available = _available_memory(device)
    if storage == "memory":
        available -= 4 * CHANNELS * height * width * 4
    budget = int(0.25 * max(available, 0) / TILE_BYTES_PER_PIXEL)
    cap = _GPU_TILE_PIXELS if device.type != "cpu" else _CPU_TILE_PIXELS.get(storage, 1 << 16)
    return max(_MIN_TILE_PIXELS, min(cap, budget))


class _Net:
    """The network's pieces, evaluated on regions of one image pair."""

    def __init__(self, model: GIFNet, a: torch.Tensor, b: torch.Tensor) -> None:
        self.model, self.a, self.b = model, a, b
        self.h, self.w = a.shape[-2:]
        m = BRANCH_MULTIPLE
        self.hp, self.wp = -(-self.h // m) * m, -(-self.w // m) * m
        #: Where S is kept once computed (None: recomputed when needed).
        self.s_store: MemoryStore | None = None

    def shared(self, rows: Range, cols: Range) -> torch.Tensor:
        """Shared features S on image rows ``rows`` and columns ``cols``."""
        if self.s_store is not None and self.s_store.complete:
            return self.s_store.region(rows, cols)
        return _encode(self.model, self.a, self.b, rows, cols)

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


def fuse_streamed(
    model: GIFNet,
    a: torch.Tensor,
    b: torch.Tensor,
    *,
    tile_size: int | None = None,
    tile_pixels: int | None = None,
    storage: str = "auto",
    features: dict[str, torch.Tensor] | None = None,
    progress: Progress | None = None,
) -> torch.Tensor:
    """Fuse two (1, 1, H, W) images tile by tile; returns (1, 1, H, W).

    Parameters
    ----------
    model
        An eval-mode :class:`GIFNet`.
    a, b
        The inputs in [0, 1], at least 5 x 5 (the engine pads smaller ones).
    tile_size
        Tile edge in pixels (rounded down to a multiple of 8, at least 8; an
        edge covering the image means one tile, whole-image evaluation). None:
        chosen from ``tile_pixels``.
    tile_pixels
        About how many pixels a tile holds when ``tile_size`` is None. None:
        from the memory available (:func:`auto_tile_pixels`).
    storage
        Where the three maps that outlive a pass (both streams' embeddings,
        and the gated stream) are kept: ``"memory"``, ``"disk"`` (scratch
        files: resident memory stays bounded), ``"recompute"`` (the
        embeddings are recomputed where needed, only the gated stream goes to
        disk: a third of the scratch space, more time) or ``"auto"`` (see
        :func:`choose_storage`). All give the same values.
    features
        A dict to receive ``shared``, ``multimodal``, ``photographic`` and
        ``branch`` as (1, 98, H, W) maps (held in memory), or None.
    progress
        Called after each tile with (done, total) over all passes.

    Raises
    ------
    ValueError
        A batch of several pairs, an unknown storage, a tile size below 8.
    OSError
        The scratch folder has too little space for the chosen storage.
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
    _check_scratch(storage, hp, wp)
    if tile_pixels is None:
        tile_pixels = auto_tile_pixels(hp, wp, dev, storage)
    shape = tile_shape(hp, wp, tile_size=tile_size, tile_pixels=tile_pixels)
    out_shape = tile_shape(h, w, tile_size=tile_size, tile_pixels=tile_pixels)
    branch = model.branch
    block0, block1 = branch.layer1.blocks
    total = (
        count_tiles(hp, wp, 0, shape)
        + count_tiles(hp, wp, block0.shift, shape)
        + count_tiles(h, w, 0, out_shape)
    )
    done = 0

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
    if storage != "recompute":
        mm_store, dp_store = store(), store()
        if storage == "memory":  # S too, so that the decoder need not recompute it
            net.s_store = MemoryStore(CHANNELS, h, w, dev)
    mm_moments, dp_moments = RunningMoments(), RunningMoments()
    for rows, cols in tiles(hp, wp, 0, shape):
        mm_t, dp_t = net.embeddings(rows, cols)
        mm_moments.add(mm_t)
        dp_moments.add(dp_t)
        if mm_store is not None and dp_store is not None:
            mm_store.write(rows[0], mm_t, cols[0])
            dp_store.write(rows[0], dp_t, cols[0])
        tick()
    if net.s_store is not None:
        net.s_store.complete = True
    mm_stats, dp_stats = mm_moments.statistics(eps), dp_moments.statistics(eps)
    # 2. Block 0 for both streams, then the gate; statistics for block 1.
    gated = store()
    gate_moments = RunningMoments()
    alpha = branch.layer1.weights_mfif[0]
    for rows, cols in tiles(hp, wp, block0.shift, shape):
        ra, ca = block_axis(*rows, hp, block0.shift), block_axis(*cols, wp, block0.shift)
        src = (ra.src_start, ra.src_stop), (ca.src_start, ca.src_stop)
        if mm_store is not None and dp_store is not None:
            mm_src, dp_src = mm_store.region(*src), dp_store.region(*src)
        else:
            mm_src, dp_src = net.embeddings(*src)
        dp_t, query = block0.region(dp_src, "dp", dp_stats, ra, ca)
        mm_t, _ = block0.region(mm_src, "mm", mm_stats, ra, ca, query)
        g = torch.addcmul(dp_t, alpha, mm_t)
        gate_moments.add(g)
        gated.write(rows[0], g, cols[0])
        if feats is not None:
            feats["multimodal"].write(rows[0], mm_t, cols[0])
        tick()
    for s in (mm_store, dp_store):
        if s is not None:
            s.close()
    stats1 = gate_moments.statistics(eps)
    # 3. Block 1 (photographic stream only), un-embedding and decoder.
    decoder = model.cnnDecoder
    first, _, second = decoder.fuseComplementFeatures.mlp
    w_s, w_t = first.weight[:, :CHANNELS].contiguous(), first.weight[:, CHANNELS:].contiguous()
    stack = decoder.decoder
    fused = torch.empty((1, 1, h, w), device=dev)
    for rows, cols in tiles(h, w, 0, out_shape):
        rr, cc = [rows], [cols]
        for _ in range(4):
            rr.append(hull(*rr[-1], h))
            cc.append(hull(*cc[-1], w))
        z_rows, z_cols = rr[-1], cc[-1]  # where the decoder reads z
        u_rows, u_cols = hull(*z_rows, hp), hull(*z_cols, wp)  # where the un-embedding reads
        ra, ca = block_axis(*u_rows, hp, block1.shift), block_axis(*u_cols, wp, block1.shift)
        src = gated.region((ra.src_start, ra.src_stop), (ca.src_start, ca.src_stop))
        dp_t, _ = block1.region(src, "dp", stats1, ra, ca)
        u0 = (u_rows[0], u_cols[0])
        t = conv_region(dp_t, u0, z_rows, z_cols, (hp, wp), branch.patch_unembed.proj[0])
        shared = net.shared(z_rows, z_cols)
        z = F.conv2d(shared, w_s)
        z += F.conv2d(t, w_t)
        z = second(F.relu_(z))
        for i in range(4):
            z = conv_region(z, (rr[4 - i][0], cc[4 - i][0]), rr[3 - i], cc[3 - i], (h, w),
                            stack[3 * i + 1])
            z = torch.tanh(z) if i == 3 else F.relu_(z)
        fused[:, :, rows[0] : rows[1], cols[0] : cols[1]] = z / 2 + 0.5
        if feats is not None:
            z0 = (z_rows[0], z_cols[0])
            feats["photographic"].write(rows[0], crop(dp_t, u0, rows, cols), cols[0])
            feats["shared"].write(rows[0], crop(shared, z0, rows, cols), cols[0])
            feats["branch"].write(rows[0], crop(t, z0, rows, cols), cols[0])
        tick()
    gated.close()
    if features is not None and feats is not None:
        for name, s in feats.items():
            features[name] = s.data[:, :, :h, :w]
    return fused
