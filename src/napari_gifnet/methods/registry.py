"""The fusion methods by name: canonical keys, display names and choices.

The one registry the API, the command line and the widgets take their
method lists from: :func:`method_names` lists the keys, :func:`method_keys`
/ :func:`method_key` check names (``"gifnet"`` or a baseline of
:data:`napari_gifnet.methods.classical.BASELINES`), :func:`method_label` and
:func:`method_choices` give display names, :func:`output_name` names a fused
layer. :func:`task_method_names` / :func:`task_method_key` add
:data:`FOCUS_SELECTION` and :data:`FOCUS_PYRAMID`, the methods a task may run on a pair
(:mod:`napari_gifnet.workflows.tasks`). No Qt, napari or torch; re-exported by
:mod:`napari_gifnet.plugin.layer_fusion`.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = [
    "FOCUS_PYRAMID", "FOCUS_SELECTION", "GIFNET_ONLY_OPTIONS", "METHOD_LABELS", "method_choices", "method_key",
    "method_keys", "method_label", "method_names", "output_name", "task_method_key",
    "task_method_label", "task_method_names",
]  # fmt: skip

#: Display names of the fusion methods, GIFNet first, then the baselines.
METHOD_LABELS: dict[str, str] = {
    "gifnet": "GIFNet",
    "mean": "Mean",
    "max": "Max",
    "laplacian": "Laplacian",
    "dwt": "DWT",
    "guided": "Guided",
    "mertens": "Mertens",
}
#: Focus selection: a pair fused as a 2-plane focus stack (``fuse_stack(..., method="focus")``),
#: a method of the tasks (not a pairwise rule, so not in :func:`method_names`).
FOCUS_SELECTION = "focus"
#: The focus-guided pyramid: focus selection's depth map guiding a Laplacian pyramid
#: blend of the pair (:mod:`napari_gifnet.workflows.focus_pair`), a method of the tasks.
FOCUS_PYRAMID = "focus_pyramid"
#: Display names of the methods only the tasks run (pairs as 2-plane focus stacks).
_FOCUS_LABELS = {FOCUS_SELECTION: "Focus selection", FOCUS_PYRAMID: "Focus-guided pyramid"}
#: Options that only GIFNet understands (ignored by the baselines).
GIFNET_ONLY_OPTIONS = ("weights", "device", "features")


def method_names() -> tuple[str, ...]:
    """Every fusion method's key: ``"gifnet"``, then the baselines of
    :data:`napari_gifnet.methods.classical.BASELINES` (the CLI's and the widgets' choices)."""
    from .classical import BASELINES

    return ("gifnet", *BASELINES)


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
    key = method_key(method)
    return METHOD_LABELS.get(key, key.capitalize())


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
    gifnet, *baselines = method_names()
    return (gifnet, *_FOCUS_LABELS, *baselines)


def task_method_key(method: str) -> str:
    """The canonical key of a task method (:func:`task_method_names`), any case.

    Raises
    ------
    ValueError
        ``unknown fusion method 'x'; valid: gifnet, focus, focus_pyramid, mean, ...``.
    """
    key = str(method).strip().lower()
    for name, label in _FOCUS_LABELS.items():
        if key in (name, label.lower()):
            return name
    try:
        return method_key(method)
    except ValueError:
        valid = ", ".join(task_method_names())
        raise ValueError(f"unknown fusion method {method!r}; valid: {valid}") from None


def task_method_label(method: str) -> str:
    """Display name of a task method, e.g. ``"Focus selection"``, ``"GIFNet"``."""
    key = task_method_key(method)
    return _FOCUS_LABELS[key] if key in _FOCUS_LABELS else method_label(key)
