"""The losses of GIFNet's two training steps.

Both steps add the common loss of the reconstruction decoder
(:func:`common_loss`) to their own: the information-weighted MSE of the
multimodal step (:func:`multimodal_loss`, weights from
:func:`information_weights`) or the supervised MSE of the photographic step
(:func:`photographic_loss`). Each returns a :class:`LossTerms` whose
``total`` is what is back-propagated and whose other fields are logged.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from .features import DenseNetFeatures, information
from .forward import StepOutput
from .msssim import ms_ssim, published_ms_ssim

#: The MS-SSIM variants of the common loss (``--ssim``); the first is the default.
SSIM_VARIANTS: tuple[str, ...] = ("published", "standard")


@dataclass
class LossTerms:
    """A step's loss and its parts.

    Attributes
    ----------
    total : torch.Tensor
        The scalar that is back-propagated.
    terms : dict of str to float
        The parts, for logging (``fusion``, ``common``, ``ms_ssim``,
        ``rec_mse``, and for step 1 ``w_ir``, ``w_vis``, ``g_ir``,
        ``g_vis``).
    """

    total: torch.Tensor
    terms: dict[str, float] = field(default_factory=dict)


def check_ssim(ssim: str) -> None:
    """Raise ValueError unless ``ssim`` is one of :data:`SSIM_VARIANTS`."""
    if ssim not in SSIM_VARIANTS:
        raise ValueError(f"ssim must be one of {', '.join(SSIM_VARIANTS)}, got {ssim!r}")


def common_loss(
    rec: torch.Tensor, vis: torch.Tensor, ssim: str = "published"
) -> tuple[torch.Tensor, dict[str, float]]:
    """``1 - MS-SSIM(rec, vis) + MSE(rec, vis)`` and its parts.

    ``ssim="published"`` (default): the published code's variant,
    :func:`~napari_gifnet.training.msssim.published_ms_ssim` (its data range
    from ``rec``); ``"standard"``: :func:`~napari_gifnet.training.msssim.ms_ssim`
    with data range 1.
    """
    check_ssim(ssim)
    sim = published_ms_ssim(rec, vis) if ssim == "published" else ms_ssim(rec, vis, data_range=1.0)
    mse = F.mse_loss(rec, vis)
    return 1 - sim + mse, {"ms_ssim": float(sim.detach()), "rec_mse": float(mse.detach())}


@torch.no_grad()
def information_weights(
    extractor: DenseNetFeatures, ir: torch.Tensor, vis: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, dict[str, float]]:
    """``(w_ir, w_vis) = softmax(g_ir, g_vis)`` for a batch, and the logged values.

    ``g`` is :func:`napari_gifnet.training.features.information` of the whole
    batch of each source (one pair of weights per batch).
    """
    g = torch.stack([information(extractor, ir), information(extractor, vis)]).float()
    w = torch.softmax(g, dim=0)
    terms = {"g_ir": float(g[0]), "g_vis": float(g[1]), "w_ir": float(w[0]), "w_vis": float(w[1])}
    return w[0].to(ir.device), w[1].to(ir.device), terms


def multimodal_loss(
    out: StepOutput, ir: torch.Tensor, vis: torch.Tensor, w_ir: torch.Tensor, w_vis: torch.Tensor,
    ssim: str = "published",
) -> LossTerms:  # fmt: skip
    """Loss of the multimodal step: information-weighted MSE plus the common loss."""
    fusion = w_ir * F.mse_loss(out.fused, ir) + w_vis * F.mse_loss(out.fused, vis)
    common, parts = common_loss(out.rec, vis, ssim)
    total = fusion + common
    return LossTerms(total, {"total": float(total.detach()), "fusion": float(fusion.detach()),
                             "common": float(common.detach()), **parts})  # fmt: skip


def photographic_loss(out: StepOutput, vis: torch.Tensor, ssim: str = "published") -> LossTerms:
    """Loss of the photographic step: supervised MSE to ``vis`` (the all-in-focus truth of
    the focus pair) plus the common loss."""
    fusion = F.mse_loss(out.fused, vis)
    common, parts = common_loss(out.rec, vis, ssim)
    total = fusion + common
    return LossTerms(total, {"total": float(total.detach()), "fusion": float(fusion.detach()),
                             "common": float(common.detach()), **parts})  # fmt: skip
