"""The one method table: names, labels, the options each method takes, and the dispatch."""

from __future__ import annotations

import numpy as np
import pytest

from napari_gifnet.engine import fusion as engine
from napari_gifnet.engine.options import OPTION_NAMES, FusionOptions
from napari_gifnet.methods.classical import BASELINES, fuse_laplacian
from napari_gifnet.methods.registry import METHODS, method_names, task_method_names
from napari_gifnet.workflows.focus_stack import fuse_stack
from napari_gifnet.workflows.tasks import fuse_method


def _pair() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(3)
    return rng.random((24, 24)).astype(np.float32), rng.random((24, 24)).astype(np.float32)


def test_the_table_holds_every_method_once_with_the_options_it_takes() -> None:
    assert list(METHODS) == ["gifnet", "focus", "focus_pyramid", *BASELINES]
    assert task_method_names() == tuple(METHODS)
    assert method_names() == ("gifnet", *BASELINES)  # the pairwise rules
    assert METHODS["gifnet"].options == OPTION_NAMES
    for key, method in METHODS.items():
        assert method.key == key and method.label
        if key != "gifnet":
            assert method.options == ("normalization",)
            assert not method.takes("device") and not method.takes("return_features")


def test_fuse_method_drops_what_a_method_does_not_take(monkeypatch) -> None:
    a, b = _pair()
    network = FusionOptions(weights="missing.pth", device="cuda:7", storage="disk",
                            tile_size=64, precision="float16", return_features=True)  # fmt: skip
    done = []
    got = fuse_method("Laplacian", a, b, network, lambda i, n: done.append((i, n)), levels=2)
    np.testing.assert_array_equal(got.image, fuse_laplacian(a, b, levels=2).image)
    assert done == [(1, 1)]
    calls = []
    monkeypatch.setattr(engine, "fuse_options", lambda *args: calls.append(args) or "gifnet")
    assert fuse_method("gifnet", a, b, network) == "gifnet"
    assert calls == [(a, b, network, None)]  # GIFNet takes them all, as they are
    with pytest.raises(TypeError, match="'gifnet' takes no parameter"):
        fuse_method("gifnet", a, b, network, levels=2)
    with pytest.raises(ValueError, match="unknown fusion method 'median'"):
        fuse_method("median", a, b)


def test_a_stack_of_baseline_pairs_ignores_the_networks_options() -> None:
    """pair_options of the network are dropped for a baseline, as weights and device are."""
    a, b = _pair()
    stack = np.stack([a, b, a])
    plain = fuse_stack(stack, method="laplacian", align=False, strategy="sequential")
    given = fuse_stack(stack, method="laplacian", align=False, strategy="sequential",
                       device="cuda:7", pair_options={"tile_size": 64, "precision": "float16"})  # fmt: skip
    np.testing.assert_array_equal(given.image, plain.image)
    with pytest.raises(ValueError, match="unknown storage 'tape'"):
        fuse_stack(stack, method="laplacian", align=False, pair_options={"storage": "tape"})
