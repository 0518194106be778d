"""napari sample-data contributions (see ``napari.yaml``): napari ``LayerData``
tuples (:func:`to_layer_data`) of the samples of :mod:`napari_gifnet.data`, each
layer's ``metadata`` saying how its data were made. No napari or Qt here.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..data import published as published_samples
from ..data import synthetic as samples
from ..data.multispectral import pansharpening_sample as _pansharpening_sample
from ..data.sample import Sample

LayerData = tuple[np.ndarray, dict[str, Any], str]


def to_layer_data(sample: Sample) -> list[LayerData]:
    """Turn a :class:`~napari_gifnet.data.sample.Sample` into napari ``LayerData`` tuples.

    Parameters
    ----------
    sample : Sample
        The sample.

    Returns
    -------
    list of (numpy.ndarray, dict, str)
        One ``(data, {"name": ..., **kwargs}, "image")`` per layer, in order.
    """
    return [(data, {"name": name, **kwargs}, "image") for name, data, kwargs in sample.layers]


def multifocus_pair() -> list[LayerData]:
    """Near-focus + far-focus motorcycle, with the all-in-focus truth (hidden)."""
    return to_layer_data(samples.multifocus_pair())


def focus_stack() -> list[LayerData]:
    """Five-plane grey focus stack of the motorcycle, with the truth (hidden)."""
    return to_layer_data(samples.focus_stack())


def medical_pair() -> list[LayerData]:
    """CT-like + MRI-like images of the Shepp-Logan phantom."""
    return to_layer_data(samples.medical_pair())


def exposure_pair() -> list[LayerData]:
    """Over-exposed + under-exposed coffee photograph, with the reference (hidden)."""
    return to_layer_data(samples.exposure_pair())


def fluorescence_pair() -> list[LayerData]:
    """Synthetic 12-bit nuclei + membrane channels of the same cells."""
    return to_layer_data(samples.fluorescence_pair())


def pansharpening_sample() -> list[LayerData]:
    """Four-band multispectral (1/4 resolution) + panchromatic astronaut, with the truth (hidden)."""
    return to_layer_data(_pansharpening_sample())


def _published(key: str) -> list[LayerData]:
    return to_layer_data(published_samples.load_published(key))


def published_ivif() -> list[LayerData]:
    """The published infrared + visible pair (downloaded on first use)."""
    return _published("published_ivif")


def published_medical() -> list[LayerData]:
    """The published PET + MRI pair (downloaded on first use)."""
    return _published("published_medical")


def published_mfif() -> list[LayerData]:
    """The published near-focus + far-focus pair (downloaded on first use)."""
    return _published("published_mfif")


def published_meif() -> list[LayerData]:
    """The published over-exposed + under-exposed pair (downloaded on first use)."""
    return _published("published_meif")


def published_nir() -> list[LayerData]:
    """The published near-infrared + visible pair (downloaded on first use)."""
    return _published("published_nir")


def published_remote() -> list[LayerData]:
    """The published multispectral bands 1-4 + panchromatic set (downloaded on first use)."""
    return _published("published_remote")
