"""The "Enhance" dock widget: one image layer fused with itself.

A form over :func:`napari_gifnet.workflows.enhancement.enhance`, run in the
widget's worker. It adds ``"<name> enhanced (<variant>)"`` with the layer's
transforms; "keep previous results" is on by default (gamma changes the
result but not the name).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
from magicgui.widgets import CheckBox, ComboBox, FloatSpinBox

from ..layer_output import display_range, put_image
from ._form import image_look, level0
from ._job import JobWidget, gifnet_controls, weights_of

if TYPE_CHECKING:  # pragma: no cover
    import napari

__all__ = ["VARIANTS", "EnhanceWidget"]

#: (label, ``enhance`` ``variant``) of the variant menu; the label names the result layer.
VARIANTS = [("the image twice", "self"), ("image + brightened copy", "exposure")]
_LABELS = {key: label for label, key in VARIANTS}
_TOOLTIPS = {
    "image": "The image layer to enhance: one plane, grey (Y, X) or RGB (Y, X, 3)",
    "variant": (
        "What GIFNet fuses the image with (docs/enhancement.md):\n"
        "the image twice (default): raised contrast (SD) about 27 % and sharpness (AG, EI) "
        "about 60 % on average, and never lowered sharpness on the 12 test images\n"
        "image + brightened copy: the image with a copy raised to the power gamma, like an "
        "exposure pair; stronger on dark images (infrared, under-exposed, remote-sensing "
        "bands), worse on already bright ones"
    ),
    "gamma": (
        "Exponent of the brightened copy (image + brightened copy only): lower lifts the "
        "shadows more, nearer 1 keeps the copy close to the image; 0.5 by default"
    ),
    "keep_previous": (
        "On (default): every run adds a new layer, so tries with other gamma values (which "
        "share the variant's name) stay side by side. Off: a rerun with the same variant "
        "updates its own layer (the other variant's result always stays)"
    ),
}


class EnhanceWidget(JobWidget):
    """Dock widget: enhance one image layer with GIFNet."""

    def __init__(self, napari_viewer: napari.viewer.Viewer) -> None:
        super().__init__(napari_viewer)
        self.image = ComboBox(label="image", choices=self._image_choices)
        self.variant = ComboBox(label="variant", choices=VARIANTS, value="self")
        self.gamma = FloatSpinBox(label="gamma", value=0.5, min=0.05, max=0.95, step=0.05)
        self.keep_previous = CheckBox(text="keep previous results", value=True)
        for name, tip in _TOOLTIPS.items():
            getattr(self, name).tooltip = tip
        gifnet_controls(self)
        self._pickers = [self.image]
        self.extend(
            [self.image, self.variant, self.gamma, self.device, self.weights, self.keep_previous,
             self.buttons, self.status]
        )  # fmt: skip
        self.variant.changed.connect(self._apply_variant)
        self._apply_variant()
        self._refresh_layers()
        self.remember("enhance", "variant", "gamma", "device", "weights", "keep_previous")

    def _apply_variant(self, _value: Any = None) -> None:
        """Gamma is used by the brightened copy only."""
        self.gamma.enabled = self.variant.value == "exposure"

    def prepare(self) -> tuple[Callable, str]:
        from ...workflows.enhancement import enhance

        layer = self.image.value
        if layer is None:
            raise ValueError("add an image layer to enhance")
        data = level0(layer)  # read in the job
        plane_ndim = 3 if layer.rgb else 2
        if len(data.shape) != plane_ndim:
            raise ValueError(
                f"{layer.name!r} has shape {tuple(data.shape)}: enhance works on one plane "
                "(Y, X) or (Y, X, RGB)"
            )
        self._target = layer, _LABELS[self.variant.value]
        options = {
            "variant": self.variant.value, "gamma": float(self.gamma.value),
            "weights": weights_of(self), "device": self.device.value,
        }  # fmt: skip

        def job(progress: Callable[[int, int], None]) -> Any:
            return enhance(np.asarray(data), progress=progress, **options)  # worker thread

        return job, f"Enhance: {layer.name}"

    def finish(self, value: Any) -> list[Any]:
        layer, variant = self._target
        rgb = value.image.ndim == 3
        meta = dict(value.metadata, source_layer=layer.name)
        return [
            put_image(
                self.viewer, f"{layer.name} enhanced ({variant})", value.image,
                keep_previous=self.keep_previous.value, **image_look(rgb),
                contrast_limits=display_range(value.image, rgb),
                scale=tuple(layer.scale), translate=tuple(layer.translate), metadata=meta,
            )
        ]  # fmt: skip

    def summary(self, value: Any) -> str:
        variant = _LABELS.get(value.metadata.get("variant", "self"), "the image twice")
        return f"Last run: {variant}, {value.elapsed:.1f} s"
