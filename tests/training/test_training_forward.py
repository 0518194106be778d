"""Training passes of both steps: parity with inference, swapped roles, gradient flow."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from napari_gifnet.model.network import GIFNet
from napari_gifnet.model.weights import load_checkpoint
from napari_gifnet.training.forward import multimodal_step, photographic_step
from napari_gifnet.training.losses import multimodal_loss, photographic_loss

_STREAM_PARTS = ("norm1", "mlp", "attn.QK", "attn.V", "attn.conv", "attn.proj")


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def published(reference_weights: Path) -> GIFNet:
    model = GIFNet()
    model.load_state_dict(load_checkpoint(reference_weights))
    return model.eval()


def _random_model(seed: int = 3) -> GIFNet:
    """Random weights, with non-zero gates and RLN parameters away from 1/0."""
    torch.manual_seed(seed)
    model = GIFNet()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "layer1.weights" in name or "norm1" in name and name.endswith(("weight", "bias")):
                p.copy_(torch.randn_like(p) * 0.3 + 0.5)
    return model


def _images(n: int = 2, h: int = 21, w: int = 19, seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.rand(n, 1, h, w, generator=g) for _ in range(4)]


def _swap_roles(model: GIFNet) -> GIFNet:
    """A copy whose multimodal and photographic stream weights are exchanged."""
    state = model.state_dict()
    pairs = [("patch_embed_ivif.", "patch_embed_mfif."), ("layer1.weights.", "layer1.weights_mfif.")]
    pairs += [(f"blocks.{b}.{p}.", f"blocks.{b}.{p}_mfif.") for b in (0, 1) for p in _STREAM_PARTS]
    swapped = dict(state)
    for mm, dp in pairs:
        for key in state:
            if mm in key:
                other = key.replace(mm, dp)
                swapped[key], swapped[other] = state[other], state[key]
    out = GIFNet()
    out.load_state_dict(swapped)
    return out.eval()


def test_photographic_step_is_the_inference_path(published: GIFNet) -> None:
    ir, vis, near, far = _images()
    with torch.no_grad():
        expected = published(near, far)
        # With (ir, vis) = (near, far) the MM stream sees what it sees at inference.
        out = photographic_step(published, near, far, near, far)
        other = photographic_step(published, ir, vis, near, far)
    assert out.fused.shape == (2, 1, 21, 19)
    assert torch.allclose(out.fused, expected, atol=2e-5)
    # ... and with a different modality pair the output changes (the gate is open).
    assert (other.fused - expected).abs().max() > 1e-4


def test_multimodal_step_is_the_role_swapped_inference_path(published: GIFNet) -> None:
    ir, vis, _, _ = _images(seed=1)
    swapped = _swap_roles(published)
    with torch.no_grad():
        expected = swapped(ir, vis)
        plain = multimodal_step(published, ir, vis, ir, vis, published_quirk=False)
        quirk = multimodal_step(published, ir, vis, ir, vis)
    assert torch.allclose(plain.fused, expected, atol=2e-5)
    # The published quirk (DP depthwise conv on the MM stream's V) changes the output.
    assert (quirk.fused - expected).abs().max() > 1e-5


def test_reconstruction_uses_the_features_with_gradients(published: GIFNet) -> None:
    ir, vis, near, far = _images(seed=2)
    with torch.no_grad():
        s1 = multimodal_step(published, ir, vis, near, far)
        s2 = photographic_step(published, ir, vis, near, far)
        rec_mm = published.decoder_rec(published.getSharedFeatures(ir, vis))
        rec_dp = published.decoder_rec(published.getSharedFeatures(near, far))
    assert torch.allclose(s1.rec, rec_mm, atol=1e-6)
    assert torch.allclose(s2.rec, rec_dp, atol=1e-6)
    assert float(s1.rec.min()) >= -1 and float(s1.rec.max()) <= 1


def _trained_in_multimodal_step(name: str) -> bool:
    """Which parameters the spec's step 1 trains."""
    if not name.startswith("extractor_multask."):
        return True  # encoder, REC decoder, mixed decoder
    name = name.removeprefix("extractor_multask.SwinTransformerSpecific.")
    if name.startswith(("patch_embed_", "patch_unembed")):
        return True
    if name.startswith("layer1.weights"):
        return name == "layer1.weights.0"
    block, rest = re.match(r"layer1\.blocks\.(\d)\.(.*)", name).groups()  # type: ignore[union-attr]
    if rest.startswith("attn.attn.meta"):
        return True  # the shared position bias (MM attention)
    if "_mfif" not in rest:
        return True  # the MM stream, both blocks
    # The DP stream feeds the gate after block 0 only; its attention has no gradients.
    return block == "0" and rest.startswith(("norm1_mfif.meta", "mlp_mfif."))


def _trained_in_photographic_step(name: str) -> bool:
    """Which parameters the spec's step 2 trains."""
    if not name.startswith("extractor_multask."):
        return True
    name = name.removeprefix("extractor_multask.SwinTransformerSpecific.")
    if name.startswith(("patch_embed_", "patch_unembed")):
        return True
    if name.startswith("layer1.weights"):
        return name == "layer1.weights_mfif.0"
    block, rest = re.match(r"layer1\.blocks\.(\d)\.(.*)", name).groups()  # type: ignore[union-attr]
    if rest.startswith("attn.attn.meta") or "_mfif" in rest:
        return True
    return block == "0" and rest.startswith(("norm1.meta", "mlp."))


def _with_gradient(model: GIFNet) -> set[str]:
    return {n for n, p in model.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}


@pytest.mark.parametrize("step", ["multimodal", "photographic"])
def test_gradients_reach_exactly_the_trained_parameters(step: str) -> None:
    model = _random_model()
    ir, vis, near, far = _images(n=2, h=16, w=16, seed=4)
    if step == "multimodal":
        out = multimodal_step(model, ir, vis, near, far)
        multimodal_loss(out, ir, vis, torch.tensor(0.4), torch.tensor(0.6)).total.backward()
        expected = {n for n, _ in model.named_parameters() if _trained_in_multimodal_step(n)}
    else:
        out = photographic_step(model, ir, vis, near, far)
        photographic_loss(out, vis).total.backward()
        expected = {n for n, _ in model.named_parameters() if _trained_in_photographic_step(n)}
    got = _with_gradient(model)
    assert got == expected, (sorted(got - expected), sorted(expected - got))
    # Parameters outside the scheme get no gradient at all (not even zeros).
    assert all(p.grad is None for n, p in model.named_parameters() if n not in expected)
    # Sanity: both sides are sizeable, and the two steps train different sets.
    assert 40 < len(expected) < len(list(model.parameters()))


def test_the_two_steps_differ_only_in_the_branch() -> None:
    names = [n for n, _ in GIFNet().named_parameters()]
    one = {n for n in names if _trained_in_multimodal_step(n)}
    two = {n for n in names if _trained_in_photographic_step(n)}
    assert {n for n in one ^ two if not n.startswith("extractor_multask")} == set()
    assert "extractor_multask.SwinTransformerSpecific.layer1.blocks.0.attn.QK_mfif.weight" in two - one
    assert "extractor_multask.SwinTransformerSpecific.layer1.blocks.0.attn.QK.weight" in one - two
