"""The options of one fusion: checked once, at the public entry, into one object."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import napari_gifnet
from napari_gifnet.engine import fusion as engine
from napari_gifnet.engine.options import OPTION_NAMES, FusionOptions


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"storage": "tape"}, "unknown storage 'tape': use one of auto, memory, disk, recompute"),
        ({"tile_size": 4}, "tile_size"),
        ({"precision": "int8"}, "unknown precision 'int8': use one of float32"),
        ({"normalization": "loud"}, "unknown normalization 'loud'"),
        ({"normalization": (1.0, 0.0)}, "invalid normalization range"),
    ],
)
def test_a_bad_option_is_refused_with_the_engines_message(changes, message) -> None:
    with pytest.raises(ValueError, match=message) as built:
        FusionOptions(**changes)
    with pytest.raises(ValueError) as fused:
        napari_gifnet.fuse(np.zeros((8, 8)), np.zeros((8, 8)), **changes)
    assert str(fused.value) == str(built.value)
    with pytest.raises(ValueError, match=message):
        FusionOptions().but(**changes)  # a changed copy is checked too


def test_the_options_are_frozen_and_named_like_fuses_keywords() -> None:
    import inspect

    options = FusionOptions(device="cpu", tile_size=64)
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.device = "cuda"  # type: ignore[misc]
    keywords = set(inspect.signature(napari_gifnet.fuse).parameters) - {"a", "b", "task", "method"}
    assert set(OPTION_NAMES) == keywords - {"progress"}


def test_fuse_checks_once_and_hands_the_same_object_down(monkeypatch) -> None:
    """One check per call; the eager path gets the very object fuse built."""
    built, seen = [], []
    check = FusionOptions.__post_init__

    def counting(self) -> None:
        built.append(self)
        check(self)

    def recorder(a, b, options, *, progress=None, start=None, prepared=None):
        seen.append(options)
        return "result"

    monkeypatch.setattr(FusionOptions, "__post_init__", counting)
    monkeypatch.setattr(engine, "fuse_arrays", recorder)
    out = engine.fuse(np.zeros((8, 8)), np.ones((8, 8)), device="cpu", storage="memory",
                      tile_size=16, precision="tf32")  # fmt: skip
    assert out == "result" and len(built) == 1 and seen[0] is built[0]
    assert seen[0] == FusionOptions(device="cpu", storage="memory", tile_size=16, precision="tf32")
