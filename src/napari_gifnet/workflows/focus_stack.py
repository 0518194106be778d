"""All-in-focus fusion of a focus stack (N planes): :func:`fuse_stack`.

GIFNet and the classical baselines fuse pairs; a stack is reduced to one
image by folding pairs:

* ``strategy="sequential"``: the running result is fused with the next plane,
  ``((p0 + p1) + p2) + ...`` (N - 1 fusions, one running image in memory).
* ``strategy="tree"``: neighbours are fused pairwise, level by level (a
  balanced binary tree over the planes in order; N - 1 fusions, at most
  about log2(N) partial results in memory).

``method="focus"`` instead picks, per pixel, the plane of highest local focus
energy (:func:`napari_gifnet.workflows.focus.edge_focus`: a two-scale squared
Laplacian of Gaussian near native resolution), cleans that index map with a
median that only replaces unconfident decisions
(:func:`napari_gifnet.workflows.focus.guarded_median`) and copies each pixel from its
plane. With ``align``, focus is measured on each plane in its own frame and
the focus map is moved (not the pixels, whose resampling would blur the moved
planes and bias the decision towards the unmoved reference); the pixels
copied are resampled with clamped cubic splines.

Planes are read one at a time (``np.asarray`` of one index of the stack, so a
dask array is never loaded whole) and normalised with **one range for the
whole stack** (uint8 and bool: the dtype's; other data: the lowest 0.1th and
highest 99.9th percentile over the planes, unless ``normalization`` says
otherwise). Memory holds O(1) full-size planes besides the output (the tree:
O(log N)).

Output values (``keep_dtype``): selection (``"focus"`` or ``select=True``)
copies each pixel's value from its plane as stored (float32 on the [0, 1]
range otherwise). A pairwise blend is computed on the normalised planes
(clipped to the range) and mapped back linearly; pixels whose value in the
plane the depth map names lies outside the range (any channel), which the
fusion saw clipped, are restored from that plane, so highlights and outliers
beyond the 0.1-99.9 percentiles keep their values.

Depth map: ``method="focus"`` reports the (cleaned) index it selected by.
Pairwise methods report, per pixel, the plane locally most similar to the
fused result (smallest Gaussian-windowed mean squared difference of the lumas,
sigma 2 px), read in a second pass. Confidence is the normalised margin
between the best and the second-best plane (see :class:`~napari_gifnet.workflows.focus.BestPlane`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import ndimage

from .. import __version__
from ..engine import fusion_run
from ..util.progress import Progress
from ._dtype_cast import cast_to_dtype
from .alignment import align_mode, estimate_alignment, similarity_fallback
from .focus import BestPlane, dissimilarity, edge_focus, edge_focus_torch, guarded_median, luma_of
from .planes import Planes

__all__ = ["DEFAULT_METHOD", "DEFAULT_STRATEGY", "STRATEGIES", "StackResult", "fuse_stack"]

#: Pair folding strategies.
STRATEGIES = ("sequential", "tree")
#: The default method and strategy: the winner of ``benchmarks/evaluate_stacks.py``
#: on the generated ground-truth stacks (see ``docs/stacks.md``).
DEFAULT_METHOD = "focus"
DEFAULT_STRATEGY = "tree"
_DEPTH_FILTER = 5
#: fuse_stack's own options, which ``pair_options`` may not set.
_RESERVED_PAIR_OPTIONS = frozenset({"normalization", "progress"})


@dataclass
class StackResult:
    """What :func:`fuse_stack` returns.

    Attributes
    ----------
    image
        The all-in-focus image, (H, W) or (H, W, 3): float32 in [0, 1], or
        the input dtype on the input's scale with ``keep_dtype=True`` (see
        :func:`fuse_stack` for how values outside the range are kept).
    depth_map
        int32 (H, W): the index (along the focus axis) of the plane each
        pixel came from.
    confidence
        float32 (H, W) in [0, 1]: margin between the best and second-best
        plane (0: ambiguous, e.g. flat regions).
    shifts
        float64 (N, 2) (dy, dx) applied to each plane by ``align`` (zeros
        otherwise); with ``align="scale"`` after the magnification is undone.
    luma
        float32 (H, W) in [0, 1], the fused luma.
    metadata
        Provenance: method, strategy, planes, normalisation range, alignment,
        pairwise method metadata, time.
    elapsed
        Wall time in seconds.
    scales
        float64 (N,): each plane's magnification relative to the reference,
        undone by ``align="scale"`` or ``"similarity"`` (ones otherwise).
    rotations
        float64 (N,): degrees each plane shows the scene turned
        counter-clockwise relative to the reference, undone by
        ``align="similarity"`` (zeros otherwise).
    """

    image: np.ndarray
    depth_map: np.ndarray
    confidence: np.ndarray
    shifts: np.ndarray
    luma: np.ndarray
    metadata: dict[str, Any] = field(default_factory=dict)
    elapsed: float = 0.0
    scales: np.ndarray | None = None
    rotations: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.scales is None:
            self.scales = np.ones(len(self.shifts))
        if self.rotations is None:
            self.rotations = np.zeros(len(self.shifts))


def _pair_function(method: str, options: Mapping[str, Any]) -> Callable:
    from ..methods.classical import fuse_with
    from ..methods.registry import method_key

    key = method_key(method)
    opts = dict(options)
    if key != "gifnet":
        for k in ("weights", "device", "storage", "return_features"):
            opts.pop(k, None)

    def pair(a: np.ndarray, b: np.ndarray, report: Callable[[int, int], Any]) -> np.ndarray:
        res = fuse_with(key, a, b, normalization="auto", progress=report, **opts)
        pair.metadata = res.metadata  # type: ignore[attr-defined]
        return np.clip(res.image, 0.0, 1.0).astype(np.float32, copy=False)

    pair.metadata = {}  # type: ignore[attr-defined]
    return pair


def _native_buffer(planes: Planes) -> np.ndarray:
    """Zeros for values on the input's scale: the input dtype (exact) or float64 (aligned)."""
    return np.zeros(planes.plane_shape, np.float64 if planes.aligned else planes.dtype)


def _outside(planes: Planes, values: np.ndarray) -> np.ndarray:
    """(H, W) mask of the pixels (any channel) outside the normalisation range."""
    out = ~planes.covers(values)
    return out.any(axis=-1) if out.ndim == 3 else out


def _select(
    planes: Planes, depth: np.ndarray, keep_dtype: bool, step: Callable[[], None]
) -> tuple[np.ndarray, np.ndarray]:
    """Copy each pixel from the plane ``depth`` names: (float32 normalised, output image)."""
    fused = np.zeros(planes.plane_shape, np.float32)
    native = _native_buffer(planes) if keep_dtype else None
    for i in range(planes.n):
        mask = depth == i
        if mask.any():
            x = planes.raw(i)
            fused[mask] = planes.unit(i, x)[mask]
            if native is not None:
                native[mask] = planes.native(i, x)[mask]
        step()
    return fused, (fused if native is None else cast_to_dtype(native, planes.dtype))


def _map_back(fused: np.ndarray, planes: Planes, carry: np.ndarray) -> tuple[np.ndarray, int]:
    """A blend in [0, 1] back on the input's scale, out-of-range pixels restored.

    Returns the image in the input dtype and the number of pixels taken from
    ``carry`` (the depth-map plane's own values) because that value lies
    outside the normalisation range the fusion saw clipped.
    """
    values = fused.astype(np.float64) * (planes.hi - planes.lo) + planes.lo
    image = cast_to_dtype(values, planes.dtype)
    outside = _outside(planes, carry)
    if outside.any():
        image[outside] = cast_to_dtype(carry, planes.dtype)[outside]
    return image, int(outside.sum())


def _focus_device(device: Any) -> Any:
    """Where the focus score runs: a CUDA device (torch) when ``device`` asks for one
    (or is ``"auto"`` and one is present), else None (NumPy on the CPU, faster there)."""
    if device is None or str(device) == "cpu":
        return None
    if str(device) == "auto":
        try:
            import torch
        except ImportError:  # pragma: no cover - torch is a dependency
            return None
        if not torch.cuda.is_available():
            return None
    from ..engine.devices import resolve_device

    dev = resolve_device(device)
    return dev if dev.type == "cuda" else None


def fuse_stack(
    stack: Any,
    axis: int = 0,
    method: str = DEFAULT_METHOD,
    *,
    strategy: str = DEFAULT_STRATEGY,
    select: bool = False,
    align: bool | str = False,
    reference: int | None = None,
    normalization: Any = "auto",
    keep_dtype: bool = False,
    weights: Any = None,
    device: Any = "auto",
    progress: Progress | None = None,
    pair_options: Mapping[str, Any] | None = None,
) -> StackResult:
    """Fuse a focus stack into one all-in-focus image, with a depth map.

    Parameters
    ----------
    stack : array_like
        (Z, H, W) grey or (Z, H, W, 3) RGB planes (the focus axis may be
        elsewhere, see ``axis``): a numpy or dask array (read plane by plane),
        or a list of equally shaped 2-D / RGB planes. Never modified.
    axis : int
        The focus axis (not the colour axis): an integer (numpy integers
        too; not a bool).
    method : str
        ``"gifnet"``, a classical baseline of
        :data:`napari_gifnet.methods.classical.BASELINES` (folded pairwise like
        GIFNet) or ``"focus"`` (per-pixel focus-measure selection).
    strategy : {"sequential", "tree"}
        How pairs are folded (ignored by ``"focus"``).
    select : bool
        Copy each pixel from the plane the (5 x 5 median-filtered) depth map
        names instead of keeping the pairwise result (always on for
        ``"focus"``, whose median only replaces unconfident decisions); the
        output then holds the planes' own values.
    align : bool or {"translation", "scale", "similarity"}
        Register every plane to the ``reference`` plane first (see
        :mod:`napari_gifnet.workflows.alignment`). ``True`` or ``"translation"``: by
        translation (phase correlation); ``"scale"``: also corrects focus
        breathing (a magnification change about the image centre), applying
        both in one resampling; ``"similarity"``: rotation, magnification
        and translation (hand-held stacks). The shifts are in
        ``result.shifts``, the magnifications in ``result.scales`` (1 for
        translation), the rotations in degrees in ``result.rotations`` (0
        but for ``"similarity"``).
    reference : int, optional
        Reference plane for ``align``; default the middle one.
    normalization : {"auto", "dtype", "minmax", "percentile"} or (lo, hi)
        The one range mapped to [0, 1] for all planes. ``"auto"``: uint8 and
        bool by their dtype, floats already in [0, 1] unchanged, other data
        by the widest 0.1-99.9 percentile range over the planes.
    keep_dtype : bool
        Return the image in the input dtype on the input's scale (e.g. a
        uint16 stack gives a uint16 image) instead of float32 in [0, 1].
        Selection (``"focus"``, ``select=True``): each pixel is its plane's
        value as stored (moved planes: resampled with cubic splines clamped to
        the local range, then rounded). Pairwise
        blends: the fused [0, 1] result mapped back linearly from the
        normalisation range; where the value of the plane the depth map names
        lies outside that range (which the fusion saw clipped), that value is
        kept instead (counted in ``metadata["restored_out_of_range"]``). The
        float32 output (``keep_dtype=False``) stays clipped to the range.
    weights, device
        For GIFNet (see :func:`napari_gifnet.fuse`); ignored otherwise.
    progress : callable, optional
        ``progress(done, total)`` in plane reads (and between the bands of a
        GIFNet fusion); an exception raised by it stops the fusion.
    pair_options : mapping, optional
        More keyword arguments for each pairwise fusion (``weights`` and
        ``device`` here override the arguments above); ``normalization`` and
        ``progress`` are fuse_stack's own and refused.

    Returns
    -------
    StackResult
        ``image``, ``depth_map``, ``confidence``, ``shifts``, ``luma``,
        ``metadata``, ``elapsed``, ``scales``, ``rotations``.

    Raises
    ------
    ValueError
        A stack that is not 3-D / 4-D RGB, fewer than 2 planes, empty planes,
        planes of different shapes, a bad or non-integer axis, NaN or infinite
        values, an unknown method, strategy, normalisation or ``align`` value,
        or ``pair_options`` setting ``normalization`` or ``progress``.
    """
    start = time.perf_counter()
    method = str(method).strip().lower()
    if method != "focus":
        from ..methods.registry import method_key

        try:
            method = method_key(method)
        except ValueError:
            raise ValueError(
                f"unknown stack method {method!r}; valid: gifnet, focus and the baselines "
                "(mean, max, laplacian, dwt, guided, mertens)"
            ) from None
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}; valid: {', '.join(STRATEGIES)}")
    mode = align_mode(align)
    reserved = sorted(set(pair_options or {}) & _RESERVED_PAIR_OPTIONS)
    if reserved:
        raise ValueError(
            f"pair_options cannot set {', '.join(map(repr, reserved))}: the stack is "
            "normalised once (use fuse_stack's normalization=) and progress is fuse_stack's"
        )
    planes = Planes(stack, axis)
    n = planes.n
    select = method == "focus" or bool(select)
    needs_range = planes.needs_pass(normalization)
    total = n * (2 + int(needs_range) + int(mode is not None) + int(select and method != "focus"))
    done = 0

    def step() -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(done, total)

    def within(_d: int, _t: int) -> None:  # between GIFNet bands: allows cancelling
        if progress is not None:
            progress(done, total)

    planes.set_range(normalization, step)
    if mode is not None:
        planes.shifts, planes.scales, planes.rotations = estimate_alignment(
            lambda i: luma_of(planes.unit(i)), n, reference, mode=mode,
            progress=lambda _i: step(), with_rotations=True,
        )  # fmt: skip
    shape2d = planes.plane_shape[:2]
    fallback = similarity_fallback(mode, shape2d)  # why "similarity" was translation only
    pair_meta: dict[str, Any] = {}
    carry = None  # keep_dtype blends: per pixel, the input-scale value of the best plane so far
    focus_device = _focus_device(device) if method == "focus" else None
    if method == "focus":
        best = BestPlane(shape2d, larger_is_better=True)
        for i in range(n):  # in the plane's own frame; the focus map is moved
            luma_i = luma_of(planes.unit(i, own_frame=True))
            score = edge_focus(luma_i) if focus_device is None else \
                edge_focus_torch(luma_i, focus_device).cpu().numpy()
            best.update(i, planes.move(i, score))
            step()
    else:
        options = {"weights": weights, "device": device, **(pair_options or {})}
        pair = _pair_function(method, options)
        with fusion_run() if method == "gifnet" else nullcontext():  # one heap, one set of maps
            fused = _fold(planes.unit, n, pair, strategy, step, within)
        pair_meta = dict(pair.metadata)
        fused_luma = luma_of(fused)
        best = BestPlane(shape2d, larger_is_better=False)
        carry = _native_buffer(planes) if keep_dtype and not select else None
        for i in range(n):
            x = planes.raw(i)
            won = best.update(i, dissimilarity(luma_of(planes.unit(i, x)), fused_luma))
            if carry is not None and won.any():
                carry[won] = planes.native(i, x)[won]
            step()
    depth, confidence = best.index, best.confidence()
    restored = None
    if method == "focus":
        depth = guarded_median(depth, confidence, planes=n)
        fused, image = _select(planes, depth, keep_dtype, step)
    elif select:
        depth = ndimage.median_filter(depth, size=_DEPTH_FILTER, mode="nearest")
        fused, image = _select(planes, depth, keep_dtype, step)
    elif carry is not None:
        image, restored = _map_back(fused, planes, carry)
    else:
        image = fused.astype(np.float32, copy=False)
    luma = luma_of(fused)
    elapsed = time.perf_counter() - start
    metadata = {
        "method": "focus selection" if method == "focus" else method,
        "strategy": None if method == "focus" else strategy,
        "focus_device": (str(focus_device) if focus_device is not None else "cpu (numpy)")
        if method == "focus" else None,
        "napari_gifnet_version": __version__,
        "planes": n,
        "axis": planes.axis,
        "output_shape": list(image.shape),
        "input_dtype": str(planes.dtype),
        "output_dtype": str(image.dtype),
        "normalization": {"rule": planes.rule, "range": [planes.lo, planes.hi]},
        "aligned": mode is not None,
        "alignment": "translation" if fallback else mode,
        "alignment_fallback": fallback,
        "shifts": planes.shifts.round(4).tolist() if mode else None,
        "scales": planes.scales.round(6).tolist() if mode else None,
        "rotations": planes.rotations.round(4).tolist() if mode else None,
        "depth_map": (
            "argmax of the two-scale focus measure, 5 x 5 median where confidence <= 0.4"
            if method == "focus"
            else "argmin of the local squared difference to the fused luma (sigma 2 px)"
            + (", 5 x 5 median" if select else "")
        ),
        "selected": select,
        "restored_out_of_range": restored,
        "pair_metadata": {
            k: pair_meta[k] for k in ("method", "weights_sha256", "device") if k in pair_meta
        },
        "elapsed_s": round(elapsed, 4),
    }
    return StackResult(
        image, depth, confidence, planes.shifts.copy(), luma, metadata, elapsed,
        planes.scales.copy(), planes.rotations.copy(),
    )  # fmt: skip


def _fold(
    read: Callable[[int], np.ndarray],
    n: int,
    pair: Callable,
    strategy: str,
    step: Callable[[], None],
    within: Callable,
) -> np.ndarray:
    """Fold planes ``read(0..n-1)`` pairwise, sequentially or as a balanced binary tree."""
    if strategy == "sequential":
        running = read(0)
        step()
        for i in range(1, n):
            running = pair(running, read(i), within)
            step()
        return running
    nodes: list[tuple[int, np.ndarray]] = []  # (level, image), like a binary counter
    for i in range(n):
        node = (0, read(i))
        while nodes and nodes[-1][0] == node[0]:
            level, left = nodes.pop()
            node = (level + 1, pair(left, node[1], within))
        nodes.append(node)
        step()
    while len(nodes) > 1:
        (_, right), (level, left) = nodes.pop(), nodes.pop()
        nodes.append((level + 1, pair(left, right, within)))
    return nodes[0][1]
