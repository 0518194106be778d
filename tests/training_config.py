"""A small, quick training configuration shared by the training tests."""

from __future__ import annotations

import warnings
from pathlib import Path

from napari_gifnet.training.loop import TrainConfig, TrainResult, train


def train_config(pairs: Path, out: Path, **kw: object) -> TrainConfig:
    """CPU, scratch init, batch 1, 32-pixel crops, seed 0, no hub, no plot; ``kw`` overrides."""
    base: dict[str, object] = {"init": "scratch", "batch_size": 1, "crop": 32, "seed": 0,
                               "device": "cpu", "progress": False, "densenet_hub": False,
                               "plot": False}  # fmt: skip
    base.update(kw)
    return TrainConfig(str(pairs), str(out), **base)  # type: ignore[arg-type]


def train_quietly(config: TrainConfig) -> TrainResult:
    """:func:`train` without the DenseNet fallback warning (no pretrained weights here)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return train(config)
