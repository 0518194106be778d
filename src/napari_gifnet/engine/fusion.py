"""The public fusion entry point: :func:`fuse`.

Everything that fuses two images (the napari widget, the console helper, the
command line and the benchmarks) goes through :func:`fuse`, so they all get
the same validation, normalisation, colour handling and provenance.
"""

from __future__ import annotations

import time
from os import PathLike
from typing import Any

import torch

from ..util.progress import Progress
from .eager import fuse_arrays
from .lazy import is_dask
from .options import FusionOptions
from .preprocess import Normalization
from .result import FusionResult

__all__ = ["fuse", "fuse_options"]


def _fuse_lazy(a: Any, b: Any, options: FusionOptions, start: float) -> FusionResult:
    """:func:`fuse` for Dask inputs: a lazy result (see :mod:`napari_gifnet.engine.lazy`)."""
    from ..model.weights import load_model as _load
    from .devices import resolve_device
    from .lazy import fuse_dask_with_luma
    from .result import provenance

    if options.return_features:
        raise ValueError("return_features is not available for Dask inputs (lazy fusion)")
    if options.precision != "float32":
        raise ValueError("precision is float32 for Dask inputs (lazy fusion)")
    weights, normalization = options.weights, options.normalization
    dev = resolve_device(options.device)
    image, luma = fuse_dask_with_luma(
        a, b, weights=weights, device=str(dev), normalization=normalization
    )  # luma: the network output, as the eager result's (chunks computed once for both)
    _, info = _load(weights, device=str(dev))
    elapsed = time.perf_counter() - start
    metadata = {
        **provenance(info, dev),
        "lazy": True,
        "shape": tuple(image.shape),
        "normalization": normalization if isinstance(normalization, str) else list(normalization),
    }
    return FusionResult(image=image, luma=luma, device=str(dev), elapsed=elapsed, metadata=metadata)


def fuse_options(
    a: Any,
    b: Any,
    options: FusionOptions,
    progress: Progress | None = None,
    *,
    start: float | None = None,
) -> FusionResult:
    """:func:`fuse` with its options already checked into ``options``.

    Dask inputs give a lazy result, numpy inputs the eager one
    (:func:`~napari_gifnet.engine.eager.fuse_arrays`). ``start`` is the
    ``time.perf_counter()`` the call began at (now if None).
    """
    start = time.perf_counter() if start is None else start
    if is_dask(a) or is_dask(b):
        return _fuse_lazy(a, b, options, start)
    return fuse_arrays(a, b, options, progress=progress, start=start)


def fuse(
    a: Any,
    b: Any,
    *,
    weights: str | PathLike | None = None,
    device: str | torch.device | None = "auto",
    return_features: bool = False,
    normalization: Normalization = "auto",
    progress: Progress | None = None,
    storage: str = "auto",
    tile_size: int | None = None,
    precision: str = "float32",
) -> FusionResult:
    """Fuse two registered images of the same scene with GIFNet.

    Parameters
    ----------
    a, b
        The first and second input: arrays of shape (H, W) (grey), (H, W, 3)
        (RGB) or (H, W, 4) (RGBA: alpha is dropped with a warning), of dtype
        uint8, uint16, another integer type, bool or float. Order matters: the
        first is infrared / PET or SPECT / near-infrared / near-focus /
        over-exposed / multispectral band, the second visible / MRI / visible /
        far-focus / under-exposed / panchromatic. Inputs are never modified.
        Dask arrays (e.g. from zarr), with any leading axes (..., H, W[, 3]),
        give a lazy result: ``image`` and ``luma`` are Dask arrays computed
        chunk by chunk, each plane's statistics pass included (see
        :func:`napari_gifnet.engine.lazy.fuse_dask`); ``progress``, ``storage`` and
        ``tile_size`` do not apply and ``return_features`` is refused.
    weights
        Path of a GIFNet checkpoint. None uses ``GIFNET_WEIGHTS``, then the
        user cache, then downloads the published checkpoint (see
        :mod:`napari_gifnet.model.weights`).
    device
        ``"auto"`` (CUDA, then MPS, then CPU), ``"cpu"``, ``"cuda"``,
        ``"cuda:N"`` or ``"mps"``.
    return_features
        Also return the intermediate feature maps (see :class:`FusionResult`).
    normalization
        How non-uint8 inputs are mapped to [0, 1] (uint8 is always divided by
        255, as the published model expects): ``"auto"`` (integers other than
        uint8: robust 0.1-99.9 percentile range; floats already in [0, 1]:
        unchanged; other floats: percentile range), ``"dtype"`` (the dtype's
        full range), ``"minmax"``, ``"percentile"`` or a fixed ``(lo, hi)``
        range. Recorded per input in ``result.metadata``.
    progress
        Called as ``progress(done, total)`` after each tile of the
        computation. An exception raised by it stops the fusion between
        tiles and propagates unchanged, never retried, even a
        ``MemoryError`` (this is how the napari widget cancels). A
        retry after running out of memory continues the count (neither
        ``done`` nor ``done / total`` goes down; see
        :class:`~napari_gifnet.engine.retry.MonotonicProgress`).
    storage
        Where the three feature maps that must outlive a pass are kept:
        ``"memory"``, ``"disk"`` (scratch files in ``NAPARI_GIFNET_SCRATCH``
        or the temporary folder; resident memory stays about 1.3 GB whatever
        the size), ``"recompute"`` (a third of the scratch space, more time)
        or ``"auto"`` (memory when it fits comfortably). Same values in all.
    tile_size
        The tile edge in pixels (any integer type; rounded down to a multiple
        of 8, at least 8); a tile covering the image is whole-image
        inference. None: full-
        width bands or square tiles sized from the memory available (system
        memory on the CPU, free device memory on a GPU). Every tile size gives
        the same values (tiles read their neighbourhood and use whole-image
        normalisation statistics).
    precision
        ``"float32"`` (default: exact; on CUDA with TF32 off), ``"tf32"``,
        ``"bfloat16"`` or ``"float16"`` (faster on a GPU, with the measured
        differences of docs/scaling.md; see :mod:`napari_gifnet.engine.precision`).
        Recorded in ``metadata["precision"]``.

    Returns
    -------
    FusionResult
        ``image`` (grey or RGB, float32 in [0, 1]), ``luma``, ``features``,
        ``device``, ``elapsed`` and ``metadata``.

    Raises
    ------
    ValueError
        Shapes that differ, unsupported shapes or dtypes, NaN or infinite
        values, an unknown normalisation or storage, a tile size below 8, an
        unavailable device; a fused image with NaN or infinite values
        (:class:`~napari_gifnet.engine.result.NonFiniteResultError`, naming the weights file).
    napari_gifnet.model.weights.WeightsUnavailableError
        No checkpoint could be found or downloaded.
    OSError
        A ``"disk"`` or ``"recompute"`` storage (asked for, or chosen by
        ``"auto"``) whose scratch folder cannot be used or is too small (a
        :class:`~napari_gifnet.engine.tiled.stores.ScratchError` naming the folder).
    MemoryError
        The image does not fit in memory on the chosen device. Running out
        of memory (a torch out-of-memory error, or a ``MemoryError`` from
        NumPy) is retried once, in smaller tiles with the maps on disk (or
        recomputed where the scratch files cannot fit).
    """
    start = time.perf_counter()
    options = FusionOptions(
        weights=weights, device=device, normalization=normalization, storage=storage,
        tile_size=tile_size, precision=precision, return_features=return_features,
    )  # fmt: skip
    return fuse_options(a, b, options, progress, start=start)
