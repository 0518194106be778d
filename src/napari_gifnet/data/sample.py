"""The :class:`Sample` container and the array helpers of the sample recipes
(:mod:`~napari_gifnet.data.synthetic`, ``multispectral``, ``published``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..engine.colour import LUMA_WEIGHTS

#: One layer: (name, data, extra napari kwargs including "metadata").
Layer = tuple[str, np.ndarray, dict[str, Any]]
#: Sample key (a layer's ``metadata["sample"]``) -> the task preset its pair belongs to.
SAMPLE_TASKS = {
    "multifocus": "mfif", "focus_stack": "mfif", "medical": "medical", "exposure": "meif",
    "fluorescence": "custom", "pansharpening": "remote", "published_ivif": "ivif",
    "published_medical": "medical", "published_mfif": "mfif", "published_meif": "meif",
    "published_nir": "nir", "published_remote": "remote",
}  # fmt: skip


@dataclass
class Sample:
    """A set of layers ready to open, e.g. two fusion inputs and a truth.

    Attributes
    ----------
    key : str
        Sample key (as in the napari manifest).
    title : str
        One-line description.
    layers : list of (str, numpy.ndarray, dict)
        Layer name, data and extra layer kwargs (``metadata``, ``visible``,
        ``rgb``, ``colormap``, ...), inputs first.
    extras : dict of str to numpy.ndarray
        Arrays that are not layers but help checking, e.g. ``"nearness"``.
    """

    key: str
    title: str
    layers: list[Layer]
    extras: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def names(self) -> list[str]:
        """The layer names, in order."""
        return [name for name, _, _ in self.layers]

    def data(self, name: str) -> np.ndarray:
        """Return the data of the layer called ``name`` (KeyError if none)."""
        for layer_name, array, _ in self.layers:
            if layer_name == name:
                return array
        raise KeyError(f"sample {self.key!r} has no layer {name!r}; it has {self.names}")


def _layer(
    name: str, data: np.ndarray, key: str, role: str, recipe: str, source: str,
    info: dict[str, Any] | None = None, **kwargs: Any,
) -> Layer:
    metadata = {"sample": key, "recipe": recipe, "source": source, "role": role, **(info or {})}
    if role == "truth":
        kwargs.setdefault("visible", False)
    return name, data, {"metadata": metadata, **kwargs}


def to_uint8(image: np.ndarray) -> np.ndarray:
    return np.rint(np.clip(image, 0.0, 1.0) * 255.0).astype(np.uint8)


def fit_within(image: np.ndarray, size: int) -> np.ndarray:
    """Float image in [0, 1], downscaled (anti-aliased) so its longest side is <= size."""
    from skimage.transform import resize

    h, w = image.shape[:2]
    scale = min(1.0, size / max(h, w))
    if scale == 1.0:
        return image.astype(np.float64)
    shape = (max(1, round(h * scale)), max(1, round(w * scale)), *image.shape[2:])
    return resize(image.astype(np.float64), shape, order=1, anti_aliasing=True)


def rgb_luma(rgb: np.ndarray) -> np.ndarray:
    return rgb @ np.array(LUMA_WEIGHTS)


def check_size(size: int) -> int:
    if int(size) != size or size < 32:
        raise ValueError(f"size must be an integer >= 32, got {size!r}")
    return int(size)
