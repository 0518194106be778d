"""The fusion methods by name: the one table of keys, display names and options.

:data:`METHODS` holds every method a pair can be fused with: GIFNet, the
tasks' focus methods and the classical baselines, each with its display name,
the :class:`~napari_gifnet.engine.options.FusionOptions` it takes (the others
are dropped, see :meth:`Method.takes`) and how it runs (``kind``). The API,
the command line and the widgets take their method lists from here:
:func:`method_names` lists the pairwise keys, :func:`method_keys` /
:func:`method_key` check names (``"gifnet"`` or a baseline of
:data:`napari_gifnet.methods.classical.BASELINES`), :func:`method_label` and
:func:`method_choices` give display names, :func:`output_name` names a fused
layer. :func:`task_method_names` / :func:`task_method_key` add
:data:`FOCUS_SELECTION` and :data:`FOCUS_PYRAMID`, the methods a task may run
on a pair. :func:`napari_gifnet.methods.classical.fuse_pair` runs a pairwise
method by this table, giving it the options it takes
(:func:`napari_gifnet.workflows.tasks.fuse_method` the focus methods too).
No Qt, napari or torch.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from ..engine.options import OPTION_NAMES

__all__ = [
    "FOCUS_PYRAMID", "FOCUS_SELECTION", "METHODS", "METHOD_LABELS", "Method", "method_choices",
    "method_key", "method_keys", "method_label", "method_names", "output_name",
    "task_method_key", "task_method_label", "task_method_names",
]  # fmt: skip

#: Focus selection: a pair fused as a 2-plane focus stack (``fuse_stack(..., method="focus")``),
#: a method of the tasks (not a pairwise rule, so not in :func:`method_names`).
FOCUS_SELECTION = "focus"
#: The focus-guided pyramid: focus selection's depth map guiding a Laplacian pyramid
#: blend of the pair (:mod:`napari_gifnet.workflows.focus_pair`), a method of the tasks.
FOCUS_PYRAMID = "focus_pyramid"


@dataclass(frozen=True)
class Method:
    """One fusion method of :data:`METHODS`.

    Attributes
    ----------
    key
        The canonical key, e.g. ``"laplacian"``.
    label
        The display name, e.g. ``"Laplacian"``.
    options
        The names of the :class:`~napari_gifnet.engine.options.FusionOptions`
        it takes; the others do not apply to it and are dropped.
    kind
        How it runs: ``"network"`` (GIFNet, :func:`napari_gifnet.fuse`),
        ``"focus"`` (:func:`napari_gifnet.workflows.focus_pair.fuse_focus_pair`)
        or ``"baseline"`` (:data:`napari_gifnet.methods.classical.BASELINES`).
    """

    key: str
    label: str
    options: tuple[str, ...]
    kind: str

    def takes(self, option: str) -> bool:
        """Whether the method uses the option named ``option`` (e.g. ``"device"``)."""
        return option in self.options

    @property
    def pairwise(self) -> bool:
        """A rule over a pair (:func:`method_names`), not a focus method of the tasks."""
        return self.kind != "focus"


_RULE_OPTIONS = ("normalization",)  # what a rule over the normalised pair takes

#: Every fusion method, in menu order: GIFNet, the focus methods, the baselines.
METHODS: dict[str, Method] = {
    m.key: m
    for m in (
        Method("gifnet", "GIFNet", OPTION_NAMES, "network"),
        Method(FOCUS_SELECTION, "Focus selection", _RULE_OPTIONS, "focus"),
        Method(FOCUS_PYRAMID, "Focus-guided pyramid", _RULE_OPTIONS, "focus"),
        Method("mean", "Mean", _RULE_OPTIONS, "baseline"),
        Method("max", "Max", _RULE_OPTIONS, "baseline"),
        Method("laplacian", "Laplacian", _RULE_OPTIONS, "baseline"),
        Method("dwt", "DWT", _RULE_OPTIONS, "baseline"),
        Method("guided", "Guided", _RULE_OPTIONS, "baseline"),
        Method("mertens", "Mertens", _RULE_OPTIONS, "baseline"),
    )
}
#: Display names of the pairwise methods, GIFNet first, then the baselines.
METHOD_LABELS: dict[str, str] = {k: m.label for k, m in METHODS.items() if m.pairwise}


def method_names() -> tuple[str, ...]:
    """Every pairwise fusion method's key: ``"gifnet"``, then the baselines of
    :data:`napari_gifnet.methods.classical.BASELINES` (the CLI's and the widgets' choices)."""
    return tuple(METHOD_LABELS)


def method_keys(methods: Iterable[str]) -> list[str]:
    """The canonical keys of several methods, checked (the one unknown-method check).

    Names are case-insensitive; display names such as ``"GIFNet"`` work too.

    Raises
    ------
    ValueError
        ``unknown fusion method 'x'; valid: gifnet, mean, ...`` naming every
        unknown one.
    """
    valid = method_names()
    keys = [str(m).strip().lower() for m in methods]
    unknown = [repr(m) for m, k in zip(methods, keys) if k not in valid]
    if unknown:
        raise ValueError(f"unknown fusion method {', '.join(unknown)}; valid: {', '.join(valid)}")
    return keys


def method_key(method: str) -> str:
    """The canonical (lower-case) key of one fusion method; ValueError if unknown
    (:func:`method_keys`)."""
    return method_keys([method])[0]


def method_label(method: str) -> str:
    """Display name of a fusion method, e.g. ``"GIFNet"``, ``"Laplacian"``."""
    return METHODS[method_key(method)].label


def method_choices() -> list[tuple[str, str]]:
    """``(display name, key)`` of every method: GIFNet, then the baselines."""
    return [(method_label(k), k) for k in method_names()]


def output_name(first: str, second: str, method: str = "gifnet") -> str:
    """Name of the fused layer: ``"<first> + <second> (<Method>)"``, e.g. ``(GIFNet)``
    (any task method, :func:`task_method_label`)."""
    return f"{first} + {second} ({task_method_label(method)})"


def task_method_names() -> tuple[str, ...]:
    """The methods a task may run on a pair: ``"gifnet"``, ``"focus"``
    (:data:`FOCUS_SELECTION`), ``"focus_pyramid"`` (:data:`FOCUS_PYRAMID`), then
    the baselines."""
    return tuple(METHODS)


def task_method_key(method: str) -> str:
    """The canonical key of a task method (:func:`task_method_names`), any case.

    Raises
    ------
    ValueError
        ``unknown fusion method 'x'; valid: gifnet, focus, focus_pyramid, mean, ...``.
    """
    key = str(method).strip().lower()
    for name, entry in METHODS.items():
        if not entry.pairwise and key in (name, entry.label.lower()):
            return name
    try:
        return method_key(method)
    except ValueError:
        valid = ", ".join(task_method_names())
        raise ValueError(f"unknown fusion method {method!r}; valid: {valid}") from None


def task_method_label(method: str) -> str:
    """Display name of a task method, e.g. ``"Focus selection"``, ``"GIFNet"``."""
    return METHODS[task_method_key(method)].label
