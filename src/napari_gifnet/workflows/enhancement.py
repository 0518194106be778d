"""Single-image enhancement with the fusion network: :func:`enhance`.

The GIFNet paper reports that feeding one image to both inputs of the model
enhances it (used as pre-processing for classification). Two variants:

* ``"self"`` (default): both inputs are the image itself, normalised as
  :func:`napari_gifnet.fuse` normalises any input.
* ``"exposure"``: the image normalised to [0, 1] (one range for all its
  channels, ``normalization`` as in :func:`napari_gifnet.fuse`) is the
  second input and a brightened copy, ``x ** gamma`` with ``gamma`` < 1
  (default 0.5), the first, as an over- + under-exposed pair.

``benchmarks/evaluate_enhancement.py`` measures both (EN, SD, AG, EI before
and after, see ``docs/enhancement.md``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from ..engine.result import FusionResult

__all__ = ["VARIANTS", "enhance"]

#: The enhancement variants.
VARIANTS = ("self", "exposure")


def _unit(image: np.ndarray, normalization: Any) -> np.ndarray:
    """The image in [0, 1] (grey or RGB), one range for all channels."""
    from ..engine.preprocess import to_luma_unit, to_rgb_unit

    rgb = to_rgb_unit(image, normalization, name="image")
    if rgb is not None:
        return rgb.astype(np.float32)
    luma, _ = to_luma_unit(image, normalization=normalization, name="image")
    return luma


def enhance(
    image: Any,
    *,
    variant: str = "self",
    gamma: float = 0.5,
    method: str = "gifnet",
    normalization: Any = "auto",
    weights: Any = None,
    device: Any = "auto",
    progress: Any = None,
) -> FusionResult:
    """Enhance one image by fusing it with itself (or a brightened copy).

    Parameters
    ----------
    image : array_like
        (H, W), (H, W, 3) or (H, W, 4) (alpha dropped), any dtype accepted by
        :func:`napari_gifnet.fuse`. Never modified.
    variant : {"self", "exposure"}
        ``"self"``: the image as both inputs; ``"exposure"``: ``x ** gamma``
        first and ``x`` second (see the module docstring).
    gamma : float
        Exponent of the brightened copy (0 < gamma < 1), ``"exposure"`` only.
    method : str
        ``"gifnet"`` (default) or a baseline name (for comparisons).
    normalization, weights, device, progress
        As for :func:`napari_gifnet.fuse`.

    Returns
    -------
    FusionResult
        ``image`` float32 in [0, 1] (RGB when the input is), ``luma`` and
        ``metadata`` (with ``task``, ``variant`` and ``gamma``).

    Raises
    ------
    ValueError
        An unknown variant, gamma outside (0, 1), or an input
        :func:`napari_gifnet.fuse` refuses.
    """
    from ..engine.inputs import as_array
    from ..engine.options import FusionOptions
    from ..methods.classical import fuse_pair
    from ..methods.registry import method_key

    key = method_key(method)
    if variant not in VARIANTS:
        raise ValueError(f"unknown enhancement variant {variant!r}; valid: {', '.join(VARIANTS)}")
    arr = as_array(image, "image")
    options = FusionOptions(weights=weights, device=device, normalization=normalization)
    if variant == "self":
        result = fuse_pair(key, arr, arr, options, progress)
    else:
        if not 0.0 < float(gamma) < 1.0:
            raise ValueError(f"gamma must lie between 0 and 1 (exclusive), got {gamma}")
        unit = _unit(arr, normalization)
        bright = np.power(unit, np.float32(gamma))
        result = fuse_pair(key, bright, unit, options.but(normalization="auto"), progress)
    result.metadata.update(
        task="single-image enhancement",
        variant=variant,
        gamma=float(gamma) if variant == "exposure" else None,
    )
    return result
