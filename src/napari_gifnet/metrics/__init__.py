"""Fusion quality: metrics (``napari_gifnet.metrics``) and method evaluation; no torch.

The public functions of ``fusion``, ``exposure`` (MEF-SSIM) and ``pansharpening``
are re-exported here: ``napari_gifnet.metrics.fusion_metrics`` is the documented path.
"""

from .exposure import mef_ssim
from .fusion import (
    CONVENTIONS,
    METRICS,
    REFERENCE_METRICS,
    fusion_metrics,
    psnr,
    reference_metrics,
    ssim,
    to_metric_scale,
)
from .pansharpening import (
    PANSHARPENING_METRICS,
    band_psnr,
    ergas,
    pansharpening_metrics,
    q2n,
    q_index,
    qnr,
    sam,
    scc,
)

__all__ = [
    "CONVENTIONS", "METRICS", "REFERENCE_METRICS", "fusion_metrics", "mef_ssim", "psnr",
    "reference_metrics", "ssim", "to_metric_scale",
    # pansharpening (``pansharpening``): Wald's protocol indices and QNR
    "PANSHARPENING_METRICS", "band_psnr", "ergas", "pansharpening_metrics", "q2n", "q_index",
    "qnr", "sam", "scc",
]  # fmt: skip
