"""The network itself: checkpoint layout, intermediate tensors, batches.

Tiled and band-wise evaluation against the whole image is tested in
``tests/engine/test_tiles.py``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from napari_gifnet.model.network import GIFNet, parameter_count, relative_positions
from napari_gifnet.model.weights import load_model


@pytest.fixture(scope="module")
def model(reference_weights: Path) -> GIFNet:
    return load_model(reference_weights, device="cpu")[0]


def _tensor(x: np.ndarray) -> torch.Tensor:
    t = torch.from_numpy(np.asarray(x, dtype=np.float32))[None, None]
    return t.contiguous(memory_format=torch.channels_last)


def test_state_dict_layout_matches_the_published_checkpoint(reference_weights: Path) -> None:
    state = torch.load(reference_weights, map_location="cpu", weights_only=True)
    ours = GIFNet().state_dict()
    assert sorted(ours) == sorted(state)
    assert all(ours[k].shape == state[k].shape for k in ours)
    assert sum(v.numel() for v in state.values()) == 839_164


def test_parameter_counts() -> None:
    net = GIFNet()
    assert parameter_count(net) == 822_780
    # inference never touches the reconstruction decoder
    assert parameter_count(net) - parameter_count(net.decoder_rec) == 743_035


def test_relative_positions_buffer_is_what_the_checkpoint_stores(reference_weights: Path) -> None:
    state = torch.load(reference_weights, map_location="cpu", weights_only=True)
    key = "extractor_multask.SwinTransformerSpecific.layer1.blocks.{}.attn.attn.relative_positions"
    for block in (0, 1):
        torch.testing.assert_close(relative_positions(), state[key.format(block)], rtol=0, atol=1e-6)


@pytest.fixture(scope="module")
def activations(reference_dir: Path) -> dict[str, np.ndarray]:
    with np.load(reference_dir / "official" / "activations_small.npz") as data:
        return dict(data)


def test_intermediate_tensors_match_the_published_model(
    model: GIFNet, activations: dict[str, np.ndarray]
) -> None:
    a = _tensor(activations["input_a_uint8"] / np.float32(255))
    b = _tensor(activations["input_b_uint8"] / np.float32(255))
    feats: dict[str, torch.Tensor] = {}
    with torch.inference_mode():
        fused = model(a, b, feats)
    h, w = activations["fused"].shape
    got = {k: v[0].numpy() for k, v in feats.items()}
    np.testing.assert_allclose(fused[0, 0].numpy(), activations["fused"], rtol=0, atol=1e-5)
    np.testing.assert_allclose(got["shared"], activations["shared_S"], rtol=0, atol=1e-5)
    # the maps the plugin shows are the real ones (tolerance relative to their scale)
    for ours, ref in (
        ("branch", activations["branch_T"]),
        ("multimodal", activations["block0_out_mm"][:, :h, :w]),
        ("photographic", activations["block1_out_dp"][:, :h, :w]),
    ):
        scale = float(np.abs(ref).max())
        np.testing.assert_allclose(got[ours], ref, rtol=0, atol=1e-5 * scale, err_msg=ours)


def test_batch_equals_single_images(model: GIFNet) -> None:
    gen = torch.Generator().manual_seed(3)
    a, b = torch.rand(2, 1, 21, 34, generator=gen), torch.rand(2, 1, 21, 34, generator=gen)
    with torch.inference_mode():
        both = model(a, b)
        singles = torch.cat([model(a[i : i + 1], b[i : i + 1]) for i in range(2)])
    torch.testing.assert_close(both, singles, rtol=0, atol=2e-6)
