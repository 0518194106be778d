"""All-in-focus fusion of a focus stack (N planes): :func:`fuse_stack`.

GIFNet and the classical baselines fuse pairs: a stack is folded pairwise
(``strategy="sequential"``: ``((p0 + p1) + p2) + ...``; ``"tree"``: a balanced
binary tree over the planes in order; N - 1 fusions either way) or, for the
N-image rules, fused at once (``"all"``). ``method="focus"`` instead picks,
per pixel, the plane of highest focus energy (:mod:`napari_gifnet.workflows.focus`).
Planes are read one at a time with one range for the whole stack
(:class:`~napari_gifnet.workflows.planes.Planes`); with an alignment, focus is
measured in each plane's own frame and the focus map is moved, not the pixels.
``docs/stacks.md`` tells the decision, the depth map, the memory and the dtype.
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
from ..methods.registry import METHODS, check_method_params
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
    "DEFAULT_METHOD", "DEFAULT_STRATEGY", "ALL_AT_ONCE", "EXPOSURE_METHOD", "EXPOSURE_STRATEGY",
    "STRATEGIES", "TASKS", "StackResult", "fuse_stack", "task_method",
]  # fmt: skip

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
#: The pairwise fusion's metadata kept in ``metadata["pair_metadata"]``.
_PAIR_KEYS = ("method", "weights_sha256", "device")
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
        What the planes differ by (None: ``"focus"``); picks the default
        method (:data:`TASKS`); ``"exposure"`` planes are aligned only by an
        explicit ``align`` mode.
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
        Register every plane to the ``reference`` plane first (the modes:
        :mod:`napari_gifnet.workflows.alignment`; ``True``: translation,
        ``False`` or ``"none"``: none). ``"auto"`` (the default): as far as the
        measured motion calls for; ``metadata["alignment"]`` says which and
        ``metadata["motion"]`` what was measured.
    reference : int, optional
        Reference plane for ``align``; default the middle one.
    normalization : {"auto", "dtype", "minmax", "percentile"} or (lo, hi)
        The one range mapped to [0, 1] for all planes. ``"auto"``: uint8 and
        bool by their dtype, floats already in [0, 1] unchanged, other data
        by the widest 0.1-99.9 percentile range over the planes.
    keep_dtype : bool
        Return the image in the input dtype on the input's scale (e.g. a
        uint16 stack gives a uint16 image) instead of float32 in [0, 1]:
        selection copies the planes' stored values, a pairwise blend is
        mapped back from the normalisation range (values beyond it restored,
        ``metadata["restored_out_of_range"]``; docs/stacks.md).
    weights, device
        For GIFNet (see :func:`napari_gifnet.fuse`); ignored otherwise.
    progress : callable, optional
        ``progress(done, total)`` in plane reads (and between the bands of a
        GIFNet fusion); an exception raised by it stops the fusion.
    pair_options : mapping, optional
        More keyword arguments for each pairwise fusion: the options of
        :func:`napari_gifnet.fuse` (``weights`` and ``device`` here override
        the arguments above) and the method's own parameters (checked before
        any plane is read); see Raises for what is refused.

    Returns
    -------
    StackResult
        The fused image, its depth and confidence maps and its metadata (see
        its attributes).

    Raises
    ------
    ValueError
        A stack that is not 3-D / 4-D RGB, fewer than 2 planes, empty planes,
        planes of different shapes, a bad or non-integer axis, NaN or infinite
        values, an unknown task, method, strategy, normalisation or ``align`` value,
        or ``pair_options`` setting ``normalization`` or ``progress``, a fusion
        option that would have no effect, a parameter the method does not
        have or a value of the wrong type.
    """
    start = time.perf_counter()
    choice = _choose(task, method, strategy, select, align, pair_options, weights, device)
    planes = Planes(stack, axis)
    steps = _Steps(progress, _reads(choice, planes, normalization))
    planes.set_range(normalization, steps.step)
    alignment = _align(planes, choice, reference, steps)
    if choice.method == "focus":
        out = _by_focus(planes, device, keep_dtype, steps)
    else:
        out = _by_blending(planes, choice, keep_dtype, steps)
    luma = luma_of(out.fused)
    elapsed = time.perf_counter() - start
    metadata = _metadata(choice, planes, alignment, out, elapsed)
    return StackResult(
        out.image, out.depth, out.confidence, planes.shifts.copy(), luma, metadata, elapsed,
        planes.scales.copy(), planes.rotations.copy(),
    )  # fmt: skip


@dataclass(frozen=True)
class _Choice:
    """fuse_stack's arguments, checked: what runs on the planes and how."""

    task: str | None  # as given, lower case (None: not given)
    method: str  # "focus" or a key of the method table
    strategy: str
    select: bool  # copy each pixel from a plane (always for "focus")
    align: str | None  # the align mode asked for (AUTO: measured first)
    options: FusionOptions  # the pairwise fusions' options
    params: dict[str, Any]  # the method's own parameters


def _choose(
    task: str | None,
    method: str | None,
    strategy: str | None,
    select: bool,
    align: bool | str,
    pair_options: Mapping[str, Any] | None,
    weights: Any,
    device: Any,
) -> _Choice:
    """Check and resolve fuse_stack's arguments (before any plane is read)."""
    task_key = None if task is None else str(task).strip().lower()
    method = _stack_method(task_key, method)
    strategy = _stack_strategy(task_key, method, strategy)
    mode = align_mode(align, auto=True)
    reserved = sorted(set(pair_options or {}) & _RESERVED_PAIR_OPTIONS)
    if reserved:
        raise ValueError(
            f"pair_options cannot set {', '.join(map(repr, reserved))}: the stack is "
            "normalised once (use fuse_stack's normalization=) and progress is fuse_stack's"
        )
    params = dict(pair_options or {})  # the method's own; the fusion options go into options
    fusion = {k: params.pop(k) for k in OPTION_NAMES if k in params}
    _check_no_pairs(method, strategy, fusion)
    params = check_method_params(method, params)
    options = FusionOptions(**{"weights": weights, "device": device, **fusion})
    select = method == "focus" or bool(select)
    return _Choice(task_key, method, strategy, select, mode, options, params)


def _check_no_pairs(method: str, strategy: str, fusion: Mapping[str, Any]) -> None:
    """Refuse pairwise fusion options where no pair is fused (``"focus"``, strategy
    ``"all"``): they would have no effect."""
    if not fusion or (method != "focus" and strategy != "all"):
        return
    names = ", ".join(map(repr, fusion))
    verb = "have" if len(fusion) > 1 else "has"
    if method == "focus":
        why = "method 'focus' fuses no pairs (it scores on fuse_stack's device=)"
    else:
        own = ", ".join(METHODS[method].defaults) or "none"
        why = f"strategy 'all' fuses every plane at once by the {method!r} rule, which takes " \
            f"only its own parameters ({own})"  # fmt: skip
    raise ValueError(f"pair_options {names} {verb} no effect: {why}")


def _stack_method(task: str | None, method: str | None) -> str:
    """The method's key: the task's default when None, ``"focus"`` or one of the table."""
    method = str(task_method(task, method)).strip().lower()
    if method == "focus":
        return method
    from ..methods.registry import method_key

    try:
        return method_key(method)
    except ValueError:
        raise ValueError(
            f"unknown stack method {method!r}; valid: gifnet, focus and the baselines "
            "(mean, max, laplacian, dwt, guided, mertens)"
        ) from None


def _stack_strategy(task: str | None, method: str, strategy: str | None) -> str:
    """The strategy, checked against the method (the task's default when None)."""
    if strategy is None:
        strategy = EXPOSURE_STRATEGY if task == "exposure" and method in ALL_AT_ONCE \
            else DEFAULT_STRATEGY  # fmt: skip
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}; valid: {', '.join(STRATEGIES)}")
    if strategy == "all" and method not in ALL_AT_ONCE and method != "focus":
        raise ValueError(
            f"strategy 'all' fuses every plane at once, which only "
            f"{' and '.join(ALL_AT_ONCE)} do; {method!r} is folded pairwise: "
            "use strategy 'tree' or 'sequential'"
        )
    return strategy


class _Steps:
    """fuse_stack's progress: plane reads counted against the run's total."""

    def __init__(self, progress: Progress | None, total: int) -> None:
        self.progress, self.total, self.done = progress, total, 0

    def step(self, *_: Any) -> None:
        """Count one plane read and report it."""
        self.done += 1
        self.report()

    def report(self, *_: Any) -> None:
        """Report the count (also between a GIFNet fusion's bands: a point to cancel at)."""
        if self.progress is not None:
            self.progress(self.done, self.total)


def _reads(choice: _Choice, planes: Planes, normalization: Any) -> int:
    """The run's plane reads: range, motion, alignment, focus or blend, output passes."""
    passes = 2 + int(planes.needs_pass(normalization)) + int(choice.align is not None) \
        + int(choice.align == AUTO)  # fmt: skip
    return planes.n * (passes + int(choice.select and choice.method != "focus"))


def _align(planes: Planes, choice: _Choice, reference: int | None, steps: _Steps) -> dict[str, Any]:
    """Register the planes onto ``reference`` as ``choice.align`` asks (``"auto"``: as
    far as the measured motion calls for); returns the alignment's metadata."""
    n, mode = planes.n, choice.align

    def luma(i: int) -> np.ndarray:
        return luma_of(planes.unit(i))

    motion, note = None, None
    if mode == AUTO and choice.task == "exposure":  # exposure differences mislead the measure
        mode, note = None, "exposure stacks are aligned only by an explicit align mode"
        steps.done += 2 * n  # no motion nor estimation pass
    elif mode == AUTO:  # the data decide: measure the motion, align only where there is some
        motion = measure_motion(luma, n, reference, progress=steps.step)
        mode = motion.mode
        if mode is None:
            steps.done += n  # no estimation pass
    if mode is not None:
        planes.shifts, planes.scales, planes.rotations = estimate_alignment(
            luma, n, reference, mode=mode, progress=steps.step, with_rotations=True)  # fmt: skip
    if motion is not None and mode == "similarity":  # confirm what the quadrants suggested
        shape = planes.plane_shape
        if max(corner_motion(shape, z, r) for z, r in zip(planes.scales, planes.rotations)) \
                <= AUTO_TURN:  # fmt: skip
            mode = "translation" if motion.shifts.max() > AUTO_SHIFT else None
            note = f"the similarity estimated moved no corner by more than {AUTO_TURN} px: " \
                f"aligned by {mode or 'nothing'}"  # fmt: skip
            planes.shifts, planes.scales, planes.rotations = np.zeros((n, 2)), np.ones(n), \
                np.zeros(n)  # fmt: skip
            if mode is not None:
                planes.shifts, planes.scales = estimate_alignment(luma, n, reference, mode=mode)
    return _alignment_metadata(planes, mode, motion, note)


def _alignment_metadata(planes: Planes, mode: str | None, motion: Any, note: Any) -> dict:
    """The alignment's provenance: the mode used and asked for, the motion, the transforms."""
    fallback = similarity_fallback(mode, planes.plane_shape)  # why "similarity" was translation
    return {
        "aligned": mode is not None,
        "alignment": "translation" if fallback else (mode or "none"),
        "alignment_requested": AUTO if motion is not None or note else (mode or "none"),
        "motion": None if motion is None else motion.metadata(),
        "motion_note": note,
        "alignment_fallback": fallback,
        "shifts": planes.shifts.round(4).tolist() if mode else None,
        "scales": planes.scales.round(6).tolist() if mode else None,
        "rotations": planes.rotations.round(4).tolist() if mode else None,
    }


@dataclass
class _Fused:
    """The planes fused, and how each pixel was decided."""

    fused: np.ndarray  # float32 on [0, 1]
    image: np.ndarray  # the output image (keep_dtype: the input's dtype and scale)
    depth: np.ndarray
    confidence: np.ndarray
    noise: float | None = None  # "focus": the stack's noise sigma (the planes' smallest)
    noisy: bool = False  # "focus": the noise is above NOISE_THRESHOLD (planes blended)
    focus_device: Any = None  # "focus": the CUDA device that scored (None: NumPy)
    pair_meta: dict[str, Any] = field(default_factory=dict)  # the last pair fusion's
    restored: int | None = None  # keep_dtype blends: pixels restored by _map_back


def _by_focus(planes: Planes, device: Any, keep_dtype: bool, steps: _Steps) -> _Fused:
    """``method="focus"``: score each plane's focus, then copy each pixel from its best
    plane (a noisy stack: blend the planes by noise-robust weights)."""
    focus_device = _focus_device(device)
    best = BestPlane(planes.plane_shape[:2], larger_is_better=True)
    noise = np.inf
    for i in range(planes.n):  # in the plane's own frame; the focus map is moved
        luma = luma_of(planes.unit(i, own_frame=True))
        noise = min(noise, noise_sigma(luma))
        score = edge_focus(luma) if focus_device is None else \
            edge_focus_torch(luma, focus_device).cpu().numpy()  # fmt: skip
        best.update(i, planes.move(i, score))
        steps.step()
    confidence = best.confidence()
    depth = guarded_median(best.index, confidence, planes=planes.n)
    noisy = noise > NOISE_THRESHOLD
    if noisy:
        depth, confidence, fused, image = _noisy_pass(planes, noise, depth, confidence,
                                                      keep_dtype, steps.step)  # fmt: skip
    else:
        fused, image = _select(planes, depth, keep_dtype, steps.step)
    return _Fused(fused, image, depth, confidence, noise, noisy, focus_device)


def _by_blending(planes: Planes, choice: _Choice, keep_dtype: bool, steps: _Steps) -> _Fused:
    """A blending method: fuse the planes, find each pixel's closest plane, then copy
    from it (``select``) or map the blend back to the input's scale (``keep_dtype``)."""
    fused, pair_meta = _blend(planes, choice, steps)
    best, carry = _closest_planes(planes, fused, keep_dtype and not choice.select, steps)
    depth, confidence = best.index, best.confidence()
    restored = None
    if choice.select:
        depth = ndimage.median_filter(depth, size=_DEPTH_FILTER, mode="nearest")
        fused, image = _select(planes, depth, keep_dtype, steps.step)
    elif carry is not None:
        image, restored = _map_back(fused, planes, carry)
    else:
        image = fused.astype(np.float32, copy=False)
    return _Fused(fused, image, depth, confidence, pair_meta=pair_meta, restored=restored)


def _blend(planes: Planes, choice: _Choice, steps: _Steps) -> tuple[np.ndarray, dict[str, Any]]:
    """The normalised planes fused by a blending method, all at once or folded pairwise,
    and the last pair fusion's metadata."""
    if choice.strategy == "all":
        return _all_at_once(planes, choice.method, choice.params, steps), {}
    pair = _pair_function(choice.method, choice.options, choice.params)
    with fusion_run() if choice.method == "gifnet" else nullcontext():  # one heap, one set of maps
        fused = _fold(planes, pair, choice.strategy, steps)
    return fused, dict(pair.metadata)


def _closest_planes(
    planes: Planes, fused: np.ndarray, carry: bool, steps: _Steps
) -> tuple[BestPlane, np.ndarray | None]:
    """Per pixel, the plane locally most similar to the fused luma; with ``carry``, also
    that plane's values on the input's scale (what :func:`_map_back` restores)."""
    fused_luma = luma_of(fused)
    best = BestPlane(planes.plane_shape[:2], larger_is_better=False)
    values = _native_buffer(planes) if carry else None
    for i in range(planes.n):
        x = planes.raw(i)
        won = best.update(i, dissimilarity(luma_of(planes.unit(i, x)), fused_luma))
        if values is not None and won.any():
            values[won] = planes.native(i, x)[won]
        steps.step()
    return best, values


def _metadata(
    choice: _Choice, planes: Planes, alignment: dict[str, Any], out: _Fused, elapsed: float
) -> dict[str, Any]:
    """The result's provenance."""
    focus = choice.method == "focus"
    return {
        "method": "focus selection" if focus else choice.method,
        "task": choice.task or "focus",
        "strategy": None if focus else choice.strategy,
        "focus_device": str(out.focus_device or "cpu (numpy)") if focus else None,
        "napari_gifnet_version": __version__,
        "planes": planes.n,
        "axis": planes.axis,
        "output_shape": list(out.image.shape),
        "input_dtype": str(planes.dtype),
        "output_dtype": str(out.image.dtype),
        "normalization": {"rule": planes.rule, "range": [planes.lo, planes.hi]},
        **alignment,
        "noise_sigma": None if out.noise is None else round(float(out.noise), 6),
        **_rules(choice.method, choice.select, out.noisy),
        "selected": choice.select and not out.noisy,
        "restored_out_of_range": out.restored,
        "pair_metadata": {k: out.pair_meta[k] for k in _PAIR_KEYS if k in out.pair_meta},
        "elapsed_s": round(elapsed, 4),
    }


def _all_at_once(planes: Planes, method: str, params: Mapping, steps: _Steps) -> np.ndarray:
    """Fuse the normalised planes at once with the N-image rule of ``method`` (its
    parameters ``params``)."""
    from ..methods import classical

    units = []
    for i in range(planes.n):
        units.append(planes.unit(i))
        steps.step()
    fuse_all = getattr(classical, ALL_AT_ONCE[method])
    return np.clip(fuse_all(units, **params), 0.0, 1.0).astype(np.float32, copy=False)


def _fold(planes: Planes, pair: Callable, strategy: str, steps: _Steps) -> np.ndarray:
    """Fold the normalised planes pairwise, sequentially or as a balanced binary tree."""
    read, within = planes.unit, steps.report  # within a fusion: between GIFNet's bands
    if strategy == "sequential":
        running = read(0)
        steps.step()
        for i in range(1, planes.n):
            running = pair(running, read(i), within)
            steps.step()
        return running
    nodes: list[tuple[int, np.ndarray]] = []  # (level, image), like a binary counter
    for i in range(planes.n):
        node = (0, read(i))
        while nodes and nodes[-1][0] == node[0]:
            level, left = nodes.pop()
            node = (level + 1, pair(left, node[1], within))
        nodes.append(node)
        steps.step()
    while len(nodes) > 1:
        (_, right), (level, left) = nodes.pop(), nodes.pop()
        nodes.append((level + 1, pair(left, right, within)))
    return nodes[0][1]


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


def _rules(method: str, select: bool, noisy: bool) -> dict[str, str | None]:
    """The metadata's ``focus_rule`` and ``depth_map``: how pixels and depths were chosen."""
    if method != "focus":
        return {"focus_rule": None, "depth_map": "argmin of the local squared difference to "
                "the fused luma (sigma 2 px)" + (", 5 x 5 median" if select else "")}  # fmt: skip
    guarded = ", 5 x 5 median where confidence <= 0.4"
    if noisy:
        return {"focus_rule": "noisy stack: each pixel the average of the planes weighted by "
                "exp(-(best - score) / T), score the Laplacian-of-Gaussian energy, mixed with "
                "the selected plane's value where the detail stands far above the noise",
                "depth_map": "argmax of the two-scale focus measure where that plane is "
                "copied, else of the Laplacian-of-Gaussian energy (sigma 1 px, window 4 px)"
                + guarded}  # fmt: skip
    return {"focus_rule": "selection: each pixel copied from the plane of highest two-scale focus",
            "depth_map": "argmax of the two-scale focus measure" + guarded}  # fmt: skip


def _noisy_pass(
    planes: Planes,
    noise: float,
    chosen: np.ndarray,
    confidence: np.ndarray,
    keep_dtype: bool,
    step: Callable[[], None],
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The noisy-stack path (docs/stacks.md, "Noisy stacks"): a second pass blending the
    planes by noise-robust weights, mixed with the value of the plane ``chosen`` (the
    selection's plane map, of confidence ``confidence``) where detail stands far above
    the noise. Returns the depth map, its confidence, the float32 normalised image and
    the output image.
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
    outside = ~planes.covers(carry)  # (H, W): any channel outside the range
    outside = outside.any(axis=-1) if outside.ndim == 3 else outside
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
