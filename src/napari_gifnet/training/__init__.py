"""Training and fine-tuning GIFNet with the published two-step scheme.

``loop`` runs a training (:func:`~napari_gifnet.training.loop.train`, the
command :mod:`napari_gifnet.cli.train`) on the samples of ``dataset``, with the
passes of ``forward``, the losses of ``losses`` and ``msssim``, the
DenseNet-121 of ``features`` and the files of ``runfiles``; ``synthetic``
makes small training folders. The modules are imported on demand, so
``napari-gifnet --help`` stays fast; :func:`published_ms_ssim` is exported
here (loaded on first use: importing this package imports no torch). See
``docs/training.md``.
"""

from __future__ import annotations

import lazy_loader as _lazy

__getattr__, __dir__, _ = _lazy.attach(__name__, submod_attrs={"msssim": ["published_ms_ssim"]})

__all__ = ["published_ms_ssim"]
