"""The options of one fusion, checked once: :class:`FusionOptions`.

A public entry (:func:`napari_gifnet.fuse`, :func:`napari_gifnet.fuse_layers`,
:func:`napari_gifnet.fuse_stack`, :func:`napari_gifnet.pansharpen`,
:func:`napari_gifnet.enhance`) builds one :class:`FusionOptions` from its
keywords; the constructor refuses a bad value with the message the engine
always gave, and the layers below take the object as it is. Which of these
options a method uses is said by the method table
(:data:`napari_gifnet.methods.registry.METHODS`). Importing this module
imports no torch (the checks import it when they run).
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from os import PathLike
from typing import Any

from .preprocess import Normalization, _check_normalization

__all__ = ["OPTION_NAMES", "FusionOptions"]


@dataclass(frozen=True)
class FusionOptions:
    """How GIFNet fuses a pair (see :func:`napari_gifnet.fuse` for each option).

    Attributes
    ----------
    weights
        A checkpoint path, or None (the published checkpoint).
    device
        ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:N"``, ``"mps"`` or a
        ``torch.device``; resolved where the network runs.
    normalization
        The rule mapping non-uint8 inputs to [0, 1], or a ``(lo, hi)`` range.
    storage
        ``"auto"``, ``"memory"``, ``"disk"`` or ``"recompute"``.
    tile_size
        The tile edge in pixels, or None (sized from the memory available).
    precision
        ``"float32"``, ``"tf32"``, ``"bfloat16"`` or ``"float16"``.
    return_features
        Also return the network's feature maps.

    Raises
    ------
    ValueError
        An unknown storage, normalisation or precision, or a tile size below 8
        (the messages name the value and the valid ones).
    """

    weights: str | PathLike | None = None
    device: Any = "auto"
    normalization: Normalization = "auto"
    storage: str = "auto"
    tile_size: int | None = None
    precision: str = "float32"
    return_features: bool = False

    def __post_init__(self) -> None:
        from .precision import check_precision
        from .tiled.grid import tile_shape
        from .tiled.plan import STORAGE

        if self.storage not in STORAGE:
            raise ValueError(f"unknown storage {self.storage!r}: use one of {', '.join(STORAGE)}")
        if self.tile_size is not None:
            tile_shape(8, 8, tile_size=self.tile_size)  # raises a ValueError naming the problem
        check_precision(self.precision)
        _check_normalization(self.normalization)

    def but(self, **changes: Any) -> FusionOptions:
        """A copy with ``changes`` (checked like the original)."""
        return replace(self, **changes)


#: The names of the options, in the order of :class:`FusionOptions`.
OPTION_NAMES: tuple[str, ...] = tuple(f.name for f in fields(FusionOptions))
