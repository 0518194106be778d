"""The "Enhance" dock widget: one image layer fused with itself.

Pick an image layer (grey or RGB, one plane) and a variant; Run calls
:func:`napari_gifnet.workflows.enhancement.enhance` (the console function) in a napari
worker thread (which also reads the layer's pixels: a Dask layer is never
computed on the GUI thread) and adds ``"<name> enhanced"`` with the layer's
transforms. The options are remembered across launches.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
from magicgui.widgets import ComboBox, FloatSpinBox

from ..layer_output import display_range
from ._job import JobWidget, gifnet_controls, put_layer, weights_of

if TYPE_CHECKING:  # pragma: no cover
    import napari

__all__ = ["EnhanceWidget"]


class EnhanceWidget(JobWidget):
    """Dock widget: enhance one image layer with GIFNet."""

    def __init__(self, napari_viewer: napari.viewer.Viewer) -> None:
        super().__init__(napari_viewer)
        self.image = ComboBox(label="image", choices=self._image_choices)
        self.variant = ComboBox(
            label="variant",
            choices=[("the image twice", "self"), ("image + brightened copy", "exposure")],
            value="self",
        )
        self.gamma = FloatSpinBox(label="gamma", value=0.5, min=0.05, max=0.95, step=0.05)
        gifnet_controls(self)
        self._pickers = [self.image]
        self.extend(
            [self.image, self.variant, self.gamma, self.device, self.weights, self.buttons,
             self.status]
        )  # fmt: skip
        self._refresh_layers()
        self.remember("enhance", "variant", "gamma", "device", "weights")

    def prepare(self) -> tuple[Callable, str]:
        from ...workflows.enhancement import enhance

        layer = self.image.value
        if layer is None:
            raise ValueError("add an image layer to enhance")
        data = layer.data[0] if layer.multiscale else layer.data  # read in the job
        plane_ndim = 3 if layer.rgb else 2
        if len(data.shape) != plane_ndim:
            raise ValueError(
                f"{layer.name!r} has shape {tuple(data.shape)}: enhance works on one plane "
                "(Y, X) or (Y, X, RGB)"
            )
        self._target = layer
        options = {
            "variant": self.variant.value, "gamma": float(self.gamma.value),
            "weights": weights_of(self), "device": self.device.value,
        }  # fmt: skip

        def job(progress: Callable[[int, int], None]) -> Any:
            return enhance(np.asarray(data), progress=progress, **options)  # worker thread

        return job, f"Enhance: {layer.name}"

    def finish(self, value: Any) -> list[Any]:
        layer = self._target
        rgb = value.image.ndim == 3
        look = {"rgb": True} if rgb else {"rgb": False, "colormap": "gray"}
        meta = dict(value.metadata, source_layer=layer.name)
        return [
            put_layer(
                self.viewer, f"{layer.name} enhanced", value.image,
                contrast_limits=display_range(value.image, rgb),
                scale=tuple(layer.scale), translate=tuple(layer.translate), metadata=meta,
                **look,
            )
        ]  # fmt: skip

    def summary(self, value: Any) -> str:
        return f"Last run: {value.metadata.get('variant', 'self')}, {value.elapsed:.1f} s"
