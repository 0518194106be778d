"""Fusion quality: metrics (``napari_gifnet.metrics``) and method evaluation; no torch.

``fusion`` holds the public metric functions (re-exported here, so
``napari_gifnet.metrics.fusion_metrics`` is the documented path),
``formulas`` the formulas behind them, and ``evaluation`` scores fusion
methods over folders of pairs (``napari-gifnet evaluate``) and ``exposure``
holds MEF-SSIM for exposure fusion; ``pansharpening`` the pansharpening
indices (ERGAS, SAM, Q, Q2n, sCC, QNR).
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
