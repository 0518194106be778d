"""The public fusion entry point: :func:`fuse`.

Everything that fuses two images (the napari widget, the console helper, the
command line and the benchmarks) goes through :func:`fuse`, so they all get
the same validation, normalisation, colour handling and provenance.
"""

from __future__ import annotations

import time
import traceback
from dataclasses import dataclass, field
from os import PathLike
from typing import Any

import numpy as np
import torch

from . import __version__
from ._memory import reuse_heap
from ._stores import ScratchError
from ._tiles import smaller_tile, tile_shape
from .colour import apply_colour
from .devices import resolve_device
from .inputs import prepare_pair
from .preprocess import Normalization
from .streaming import STORAGE, Progress, StreamPlan, fuse_streamed, plan_stream
from .weights import load_model

#: Images smaller than this on a side are padded (symmetrically) for the
#: network's reflect paddings and cropped back afterwards.
MIN_SIDE = 5
_PADDED_SIDE = 8
#: The storages of the retries after running out of memory, by the storage
#: of the first try: the maps go to disk, then the embeddings are recomputed.
#: Each retry's tiles hold at most a quarter of the pixels of the last try's.
_RETRY_STORAGES = {
    "memory": ("disk", "recompute"),
    "disk": ("disk", "recompute"),
    "recompute": ("recompute", "recompute"),
}


@dataclass
class FusionResult:
    """What :func:`fuse` returns.

    Attributes
    ----------
    image
        The fused image, float32 in [0, 1]: (H, W) when both inputs are grey,
        (H, W, 3) when either is RGB.
    luma
        The network output, (H, W) float32 in [0, 1].
    features
        With ``return_features=True``: intermediate maps, each (98, H, W)
        float32: ``"shared"`` (shared encoder), ``"multimodal"`` (multimodal
        stream after its transformer block), ``"photographic"`` (digital-
        photography stream after the task branch's last block) and
        ``"branch"`` (the task branch's output fed to the decoder).
        Otherwise empty.
    device
        The torch device the network ran on, e.g. ``"cpu"`` or ``"cuda:0"``.
    elapsed
        Wall time of the whole call, in seconds.
    metadata
        Provenance: method, package version, weights file and sha256, device,
        size, the normalisation of each input, the colour handling, and how
        the network was evaluated: ``storage`` (the one used),
        ``tile_size`` (the tile edge the caller asked for, None when sized
        automatically), ``tile_shape`` and ``tile_pixels`` (the output tiles
        actually used, by the last retry if any), ``out_of_memory_retries``
        and ``retry_tile_size`` (the tile edge of the last retry; None
        without one).
    """

    image: np.ndarray
    luma: np.ndarray
    features: dict[str, np.ndarray] = field(default_factory=dict)
    device: str = "cpu"
    elapsed: float = 0.0
    metadata: dict[str, Any] = field(default_factory=dict)


class NonFiniteResultError(ValueError):
    """The network gave NaN or infinite values (damaged weights or inputs)."""


def check_finite_result(luma: np.ndarray, weights: Any) -> None:
    """Refuse a fused luma holding NaN or inf, naming the weights file.

    Parameters
    ----------
    luma : numpy.ndarray
        The network output.
    weights
        The checkpoint file that produced it (named in the message).

    Raises
    ------
    NonFiniteResultError
        If any value of ``luma`` is NaN or infinite.
    """
    bad = int(luma.size - np.count_nonzero(np.isfinite(luma)))
    if bad:
        raise NonFiniteResultError(
            f"the fused image contains {bad:,} NaN or infinite value(s) (weights {weights}); "
            "the likely cause is non-finite or damaged weights, or inputs with non-finite values"
        )


class _CallbackRaised(BaseException):
    """Carries an exception raised by the caller's progress callback past the
    out-of-memory retries (only the engine's own allocations are retried)."""

    def __init__(self, error: BaseException) -> None:
        super().__init__(error)
        self.error = error


def _guarded(progress: Progress | None) -> Progress | None:
    """``progress`` with whatever it raises wrapped in :class:`_CallbackRaised`."""
    if progress is None:
        return None

    def call(done: int, total: int) -> None:
        try:
            progress(done, total)
        except BaseException as exc:  # noqa: BLE001 - unwrapped, unchanged, by fuse()
            raise _CallbackRaised(exc) from None

    return call


def _pad_small(x: np.ndarray) -> tuple[np.ndarray, tuple[int, int]]:
    h, w = x.shape
    ph = _PADDED_SIDE - h if h < MIN_SIDE else 0
    pw = _PADDED_SIDE - w if w < MIN_SIDE else 0
    if ph or pw:
        x = np.pad(x, ((0, ph), (0, pw)), mode="symmetric")
    return x, (h, w)


def _to_tensor(x: np.ndarray, device: torch.device) -> torch.Tensor:
    t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))[None, None].to(device)
    return t.contiguous(memory_format=torch.channels_last) if device.type == "cpu" else t


def _origin(info: Any, dev: Any) -> dict[str, Any]:
    """The provenance every GIFNet result starts with: method, version, weights, device."""
    return {
        "method": "GIFNet",
        "napari_gifnet_version": __version__,
        "weights": str(info.path),
        "weights_source": info.source,
        "weights_sha256": info.sha256,
        "device": str(dev),
    }


def _is_dask(x: Any) -> bool:
    return type(x).__module__.startswith("dask.")


def _fuse_lazy(
    a: Any, b: Any, weights: Any, device: Any, normalization: Normalization, start: float
) -> FusionResult:
    """:func:`fuse` for Dask inputs: a lazy result (see :mod:`napari_gifnet.lazy`)."""
    from .lazy import fuse_dask_with_luma
    from .weights import load_model as _load

    dev = resolve_device(device)
    image, luma = fuse_dask_with_luma(
        a, b, weights=weights, device=str(dev), normalization=normalization
    )  # luma: the network output, as the eager result's (chunks computed once for both)
    _, info = _load(weights, device=str(dev))
    elapsed = time.perf_counter() - start
    metadata = {
        **_origin(info, dev),
        "lazy": True,
        "shape": tuple(image.shape),
        "normalization": normalization if isinstance(normalization, str) else list(normalization),
    }
    return FusionResult(image=image, luma=luma, device=str(dev), elapsed=elapsed, metadata=metadata)


def _is_out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` says an allocation failed (torch, on any device, or NumPy)."""
    if isinstance(exc, (torch.OutOfMemoryError, MemoryError)):
        return True
    message = str(exc).lower()
    return isinstance(exc, RuntimeError) and ("allocate" in message or "out of memory" in message)


class MonotonicProgress:
    """Relays ``(done, total)`` from successive tries of one fusion so that
    neither ``done`` nor ``done / total`` ever goes down.

    The first try is relayed as it is. A retry (announced by :meth:`restart`)
    continues from what was shown: its ``(d, t)`` is shown as
    ``(offset + d, offset + t)``, ``offset`` being large enough that the bar
    starts no lower than it was (so the remaining part of the bar stands for
    the retry). Every tile is still relayed, so a callback that raises still
    stops a retry at once.
    """

    def __init__(self, progress: Progress | None) -> None:
        self.progress = progress
        self.done, self.total = 0, 0
        self.offset: int | None = 0

    def restart(self) -> None:
        """The next report starts a new try."""
        self.offset = None

    def __call__(self, done: int, total: int) -> None:
        if self.offset is None:  # first report of a retry: start where the bar is
            shown, of = self.done, self.total
            self.offset = shown if shown >= of else max(shown, -(-shown * total // (of - shown)))
        if self.total and self.done >= self.total:  # the bar was full: keep it full
            done, total = self.done, self.total
        else:
            done, total = self.offset + done, self.offset + total
        self.done, self.total = done, total
        if self.progress is not None:
            self.progress(done, total)


def _retry(
    failed: StreamPlan, device: torch.device, options: list[str]
) -> tuple[StreamPlan | None, list[str]]:
    """The plan of the next try after running out of memory with ``failed``
    (None when no retry is left), and why the retries passed over were
    skipped. ``options`` (the retries' storages, consumed) are skipped when
    they would repeat the failed try, or when their scratch files cannot fit
    (:func:`~napari_gifnet.streaming.plan_stream` refuses them)."""
    h, w = failed.size
    tile = failed.out
    edge = smaller_tile(tile, h, w)
    smaller = tile_shape(h, w, tile_size=edge)  # the retry's output tiles
    skipped = []
    while options:
        candidate = options.pop(0)
        if candidate == failed.storage and smaller.rows * smaller.cols >= tile.rows * tile.cols:
            skipped.append(f"{candidate!r} with tiles no smaller than {tile.describe()}")
            continue
        try:
            return plan_stream(h, w, device, candidate, tile_size=edge), skipped
        except ScratchError as exc:
            skipped.append(str(exc))
    return None, skipped


def _check_options(storage: str, tile_size: int | None) -> None:
    """Refuse bad options before any work (and before loading weights)."""
    if storage not in STORAGE:
        raise ValueError(f"unknown storage {storage!r}: use one of {', '.join(STORAGE)}")
    if tile_size is not None:
        tile_shape(8, 8, tile_size=tile_size)  # raises a ValueError naming the problem


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
        :func:`napari_gifnet.lazy.fuse_dask`); ``progress``, ``storage`` and
        ``tile_size`` do not apply and ``return_features`` is refused.
    weights
        Path of a GIFNet checkpoint. None uses ``GIFNET_WEIGHTS``, then the
        user cache, then downloads the published checkpoint (see
        :mod:`napari_gifnet.weights`).
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
        :class:`MonotonicProgress`).
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
        (:class:`NonFiniteResultError`, naming the weights file).
    napari_gifnet.weights.WeightsUnavailableError
        No checkpoint could be found or downloaded.
    OSError
        A ``"disk"`` or ``"recompute"`` storage (asked for, or chosen by
        ``"auto"``) whose scratch folder cannot be used or is too small (a
        :class:`~napari_gifnet._stores.ScratchError` naming the folder).
    MemoryError
        The image does not fit in memory on the chosen device. Running out
        of memory (a torch out-of-memory error, or a ``MemoryError`` from
        NumPy) is first retried in smaller tiles with the maps on disk, then
        recomputed, skipping retries whose scratch files cannot fit.
    """
    start = time.perf_counter()
    _check_options(storage, tile_size)
    if _is_dask(a) or _is_dask(b):
        if return_features:
            raise ValueError("return_features is not available for Dask inputs (lazy fusion)")
        return _fuse_lazy(a, b, weights, device, normalization, start)
    pair = prepare_pair(a, b, normalization)
    luma_a, luma_b, colour = pair.luma_a, pair.luma_b, pair.plan
    dev = resolve_device(device)
    model, info = load_model(weights, device=str(dev))
    (pa, size), (pb, _) = _pad_small(luma_a), _pad_small(luma_b)
    h, w = size
    run_size = pa.shape  # the size the network runs on (small images padded)
    features: dict[str, torch.Tensor] | None = {} if return_features else None
    # storage and tiles, once per try; a storage that cannot fit is refused here
    plan = plan_stream(*run_size, dev, storage, tile_size=tile_size)
    options = list(_RETRY_STORAGES[plan.storage])  # on running out of memory
    report, retries, failures = MonotonicProgress(_guarded(progress)), 0, []
    raised: BaseException | None = None  # by the progress callback: passed on unchanged
    while True:
        try:
            with torch.inference_mode(), reuse_heap():
                out = fuse_streamed(
                    model,
                    _to_tensor(pa, dev),
                    _to_tensor(pb, dev),
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
        except _CallbackRaised as carrier:
            raised = carrier.error
            break
        except (RuntimeError, MemoryError) as exc:
            if not _is_out_of_memory(exc):
                raise
            out = None  # drop what the failed try held before the next one
            if features is not None:
                features.clear()
            failures.append(f"{plan.storage!r} in {plan.out.describe()} tiles: {exc}")
            nxt, skipped = _retry(plan, dev, options)
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
    check_finite_result(luma, info.path)
    image = luma if colour is None else apply_colour(luma, colour)
    elapsed = time.perf_counter() - start
    metadata = {
        **_origin(info, dev),
        "height": h,
        "width": w,
        "storage": plan.storage,
        "tile_size": None if tile_size is None else int(tile_size),
        "tile_shape": [plan.out.rows, plan.out.cols],
        "tile_pixels": plan.out.rows * plan.out.cols,
        "out_of_memory_retries": retries,
        "retry_tile_size": plan.tile_size if retries else None,
        **pair.provenance(normalization),
        "elapsed_s": round(elapsed, 4),
    }
    return FusionResult(
        image=image, luma=luma, features=feats, device=str(dev), elapsed=elapsed, metadata=metadata
    )
