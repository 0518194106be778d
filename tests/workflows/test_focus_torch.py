"""The torch focus score (the GPU path of fuse_stack's focus decision) equals the numpy one."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from napari_gifnet.workflows.focus import edge_focus, edge_focus_torch


@settings(max_examples=40, deadline=None)
@given(h=st.integers(2, 90), w=st.integers(2, 90), seed=st.integers(0, 10_000))
def test_edge_focus_torch_equals_edge_focus(h: int, w: int, seed: int) -> None:
    x = np.random.default_rng(seed).random((h, w)).astype(np.float32)
    expected = edge_focus(x)
    got = edge_focus_torch(x, "cpu")
    assert isinstance(got, torch.Tensor) and got.dtype == torch.float32
    assert tuple(got.shape) == (h, w)
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-5, atol=1e-6 * expected.max())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_edge_focus_on_cuda_equals_the_cpu() -> None:  # pragma: no cover - GPU machines
    x = np.random.default_rng(1).random((300, 257)).astype(np.float32)
    np.testing.assert_allclose(edge_focus_torch(x, "cuda").cpu().numpy(), edge_focus(x),
                               rtol=1e-4, atol=1e-6)  # fmt: skip


def test_fuse_stack_takes_the_torch_path_on_a_gpu_device(monkeypatch: pytest.MonkeyPatch) -> None:
    """With a CUDA device the focus score runs in torch (here the CPU stands in for it):
    the same result as the NumPy path, and the metadata says where it ran."""
    from napari_gifnet.workflows import focus_stack as module
    from napari_gifnet.workflows.focus_stack import fuse_stack

    rng = np.random.default_rng(3)
    stack = rng.random((3, 40, 48)).astype(np.float32)
    numpy_path = fuse_stack(stack, 0, "focus", device="cpu")
    assert numpy_path.metadata["focus_device"] == "cpu (numpy)"
    assert module._focus_device("cpu") is None
    if not torch.cuda.is_available():
        assert module._focus_device("auto") is None
    called = []
    real = module.edge_focus_torch

    def spy(luma, device):
        called.append(str(device))
        return real(luma, device)

    monkeypatch.setattr(module, "_focus_device", lambda device: torch.device("cpu"))
    monkeypatch.setattr(module, "edge_focus_torch", spy)
    torch_path = fuse_stack(stack, 0, "focus", device="cuda")
    assert called == ["cpu"] * 3 and torch_path.metadata["focus_device"] == "cpu"
    np.testing.assert_array_equal(torch_path.depth_map, numpy_path.depth_map)
    np.testing.assert_allclose(torch_path.image, numpy_path.image, atol=1e-6)
