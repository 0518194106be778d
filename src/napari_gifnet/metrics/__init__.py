"""Fusion quality: metrics (``napari_gifnet.metrics``) and method evaluation; no torch.

``fusion`` holds the public metric functions (re-exported here, so
``napari_gifnet.metrics.fusion_metrics`` is the documented path),
``formulas`` the formulas behind them, and ``evaluation`` scores fusion
methods over folders of pairs (``napari-gifnet evaluate``).
"""

from .fusion import (
    METRICS,
    REFERENCE_METRICS,
    fusion_metrics,
    psnr,
    reference_metrics,
    ssim,
    to_metric_scale,
)

__all__ = [
    "METRICS", "REFERENCE_METRICS", "fusion_metrics", "psnr", "reference_metrics", "ssim",
    "to_metric_scale",
]  # fmt: skip
