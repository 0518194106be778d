"""How a pair is evaluated tile by tile: where the maps go and how big the tiles are.

:func:`plan_tiles` decides both (the maps that outlive a pass: in memory when
they fit comfortably, else in scratch files, else recomputed; :func:`choose_storage`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ...model.windows import CHANNELS
from .._memory import free_heap_bytes
from .grid import TileShape, tile_shape
from .stages import padded_size
from .stores import POOL, SCRATCH_ENV, ScratchError, human_bytes, scratch_free_bytes

#: Storage choices for the maps that outlive a pass (see :func:`fuse_tiled`).
STORAGE = ("auto", "memory", "disk", "recompute")


def _available_memory(device: torch.device) -> int:
    """Memory a fusion may use: free device memory, or the system's available
    memory (psutil's ``available``, on every OS; on Linux that is
    ``MemAvailable``, which counts reclaimable page cache) plus what a run of
    fusions holds for reuse (free heap, kept maps: see
    :func:`napari_gifnet.engine._memory.fusion_run`)."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    import psutil

    return int(psutil.virtual_memory().available) + free_heap_bytes() + POOL.nbytes()


def choose_storage(height: int, width: int, device: torch.device) -> str:
    """``"memory"`` when the four 98-channel maps memory storage keeps (both
    embeddings, the gated stream and S) take under half the available memory,
    else ``"disk"`` when its three maps fit in 80% of the scratch folder, else
    ``"recompute"`` (one map on disk). The scratch folder is only consulted
    when memory does not fit (a :class:`~napari_gifnet.engine.tiled.stores.ScratchError`
    then names a folder that cannot be used)."""
    one_map = CHANNELS * height * width * 4
    if 4 * one_map <= 0.5 * _available_memory(device):
        return "memory"
    return "disk" if 3 * one_map <= 0.8 * scratch_free_bytes() else "recompute"


def resolve_storage(storage: str, height: int, width: int, device: torch.device) -> str:
    """``storage`` with ``"auto"`` replaced by :func:`choose_storage`'s choice
    for an image of ``height`` x ``width`` (padded to the branch's grid)."""
    if storage not in STORAGE:
        raise ValueError(f"unknown storage {storage!r}: use one of {', '.join(STORAGE)}")
    if storage != "auto":
        return storage
    return choose_storage(*padded_size(height, width), device)


def check_scratch(storage: str, height: int, width: int) -> None:
    """Refuse, before any work, a storage whose scratch files cannot fit in
    maps of ``height`` x ``width``; ``"memory"`` never touches the scratch
    folder.

    Raises
    ------
    napari_gifnet.engine.tiled.stores.ScratchError
        The scratch folder cannot be used, or has too little free space
        (the message names both sizes).
    """
    maps = {"disk": 3, "recompute": 1}.get(storage, 0)
    if not maps:
        return
    need = maps * CHANNELS * height * width * 4
    free = scratch_free_bytes()
    if need > free:
        hint = "" if storage == "recompute" else " or use storage='recompute'"
        raise ScratchError(
            f"storage={storage!r} needs {human_bytes(need)} of scratch space for a "
            f"{height} x {width} image but the scratch folder has {human_bytes(free)} free; "
            f"point {SCRATCH_ENV} at a bigger folder{hint}"
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


@dataclass(frozen=True)
class TilePlan:
    """How :func:`fuse_tiled` evaluates a pair (from :func:`plan_tiles`)."""

    size: tuple[int, int]  #: (H, W) of the pair
    storage: str  #: ``"memory"``, ``"disk"`` or ``"recompute"`` (``"auto"`` resolved)
    tile_size: int | None  #: the tile edge asked for (None: sized by pixels)
    grid: TileShape  #: the tiles of the first two passes, on the padded grid
    out: TileShape  #: the output tiles (the last pass)


def plan_tiles(
    height: int,
    width: int,
    device: torch.device,
    storage: str = "auto",
    *,
    tile_size: int | None = None,
    tile_pixels: int | None = None,
) -> TilePlan:
    """The storage and tiles :func:`fuse_tiled` uses on a ``height`` x
    ``width`` pair: ``storage`` (``"auto"``: :func:`resolve_storage`), tiles
    of edge ``tile_size`` when given, else of about ``tile_pixels`` pixels
    (None: from :func:`auto_tile_pixels`).

    Refuses, before any work, a storage whose scratch files cannot fit
    (:func:`check_scratch`).

    Raises
    ------
    ValueError
        An unknown storage, a tile size below 8 or not an integer.
    napari_gifnet.engine.tiled.stores.ScratchError
        The scratch folder cannot be used or is too small for ``storage``.
    """
    hp, wp = padded_size(height, width)
    storage = resolve_storage(storage, height, width, device)
    check_scratch(storage, hp, wp)
    if tile_size is None and tile_pixels is None:
        tile_pixels = auto_tile_pixels(hp, wp, device, storage)

    def shape(h: int, w: int) -> TileShape:
        return tile_shape(h, w, tile_size=tile_size, tile_pixels=tile_pixels or 1)

    grid = shape(hp, wp)  # also refuses a bad tile size
    edge = None if tile_size is None else int(tile_size)
    return TilePlan((height, width), storage, edge, grid, shape(height, width))
