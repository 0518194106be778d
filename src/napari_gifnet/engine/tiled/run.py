"""Tile-by-tile GIFNet inference: the same values, bounded memory.

:meth:`GIFNet.forward` evaluates every layer on the whole image at once, so
each of its dozens of intermediate maps (98 to 294 channels) is a full-size
allocation. :func:`fuse_tiled` evaluates the network in tiles (full-width
bands or squares, see :func:`napari_gifnet.engine.tiled.grid.tile_shape`) in the
three passes docs/engine.md describes (numbered in its code), keeping only
the maps that whole-image statistics force it to keep (three 98-channel maps,
in memory or in scratch files; S is kept in memory too, or recomputed).

Every tile reads its inputs through the reflections whole-map evaluation
would use, so results agree with :meth:`GIFNet.forward` to float32 rounding
whatever the tile size.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from ...model.network import GIFNet
from ...model.windows import CHANNELS, RunningMoments
from ...util.progress import Progress
from .grid import Range, TileShape, count_tiles, tile_shape, tiles
from .plan import TilePlan, plan_tiles
from .stages import NetStats, Pieces, Stats
from .stores import POOL, DiskStore, MemoryStore

__all__ = ["REGION_HALO", "fuse_region", "fuse_tiled", "network_statistics"]


class _Ticker:
    """Counts finished tiles and reports them to a progress callback."""

    def __init__(self, total: int, progress: Progress | None) -> None:
        self.total, self.done, self.progress = total, 0, progress

    def __call__(self) -> None:
        self.done += 1
        if self.progress is not None:
            self.progress(self.done, self.total)


def fuse_tiled(
    model: GIFNet,
    a: torch.Tensor,
    b: torch.Tensor,
    *,
    tile_size: int | None = None,
    tile_pixels: int | None = None,
    storage: str = "auto",
    features: dict[str, torch.Tensor] | None = None,
    progress: Progress | None = None,
    plan: TilePlan | None = None,
) -> torch.Tensor:
    """Fuse two (1, 1, H, W) images tile by tile; returns (1, 1, H, W).

    Parameters
    ----------
    model
        An eval-mode :class:`GIFNet`.
    a, b
        The inputs in [0, 1], at least 5 x 5 (the engine pads smaller ones).
    tile_size, tile_pixels
        The tile edge (see :func:`~napari_gifnet.engine.tiled.grid.tile_shape`),
        or None: tiles of about ``tile_pixels`` pixels (None: from the memory
        available, :func:`~napari_gifnet.engine.tiled.plan.auto_tile_pixels`).
    storage
        Where the three maps that outlive a pass (both streams' embeddings,
        and the gated stream) are kept: ``"memory"``, ``"disk"`` (scratch
        files), ``"recompute"`` (the embeddings recomputed where needed, only
        the gated stream on disk) or ``"auto"`` (see
        :func:`~napari_gifnet.engine.tiled.plan.choose_storage`). All give the
        same values.
    features
        A dict to receive ``shared``, ``multimodal``, ``photographic`` and
        ``branch`` as (1, 98, H, W) maps (held in memory), or None.
    progress
        Called after each tile with (done, total) over all passes.
    plan
        The storage and tiles, already planned by
        :func:`~napari_gifnet.engine.tiled.plan.plan_tiles` for
        this pair (its scratch space checked); ``tile_size``,
        ``tile_pixels`` and ``storage`` are then not used. None: planned
        here from them.

    Raises
    ------
    ValueError
        A batch of several pairs, an unknown storage, a tile size below 8, a
        ``plan`` for another size.
    napari_gifnet.engine.tiled.stores.ScratchError
        An ``OSError``: the scratch folder cannot be used or has too little
        space for the chosen storage (never raised for ``"memory"``).
    """
    if a.shape[0] != 1:
        raise ValueError("fuse_tiled works on one image pair at a time")
    net = Pieces(model, a, b)
    h, w, hp, wp = net.h, net.w, net.hp, net.wp
    dev = a.device
    if plan is None:
        plan = plan_tiles(h, w, dev, storage, tile_size=tile_size, tile_pixels=tile_pixels)
    elif plan.size != (h, w):
        raise ValueError(f"the plan is for a {plan.size} pair, not {(h, w)}")
    storage, shape, out_shape = plan.storage, plan.grid, plan.out
    # maps kept from an earlier fusion of a run that this one will not reuse go now
    maps = {(1, CHANNELS, hp, wp), (1, CHANNELS, h, w)}
    POOL.retain(maps if storage == "memory" or features is not None else set())
    shift0 = net.block0.shift
    tick = _Ticker(
        count_tiles(hp, wp, 0, shape) + count_tiles(hp, wp, shift0, shape)
        + count_tiles(h, w, 0, out_shape),
        progress,
    )

    def store() -> MemoryStore | DiskStore:
        kind = MemoryStore if storage == "memory" else DiskStore
        return kind(CHANNELS, hp, wp, dev)

    feats = None if features is None else {
        name: MemoryStore(CHANNELS, h if name in ("shared", "branch") else hp,
                          w if name in ("shared", "branch") else wp, dev)
        for name in ("shared", "multimodal", "photographic", "branch")
    }
    # 1. Both streams' embeddings and the statistics of block 0's inputs.
    embedded = None
    if storage != "recompute":
        embedded = (store(), store())
        if storage == "memory":  # S too, so that the decoder need not recompute it
            net.s_store = MemoryStore(CHANNELS, h, w, dev)
    mm_stats, dp_stats = _embedding_statistics(net, shape, embedded, tick)
    if net.s_store is not None:
        net.s_store.complete = True
    # 2. Block 0 for both streams, then the gate; statistics for block 1.
    gated = store()
    gate_moments = RunningMoments()
    stats = NetStats(mm_stats, dp_stats, mm_stats)  # the gate's statistics come next
    for rows, cols in tiles(hp, wp, shift0, shape):
        g, mm_t = net.gate(stats, rows, cols, embedded)
        gate_moments.add(g)
        gated.write(rows[0], g, cols[0])
        if feats is not None:
            feats["multimodal"].write(rows[0], mm_t, cols[0])
        tick()
    for s in embedded or ():
        s.close()
    stats.gate = gate_moments.statistics(net.block0.norm1.eps)
    # 3. Block 1 (photographic stream only), un-embedding and decoder.
    fused = torch.empty((1, 1, h, w), device=dev)
    for rows, cols in tiles(h, w, 0, out_shape):
        out = net.decode(stats, gated, rows, cols)
        fused[:, :, rows[0] : rows[1], cols[0] : cols[1]] = out.fused
        if feats is not None:
            for name in ("photographic", "shared", "branch"):
                feats[name].write(rows[0], getattr(out, name), cols[0])
        tick()
    gated.close()
    if net.s_store is not None:
        net.s_store.close()
    if features is not None and feats is not None:
        for name, s in feats.items():
            features[name] = s.data[:, :, :h, :w]
    return fused


def _embedding_statistics(
    net: Pieces, shape: TileShape, embedded: tuple | None, tick: Callable[[], None]
) -> tuple[Stats, Stats]:
    """Pass 1: both streams' embeddings tile by tile (kept in ``embedded``
    unless None) and their whole-map statistics."""
    mm_moments, dp_moments = RunningMoments(), RunningMoments()
    for rows, cols in tiles(net.hp, net.wp, 0, shape):
        mm_t, dp_t = net.embeddings(rows, cols)
        mm_moments.add(mm_t)
        dp_moments.add(dp_t)
        if embedded is not None:
            embedded[0].write(rows[0], mm_t, cols[0])
            embedded[1].write(rows[0], dp_t, cols[0])
        tick()
    eps = net.block0.norm1.eps
    return mm_moments.statistics(eps), dp_moments.statistics(eps)


def network_statistics(
    model: GIFNet,
    a: torch.Tensor,
    b: torch.Tensor,
    *,
    tile_pixels: int = 1 << 16,
    progress: Progress | None = None,
) -> NetStats:
    """The whole-image normalisation statistics of a (1, 1, H, W) pair,
    computed tile by tile without storing any map (the first two passes
    of :func:`fuse_tiled` with the embeddings recomputed)."""
    net = Pieces(model, a, b)
    shape = tile_shape(net.hp, net.wp, tile_pixels=tile_pixels)
    shift0 = net.block0.shift
    tick = _Ticker(
        count_tiles(net.hp, net.wp, 0, shape) + count_tiles(net.hp, net.wp, shift0, shape), progress
    )

    mm_stats, dp_stats = _embedding_statistics(net, shape, None, tick)
    stats = NetStats(mm_stats, dp_stats, mm_stats)
    moments = RunningMoments()
    for rows, cols in tiles(net.hp, net.wp, shift0, shape):
        moments.add(net.gate(stats, rows, cols)[0])
        tick()
    stats.gate = moments.statistics(net.block0.norm1.eps)
    return stats


def _intersect(tile: tuple[Range, Range], region: tuple[Range, Range]) -> tuple[Range, Range] | None:
    out = []
    for (t0, t1), (r0, r1) in zip(tile, region):
        lo, hi = max(t0, r0), min(t1, r1)
        if lo >= hi:
            return None
        out.append((lo, hi))
    return out[0], out[1]


def fuse_region(
    model: GIFNet,
    a: torch.Tensor,
    b: torch.Tensor,
    stats: NetStats,
    rows: Range,
    cols: Range,
    *,
    size: tuple[int, int],
    origin: tuple[int, int] = (0, 0),
    tile_pixels: int = 1 << 16,
) -> torch.Tensor:
    """The fused output on ``rows`` x ``cols`` alone, from whole-image statistics.

    ``a`` and ``b`` hold the inputs of a ``size`` image from ``origin`` on,
    with at least :data:`REGION_HALO` pixels around the region (fewer at the
    image's edges). Gives the values :func:`fuse_tiled` gives there; the
    gated stream is computed on the region's neighbourhood, in tiles, and
    kept in memory.
    """
    net = Pieces(model, a, b, size=size, origin=origin)
    h, w, hp, wp = net.h, net.w, net.hp, net.wp
    region = (rows, cols)
    out_shape = tile_shape(h, w, tile_pixels=tile_pixels)
    out_tiles = [t for t in (_intersect(t, region) for t in tiles(h, w, 0, out_shape)) if t]
    # the part of the gated stream the output tiles read
    sources = [net.decode_source(*t) for t in out_tiles]
    g_rows = (min(s[0][0] for s in sources), max(s[0][1] for s in sources))
    g_cols = (min(s[1][0] for s in sources), max(s[1][1] for s in sources))
    gated = MemoryStore(CHANNELS, g_rows[1] - g_rows[0], g_cols[1] - g_cols[0], a.device,
                        origin=(g_rows[0], g_cols[0]))
    shape = tile_shape(hp, wp, tile_pixels=tile_pixels)
    for tile in tiles(hp, wp, net.block0.shift, shape):
        part = _intersect(tile, (g_rows, g_cols))
        if part is not None:
            gated.write(part[0][0], net.gate(stats, *part)[0], part[1][0])
    fused = torch.empty((1, 1, rows[1] - rows[0], cols[1] - cols[0]), device=a.device)
    for t_rows, t_cols in out_tiles:
        fused[:, :, t_rows[0] - rows[0] : t_rows[1] - rows[0],
              t_cols[0] - cols[0] : t_cols[1] - cols[0]] = net.decode(stats, gated, t_rows, t_cols).fused
    return fused


#: Input pixels a region needs on each side (see :func:`fuse_region`): the
#: decoder (4) and un-embedding (1), block 1's windows and depthwise
#: convolution (7), block 0's (7), the embedding (1) and the encoder (3),
#: rounded up.
REGION_HALO = 32
