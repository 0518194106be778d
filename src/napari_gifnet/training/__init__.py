"""Training and fine-tuning GIFNet with the published two-step scheme.

Modules (imported on demand, so ``napari-gifnet --help`` stays fast):

* :mod:`.forward`: the training passes of the multimodal and photographic steps;
* :mod:`.losses`: the information-weighted, common and supervised losses;
* :mod:`.msssim`: differentiable (MS-)SSIM, the published training code's
  variant (:func:`published_ms_ssim`, the default of the common loss) and the
  standard one;
* :mod:`.features`: the DenseNet-121 feature extractor and its weights search;
* :mod:`.dataset`: the "RGB joint dataset" built from a folder of aligned pairs;
* :mod:`.loop`: :func:`~napari_gifnet.training.loop.train` (the loop, resume);
* :mod:`.runfiles`: the run's files (output checks, checkpoints, resume state, logs);
* :mod:`.synthetic`: small synthetic training folders.

The command is :mod:`napari_gifnet.cli.train` (``napari-gifnet train``).

Exported here (loaded on first use, so importing this package imports no
torch): :func:`published_ms_ssim`.

See ``docs/training.md``.
"""

from __future__ import annotations

import lazy_loader as _lazy

__getattr__, __dir__, _ = _lazy.attach(__name__, submod_attrs={"msssim": ["published_ms_ssim"]})

__all__ = ["published_ms_ssim"]
