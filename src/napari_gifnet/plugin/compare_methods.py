"""Compare a task's methods on the same inputs, without Qt: the dock widgets'
"Compare methods" button runs :func:`compare_pair`, :func:`compare_stack` or
:func:`compare_pansharpen` in its worker; a method that fails is listed with its
message and the others still run.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from ..methods.registry import FOCUS_PYRAMID, FOCUS_SELECTION, task_method_label, task_method_names
from ..util.progress import Cancelled, Progress

if TYPE_CHECKING:  # pragma: no cover
    import napari

__all__ = [
    "COMPARE_PREFIX", "PAIR_METRICS", "STACK_METRICS", "Comparison", "MethodResult",
    "compare_pair", "compare_pansharpen", "compare_stack", "comparison_layer_name",
    "group_layers", "pair_methods", "pansharpen_methods", "stack_methods",
]  # fmt: skip

#: The common start of every comparison layer's name (the layers sort together by it).
COMPARE_PREFIX = "compare: "
#: The no-reference metrics of a fused pair (:func:`napari_gifnet.metrics.fusion_metrics`).
PAIR_METRICS = ("EN", "SD", "SF", "AG", "MI", "VIF", "Qabf")
#: The metrics of a fused stack: the fused image's own (no pairwise metric for N planes).
STACK_METRICS = ("EN", "SD", "SF", "AG")
_MEF = "MEF-SSIM"
_QNR = ("QNR", "D_lambda", "D_s")


@dataclass
class MethodResult:
    """One method's output in a comparison.

    Attributes
    ----------
    method
        The method's key (e.g. ``"laplacian"``).
    label
        Its display name (e.g. ``"Laplacian"``).
    result
        What the workflow returned (``FusionResult``, ``StackResult`` or
        ``PansharpenResult``; its ``image`` is the fused image).
    metrics
        Metric name -> value (NaN where a metric does not apply).
    """

    method: str
    label: str
    result: Any
    metrics: dict[str, float]

    @property
    def image(self) -> np.ndarray:
        """The method's fused image."""
        return self.result.image


@dataclass
class Comparison:
    """Several methods run on the same inputs, with their metrics.

    Attributes
    ----------
    kind
        ``"pair"``, ``"stack"`` or ``"pansharpen"``.
    task
        The task compared for (a pair task key, ``"focus"`` / ``"exposure"``
        for a stack, None for pansharpening).
    results
        One entry per method that ran, in the order run.
    metric_names
        The columns of :meth:`rows`.
    best
        The key of the best method (None when nothing ran).
    ranked_by
        How :attr:`best` was chosen, in words.
    errors
        Method key -> the message of a method that failed.
    """

    kind: str
    task: str | None
    results: list[MethodResult]
    metric_names: tuple[str, ...]
    best: str | None
    ranked_by: str
    errors: dict[str, str] = field(default_factory=dict)

    def rows(self) -> list[tuple[str, list[float]]]:
        """``(method label, values in metric_names order)`` per method, in the order run."""
        return [
            (r.label, [r.metrics.get(m, math.nan) for m in self.metric_names]) for r in self.results
        ]

    def result(self, method: str) -> MethodResult:
        """The result of the method keyed ``method``; KeyError if it did not run."""
        for r in self.results:
            if r.method == method:
                return r
        raise KeyError(method)


# ------------------------------------------------------------------ method lists
def pair_methods(task: str | None = None) -> tuple[str, ...]:
    """The methods compared on a pair for ``task``: its default first, then the rest.

    GIFNet and every classical baseline always; focus selection and the
    focus-guided pyramid only for the multi-focus task (``"mfif"``), where
    they apply (the pair as a 2-plane focus stack).
    """
    from ..workflows.tasks import task_preset

    key = task_preset(task).key if task is not None else "custom"
    default = task_preset(key).method
    focus = (FOCUS_SELECTION, FOCUS_PYRAMID)
    rest = [m for m in task_method_names() if key == "mfif" or m not in focus]
    return (default, *(m for m in rest if m != default))


def stack_methods(task: str | None = None) -> tuple[str, ...]:
    """The methods compared on a stack for ``task`` (``"focus"`` or ``"exposure"``).

    The task's default first (:data:`napari_gifnet.workflows.focus_stack.TASKS`),
    then focus selection (for a focus stack), GIFNet and the baselines.
    """
    from ..methods.registry import method_names
    from ..workflows.focus_stack import task_method

    default = task_method(task)
    key = "focus" if task is None else str(task).strip().lower()
    candidates = ([FOCUS_SELECTION] if key == "focus" else []) + list(method_names())
    return (default, *(m for m in candidates if m != default))


def pansharpen_methods() -> tuple[str, ...]:
    """The pansharpening methods compared: the spectral ones best measured first, then GIFNet."""
    from ..methods.pansharpening import PANSHARPENING_METHODS

    return (*PANSHARPENING_METHODS, "gifnet")


def _pansharpen_label(method: str) -> str:
    from ..methods.pansharpening import PANSHARPENING_METHODS

    return PANSHARPENING_METHODS.get(method) or task_method_label(method)


# ------------------------------------------------------------------ running
def _run_all(
    methods: Sequence[str],
    run: Callable[[str, Progress | None], Any],
    score: Callable[[Any], dict[str, float]],
    label: Callable[[str], str],
    progress: Progress | None,
) -> tuple[list[MethodResult], dict[str, str]]:
    """Run ``run(method, progress)`` for every method, scoring each result.

    Progress counts over all methods (each method's own steps scaled into its
    share); :class:`~napari_gifnet.util.progress.Cancelled` stops everything,
    any other error is recorded for that method and the next one runs.
    """
    results: list[MethodResult] = []
    errors: dict[str, str] = {}
    n = len(methods)
    for i, method in enumerate(methods):

        def report(done: int, total: int, i: int = i) -> None:
            if progress is not None:
                progress(i * max(total, 1) + done, n * max(total, 1))

        try:
            out = run(method, report)
            metrics = score(out)
        except Cancelled:
            raise
        except Exception as exc:  # noqa: BLE001 - one method failing leaves the others
            errors[method] = f"{label(method)}: {exc}"
            continue
        results.append(MethodResult(method, label(method), out, metrics))
        if progress is not None:
            progress(i + 1, n)
    return results, errors


def _mean_rank_best(results: list[MethodResult], names: Iterable[str]) -> str | None:
    """The method with the best mean rank over the metrics ``names`` (all higher-better).

    A method's rank on a metric is the number of methods with a larger value
    (ties share it; NaN ranks last); the smallest sum wins, the earlier on a tie.
    """
    if not results:
        return None
    totals = np.zeros(len(results))
    for name in names:
        values = np.array([r.metrics.get(name, math.nan) for r in results], dtype=float)
        values = np.where(np.isnan(values), -np.inf, values)
        totals += (values[None, :] > values[:, None]).sum(axis=1)
    return results[int(np.argmin(totals))].method


def _max_best(results: list[MethodResult], name: str) -> str | None:
    """The method with the largest ``name`` (NaN never wins)."""
    scored = [r for r in results if not math.isnan(r.metrics.get(name, math.nan))]
    if not scored:
        return results[0].method if results else None
    return max(scored, key=lambda r: r.metrics[name]).method


def _scored(
    kind: str,
    task: str,
    keys: Sequence[str],
    run: Callable[[str, Progress | None], Any],
    metrics: tuple[str, ...],
    inputs: tuple[np.ndarray, np.ndarray] | None,
    mef: list[np.ndarray] | None,
    progress: Progress | None,
) -> Comparison:
    """:func:`compare_pair` and :func:`compare_stack`: run ``keys`` and score each fused
    image (float results clipped to [0, 1]) with ``metrics`` against ``inputs`` (None:
    the image alone), MEF-SSIM against ``mef`` first when given; the best: the largest
    MEF-SSIM, else the best mean rank over ``metrics``."""
    from ..metrics.exposure import mef_ssim
    from ..metrics.fusion import fusion_metrics

    def score(out: Any) -> dict[str, float]:
        fused = np.asarray(out.image)
        if fused.dtype.kind == "f":
            fused = np.clip(fused, 0.0, 1.0)
        a, b = inputs if inputs is not None else (fused, fused)
        values = fusion_metrics(fused, a, b, metrics=metrics)
        if mef is not None:
            values = {_MEF: float(mef_ssim(mef, fused)), **values}
        return {k: float(v) for k, v in values.items()}

    results, errors = _run_all(keys, run, score, task_method_label, progress)
    if mef is not None:
        best, rule = _max_best(results, _MEF), "largest MEF-SSIM"
    else:
        best, rule = _mean_rank_best(results, metrics), "best mean rank over the metrics"
    names = ((_MEF,) if mef is not None else ()) + metrics
    return Comparison(kind, task, results, names, best, rule, errors)


def compare_pair(
    a: Any,
    b: Any,
    *,
    task: str | None = None,
    methods: Sequence[str] | None = None,
    normalization: Any = "auto",
    weights: Any = None,
    device: str = "auto",
    progress: Progress | None = None,
) -> Comparison:
    """Fuse the pair ``a``, ``b`` with several methods and score each result.

    Parameters
    ----------
    a, b : array_like
        The first and second input (2-D grey or RGB, the task's order); never modified.
    task : str, optional
        A task key (:data:`napari_gifnet.methods.presets.PRESETS`); None is ``"custom"``.
    methods : sequence of str, optional
        The methods to run (keys of
        :func:`napari_gifnet.methods.registry.task_method_names`); default
        :func:`pair_methods` of the task.
    normalization, weights, device
        Passed to :func:`napari_gifnet.workflows.tasks.fuse` (weights and
        device reach GIFNet only).
    progress : callable, optional
        ``progress(done, total)`` over all methods; raising
        :class:`~napari_gifnet.util.progress.Cancelled` in it stops the comparison.

    Returns
    -------
    Comparison
        Metrics :data:`PAIR_METRICS` of every result against the inputs (each
        input's luma normalised as the fusion does,
        :func:`napari_gifnet.engine.preprocess.to_luma_unit`), with MEF-SSIM
        first for the multi-exposure task (``"meif"``). The best: the largest
        MEF-SSIM for ``"meif"``, else the best mean rank over the metrics.

    Raises
    ------
    ValueError
        An unknown task or method.
    """
    from ..engine.preprocess import to_luma_unit
    from ..methods.registry import task_method_key
    from ..workflows.tasks import fuse, task_preset

    task_key = task_preset(task).key if task is not None else "custom"
    keys = [task_method_key(m) for m in (methods if methods is not None else pair_methods(task))]
    ua, _ = to_luma_unit(a, normalization=normalization, name="first input")
    ub, _ = to_luma_unit(b, normalization=normalization, name="second input")

    def run(method: str, report: Progress | None) -> Any:
        return fuse(
            a, b, task=task_key, method=method, normalization=normalization, weights=weights,
            device=device, progress=report,
        )  # fmt: skip

    mef = [ua, ub] if task_key == "meif" else None
    return _scored("pair", task_key, keys, run, PAIR_METRICS, (ua, ub), mef, progress)


def compare_stack(
    stack: Any,
    axis: int = 0,
    *,
    task: str | None = None,
    methods: Sequence[str] | None = None,
    progress: Progress | None = None,
    **options: Any,
) -> Comparison:
    """Fuse a stack with several methods and score each result.

    Parameters
    ----------
    stack : array_like
        As for :func:`napari_gifnet.workflows.focus_stack.fuse_stack`; never modified.
    axis : int
        The stack axis.
    task : {"focus", "exposure"}, optional
        What the planes differ by (None: ``"focus"``).
    methods : sequence of str, optional
        The methods to run; default :func:`stack_methods` of the task.
    progress : callable, optional
        ``progress(done, total)`` over all methods (raise ``Cancelled`` to stop).
    **options
        More keywords of ``fuse_stack`` (``align``, ``weights``, ``device``,
        ``strategy``, ...); each method otherwise gets the task's defaults.

    Returns
    -------
    Comparison
        Metrics :data:`STACK_METRICS` of every result, with MEF-SSIM against
        the planes first for an exposure stack. The best: the largest
        MEF-SSIM for an exposure stack, else the best mean rank.
    """
    from ..engine.preprocess import to_luma_unit
    from ..workflows.focus_stack import fuse_stack

    task_key = "focus" if task is None else str(task).strip().lower()
    keys = list(methods if methods is not None else stack_methods(task_key))
    mef: list[np.ndarray] | None = None
    if task_key == "exposure":
        planes = enumerate(np.moveaxis(np.asarray(stack), int(axis), 0))
        mef = [to_luma_unit(p, normalization="auto", name=f"plane {i}")[0] for i, p in planes]

    def run(method: str, report: Progress | None) -> Any:
        return fuse_stack(stack, axis, method, task=task_key, progress=report, **options)

    # the metrics of the fused image alone: its inputs are not used by these
    return _scored("stack", task_key, keys, run, STACK_METRICS, None, mef, progress)


def _ratio(ms_hw: tuple[int, int], pan_hw: tuple[int, int]) -> int | None:
    """The integer resolution ratio of the panchromatic to the multispectral grid (None if not one)."""
    ry, rx = pan_hw[0] / ms_hw[0], pan_hw[1] / ms_hw[1]
    r = round(ry)
    return r if r >= 1 and abs(ry - r) < 1e-9 and abs(rx - r) < 1e-9 else None


def compare_pansharpen(
    ms: Any,
    pan: Any,
    *,
    band_axis: int | None = None,
    methods: Sequence[str] | None = None,
    progress: Progress | None = None,
    **options: Any,
) -> Comparison:
    """Pansharpen with several methods and score each result with QNR.

    Parameters
    ----------
    ms, pan : array_like
        The multispectral image ((bands, h, w) or (h, w, bands)) and the
        panchromatic image, as for
        :func:`napari_gifnet.workflows.pansharpening.pansharpen`; never modified.
    band_axis : int, optional
        Where the bands are (None: guessed, as ``pansharpen`` does).
    methods : sequence of str, optional
        The methods to run; default :func:`pansharpen_methods`.
    progress : callable, optional
        ``progress(done, total)`` over all methods (raise ``Cancelled`` to stop).
    **options
        More keywords of ``pansharpen`` (``rescale``, ``weights``, ``device``,
        ``ms_scale``, ...).

    Returns
    -------
    Comparison
        QNR, D_lambda and D_s (:func:`napari_gifnet.metrics.qnr`, at the
        integer ratio of the two images' grids; NaN when they have none or
        the blocks do not fit); the best: the largest QNR.
    """
    from ..metrics.pansharpening import qnr
    from ..workflows.pansharpening import band_axis_of, pansharpen

    ms_arr, pan_arr = np.asarray(ms), np.asarray(pan)
    axis = band_axis_of(tuple(ms_arr.shape), band_axis)
    ms_last = np.moveaxis(ms_arr, axis, -1).astype(np.float64)
    pan_grey = pan_arr.astype(np.float64)
    if pan_grey.ndim == 3:
        pan_grey = pan_grey.mean(axis=-1)
    ratio = _ratio(ms_last.shape[:2], pan_grey.shape[:2])
    keys = list(methods if methods is not None else pansharpen_methods())

    def run(method: str, report: Progress | None) -> Any:
        return pansharpen(ms, pan, band_axis=axis, method=method, progress=report, **options)

    def score(out: Any) -> dict[str, float]:
        fused = np.moveaxis(np.asarray(out.image), axis, -1).astype(np.float64)
        try:
            if ratio is None:
                raise ValueError("no integer ratio between the grids")
            return {k: float(v) for k, v in qnr(fused, ms_last, pan_grey, ratio).items()}
        except ValueError:  # the grids or blocks do not fit: no score, the image stays
            return dict.fromkeys(_QNR, math.nan)

    results, errors = _run_all(keys, run, score, _pansharpen_label, progress)
    best = _max_best(results, "QNR")
    return Comparison("pansharpen", None, results, _QNR, best, "largest QNR", errors)


# ------------------------------------------------------------------ layers
def comparison_layer_name(base: str, label: str) -> str:
    """The result layer of one method: ``"compare: <base> (<label>)"`` (running one
    method again replaces only its own layer)."""
    return f"{COMPARE_PREFIX}{base} ({label})"


def group_layers(viewer: napari.Viewer, layers: Sequence[Any], visible: Any = None) -> None:
    """Put ``layers`` next to each other, in this order, at the top of the layer list
    (napari has no layer groups).

    Only ``visible`` (one of them) stays visible, so a user flicks between the
    methods with the visibility toggles; None leaves every one visible.
    """
    for layer in layers:
        viewer.layers.move(viewer.layers.index(layer), len(viewer.layers))
        if visible is not None:
            layer.visible = layer is visible
