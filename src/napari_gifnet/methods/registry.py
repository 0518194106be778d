"""The fusion methods by name: canonical keys, display names and choices.

:func:`method_key` checks a method name (``"gifnet"`` or a baseline of
:data:`napari_gifnet.methods.classical.BASELINES`), :func:`method_label` and
:func:`method_choices` give display names, :func:`output_name` names a fused
layer. No Qt, napari or torch; re-exported by :mod:`napari_gifnet.plugin.layer_fusion`.
"""

from __future__ import annotations

__all__ = [
    "GIFNET_ONLY_OPTIONS", "METHOD_LABELS", "method_choices", "method_key", "method_label",
    "output_name",
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
#: Options that only GIFNet understands (ignored by the baselines).
GIFNET_ONLY_OPTIONS = ("weights", "device", "features")


def method_key(method: str) -> str:
    """The canonical (lower-case) key of a fusion method; ValueError if unknown.

    ``"gifnet"`` or a key of :data:`napari_gifnet.methods.classical.BASELINES`
    (case-insensitive; display names such as ``"GIFNet"`` work too).
    """
    from .classical import BASELINES

    key = str(method).strip().lower()
    if key != "gifnet" and key not in BASELINES:
        raise ValueError(f"unknown fusion method {method!r}; valid: {['gifnet', *BASELINES]}")
    return key


def method_label(method: str) -> str:
    """Display name of a fusion method, e.g. ``"GIFNet"``, ``"Laplacian"``."""
    key = method_key(method)
    return METHOD_LABELS.get(key, key.capitalize())


def method_choices() -> list[tuple[str, str]]:
    """``(display name, key)`` of every method: GIFNet, then the baselines."""
    from .classical import BASELINES

    return [(method_label(k), k) for k in ("gifnet", *BASELINES)]


def output_name(first: str, second: str, method: str = "gifnet") -> str:
    """Name of the fused layer: ``"<first> + <second> (<Method>)"``, e.g. ``(GIFNet)``."""
    return f"{first} + {second} ({method_label(method)})"
