"""MS-SSIM, the DenseNet-121 information weights and the step losses."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import ndimage as ndi

from napari_gifnet.training import features as feat
from napari_gifnet.training.forward import StepOutput
from napari_gifnet.training.losses import (
    common_loss,
    information_weights,
    multimodal_loss,
    photographic_loss,
)
from napari_gifnet.training.msssim import MS_SSIM_WEIGHTS, ms_ssim, ms_ssim_plan

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _pair(size: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = ndi.gaussian_filter(rng.random((size, size)), 2.0)
    x = (x - x.min()) / (x.max() - x.min())
    y = np.clip(0.8 * x + 0.1 + 0.05 * rng.normal(size=x.shape), 0, 1)
    return x, y


def _t(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(a)[None, None]


def _numpy_terms(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Independent SSIM / contrast-structure means (scipy filters, float64)."""
    taps = np.exp(-((np.arange(11) - 5.0) ** 2) / (2 * 1.5**2))
    taps /= taps.sum()

    def filt(a: np.ndarray) -> np.ndarray:
        out = ndi.correlate1d(ndi.correlate1d(a, taps, axis=0), taps, axis=1)
        return out[5:-5, 5:-5]

    mx, my = filt(x), filt(y)
    vx, vy, cxy = filt(x * x) - mx**2, filt(y * y) - my**2, filt(x * y) - mx * my
    c1, c2 = 0.01**2, 0.03**2
    cs = (2 * cxy + c2) / (vx + vy + c2)
    return float(np.mean((2 * mx * my + c1) / (mx**2 + my**2 + c1) * cs)), float(np.mean(cs))


def _numpy_ms_ssim(x: np.ndarray, y: np.ndarray, scales: int) -> float:
    w = np.array(MS_SSIM_WEIGHTS[:scales])
    w /= w.sum()
    value = 1.0
    for j in range(scales):
        s, cs = _numpy_terms(x, y)
        value *= (s if j == scales - 1 else cs) ** w[j]
        h, wd = x.shape[0] // 2 * 2, x.shape[1] // 2 * 2
        x = x[:h, :wd].reshape(h // 2, 2, wd // 2, 2).mean((1, 3))
        y = y[:h, :wd].reshape(h // 2, 2, wd // 2, 2).mean((1, 3))
    return value


def test_single_scale_matches_scikit_image() -> None:
    from skimage.metrics import structural_similarity

    x, y = _pair(48)
    expected = structural_similarity(x, y, data_range=1.0, gaussian_weights=True, sigma=1.5,
                                     use_sample_covariance=False)  # fmt: skip
    got = float(ms_ssim(_t(x), _t(y), scales=1))
    assert got == pytest.approx(expected, abs=1e-10)
    assert 0.3 < got < 0.99


@pytest.mark.parametrize(("size", "scales"), [(192, 5), (64, 3), (130, 4)])
def test_multi_scale_matches_an_independent_implementation(size: int, scales: int) -> None:
    x, y = _pair(size, seed=size)
    assert ms_ssim_plan(size, size)[0] == scales
    got = float(ms_ssim(_t(x), _t(y)))
    assert got == pytest.approx(_numpy_ms_ssim(x, y, scales), abs=1e-9)


def test_ms_ssim_properties() -> None:
    x, y = _pair(64, seed=5)
    tx, ty = _t(x).float(), _t(y).float()
    assert float(ms_ssim(tx, tx)) == pytest.approx(1.0, abs=1e-6)
    assert float(ms_ssim(tx, ty)) == pytest.approx(float(ms_ssim(ty, tx)), abs=1e-7)
    batch = ms_ssim(torch.cat([tx, ty]), torch.cat([ty, ty]), reduction="none")
    assert batch.shape == (2,) and float(batch[1]) == pytest.approx(1.0, abs=1e-6)
    # Small images: fewer scales, then a smaller window.
    assert ms_ssim_plan(64, 100) == (3, 11) and ms_ssim_plan(9, 9) == (1, 9)
    assert float(ms_ssim(tx[..., :8, :8], tx[..., :8, :8])) == pytest.approx(1.0, abs=1e-6)
    with pytest.raises(ValueError, match="scales do not fit"):
        ms_ssim(tx, ty, scales=5)
    with pytest.raises(ValueError, match="one shape"):
        ms_ssim(tx, ty[..., :32])


def test_ms_ssim_gradient_is_finite_even_for_anticorrelated_images() -> None:
    x, _ = _pair(64, seed=6)
    a = _t(x).float().requires_grad_(True)
    (1 - ms_ssim(a, 1 - _t(x).float())).backward()
    assert torch.isfinite(a.grad).all()


def test_common_loss_is_zero_for_a_perfect_reconstruction() -> None:
    x = _t(_pair(32)[0]).float()
    loss, parts = common_loss(x, x)
    assert float(loss) == pytest.approx(0.0, abs=1e-6) and parts["ms_ssim"] == pytest.approx(1.0)
    noisy = (x + 0.1 * torch.randn_like(x)).clamp(0, 1)
    loss, parts = common_loss(noisy, x)
    assert float(loss) == pytest.approx(1 - parts["ms_ssim"] + parts["rec_mse"], rel=1e-6)


def test_step_losses_combine_their_terms() -> None:
    g = torch.Generator().manual_seed(0)
    ir, vis, fused, rec = (torch.rand(2, 1, 32, 32, generator=g) for _ in range(4))
    out = StepOutput(fused, rec)
    common, _ = common_loss(rec, vis)
    mse = torch.nn.functional.mse_loss
    one = multimodal_loss(out, ir, vis, torch.tensor(0.3), torch.tensor(0.7))
    assert float(one.total) == pytest.approx(float(0.3 * mse(fused, ir) + 0.7 * mse(fused, vis) + common))
    two = photographic_loss(out, vis)
    assert float(two.total) == pytest.approx(float(mse(fused, vis) + common))


# --------------------------------------------------------------------------- DenseNet
@pytest.fixture(scope="module")
def fallback() -> feat.DenseNetFeatures:
    return feat.fallback_densenet()


def test_feature_taps_are_those_of_the_published_scheme(fallback: feat.DenseNetFeatures) -> None:
    x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    maps = fallback(x)
    # stem + pool (1/4), three dense block + transition pairs (1/8 .. 1/32), block 4 (1/32)
    assert [tuple(m.shape[1:]) for m in maps] == [
        (64, 16, 16), (128, 8, 8), (256, 4, 4), (512, 2, 2), (1024, 2, 2)
    ]
    # The same maps by running the module sequence by hand, up to each tap.
    body = fallback.body
    y, by_hand = x, []
    with torch.no_grad():
        for name, module in body.items():
            y = module(y)
            if name in feat.TAPS:
                by_hand.append(y)
    assert all(torch.equal(a, b) for a, b in zip(maps, by_hand))


def test_high_pass_filter() -> None:
    const = torch.full((1, 5, 6, 6), 0.7)
    assert float(feat._high_pass(const).abs().max()) < 1e-6
    x = torch.zeros(1, 2, 5, 5)
    x[0, :, 2, 2] = 1.0  # an impulse in both channels: -1 at the centre, 1/8 around, summed
    out = feat._high_pass(x)[0, 0]
    assert float(out[2, 2]) == pytest.approx(-2.0) and float(out[1, 1]) == pytest.approx(0.25)


def test_information_weights_favour_the_richer_image(fallback: feat.DenseNetFeatures) -> None:
    g = torch.Generator().manual_seed(2)
    flat = torch.full((2, 1, 64, 64), 0.5) + 0.01 * torch.rand(2, 1, 64, 64, generator=g)
    busy = torch.rand(2, 1, 64, 64, generator=g)
    w_ir, w_vis, terms = information_weights(fallback, busy, flat)
    assert float(w_ir + w_vis) == pytest.approx(1.0)
    assert terms["g_ir"] > terms["g_vis"] and float(w_ir) > 0.5
    assert float(w_ir) == pytest.approx(np.exp(terms["g_ir"]) / (np.exp(terms["g_ir"]) + np.exp(terms["g_vis"])))


def test_fallback_is_labelled_fixed_and_warned(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(feat.DENSENET_ENV, raising=False)
    with pytest.warns(UserWarning, match="randomly initialised DenseNet-121"):
        a = feat.resolve_densenet(hub=False)
    b = feat.fallback_densenet()
    assert a.info.source == "fallback-random" and not a.info.pretrained
    assert a.info.as_dict()["pretrained"] is False
    sa, sb = a.state_dict(), b.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    # The fallback does not disturb the global random stream.
    torch.manual_seed(5)
    before = torch.rand(3)
    torch.manual_seed(5)
    feat.fallback_densenet()
    assert torch.equal(torch.rand(3), before)


def test_local_weights_file_and_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import timm

    torch.manual_seed(11)
    body = timm.create_model("densenet121", features_only=True, pretrained=False)
    path = tmp_path / "densenet_features.pth"
    torch.save(body.state_dict(), path)
    got = feat.resolve_densenet(path, hub=False)
    assert got.info.source == "file" and got.info.pretrained and len(got.info.sha256) == 64
    ref = body.state_dict()
    assert all(torch.equal(v, ref[k]) for k, v in got.body.state_dict().items())
    # A whole-model torchvision-style checkpoint (classifier included) works too.
    full = timm.create_model("densenet121", pretrained=False)
    full_path = tmp_path / "densenet121_full.pth"
    torch.save(full.state_dict(), full_path)
    monkeypatch.setenv(feat.DENSENET_ENV, str(full_path))
    env = feat.resolve_densenet(hub=False)
    assert env.info.source == "environment"
    assert torch.equal(env.body.state_dict()["features_conv0.weight"], full.state_dict()["features.conv0.weight"])


def test_bad_weights_files_are_named(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="not found"):
        feat.resolve_densenet(tmp_path / "missing.pth")
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="not a readable"):
        feat.resolve_densenet(junk)
    other = tmp_path / "other.pth"
    torch.save({"conv.weight": torch.zeros(3)}, other)
    with pytest.raises(ValueError, match="not a DenseNet-121 state_dict: missing key"):
        feat.resolve_densenet(other)
