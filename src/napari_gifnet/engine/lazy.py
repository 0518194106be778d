"""Lazy fusion of Dask (or zarr-backed) arrays, chunk by chunk.

:func:`fuse_dask` builds a Dask graph (docs/engine.md, "Lazy arrays, stacks
and clusters"): per plane one statistics task (:func:`_plane_statistics`) and
one task per output chunk (:func:`_fuse_chunk`). Each chunk equals the same
part of ``fuse(plane_a, plane_b).image`` and can be computed alone, on
whatever Dask scheduler is active.
"""

from __future__ import annotations

import warnings
from itertools import product
from os import PathLike
from typing import Any

import numpy as np

from .inputs import check_dtype, plane_shape
from .preprocess import Normalization, _check_normalization
from .result import MIN_SIDE
from .tiled.grid import pixel_count
from .tiled.run import REGION_HALO

#: Default edge of an output chunk, in pixels.
CHUNK = 1024


def is_dask(x: Any) -> bool:
    """True for a Dask array (without importing Dask when it is not one)."""
    return type(x).__module__.startswith("dask.")


def is_lazy(x: Any) -> bool:
    """True for arrays read on demand: Dask and zarr arrays."""
    return type(x).__module__.split(".")[0] in ("dask", "zarr")


def is_colour(shape: tuple[int, ...], rgb: bool | None = None) -> bool:
    """Whether the last axis of an array of ``shape`` holds colour channels.

    ``rgb`` when given; None: when that axis has 3 or 4 entries and there are
    at least 3 axes. The rule of :func:`as_dask` and :func:`fuse_dask`.
    """
    return (len(shape) >= 3 and shape[-1] in (3, 4)) if rgb is None else bool(rgb)


def as_dask(x: Any, rgb: bool | None = None) -> Any:
    """``x`` as a Dask array (zarr arrays keep their chunks; others: one chunk
    per plane, (H, W) or (H, W, C)).

    ``rgb`` says whether the last axis holds colour channels (None: guessed
    by :func:`is_colour`), so that a grey stack whose planes are 3 or 4
    pixels wide still gets one chunk per plane.
    """
    import dask.array as da

    if is_dask(x):
        return x
    if hasattr(x, "chunks") and not isinstance(x, np.ndarray):
        return da.from_array(x, chunks=x.chunks)
    shape = np.shape(x)
    plane = min(len(shape), 3 if is_colour(shape, rgb) else 2)
    return da.from_array(x, chunks=(1,) * (len(shape) - plane) + tuple(shape[len(shape) - plane :]))


def _chunk_rule(meta: dict[str, Any]) -> Any:
    """The normalisation that gives a chunk the values its whole plane got."""
    used = meta["normalization"]
    if used in ("dtype", "unchanged"):  # decided by the dtype, not the data
        return meta["requested"]
    lo, hi = meta["range"]
    return (float(lo), float(hi)) if lo < hi else "minmax"  # constant: zeros either way


def _plane_statistics(
    plane_a: np.ndarray,
    plane_b: np.ndarray,
    weights: str,
    device: str,
    normalization: Normalization,
    tile_pixels: int,
) -> dict[str, Any]:
    """Per plane: the inputs' normalisation rules (as :func:`napari_gifnet.fuse` decides
    them) and :func:`~napari_gifnet.engine.tiled.run.network_statistics`."""
    import torch

    from ..model.weights import load_model
    from .inputs import prepare_pair
    from .result import to_tensor
    from .tiled.run import network_statistics

    pair = prepare_pair(plane_a, plane_b, normalization)
    rules = (_chunk_rule(pair.meta_a), _chunk_rule(pair.meta_b))
    dev = torch.device(device)
    model, _ = load_model(weights, device=device)
    with torch.inference_mode():
        stats = network_statistics(
            model, to_tensor(pair.luma_a, dev), to_tensor(pair.luma_b, dev), tile_pixels=tile_pixels
        )
    # a chunk of a colour plane may be neutral: it is read as its plane was
    grey = tuple("exact" if m["grey_rgb"] else "published" for m in (pair.meta_a, pair.meta_b))
    return {"rules": rules, "grey_rgb": grey, "stats": stats.to(torch.device("cpu"))}


def _fuse_chunk(
    win_a: np.ndarray,
    win_b: np.ndarray,
    info: dict[str, Any],
    origin: tuple[int, int],
    rows: tuple[int, int],
    cols: tuple[int, int],
    size: tuple[int, int],
    weights: str,
    device: str,
    tile_pixels: int,
    with_luma: bool = False,
) -> np.ndarray:
    """The fused chunk ``rows`` x ``cols`` from input windows starting at ``origin``
    (the chunk plus a ``REGION_HALO`` border, through
    :func:`~napari_gifnet.engine.tiled.run.fuse_region`; colour with ``with_luma``:
    R, G, B and the network output, (h, w, 4))."""
    import torch

    from ..model.weights import load_model
    from .colour import apply_colour, plan_colour
    from .preprocess import to_luma_unit, to_rgb_unit
    from .result import check_finite_result, to_tensor
    from .tiled.run import fuse_region

    rule_a, rule_b = info["rules"]
    with warnings.catch_warnings():  # warnings (e.g. alpha dropped) came from the plane once
        warnings.simplefilter("ignore")
        grey_a, grey_b = info["grey_rgb"]
        luma_a, _ = to_luma_unit(win_a, normalization=rule_a, name="a", grey_rgb=grey_a)
        luma_b, _ = to_luma_unit(win_b, normalization=rule_b, name="b", grey_rgb=grey_b)
        rgb_a, rgb_b = to_rgb_unit(win_a, rule_a, name="a"), to_rgb_unit(win_b, rule_b, name="b")
    dev = torch.device(device)
    model, _ = load_model(weights, device=device)
    with torch.inference_mode():
        out = fuse_region(
            model, to_tensor(luma_a, dev), to_tensor(luma_b, dev), info["stats"].to(dev),
            rows, cols, size=size, origin=origin, tile_pixels=tile_pixels,
        )  # fmt: skip
    luma = out[0, 0].float().cpu().numpy()
    check_finite_result(luma, weights)
    r = slice(rows[0] - origin[0], rows[1] - origin[0])
    c = slice(cols[0] - origin[1], cols[1] - origin[1])
    plan = plan_colour(
        None if rgb_a is None else rgb_a[r, c], None if rgb_b is None else rgb_b[r, c]
    )
    if plan is None:
        return luma
    image = apply_colour(luma, plan)
    return np.concatenate([image, luma[..., None]], axis=-1) if with_luma else image


def _fuse_small(plane_a: np.ndarray, plane_b: np.ndarray, weights: str, device: str,
                normalization: Normalization, with_luma: bool = False) -> np.ndarray:
    """Planes under 5 pixels on a side: the engine pads them; one chunk (colour with
    ``with_luma``: R, G, B and the network output)."""
    from .eager import fuse_arrays
    from .options import FusionOptions

    options = FusionOptions(weights=weights, device=device, normalization=normalization)
    result = fuse_arrays(plane_a, plane_b, options)
    if with_luma and result.image.ndim == 3:
        return np.concatenate([result.image, result.luma[..., None]], axis=-1)
    return result.image


def _edges(extent: int, step: int) -> list[tuple[int, int]]:
    return [(s, min(s + step, extent)) for s in range(0, extent, step)]


def fuse_dask(
    a: Any,
    b: Any,
    *,
    weights: str | PathLike | None = None,
    device: str = "auto",
    normalization: Normalization = "auto",
    rgb: bool | tuple[bool, bool] | None = None,
    chunk: int = CHUNK,
    tile_pixels: int = 1 << 16,
) -> Any:
    """Fuse two (stacks of) images lazily; returns a Dask array.

    Parameters
    ----------
    a, b
        Dask arrays (numpy arrays are wrapped) of the same shape: (..., H, W)
        grey or (..., H, W, 3|4) colour, any leading axes (Z, T, channel...),
        each plane fused on its own. Inputs are never modified.
    weights
        Checkpoint path (None: resolved as :func:`napari_gifnet.fuse` does,
        once, here; every task then loads that file).
    device
        ``"auto"``, ``"cpu"``, ``"cuda"``... resolved here.
    normalization
        As for :func:`napari_gifnet.fuse`, decided per plane from the whole
        plane.
    rgb
        Whether the last axis holds colour channels (one flag, or one per
        input). None: when it has 3 or 4 entries and there are at least 3
        axes (:func:`is_colour`).
    chunk
        Edge of the output chunks in pixels (at least 64).
    tile_pixels
        Tile size inside a task (bounds its working memory).

    Returns
    -------
    dask.array.Array
        float32 in [0, 1]: (..., H, W) when both inputs are grey, else
        (..., H, W, 3); chunks of one plane and ``chunk`` x ``chunk`` pixels.

    Raises
    ------
    ValueError
        Shapes that differ, a plane that is not 2-D, no plane at all (an
        empty leading axis), a chunk under 64 or a ``tile_pixels`` under 64
        (or either not an integer), an unknown normalisation, a data type
        that cannot be fused (complex, text, dates...; the messages of the
        eager :func:`napari_gifnet.fuse`). All are raised here, before any
        task is built.
    TypeError
        Object data (as the eager :func:`napari_gifnet.fuse`).
    """
    image, _ = fuse_dask_with_luma(
        a, b, weights=weights, device=device, normalization=normalization, rgb=rgb, chunk=chunk,
        tile_pixels=tile_pixels, with_luma=False,
    )  # fmt: skip
    return image


def fuse_dask_with_luma(
    a: Any,
    b: Any,
    *,
    weights: str | PathLike | None = None,
    device: str = "auto",
    normalization: Normalization = "auto",
    rgb: bool | tuple[bool, bool] | None = None,
    chunk: int = CHUNK,
    tile_pixels: int = 1 << 16,
    with_luma: bool = True,
) -> tuple[Any, Any]:
    """:func:`fuse_dask`, also returning the lazy network output (the luma).

    Parameters
    ----------
    a, b, weights, device, normalization, rgb, chunk, tile_pixels
        As for :func:`fuse_dask`.
    with_luma
        Build the luma too: for colour results each chunk task then returns
        R, G, B and the luma, so computing both computes each chunk once.

    Returns
    -------
    (dask.array.Array, dask.array.Array or None)
        The fused image, as :func:`fuse_dask` returns it, and the network
        output (..., H, W), equal to ``fuse(plane_a, plane_b).luma`` plane by
        plane (None without ``with_luma``).

    Raises
    ------
    ValueError, TypeError
        As :func:`fuse_dask`.
    """
    import dask
    import dask.array as da

    from ..model.weights import load_model
    from .devices import resolve_device

    _check_normalization(normalization)  # the eager path's ValueError, before any task
    chunk, tile_pixels = pixel_count("chunk", chunk, 64), pixel_count("tile_pixels", tile_pixels, 64)
    a, b = (x if is_dask(x) else da.from_array(np.asarray(x), chunks=-1) for x in (a, b))
    check_dtype(a.dtype, a.shape, "a")  # the eager path's errors, not only at compute()
    check_dtype(b.dtype, b.shape, "b")
    flags = rgb if isinstance(rgb, tuple) else (rgb, rgb)
    colour = [is_colour(x.shape, f) for x, f in zip((a, b), flags)]
    lead_a = a.shape[: a.ndim - 2 - colour[0]]
    lead_b = b.shape[: b.ndim - 2 - colour[1]]
    plane_a, plane_b = a.shape[len(lead_a) :], b.shape[len(lead_b) :]
    if lead_a != lead_b or plane_a[:2] != plane_b[:2]:
        raise ValueError(
            f"the inputs must have the same shape apart from colour: a is {a.shape}, b is {b.shape}"
        )
    if len(plane_shape(np.empty(plane_a, np.uint8))) != 2 or min(plane_a[:2], default=0) < 1:
        raise ValueError(f"each plane must be an (H, W) or (H, W, 3|4) image, got {plane_a}")
    if 0 in lead_a:
        raise ValueError(
            f"the inputs hold no plane to fuse: a is {a.shape}, b is {b.shape} (an empty "
            "leading axis)"
        )
    dev = str(resolve_device(device))
    _, info = load_model(weights, device=dev)
    path = str(info.path)
    h, w = plane_a[:2]
    tail = ((4,) if with_luma else (3,)) if any(colour) else ()

    planes = []
    for index in product(*(range(n) for n in lead_a)):
        pa, pb = a[index], b[index]
        if h < MIN_SIDE or w < MIN_SIDE:
            task = dask.delayed(_fuse_small)(pa, pb, path, dev, normalization, with_luma)
            planes.append(da.from_delayed(task, (h, w, *tail), np.float32))
            continue
        stats = dask.delayed(_plane_statistics, pure=True)(pa, pb, path, dev, normalization, tile_pixels)
        rows_of_blocks = []
        for rows in _edges(h, chunk):
            blocks = []
            for cols in _edges(w, chunk):
                r0, r1 = max(rows[0] - REGION_HALO, 0), min(rows[1] + REGION_HALO, h)
                c0, c1 = max(cols[0] - REGION_HALO, 0), min(cols[1] + REGION_HALO, w)
                task = dask.delayed(_fuse_chunk, pure=True)(
                    pa[r0:r1, c0:c1], pb[r0:r1, c0:c1], stats, (r0, c0), rows, cols, (h, w),
                    path, dev, tile_pixels, with_luma,
                )  # fmt: skip
                shape = (rows[1] - rows[0], cols[1] - cols[0], *tail)
                blocks.append(da.from_delayed(task, shape, np.float32))
            rows_of_blocks.append(blocks)
        planes.append(da.concatenate([da.concatenate(r, axis=1) for r in rows_of_blocks], axis=0))
    out = planes[0] if not lead_a else da.stack(planes).reshape(*lead_a, h, w, *tail)
    if not any(colour):
        return out, (out if with_luma else None)
    return (out[..., :3], out[..., 3]) if with_luma else (out, None)


def compute_plane(
    result: Any, index: tuple[int, ...], progress: Any = None
) -> tuple[Any, np.ndarray]:
    """Compute one plane of a lazy result now; the rest stays lazy.

    Used by the napari widget in its worker thread, so that the plane napari
    shows first is ready when the layer is added instead of being computed
    on the GUI thread.

    Parameters
    ----------
    result
        A Dask array from :func:`fuse_dask`: (..., H, W) or (..., H, W, 3).
    index
        The plane's index along the leading axes (one int per leading axis;
        ``()`` for a single plane): the remaining axes are (H, W) or (H, W, 3).
    progress
        ``progress(done, total)`` called after each Dask task of the plane on
        local schedulers (an exception raised in it stops the computation).

    Returns
    -------
    (dask.array.Array, numpy.ndarray)
        An array equal to ``result`` whose blocks of that plane hold the
        computed values (no task is run again for them), and the plane.

    Raises
    ------
    ValueError
        If ``index`` does not name one plane of ``result``.
    """
    import dask.array as da
    from dask.base import tokenize
    from dask.callbacks import Callback
    from dask.highlevelgraph import HighLevelGraph

    index = tuple(int(i) for i in index)
    lead = len(index)
    tail = len(result.shape) - lead
    if not (tail == 2 or (tail == 3 and result.shape[-1] == 3)) or any(
        not 0 <= i < n for i, n in zip(index, result.shape)
    ):
        raise ValueError(f"index {index} does not name a plane of a result of shape {result.shape}")

    class _Report(Callback):
        def _start_state(self, _dsk: Any, state: Any) -> None:
            self.done = 0
            self.total = sum(len(state[k]) for k in ("ready", "waiting", "running", "finished"))

        def _posttask(self, *_: Any) -> None:
            self.done += 1
            if progress is not None:
                progress(self.done, self.total)

    with _Report():
        plane = np.asarray(result[index].compute())
    name = f"gifnet-shown-{tokenize(result, index)}"
    starts = [np.cumsum((0, *c)) for c in result.chunks]
    layer: dict[Any, Any] = {}
    for block in product(*(range(len(c)) for c in result.chunks)):
        spans = [(s[k], s[k + 1]) for s, k in zip(starts, block)]
        inside = all(lo == i and hi == i + 1 for (lo, hi), i in zip(spans, index))
        if inside:
            rest = tuple(slice(lo, hi) for lo, hi in spans[lead:])
            layer[(name, *block)] = plane[rest].reshape([hi - lo for lo, hi in spans])
        else:
            layer[(name, *block)] = (result.name, *block)
    graph = HighLevelGraph.from_collections(name, layer, dependencies=[result])
    return da.Array(graph, name, result.chunks, meta=result._meta), plane
