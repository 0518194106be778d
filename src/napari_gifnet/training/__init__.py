"""Training and fine-tuning GIFNet with the published two-step scheme.

Modules (imported on demand, so ``napari-gifnet --help`` stays fast):

* :mod:`.forward`: the training passes of the multimodal and photographic steps;
* :mod:`.losses`: the information-weighted, common and supervised losses;
* :mod:`.msssim`: differentiable (MS-)SSIM;
* :mod:`.features`: the DenseNet-121 feature extractor and its weights search;
* :mod:`.dataset`: the "RGB joint dataset" built from a folder of aligned pairs;
* :mod:`.loop`: :func:`~napari_gifnet.training.loop.train` (the loop, resume);
* :mod:`.runfiles`: the run's files (output checks, checkpoints, resume state, logs);
* :mod:`.synthetic`: small synthetic training folders;
* :mod:`.cli`: the ``napari-gifnet train`` subcommand.

See ``docs/training.md``.
"""
