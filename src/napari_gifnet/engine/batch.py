"""Planes of one size through the network together: batches on a GPU.

:func:`fuse_planes` prepares each pair once, as :func:`~napari_gifnet.engine.fusion.fuse`
does, and on a CUDA device sends the planes through the network in batches
(:func:`batch_size`; docs/scaling.md): one forward pass instead of one per
plane, with the normalisation statistics kept per plane, so each result is
the one its plane gets alone (to float32 rounding). A batch that runs out of
memory is split in half and retried; a single plane, and every plane on the
CPU, takes the tiled path (:func:`~napari_gifnet.engine.eager.fuse_arrays`)
with its own retries, all in one :func:`~napari_gifnet.engine._memory.fusion_run`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from os import PathLike
from typing import Any

import numpy as np
import torch

from ..model.weights import load_model
from ..util.progress import Progress
from ._memory import fusion_run
from .devices import resolve_device
from .eager import fuse_arrays, fusion_result
from .inputs import PreparedPair, prepare_pair
from .options import FusionOptions
from .precision import check_precision, precision_mode
from .preprocess import Normalization
from .result import FusionResult, pad_small
from .retry import is_out_of_memory

__all__ = ["BYTES_PER_PIXEL", "MAX_BATCH", "batch_size", "fuse_planes"]

#: Peak memory of a whole-plane forward pass, per pixel of each plane, with
#: room for the allocator's slack (measured as the growth of the peak
#: resident memory on the CPU, float32: 5.7 kB for one 512 x 512 or
#: 1024 x 1024 plane, 6.8 kB per plane for a batch of two).
BYTES_PER_PIXEL = 8 * 1024
#: The largest batch (beyond it a GPU gains nothing more).
MAX_BATCH = 64
#: The share of the free memory a batch may plan to use.
_FREE_SHARE = 0.7
#: Planes above this many pixels are fused one by one (the tiled engine's
#: GPU tile: larger planes are tiled anyway).
MAX_BATCH_PLANE_PIXELS = 1 << 22


def batch_size(
    height: int, width: int, planes: int, device: torch.device, free_bytes: int | None = None
) -> int:
    """How many ``height`` x ``width`` planes go through the network at once.

    1 off CUDA, for a plane above :data:`MAX_BATCH_PLANE_PIXELS`, or when one
    plane does not fit; else as many of ``planes`` as fit in 70 % of
    ``free_bytes`` (default: the device's free memory now) at
    :data:`BYTES_PER_PIXEL`, at most :data:`MAX_BATCH`.
    """
    pixels = height * width
    if device.type != "cuda" or planes <= 1 or pixels > MAX_BATCH_PLANE_PIXELS:
        return 1
    if free_bytes is None:
        free_bytes = int(torch.cuda.mem_get_info(device)[0])
    fits = int(_FREE_SHARE * free_bytes // (pixels * BYTES_PER_PIXEL))
    return max(1, min(planes, fits, MAX_BATCH))


def fuse_planes(
    a: Sequence[Any] | np.ndarray,
    b: Sequence[Any] | np.ndarray,
    *,
    weights: str | PathLike | None = None,
    device: str | torch.device | None = "auto",
    normalization: Normalization = "auto",
    precision: str = "float32",
    batch: int | None = None,
    progress: Progress | None = None,
) -> list[FusionResult]:
    """Fuse plane pairs ``a[i]``, ``b[i]`` of one size; one result per pair.

    Parameters
    ----------
    a, b
        Sequences (or arrays with a leading plane axis) of planes, each what
        :func:`~napari_gifnet.engine.fusion.fuse` accepts; all of one size.
    weights, device, normalization, precision
        As for :func:`~napari_gifnet.engine.fusion.fuse`; normalisation is
        per plane.
    batch
        Planes per forward pass. None: :func:`batch_size` (1 off CUDA). A
        larger value forces batches on any device (used by the tests).
    progress
        Called with (planes done, planes) after each batch.

    Returns
    -------
    list of FusionResult
        ``metadata["batch"]`` says how many planes went through the network
        with it (1: the ordinary tiled path).

    Raises
    ------
    ValueError
        Different plane counts or sizes, and everything
        :func:`~napari_gifnet.engine.fusion.fuse` refuses, before any
        network work.
    """
    if len(a) != len(b):
        raise ValueError(f"a has {len(a)} planes and b has {len(b)}: give one b per a")
    if batch is not None and (isinstance(batch, bool) or not isinstance(batch, int) or batch < 1):
        raise ValueError(f"batch must be a positive number of planes, not {batch!r}")
    check_precision(precision)
    pairs, prepared_in = [], []  # each pair prepared once, and how long that took
    for pa, pb in zip(a, b):
        began = time.perf_counter()
        pairs.append(prepare_pair(pa, pb, normalization))
        prepared_in.append(time.perf_counter() - began)
    sizes = {p.luma_a.shape for p in pairs}
    if len(sizes) > 1:
        raise ValueError(
            f"the planes are of several sizes ({sorted(sizes)}): give planes of one size"
        )
    n = len(pairs)
    if n == 0:
        return []
    dev = resolve_device(device)
    h, w = pairs[0].luma_a.shape
    size = batch if batch is not None else batch_size(h, w, n, dev)
    results: list[FusionResult] = []
    with fusion_run():  # one heap and one set of maps for all the planes
        while len(results) < n:
            start = len(results)
            chunk = pairs[start : start + size]
            if len(chunk) == 1:
                options = FusionOptions(weights, dev, normalization, precision=precision)
                result = fuse_arrays(a[start], b[start], options, prepared=chunk[0],
                                     start=time.perf_counter() - prepared_in[start])  # fmt: skip
                result.metadata["batch"] = 1
                results.append(result)
            else:
                try:
                    results.extend(_fuse_batch(chunk, weights, dev, normalization, precision))
                except (RuntimeError, MemoryError) as exc:
                    if not is_out_of_memory(exc):
                        raise
                    if dev.type == "cuda":
                        torch.cuda.empty_cache()
                    size = max(1, len(chunk) // 2)
                    continue
            if progress is not None:
                progress(len(results), n)
    return results


def _fuse_batch(
    pairs: list[PreparedPair],
    weights: str | PathLike | None,
    dev: torch.device,
    normalization: Normalization,
    precision: str,
) -> list[FusionResult]:
    """One forward pass over the pairs' lumas; a result per pair."""
    start = time.perf_counter()
    model, info = load_model(weights, device=str(dev))
    padded = [(pad_small(p.luma_a), pad_small(p.luma_b)) for p in pairs]
    (h, w) = padded[0][0][1]

    def stack(which: int) -> torch.Tensor:
        planes = np.stack([pair[which][0] for pair in padded]).astype(np.float32, copy=False)
        return torch.from_numpy(planes)[:, None].to(dev)

    with torch.inference_mode(), precision_mode(precision, dev):
        out = model(stack(0), stack(1))[:, 0, :h, :w].float().cpu().numpy()
    elapsed = (time.perf_counter() - start) / len(pairs)
    run = {
        "storage": "memory",
        "tile_size": None,
        "tile_shape": [h, w],
        "tile_pixels": h * w,
        "batch": len(pairs),
        "out_of_memory_retries": 0,
        "retry_tile_size": None,
    }
    return [
        fusion_result(luma, pair, info, dev, normalization, precision, run, elapsed)
        for pair, luma in zip(pairs, out)
    ]
