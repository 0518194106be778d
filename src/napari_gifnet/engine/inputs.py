"""Checking and normalising a pair of fusion inputs, the same for every method.

GIFNet (:func:`napari_gifnet.engine.fusion.fuse`) and the classical baselines
(:mod:`napari_gifnet.methods.classical`) accept the same inputs with the same rules:
this module applies them once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .colour import ColourPlan, plan_colour
from .preprocess import Normalization, to_luma_unit, to_rgb_unit, unsupported_dtype_message


@dataclass
class PreparedPair:
    """Two inputs as luma in [0, 1], with what was done and how to colour."""

    luma_a: np.ndarray
    luma_b: np.ndarray
    meta_a: dict[str, Any]
    meta_b: dict[str, Any]
    rgb_a: np.ndarray | None
    rgb_b: np.ndarray | None
    plan: ColourPlan | None

    def provenance(self, normalization: Normalization) -> dict[str, Any]:
        """The metadata every method records about its inputs and colour."""
        return {
            "inputs": {"a": self.meta_a, "b": self.meta_b},
            "normalization": normalization
            if isinstance(normalization, str)
            else list(normalization),
            "colour": "grey"
            if self.plan is None
            else f"chroma from {self.plan.source} (BT.601 full range)",
        }


def check_dtype(dtype: Any, shape: tuple[int, ...], name: str) -> None:
    """Refuse a data type that cannot be fused, as :func:`prepare_pair` does.

    Raises
    ------
    TypeError
        Object data.
    ValueError
        Any other data type but bool, integer or float (complex, text, dates...).
    """
    dt = np.dtype(dtype)
    if dt.kind == "O":
        raise TypeError(f"input {name} is not a numeric image (dtype object)")
    if dt.kind not in "buif":
        raise ValueError(unsupported_dtype_message(name, shape, dt))


def as_array(x: Any, name: str) -> np.ndarray:
    """Read an input (numpy array, array-like or torch tensor) as a numpy array.

    Torch floating types numpy lacks (bfloat16, float8) become float32,
    which holds their values exactly.
    """
    if type(x).__module__.startswith("torch"):
        import torch

        x = x.detach().cpu()
        if x.is_floating_point() and x.dtype not in (torch.float16, torch.float32, torch.float64):
            x = x.float()
        try:
            x = x.numpy()
        except TypeError as exc:  # a torch dtype numpy cannot hold
            raise TypeError(f"input {name} (torch dtype {x.dtype}) cannot be read: {exc}") from None
    try:
        arr = np.asarray(x)
    except Exception as exc:  # noqa: BLE001 - anything numpy cannot read
        raise TypeError(f"input {name} cannot be read as an array: {exc}") from exc
    if arr.dtype == object:
        raise TypeError(f"input {name} is not a numeric image (dtype object)")
    return arr


def plane_shape(arr: np.ndarray) -> tuple[int, ...]:
    """(H, W) of a grey, RGB or RGBA image (the shape itself for other arrays)."""
    return arr.shape[:2] if arr.ndim == 3 and arr.shape[-1] in (3, 4) else arr.shape


def prepare_pair(a: Any, b: Any, normalization: Normalization = "auto") -> PreparedPair:
    """Validate two inputs and bring them to luma in [0, 1].

    Raises
    ------
    ValueError
        Different heights or widths (the message names both shapes), and
        everything :func:`napari_gifnet.engine.preprocess.to_luma_unit` refuses.
    """
    a_arr, b_arr = as_array(a, "a"), as_array(b, "b")
    shape_a, shape_b = plane_shape(a_arr), plane_shape(b_arr)
    if len(shape_a) == 2 and len(shape_b) == 2 and shape_a != shape_b:
        raise ValueError(
            f"the inputs must have the same height and width: a is {a_arr.shape}, "
            f"b is {b_arr.shape}"
        )
    luma_a, meta_a = to_luma_unit(a_arr, normalization=normalization, name="a")
    luma_b, meta_b = to_luma_unit(b_arr, normalization=normalization, name="b")
    rgb_a = to_rgb_unit(a_arr, normalization, name="a")
    rgb_b = to_rgb_unit(b_arr, normalization, name="b")
    return PreparedPair(luma_a, luma_b, meta_a, meta_b, rgb_a, rgb_b, plan_colour(rgb_a, rgb_b))
