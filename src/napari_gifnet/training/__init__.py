"""Training and fine-tuning GIFNet with the published two-step scheme (``docs/training.md``).

:func:`~napari_gifnet.training.loop.train` runs it (``napari-gifnet train``). The modules
are imported on demand, so ``napari-gifnet --help`` stays fast; :func:`published_ms_ssim`
is exported here (loaded on first use: importing this package imports no torch).
"""

from __future__ import annotations

import lazy_loader as _lazy

__getattr__, __dir__, _ = _lazy.attach(__name__, submod_attrs={"msssim": ["published_ms_ssim"]})

__all__ = ["published_ms_ssim"]
