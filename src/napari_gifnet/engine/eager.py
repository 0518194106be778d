"""Eager fusion of two numpy images: prepare, plan the tiles, run the network over
them (retrying in smaller tiles when memory runs out), check, colour, result."""

from __future__ import annotations

import time
import traceback
from typing import Any

import numpy as np
import torch

from ..model.weights import load_model
from ..util.progress import Progress
from ._memory import reuse_heap
from .colour import apply_colour
from .devices import resolve_device
from .inputs import PreparedPair, prepare_pair
from .options import FusionOptions
from .precision import precision_mode
from .preprocess import Normalization
from .result import FusionResult, check_finite_result, pad_small, provenance, to_tensor
from .retry import (
    RETRY_STORAGES,
    CallbackRaised,
    MonotonicProgress,
    guarded,
    is_out_of_memory,
    next_try,
)
from .tiled.plan import plan_tiles
from .tiled.run import fuse_tiled


def fuse_arrays(
    a: Any,
    b: Any,
    options: FusionOptions,
    *,
    progress: Progress | None = None,
    start: float | None = None,
    prepared: PreparedPair | None = None,
) -> FusionResult:
    """:func:`~napari_gifnet.engine.fusion.fuse` for numpy inputs, with its checked options.

    ``start`` is the ``time.perf_counter()`` the call began at (now if None).
    ``prepared`` is the pair ``prepare_pair(a, b, options.normalization)``
    already gave (it is not prepared again), or None.
    """
    start = time.perf_counter() if start is None else start
    normalization, tile_size = options.normalization, options.tile_size
    pair = prepared if prepared is not None else prepare_pair(a, b, normalization)
    dev = resolve_device(options.device)
    model, info = load_model(options.weights, device=str(dev))
    (pa, (h, w)), (pb, _) = pad_small(pair.luma_a), pad_small(pair.luma_b)
    features: dict[str, torch.Tensor] | None = {} if options.return_features else None
    # storage and tiles (of the small images padded), once per try; a storage that
    # cannot fit is refused here
    plan = plan_tiles(*pa.shape, dev, options.storage, tile_size=tile_size)
    rungs = list(RETRY_STORAGES[plan.storage])  # on running out of memory
    report, retries, failures = MonotonicProgress(guarded(progress)), 0, []
    raised: BaseException | None = None  # by the progress callback: passed on unchanged
    while True:
        try:
            with torch.inference_mode(), reuse_heap(), precision_mode(options.precision, dev):
                out = fuse_tiled(
                    model,
                    to_tensor(pa, dev),
                    to_tensor(pb, dev),
                    plan=plan,
                    features=features,
                    progress=report,
                )
                luma = out[0, 0, :h, :w].float().cpu().numpy()
                feats = {
                    k: np.ascontiguousarray(v[0, :, :h, :w].float().cpu().numpy())
                    for k, v in (features or {}).items()
                }
            break
        except CallbackRaised as carrier:
            raised = carrier.error
            break
        except (RuntimeError, MemoryError) as exc:
            if not is_out_of_memory(exc):
                raise
            out = None  # drop what the failed try held before the next one
            if features is not None:
                features.clear()
            failures.append(f"{plan.storage!r} in {plan.out.describe()} tiles: {exc}")
            nxt, skipped = next_try(plan, dev, rungs)
            failures.extend(f"skipped {why}" for why in skipped)
            if nxt is None:
                raise MemoryError(
                    f"a {h} x {w} fusion does not fit in the memory of {dev}, even in small "
                    f"tiles with scratch storage; tried {'; '.join(failures)}"
                ) from exc
            plan = nxt
            traceback.clear_frames(exc.__traceback__)  # free the failed try's maps now
        if dev.type == "cuda":
            torch.cuda.empty_cache()
        retries += 1
        report.restart()
    if raised is not None:
        raise raised  # outside the handler, so it carries no trace of the carrier
    run = {
        "storage": plan.storage,
        "tile_size": None if tile_size is None else int(tile_size),
        "tile_shape": [plan.out.rows, plan.out.cols],
        "tile_pixels": plan.out.rows * plan.out.cols,
        "out_of_memory_retries": retries,
        "retry_tile_size": plan.tile_size if retries else None,
    }
    elapsed = time.perf_counter() - start
    return fusion_result(
        luma, pair, info, dev, normalization, options.precision, run, elapsed, feats
    )


def fusion_result(
    luma: np.ndarray,
    pair: PreparedPair,
    info: Any,
    dev: torch.device,
    normalization: Normalization,
    precision: str,
    run: dict[str, Any],
    elapsed: float,
    features: dict[str, np.ndarray] | None = None,
) -> FusionResult:
    """The result of a network run: the fused luma checked, coloured as the
    pair's plan says, with the provenance every GIFNet result records.

    ``run`` says how the network ran (storage, tiles, retries...); it goes
    into the metadata between the size and the precision.
    """
    check_finite_result(luma, info.path)
    image = luma if pair.plan is None else apply_colour(luma, pair.plan)
    h, w = luma.shape
    metadata = {
        **provenance(info, dev),
        "height": h,
        "width": w,
        **run,
        "precision": precision,
        **pair.provenance(normalization),
        "elapsed_s": round(elapsed, 4),
    }
    return FusionResult(
        image=image, luma=luma, features=features or {}, device=str(dev), elapsed=elapsed,
        metadata=metadata,
    )  # fmt: skip
