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
plane. On noisy stacks (the planes' noise, measured while scoring, above
:data:`~napari_gifnet.workflows.focus.NOISE_THRESHOLD`) a second pass blends
the planes by noise-robust focus weights instead, copying only detail that
stands far above the noise (see :mod:`napari_gifnet.workflows.focus`).

``align="auto"`` (the default) measures the planes' motion first
(:func:`napari_gifnet.workflows.alignment.measure_motion`) and aligns only
when they move (by translation, or by similarity when they turn or change
scale); a static stack is never resampled. With an alignment, focus is
measured on each plane in its own frame and
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
from ..engine.options import OPTION_NAMES, FusionOptions
from ..util.progress import Progress
from ._dtype_cast import cast_to_dtype
from .alignment import (
    AUTO,
    AUTO_SHIFT,
    AUTO_TURN,
    align_mode,
    corner_motion,
    estimate_alignment,
    measure_motion,
    similarity_fallback,
)
from .focus import (
    NOISE_THRESHOLD,
    BestPlane,
    SoftBlend,
    dissimilarity,
    edge_focus,
    edge_focus_torch,
    guarded_median,
    luma_of,
    noise_sigma,
    noisy_focus,
    noisy_temperature,
    selection_share,
)
from .planes import Planes

__all__ = [
    "DEFAULT_METHOD",
    "DEFAULT_STRATEGY",
    "ALL_AT_ONCE",
    "EXPOSURE_METHOD",
    "EXPOSURE_STRATEGY",
    "STRATEGIES",
    "TASKS",
    "StackResult",
    "fuse_stack",
    "task_method",
]

#: How a blending method meets the planes: folded pairwise (``"sequential"``,
#: ``"tree"``), or every plane at once (``"all"``: the N-image rules of
#: :data:`ALL_AT_ONCE`, which hold every plane in memory).
STRATEGIES = ("sequential", "tree", "all")
#: The default method and strategy: the winner of ``benchmarks/evaluate_stacks.py``
#: on the generated ground-truth stacks (see ``docs/stacks.md``).
DEFAULT_METHOD = "focus"
DEFAULT_STRATEGY = "tree"
#: ``task="exposure"``'s default strategy: the N-image Laplacian rule scores 0.977
#: MEF-SSIM on exposure stacks against 0.966 for the pairwise fold and 0.970 for
#: OpenCV's MergeMertens (``benchmarks/bench_exposure.py``, docs/quality.md).
EXPOSURE_STRATEGY = "all"
#: ``task="exposure"``'s default method: exposure stacks are never fused by focus
#: selection (the exposure benchmarks decide which pairwise method this is).
EXPOSURE_METHOD = "laplacian"
#: The stack tasks and each one's default method (``task=None`` means ``"focus"``).
TASKS: dict[str, str] = {"focus": DEFAULT_METHOD, "exposure": EXPOSURE_METHOD}
#: The methods that fuse N planes at once (``strategy="all"``) -> their N-image function's
#: name in :mod:`napari_gifnet.methods.classical`.
ALL_AT_ONCE: dict[str, str] = {"laplacian": "laplacian_fusion", "mertens": "mertens_fusion"}
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


def _pair_function(method: str, options: FusionOptions, params: Mapping[str, Any]) -> Callable:
    """``pair(a, b, report)``: two normalised planes fused by ``method`` (its
    options and parameters applied), clipped to [0, 1]; ``pair.metadata`` is
    the last fusion's."""
    from ..methods.classical import fuse_pair

    def pair(a: np.ndarray, b: np.ndarray, report: Callable[[int, int], Any]) -> np.ndarray:
        res = fuse_pair(method, a, b, options, report, **params)
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


def _focus_rule(method: str, noisy: bool) -> str | None:
    """What ``method="focus"`` did, for the metadata (None for other methods)."""
    if method != "focus":
        return None
    if noisy:
        return ("noisy stack: each pixel the average of the planes weighted by "
                "exp(-(best - score) / T), score the Laplacian-of-Gaussian energy, mixed with "
                "the selected plane's value where the detail stands far above the noise")  # fmt: skip
    return "selection: each pixel copied from the plane of highest two-scale focus"


def _noisy_pass(
    planes: Planes,
    noise: float,
    chosen: np.ndarray,
    confidence: np.ndarray,
    keep_dtype: bool,
    step: Callable[[], None],
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The noisy-stack path: a second pass blending the planes by noise-robust weights.

    ``chosen`` is the selection's plane map (two-scale focus, guarded median)
    and ``confidence`` its confidence. Each pixel is the soft blend of the
    planes (:class:`~napari_gifnet.workflows.focus.SoftBlend` of the
    weights' score, :func:`~napari_gifnet.workflows.focus.noisy_focus`)
    mixed with the chosen plane's own value by
    :func:`~napari_gifnet.workflows.focus.selection_share` (detail far above
    the noise is copied, not averaged). Returns the depth map (the chosen
    plane where the selection has the larger share, else the plane of highest
    depth score after the guarded median), its confidence, the float32
    normalised image and the output image.
    """
    n, shape2d = planes.n, planes.plane_shape[:2]
    best = BestPlane(shape2d, larger_is_better=True)
    blend = SoftBlend(noisy_temperature(noise))
    picked = np.zeros(planes.plane_shape, np.float64)
    picked_native = np.zeros(planes.plane_shape, np.float64) if keep_dtype else None
    for i in range(n):
        x = planes.raw(i)
        weights_score, depth_score = noisy_focus(luma_of(planes.unit(i, x, own_frame=True)))
        best.update(i, planes.move(i, depth_score))
        unit = planes.unit(i, x)
        values = (unit,)
        mask = chosen == i
        picked[mask] = unit[mask]
        if picked_native is not None:
            native = planes.native(i, x)
            values += (native,)
            picked_native[mask] = native[mask]
        blend.update(planes.move(i, weights_score), *values)
        step()
    share = selection_share(blend.top, noise)
    mix = share if len(planes.plane_shape) == 2 else share[..., None]
    out = blend.result()
    fused = (mix * picked + (1.0 - mix) * out[0]).astype(np.float32)
    if picked_native is not None:
        image = cast_to_dtype(mix * picked_native + (1.0 - mix) * out[1], planes.dtype)
    else:
        image = fused
    noisy_confidence = best.confidence()
    noisy_depth = guarded_median(best.index, noisy_confidence, planes=n)
    copied = share >= 0.5
    depth = np.where(copied, chosen, noisy_depth).astype(np.int32)
    return depth, np.where(copied, confidence, noisy_confidence), fused, image


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


def task_method(task: str | None, method: str | None = None) -> str:
    """The method ``fuse_stack`` runs for ``task`` when ``method`` is None.

    Parameters
    ----------
    task : {"focus", "exposure"} or None
        The stack's task; None means ``"focus"`` (the default before tasks).
    method : str, optional
        An explicit method, which always wins.

    Returns
    -------
    str
        ``method`` if given, else the task's default (:data:`TASKS`).

    Raises
    ------
    ValueError
        An unknown task.
    """
    key = "focus" if task is None else str(task).strip().lower()
    if key not in TASKS:
        raise ValueError(f"unknown stack task {task!r}; valid: {', '.join(TASKS)}")
    return TASKS[key] if method is None else method


def fuse_stack(
    stack: Any,
    axis: int = 0,
    method: str | None = None,
    *,
    task: str | None = None,
    strategy: str | None = None,
    select: bool = False,
    align: bool | str = AUTO,
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
    method : str, optional
        ``"gifnet"``, a classical baseline of
        :data:`napari_gifnet.methods.classical.BASELINES` (folded pairwise like
        GIFNet) or ``"focus"`` (per-pixel focus-measure selection). Default:
        the task's method (:data:`TASKS`).
    task : {"focus", "exposure"}, optional
        What the planes differ by. ``"focus"`` (also when None): focus
        selection (:data:`DEFAULT_METHOD`); ``"exposure"``: an exposure
        bracket, never fused by focus selection by default
        (:data:`EXPOSURE_METHOD`, every plane at once) and aligned only by
        an explicit ``align`` mode.
    strategy : {"sequential", "tree", "all"}, optional
        How a blending method meets the planes (ignored by ``"focus"``):
        pairs folded in sequence or as a balanced tree, or ``"all"`` planes
        at once (``"laplacian"`` and ``"mertens"`` only, :data:`ALL_AT_ONCE`;
        every plane is held in memory). Default: ``"all"`` for
        ``task="exposure"`` with one of those methods, else ``"tree"``.
    select : bool
        Copy each pixel from the plane the (5 x 5 median-filtered) depth map
        names instead of keeping the pairwise result (always on for
        ``"focus"``, whose median only replaces unconfident decisions); the
        output then holds the planes' own values.
    align : bool or {"auto", "none", "translation", "scale", "similarity"}
        Register every plane to the ``reference`` plane first (see
        :mod:`napari_gifnet.workflows.alignment`). ``"auto"`` (the default):
        the planes' motion is measured
        (:func:`~napari_gifnet.workflows.alignment.measure_motion`) and they
        are aligned by ``"similarity"`` where they turn or change scale, by
        ``"translation"`` where they only shift by more than a quarter pixel,
        and not at all otherwise (the same result as ``False``, bit for bit);
        ``metadata["alignment"]`` says which and ``metadata["motion"]`` what
        was measured. ``False`` or ``"none"``: no alignment. ``True`` or ``"translation"``: by
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
        More keyword arguments for each pairwise fusion: the options of
        :func:`napari_gifnet.fuse` (``weights`` and ``device`` here override
        the arguments above; a method that does not take one ignores it) and
        the method's own parameters; ``normalization`` and ``progress`` are
        fuse_stack's own and refused.

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
        values, an unknown task, method, strategy, normalisation or ``align`` value,
        or ``pair_options`` setting ``normalization`` or ``progress``.
    """
    start = time.perf_counter()
    task_key = None if task is None else str(task).strip().lower()
    method = str(task_method(task_key, method)).strip().lower()
    if method != "focus":
        from ..methods.registry import method_key

        try:
            method = method_key(method)
        except ValueError:
            raise ValueError(
                f"unknown stack method {method!r}; valid: gifnet, focus and the baselines "
                "(mean, max, laplacian, dwt, guided, mertens)"
            ) from None
    if strategy is None:
        strategy = EXPOSURE_STRATEGY if task_key == "exposure" and method in ALL_AT_ONCE \
            else DEFAULT_STRATEGY  # fmt: skip
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}; valid: {', '.join(STRATEGIES)}")
    if strategy == "all" and method not in ALL_AT_ONCE and method != "focus":
        raise ValueError(
            f"strategy 'all' fuses every plane at once, which only "
            f"{' and '.join(ALL_AT_ONCE)} do; {method!r} is folded pairwise: "
            "use strategy 'tree' or 'sequential'"
        )
    mode = align_mode(align, auto=True)
    reserved = sorted(set(pair_options or {}) & _RESERVED_PAIR_OPTIONS)
    if reserved:
        raise ValueError(
            f"pair_options cannot set {', '.join(map(repr, reserved))}: the stack is "
            "normalised once (use fuse_stack's normalization=) and progress is fuse_stack's"
        )
    params = dict(pair_options or {})  # the method's own; the fusion options go into options
    options = FusionOptions(**{"weights": weights, "device": device,
                               **{k: params.pop(k) for k in OPTION_NAMES if k in params}})  # fmt: skip
    planes = Planes(stack, axis)
    n = planes.n
    select = method == "focus" or bool(select)
    needs_range = planes.needs_pass(normalization)
    passes = 2 + int(needs_range) + int(mode is not None) + int(mode == AUTO)
    total = n * (passes + int(select and method != "focus"))
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
    motion, motion_note = None, None
    if mode == AUTO and task_key == "exposure":  # exposure differences mislead the measurement
        mode, motion_note = None, "exposure stacks are aligned only by an explicit align mode"
        done += 2 * n
    elif mode == AUTO:  # the data decide: measure the motion, align only where there is some
        motion = measure_motion(lambda i: luma_of(planes.unit(i)), n, reference,
                                progress=lambda _i: step())  # fmt: skip
        mode = motion.mode
        if mode is None:
            done += n  # no estimation pass
    if mode is not None:
        planes.shifts, planes.scales, planes.rotations = estimate_alignment(
            lambda i: luma_of(planes.unit(i)), n, reference, mode=mode,
            progress=lambda _i: step(), with_rotations=True,
        )  # fmt: skip
    if motion is not None and mode == "similarity":  # confirm what the quadrants suggested
        shape = planes.plane_shape
        if max(corner_motion(shape, z, r) for z, r in zip(planes.scales, planes.rotations)) \
                <= AUTO_TURN:  # fmt: skip
            mode = "translation" if motion.shifts.max() > AUTO_SHIFT else None
            motion_note = "the similarity estimated moved no corner by more than " \
                f"{AUTO_TURN} px: aligned by {mode or 'nothing'}"
            planes.shifts, planes.scales = np.zeros((n, 2)), np.ones(n)
            planes.rotations = np.zeros(n)
            if mode is not None:
                planes.shifts, planes.scales = estimate_alignment(
                    lambda i: luma_of(planes.unit(i)), n, reference, mode=mode)
    shape2d = planes.plane_shape[:2]
    fallback = similarity_fallback(mode, shape2d)  # why "similarity" was translation only
    pair_meta: dict[str, Any] = {}
    carry = None  # keep_dtype blends: per pixel, the input-scale value of the best plane so far
    focus_device = _focus_device(device) if method == "focus" else None
    noise = None  # focus: the stack's noise sigma (the smallest over the planes)
    if method == "focus":
        best = BestPlane(shape2d, larger_is_better=True)
        noise = np.inf
        for i in range(n):  # in the plane's own frame; the focus map is moved
            luma_i = luma_of(planes.unit(i, own_frame=True))
            noise = min(noise, noise_sigma(luma_i))
            score = edge_focus(luma_i) if focus_device is None else \
                edge_focus_torch(luma_i, focus_device).cpu().numpy()
            best.update(i, planes.move(i, score))
            step()
    else:
        if strategy == "all":
            fused = _all_at_once(planes.unit, n, method, params, step)
        else:
            pair = _pair_function(method, options, params)
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
    noisy = noise is not None and noise > NOISE_THRESHOLD
    if method == "focus":
        depth = guarded_median(depth, confidence, planes=n)
        if noisy:
            depth, confidence, fused, image = _noisy_pass(planes, noise, depth, confidence,
                                                          keep_dtype, step)  # fmt: skip
        else:
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
        "task": task_key or "focus",
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
        "alignment": "translation" if fallback else (mode or "none"),
        "alignment_requested": AUTO if motion is not None or motion_note else (mode or "none"),
        "motion": None if motion is None else motion.metadata(),
        "motion_note": motion_note,
        "alignment_fallback": fallback,
        "shifts": planes.shifts.round(4).tolist() if mode else None,
        "scales": planes.scales.round(6).tolist() if mode else None,
        "rotations": planes.rotations.round(4).tolist() if mode else None,
        "noise_sigma": None if noise is None else round(float(noise), 6),
        "focus_rule": _focus_rule(method, noisy),
        "depth_map": (
            ("argmax of the two-scale focus measure" if not noisy else
             "argmax of the two-scale focus measure where that plane is copied, else of the "
             "Laplacian-of-Gaussian energy (sigma 1 px, window 4 px)")
            + ", 5 x 5 median where confidence <= 0.4"
            if method == "focus"
            else "argmin of the local squared difference to the fused luma (sigma 2 px)"
            + (", 5 x 5 median" if select else "")
        ),
        "selected": select and not noisy,
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


def _all_at_once(
    read: Callable[[int], np.ndarray],
    n: int,
    method: str,
    params: Mapping[str, Any],
    step: Callable[[], None],
) -> np.ndarray:
    """Fuse planes ``read(0..n-1)`` at once with the N-image rule of ``method`` (its
    parameters ``params``)."""
    from ..methods import classical

    planes = []
    for i in range(n):
        planes.append(read(i))
        step()
    fuse_all = getattr(classical, ALL_AT_ONCE[method])
    return np.clip(fuse_all(planes, **params), 0.0, 1.0).astype(np.float32, copy=False)


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
