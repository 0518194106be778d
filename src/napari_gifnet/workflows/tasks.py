"""Fusion by task: :func:`fuse` runs the method a task measures best with (or
GIFNet without a task); :func:`fuse_method` runs any method of
:data:`napari_gifnet.methods.registry.METHODS`.
"""

from __future__ import annotations

import inspect
from typing import Any

from ..engine import fusion as engine
from ..engine.options import OPTION_NAMES, FusionOptions
from ..engine.result import FusionResult
from ..methods.classical import fuse_pair
from ..methods.presets import PRESETS, TaskPreset, get_preset
from ..methods.registry import FOCUS_PYRAMID, METHODS, task_method_key
from ..util.progress import Progress
from .focus_pair import fuse_focus_pair

__all__ = ["fuse", "fuse_method", "resolve_method", "task_preset"]


def task_preset(task: str) -> TaskPreset:
    """The preset of ``task`` (its key or menu label, any case).

    Raises
    ------
    ValueError
        ``unknown task 'x'; valid: ivif, medical, ...``.
    """
    try:
        return get_preset(str(task))
    except KeyError:
        raise ValueError(f"unknown task {task!r}; valid: {', '.join(PRESETS)}") from None


def resolve_method(task: str | None, method: str | None) -> tuple[str, str]:
    """``(method key, reason)``: what ``fuse(a, b, task=task, method=method)`` runs, and why.

    Parameters
    ----------
    task : str or None
        A task key or label (:data:`napari_gifnet.methods.presets.PRESETS`).
    method : str or None
        A method of :func:`napari_gifnet.methods.registry.task_method_names`;
        None: the task's default (GIFNet without a task).

    Raises
    ------
    ValueError
        An unknown task or method.
    """
    preset = task_preset(task) if task is not None else None
    if method is not None:
        key = task_method_key(method)
        return key, f"method {key!r} given by the caller"
    if preset is None:
        return "gifnet", "GIFNet, the default without a task"
    return preset.method, f"the {preset.key!r} task's default: {preset.reason}"


def fuse_method(
    method: str,
    a: Any,
    b: Any,
    options: FusionOptions | None = None,
    progress: Progress | None = None,
    **params: Any,
) -> FusionResult:
    """Fuse a pair with any method of the table, focus methods included
    (:func:`napari_gifnet.methods.classical.fuse_pair` for the others).

    ``options`` (None: the defaults) are checked options; those the method
    does not take are dropped. ``progress(done, total)`` may stop the fusion
    by raising. ``params`` are the method's own (a baseline's, e.g. ``levels``).

    Raises
    ------
    ValueError
        An unknown method, or inputs the method refuses.
    TypeError
        Parameters the method does not have.
    """
    spec = METHODS[task_method_key(method)]
    if spec.kind != "focus":
        return fuse_pair(spec.key, a, b, options, progress, **params)
    if params:
        raise TypeError(f"{spec.key!r} takes no parameter(s) {sorted(params)}")
    normalization = "auto" if options is None else options.normalization
    return fuse_focus_pair(a, b, pyramid=spec.key == FOCUS_PYRAMID, normalization=normalization,
                           progress=progress)  # fmt: skip


def fuse(
    a: Any, b: Any, *, task: str | None = None, method: str | None = None, **options: Any
) -> FusionResult:
    """Fuse two registered images of one scene, with GIFNet or the task's best method.

    Parameters
    ----------
    a, b
        The first and second input, in the task's order (see
        :func:`napari_gifnet.engine.fusion.fuse`); never modified.
    task : str, optional
        ``"ivif"``, ``"medical"``, ``"nir"``, ``"mfif"``, ``"meif"``,
        ``"remote"`` or ``"custom"`` (or a menu label): without ``method``,
        the task's default method runs (GIFNet for ivif, medical, nir,
        remote and custom; the focus-guided pyramid for mfif; the Laplacian
        pyramid for meif; see :data:`napari_gifnet.methods.presets.PRESETS`
        and ``docs/quality.md``).
    method : str, optional
        ``"gifnet"``, ``"focus"`` (focus selection: the pair as a 2-plane
        focus stack), ``"focus_pyramid"`` (that selection guiding a Laplacian
        pyramid blend; :mod:`napari_gifnet.workflows.focus_pair`) or a
        baseline of :data:`napari_gifnet.methods.classical.BASELINES`.
    **options
        The keywords of :func:`napari_gifnet.engine.fusion.fuse` (weights,
        device, return_features, normalization, progress, storage,
        tile_size, precision). A baseline takes ``normalization``,
        ``progress`` and its own parameters, the focus methods
        ``normalization`` and ``progress``; the network's options are
        ignored by both.

    Returns
    -------
    FusionResult
        Without ``task`` and ``method``: exactly what
        :func:`napari_gifnet.engine.fusion.fuse` returns. Otherwise the
        method's result with ``metadata["method"]``, ``["method_reason"]``
        and ``["task"]``; the focus methods give a :class:`~napari_gifnet.workflows.focus_pair.FocusPairResult`
        (``depth_map``, ``confidence``).

    Raises
    ------
    ValueError
        An unknown task or method, ``return_features=True`` with a method
        other than GIFNet, or inputs the method refuses.
    """
    if task is None and method is None:  # the engine's function as it is now (patchable)
        return engine.fuse(a, b, **options)
    key, reason = resolve_method(task, method)
    if options.get("return_features") and key != "gifnet":
        raise ValueError(f"return_features: only GIFNet has feature maps, not {key!r}")
    progress = options.pop("progress", None)
    checked = FusionOptions(**{k: options.pop(k) for k in OPTION_NAMES if k in options})
    result = fuse_method(key, a, b, checked, progress, **options)
    result.metadata.update(
        method=key, method_reason=reason,
        task=task_preset(task).key if task is not None else None,
    )  # fmt: skip
    return result


def _signature() -> inspect.Signature:
    """GIFNet's signature with ``task`` and ``method`` (what ``help(fuse)`` shows)."""
    gifnet = inspect.signature(engine.fuse)
    extra = [
        inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None,
                          annotation="str | None")
        for name in ("task", "method")
    ]  # fmt: skip
    # a stable sort by kind: task and method first of the keyword-only parameters
    params = sorted([*extra, *gifnet.parameters.values()], key=lambda p: p.kind)
    return gifnet.replace(parameters=params)


fuse.__signature__ = _signature()  # type: ignore[attr-defined]
