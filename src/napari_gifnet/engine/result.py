"""What a fusion returns, and the steps every fusion path shares: small images
padded for the network, arrays to tensors, provenance, the finiteness check."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from .. import __version__

#: Images smaller than this on a side are padded (symmetrically) for the
#: network's reflect paddings and cropped back afterwards.
MIN_SIDE = 5


PADDED_SIDE = 8


@dataclass
class FusionResult:
    """What :func:`~napari_gifnet.engine.fusion.fuse` returns.

    Attributes
    ----------
    image
        The fused image, float32 in [0, 1]: (H, W) when both inputs are grey,
        (H, W, 3) when either is RGB.
    luma
        The network output, (H, W) float32 in [0, 1].
    features
        With ``return_features=True``: intermediate maps, each (98, H, W)
        float32: ``"shared"`` (shared encoder), ``"multimodal"`` (multimodal
        stream after its transformer block), ``"photographic"`` (digital-
        photography stream after the task branch's last block) and
        ``"branch"`` (the task branch's output fed to the decoder).
        Otherwise empty.
    device
        The torch device the network ran on, e.g. ``"cpu"`` or ``"cuda:0"``.
    elapsed
        Wall time of the whole call, in seconds.
    metadata
        Provenance: method, package version, weights file and sha256, device,
        size, the normalisation of each input, the colour handling, and how
        the network was evaluated: ``storage`` (the one used),
        ``tile_size`` (the tile edge the caller asked for, None when sized
        automatically), ``tile_shape`` and ``tile_pixels`` (the output tiles
        actually used, by the last retry if any), ``out_of_memory_retries``
        and ``retry_tile_size`` (the tile edge of the last retry; None
        without one).
    """

    image: np.ndarray
    luma: np.ndarray
    features: dict[str, np.ndarray] = field(default_factory=dict)
    device: str = "cpu"
    elapsed: float = 0.0
    metadata: dict[str, Any] = field(default_factory=dict)


class NonFiniteResultError(ValueError):
    """The network gave NaN or infinite values (damaged weights or inputs)."""


def check_finite_result(luma: np.ndarray, weights: Any) -> None:
    """Refuse a fused luma holding NaN or inf, naming the weights file.

    Parameters
    ----------
    luma : numpy.ndarray
        The network output.
    weights
        The checkpoint file that produced it (named in the message).

    Raises
    ------
    NonFiniteResultError
        If any value of ``luma`` is NaN or infinite.
    """
    bad = int(luma.size - np.count_nonzero(np.isfinite(luma)))
    if bad:
        raise NonFiniteResultError(
            f"the fused image contains {bad:,} NaN or infinite value(s) (weights {weights}); "
            "the likely cause is non-finite or damaged weights, or inputs with non-finite values"
        )


def pad_small(x: np.ndarray) -> tuple[np.ndarray, tuple[int, int]]:
    """``x`` padded (symmetrically) to at least :data:`PADDED_SIDE` where a side is
    below :data:`MIN_SIDE`, and its original ``(height, width)``."""
    h, w = x.shape
    ph = PADDED_SIDE - h if h < MIN_SIDE else 0
    pw = PADDED_SIDE - w if w < MIN_SIDE else 0
    if ph or pw:
        x = np.pad(x, ((0, ph), (0, pw)), mode="symmetric")
    return x, (h, w)


def to_tensor(x: np.ndarray, device: torch.device) -> torch.Tensor:
    """A (H, W) array as a float32 (1, 1, H, W) tensor on ``device`` (channels-last on the CPU)."""
    t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))[None, None].to(device)
    return t.contiguous(memory_format=torch.channels_last) if device.type == "cpu" else t


def provenance(info: Any, dev: Any) -> dict[str, Any]:
    """The provenance every GIFNet result starts with: method, version, weights, device."""
    return {
        "method": "GIFNet",
        "napari_gifnet_version": __version__,
        "weights": str(info.path),
        "weights_source": info.source,
        "weights_sha256": info.sha256,
        "device": str(dev),
    }
