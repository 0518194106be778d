"""The losses of GIFNet's two training steps.

* :func:`common_loss`: ``1 - MS-SSIM(rec, vis) + MSE(rec, vis)``, the
  reconstruction decoder's loss in both steps;
* :func:`information_weights`: ``softmax(g_ir, g_vis)`` of the DenseNet-121
  "information" of the two sources (one pair per batch, no gradients);
* :func:`multimodal_loss`: ``w_ir MSE(fused, ir) + w_vis MSE(fused, vis)``
  plus the common loss (step 1);
* :func:`photographic_loss`: ``MSE(fused, vis)`` plus the common loss
  (step 2; the reference image is the all-in-focus truth of the focus pair).

Each loss returns a :class:`LossTerms` whose ``total`` is what is
back-propagated and whose other fields are logged.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from .features import DenseNetFeatures, information
from .forward import StepOutput
from .msssim import ms_ssim


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


def common_loss(rec: torch.Tensor, vis: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
    """``1 - MS-SSIM(rec, vis) + MSE(rec, vis)`` (data range 1) and its parts."""
    sim = ms_ssim(rec, vis, data_range=1.0)
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
    out: StepOutput, ir: torch.Tensor, vis: torch.Tensor, w_ir: torch.Tensor, w_vis: torch.Tensor
) -> LossTerms:
    """Loss of the multimodal step: information-weighted MSE plus the common loss."""
    fusion = w_ir * F.mse_loss(out.fused, ir) + w_vis * F.mse_loss(out.fused, vis)
    common, parts = common_loss(out.rec, vis)
    total = fusion + common
    return LossTerms(total, {"total": float(total.detach()), "fusion": float(fusion.detach()),
                             "common": float(common.detach()), **parts})  # fmt: skip


def photographic_loss(out: StepOutput, vis: torch.Tensor) -> LossTerms:
    """Loss of the photographic step: supervised MSE to ``vis`` plus the common loss."""
    fusion = F.mse_loss(out.fused, vis)
    common, parts = common_loss(out.rec, vis)
    total = fusion + common
    return LossTerms(total, {"total": float(total.detach()), "fusion": float(fusion.detach()),
                             "common": float(common.detach()), **parts})  # fmt: skip
