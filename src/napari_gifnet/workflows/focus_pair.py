"""Multi-focus pairs: focus selection and the focus-guided pyramid.

Both treat a near-focused and a far-focused image as a 2-plane focus stack,
registered (no alignment: ``fuse`` fuses registered pairs):

``"focus"`` (:func:`fuse_focus_pair` with ``pyramid=False``)
    :func:`napari_gifnet.workflows.focus_stack.fuse_stack` with
    ``method="focus"``: each pixel copied from the input of higher focus.
``"focus_pyramid"`` (``pyramid=True``)
    The same selection's depth map (0: the first input, 1: the second) used
    as the weight of the second input in a Laplacian pyramid blend of the two
    inputs, per colour channel: the finest detail level takes, per pixel, the
    coefficient of larger magnitude (a fine edge keeps its sharper side even
    where the selection is off by a pixel), every coarser level and the
    coarsest (Gaussian) level are blended with the matching level of the
    depth map's Gaussian pyramid (the selection's seams are spread over each
    level's scale, as in Burt and Adelson's multiresolution spline). The
    pyramid is :func:`napari_gifnet.methods.classical.laplacian_pyramid`'s.
    Chosen on the tune scenes of ``benchmarks/bench_multifocus_pairs.py``
    (max-abs on the finest 1, 2 or 3 levels: 1 scored best there).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..engine.inputs import as_array
from ..engine.result import FusionResult
from ..methods.classical import laplacian_pyramid, reconstruct_laplacian
from .focus import luma_of

__all__ = ["MAX_ABS_LEVELS", "FocusPairResult", "focus_planes", "fuse_focus_pair"]

#: How many of the finest pyramid levels take the larger-magnitude coefficient.
MAX_ABS_LEVELS = 1


@dataclass
class FocusPairResult(FusionResult):
    """A :class:`~napari_gifnet.engine.result.FusionResult` of a multi-focus pair.

    Attributes
    ----------
    depth_map
        int32 (H, W): 0 where the first input is in focus, 1 where the second.
    confidence
        float32 (H, W) in [0, 1]: the margin between the two inputs' focus
        (0: ambiguous, e.g. flat regions).
    """

    depth_map: np.ndarray | None = None
    confidence: np.ndarray | None = None


def focus_planes(a: Any, b: Any) -> np.ndarray:
    """The pair as a (2, H, W[, 3]) stack; a grey input beside an RGB one is repeated
    into three channels.

    Raises
    ------
    ValueError
        Inputs of different dtypes (not one sensor) or sizes, naming both.
    """
    a_arr, b_arr = as_array(a, "a"), as_array(b, "b")
    if a_arr.dtype != b_arr.dtype:
        raise ValueError(
            "a multi-focus pair needs two images of one sensor (one dtype): "
            f"a is {a_arr.dtype}, b is {b_arr.dtype}"
        )
    rgb = [x.ndim == 3 and x.shape[-1] == 3 for x in (a_arr, b_arr)]
    if any(rgb) and not all(rgb):
        a_arr, b_arr = (x if x.ndim == 3 else np.repeat(x[..., None], 3, axis=-1)
                        for x in (a_arr, b_arr))  # fmt: skip
    if a_arr.shape != b_arr.shape:
        raise ValueError(
            f"the inputs must have the same height and width: a is {a_arr.shape}, "
            f"b is {b_arr.shape}"
        )
    return np.stack([a_arr, b_arr])


def _pyramid_blend(x: np.ndarray, y: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """One channel: max-abs on the finest :data:`MAX_ABS_LEVELS` levels, else the
    Gaussian pyramid of ``weight`` (the weight of ``y``)."""
    px, py, pw = laplacian_pyramid(x), laplacian_pyramid(y), laplacian_pyramid(weight)
    blended = []
    for k, (cx, cy) in enumerate(zip(px, py)):
        if k < MAX_ABS_LEVELS and k < len(px) - 1:
            blended.append(np.where(np.abs(cx) >= np.abs(cy), cx, cy))
        else:
            w = reconstruct_laplacian(pw[k:])  # level k of the weight's Gaussian pyramid
            blended.append(cx * (1.0 - w) + cy * w)
    return reconstruct_laplacian(blended)


def fuse_focus_pair(
    a: Any, b: Any, *, pyramid: bool = True, normalization: Any = "auto",
    progress: Any = None,
) -> FocusPairResult:  # fmt: skip
    """Fuse a near- and a far-focused image of one scene (registered).

    Parameters
    ----------
    a, b : array_like
        The two inputs, grey or RGB, one dtype and size; never modified.
    pyramid : bool
        True: the focus-guided pyramid (``"focus_pyramid"``); False: focus
        selection (``"focus"``), each pixel copied from its input.
    normalization, progress
        As for :func:`napari_gifnet.workflows.focus_stack.fuse_stack` (one
        range for both inputs).

    Returns
    -------
    FocusPairResult
        ``image`` float32 in [0, 1], ``luma``, ``depth_map``, ``confidence``
        and the selection's metadata (with ``"pair_rule"``).

    Raises
    ------
    ValueError
        Inputs of different dtypes or sizes, or inputs fuse_stack refuses.
    """
    from .focus_stack import fuse_stack

    start = time.perf_counter()
    planes = focus_planes(a, b)
    sel = fuse_stack(planes, 0, "focus", align=False, normalization=normalization,
                     progress=progress)  # fmt: skip
    metadata = dict(sel.metadata)
    image = sel.image
    if pyramid:
        lo, hi = (float(v) for v in metadata["normalization"]["range"])
        unit = [np.clip((p.astype(np.float64) - lo) / (hi - lo), 0.0, 1.0) if hi > lo
                else np.zeros(p.shape) for p in planes]  # fmt: skip
        weight = sel.depth_map.astype(np.float64)
        if unit[0].ndim == 2:
            fused = _pyramid_blend(unit[0], unit[1], weight)
        else:
            fused = np.stack([_pyramid_blend(unit[0][..., c], unit[1][..., c], weight)
                              for c in range(unit[0].shape[-1])], axis=-1)  # fmt: skip
        image = np.clip(fused, 0.0, 1.0).astype(np.float32)
        metadata["pair_rule"] = (
            f"Laplacian pyramid blend guided by the focus selection: max-abs on the finest "
            f"{MAX_ABS_LEVELS} level(s), the depth map's Gaussian pyramid as weights elsewhere"
        )
    else:
        metadata["pair_rule"] = "focus selection: each pixel copied from the input in focus"
    return FocusPairResult(
        image=image, luma=luma_of(image) if pyramid else sel.luma, device=str(metadata.get("focus_device", "cpu")),
        elapsed=time.perf_counter() - start, metadata=metadata, depth_map=sel.depth_map,
        confidence=sel.confidence,
    )  # fmt: skip
