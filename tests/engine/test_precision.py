"""fuse(precision=...): exact float32 by default, reduced modes only on request."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from napari_gifnet import fuse
from napari_gifnet.engine.precision import DOCUMENTED_ERROR, PRECISIONS, precision_mode
from napari_gifnet.engine.tiled import plan as tile_plan

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def pair(reference_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    d = np.load(reference_dir / "official" / "Medical.npz")
    return d["input_a"][:64, :64].copy(), d["input_b"][:64, :64].copy()


def test_float32_is_the_default_and_recorded(pair, reference_weights) -> None:
    default = fuse(*pair, weights=reference_weights, device="cpu")
    explicit = fuse(*pair, weights=reference_weights, device="cpu", precision="float32")
    assert default.metadata["precision"] == "float32"
    assert np.array_equal(default.luma, explicit.luma)


@pytest.mark.parametrize("precision", ["bfloat16", "float16"])
def test_reduced_precision_is_close_but_not_float32(pair, reference_weights, precision) -> None:
    exact = fuse(*pair, weights=reference_weights, device="cpu").luma
    reduced = fuse(*pair, weights=reference_weights, device="cpu", precision=precision)
    assert reduced.metadata["precision"] == precision and reduced.luma.dtype == np.float32
    diff = np.abs(reduced.luma - exact).max()
    assert 0 < diff < 0.05


def test_tf32_leaves_cpu_arithmetic_exact_and_flags_are_restored(pair, reference_weights) -> None:
    before = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    exact = fuse(*pair, weights=reference_weights, device="cpu").luma
    tf32 = fuse(*pair, weights=reference_weights, device="cpu", precision="tf32").luma
    assert np.array_equal(exact, tf32)  # the CPU has no TF32
    assert (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32) == before
    with pytest.raises(RuntimeError):
        with precision_mode("tf32", torch.device("cpu")):
            assert torch.backends.cuda.matmul.allow_tf32
            raise RuntimeError("inside")
    assert (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32) == before


def test_unknown_precision_and_lazy_inputs_are_refused(pair) -> None:
    da = pytest.importorskip("dask.array")
    assert PRECISIONS[0] == "float32"
    with pytest.raises(ValueError, match="unknown precision 'half'"):
        fuse(*pair, precision="half")
    lazy = da.from_array(pair[0])
    with pytest.raises(ValueError, match="precision is float32 for Dask inputs"):
        fuse(lazy, lazy, precision="bfloat16")


@pytest.mark.parametrize("precision", ["float32", "float16", "bfloat16"])
def test_every_storage_gives_memory_storage_values_in_every_precision(
    pair, reference_weights, precision: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Disk, recompute and an automatic switch to disk agree with memory storage
    (small tiles, so maps are written and read back piece by piece)."""
    monkeypatch.setenv("NAPARI_GIFNET_SCRATCH", str(tmp_path))
    a, b = pair[0][:40, :48], pair[1][:40, :48]

    def run(storage: str) -> np.ndarray:
        result = fuse(a, b, weights=reference_weights, device="cpu", storage=storage,
                      tile_size=16, precision=precision)  # fmt: skip
        assert result.metadata["precision"] == precision
        assert result.metadata["storage"] == ("disk" if storage == "auto" else storage)
        return result.luma

    memory = run("memory")
    exact = fuse(a, b, weights=reference_weights, device="cpu", storage="memory").luma
    assert np.abs(memory - exact).max() <= DOCUMENTED_ERROR[precision]
    lumas = {storage: run(storage) for storage in ("disk", "recompute")}
    # too little memory for the maps: "auto" moves them to disk
    monkeypatch.setattr(tile_plan, "_available_memory", lambda device: 1 << 20)
    lumas["auto"] = run("auto")
    for storage, luma in lumas.items():
        assert np.isfinite(luma).all(), storage
        diff = np.abs(luma - memory).max()
        assert diff <= DOCUMENTED_ERROR[precision], f"{storage}: {diff}"
    assert not list(tmp_path.iterdir())
