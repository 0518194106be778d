"""The fusion methods by name: the one table of keys, display names and options.

:data:`METHODS` holds every method a pair can be fused with (GIFNet, the tasks'
focus methods and the classical baselines); the API, the command line and the
widgets take their method lists, name checks and display names from the
functions here. No Qt, napari or torch.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from numbers import Integral, Real
from typing import Any

from ..engine.options import OPTION_NAMES

__all__ = [
    "FOCUS_PYRAMID", "FOCUS_SELECTION", "METHODS", "METHOD_LABELS", "Method", "Parameter",
    "check_method_params", "method_choices", "method_key", "method_keys", "method_names",
    "output_name", "task_method_key", "task_method_label", "task_method_names",
]  # fmt: skip

#: Focus selection: a pair fused as a 2-plane focus stack (``fuse_stack(..., method="focus")``),
#: a method of the tasks (not a pairwise rule, so not in :func:`method_names`).
FOCUS_SELECTION = "focus"
#: The focus-guided pyramid: focus selection's depth map guiding a Laplacian pyramid
#: blend of the pair (:mod:`napari_gifnet.workflows.focus_pair`), a method of the tasks.
FOCUS_PYRAMID = "focus_pyramid"


@dataclass(frozen=True)
class Parameter:
    """One of a method's own parameters (a keyword argument besides the fusion options).

    Attributes
    ----------
    name
        The keyword, e.g. ``"levels"``.
    default
        The value used when it is not given (None: chosen from the image).
    type
        What a value must be: ``int`` (an integer, not a bool), ``float`` (a
        real number, not a bool) or ``str``.
    """

    name: str
    default: Any
    type: type

    def accepts(self, value: Any) -> bool:
        """Whether ``value`` is of this parameter's type (None where the default is None)."""
        if value is None:
            return self.default is None
        if isinstance(value, bool):
            return False
        if self.type is int:
            return isinstance(value, Integral)
        if self.type is float:
            return isinstance(value, Real)
        return isinstance(value, self.type)


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
    params
        Its own parameters (:class:`Parameter`), in signature order; none for
        GIFNet and the focus methods.
    """

    key: str
    label: str
    options: tuple[str, ...]
    kind: str
    params: tuple[Parameter, ...] = ()

    @property
    def defaults(self) -> dict[str, Any]:
        """Its own parameters' defaults, by name."""
        return {p.name: p.default for p in self.params}

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
        Method("laplacian", "Laplacian", _RULE_OPTIONS, "baseline",
               (Parameter("levels", None, int),)),
        Method("dwt", "DWT", _RULE_OPTIONS, "baseline",
               (Parameter("wavelet", "db2", str), Parameter("levels", 3, int))),
        Method("guided", "Guided", _RULE_OPTIONS, "baseline",
               (Parameter("r1", 45, int), Parameter("eps1", 0.3, float),
                Parameter("r2", 7, int), Parameter("eps2", 1e-6, float))),
        Method("mertens", "Mertens", _RULE_OPTIONS, "baseline",
               (Parameter("contrast", 1.0, float), Parameter("saturation", 1.0, float),
                Parameter("exposure", 1.0, float), Parameter("sigma", 0.2, float))),
    )
}  # fmt: skip
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


def method_choices() -> list[tuple[str, str]]:
    """``(display name, key)`` of every method: GIFNet, then the baselines."""
    return [(METHODS[k].label, k) for k in method_names()]


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
        if key in (name, entry.label.lower()):
            return name
    raise ValueError(f"unknown fusion method {method!r}; valid: {', '.join(task_method_names())}")


def task_method_label(method: str) -> str:
    """Display name of a task method, e.g. ``"Focus selection"``, ``"GIFNet"``."""
    return METHODS[task_method_key(method)].label


def check_method_params(method: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """A method's own parameters, checked against the table (the one check of them).

    Parameters
    ----------
    method : str
        A task method (:func:`task_method_names`), any case.
    params : mapping
        Parameter names to values, e.g. ``{"levels": 3}``; never the fusion
        options (:data:`~napari_gifnet.engine.options.OPTION_NAMES`).

    Returns
    -------
    dict
        ``params`` as given (a new dict).

    Raises
    ------
    ValueError
        An unknown method; a name the method does not have (``unknown
        parameter 'radius' for method 'guided'; valid: r1, eps1, r2, eps2``, or
        ``method 'focus' takes no parameters``); a value not of the type of
        :attr:`Parameter.type` (``parameter 'levels' of method 'laplacian'
        must be an integer or None, not 'x'``).
    """
    spec = METHODS[task_method_key(method)]
    own = {p.name: p for p in spec.params}
    unknown = [repr(str(k)) for k in params if k not in own]
    if unknown:
        names = ", ".join(unknown)
        s = "s" if len(unknown) > 1 else ""
        if not own:
            raise ValueError(
                f"method {spec.key!r} takes no parameters; got unknown parameter{s} {names}"
            )
        raise ValueError(
            f"unknown parameter{s} {names} for method {spec.key!r}; valid: {', '.join(own)}"
        )
    for name, value in params.items():
        p = own[name]
        if not p.accepts(value):
            kind = {int: "an integer", float: "a number", str: "a string"}[p.type]
            kind += " or None" if p.default is None else ""
            raise ValueError(
                f"parameter {name!r} of method {spec.key!r} must be {kind}, not {value!r}"
            )
    return dict(params)
