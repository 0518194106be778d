"""Small pieces of form building the dock widgets share (layouts, layers, texts)."""

from __future__ import annotations

import math
from typing import Any

from magicgui.widgets import ComboBox, Container, FileEdit
from qtpy.QtWidgets import QComboBox, QSizePolicy, QWidget

from ...data.sample import SAMPLE_TASKS

__all__ = [
    "box", "data_task", "file_text", "image_look", "level0", "never_widen", "number_text",
    "short_combo",
]  # fmt: skip

_SHORT = QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon


def never_widen(native: QWidget) -> None:
    """Let ``native``'s text never set its width (the dock's width sets it)."""
    policy = native.sizePolicy()
    policy.setHorizontalPolicy(QSizePolicy.Policy.Ignored)
    native.setSizePolicy(policy)


def short_combo(combo: ComboBox, characters: int) -> None:
    """Size ``combo`` for ``characters`` (never widening the dock); its list shows entries whole."""
    combo.native.setSizeAdjustPolicy(_SHORT)
    combo.native.setMinimumContentsLength(characters)


def box(
    widgets: list[Any], layout: str = "horizontal", labels: bool = False, **kwargs: Any
) -> Container:
    """A ``Container`` of ``widgets`` without margins (by default a row without labels)."""
    container = Container(widgets=widgets, layout=layout, labels=labels, **kwargs)
    container.margins = (0, 0, 0, 0)
    return container


def file_text(edit: FileEdit) -> str:
    """The path typed or chosen in ``edit``, stripped ("" when empty)."""
    return str(edit.line_edit.value).strip()


def level0(layer: Any) -> Any:
    """An image layer's full-resolution data (numpy or lazy), not read."""
    return layer.data[0] if layer.multiscale else layer.data


def number_text(value: float) -> str:
    """A metric's value in a table: four decimals, or "nan"."""
    return "nan" if math.isnan(value) else f"{value:.4f}"


def data_task(*layers: Any) -> tuple[str, str] | None:
    """The task the layers say they are, and the sample that says it (None if they do not).

    A layer of a sample carries its key in ``metadata["sample"]``
    (:data:`~napari_gifnet.data.sample.SAMPLE_TASKS`); layers of different
    samples say nothing.
    """
    found = set()
    for layer in layers:
        metadata = getattr(layer, "metadata", None) or {}
        sample = metadata.get("sample") if isinstance(metadata, dict) else None
        if isinstance(sample, str) and sample in SAMPLE_TASKS:
            found.add((SAMPLE_TASKS[sample], sample))
    return found.pop() if len(found) == 1 else None


def image_look(rgb: bool) -> dict[str, Any]:
    """The colour keywords of a result layer: RGB, or grey."""
    return {"rgb": True} if rgb else {"rgb": False, "colormap": "gray"}
