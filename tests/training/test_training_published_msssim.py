"""The published training code's MS-SSIM against an independent NumPy (float64) computation.

The reference below is written from the definition (docs/training.md, "The
losses"): five levels, 2 x 2 average pooling (sizes rounded down) between
them, at each level a square Gaussian window (sigma 1.5) of side min(11, H, W)
centred on tap side // 2, valid cross-correlation per channel, the data range
L from the first image of that level, (x + 1) / 2, and prod_{i<4} (cs_i ** w_i
* sim_4 ** w_4).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage as ndi
from scipy.signal import correlate2d

from napari_gifnet.training import published_ms_ssim
from napari_gifnet.training.msssim import published_window

pytestmark = pytest.mark.usefixtures("one_torch_thread")

WEIGHTS = [0.0448, 0.2856, 0.3001, 0.2363, 0.1333]


# --------------------------------------------------------------------------- reference
def _window(size: int) -> np.ndarray:
    taps = np.exp(-((np.arange(size) - size // 2) ** 2) / (2 * 1.5**2))
    taps /= taps.sum()
    return np.outer(taps, taps)


def _data_range(a: np.ndarray) -> float:
    return (255.0 if a.max() > 128 else 1.0) - (-1.0 if a.min() < -0.5 else 0.0)


def _level(x: np.ndarray, y: np.ndarray) -> tuple[float, float, float, int]:
    """(sim, cs, L, window side) of one level."""
    n, c, h, w = x.shape
    side = min(11, h, w)
    win = _window(side)

    def conv(a: np.ndarray) -> np.ndarray:
        return np.array([[correlate2d(a[i, j], win, mode="valid") for j in range(c)] for i in range(n)])

    big_l = _data_range(x)
    c1, c2 = (0.01 * big_l) ** 2, (0.03 * big_l) ** 2
    mu1, mu2 = conv(x), conv(y)
    s11, s22, s12 = conv(x * x) - mu1**2, conv(y * y) - mu2**2, conv(x * y) - mu1 * mu2
    cs_map = (2 * s12 + c2) / (s11 + s22 + c2)
    ssim_map = (2 * mu1 * mu2 + c1) * (2 * s12 + c2) / ((mu1**2 + mu2**2 + c1) * (s11 + s22 + c2))
    return float(ssim_map.mean()), float(cs_map.mean()), big_l, side


def _pool(a: np.ndarray) -> np.ndarray:
    n, c, h, w = a.shape
    h2, w2 = h // 2, w // 2
    return a[:, :, : 2 * h2, : 2 * w2].reshape(n, c, h2, 2, w2, 2).mean(axis=(3, 5))


def reference(x: np.ndarray, y: np.ndarray, normalize: bool = True) -> tuple[float, list, list]:
    """The value, and per level the data range and the window side."""
    sims, css, ranges, sides = [], [], [], []
    for level in range(5):
        if level:
            x, y = _pool(x), _pool(y)
        sim, cs, big_l, side = _level(x, y)
        sims.append(sim)
        css.append(cs)
        ranges.append(big_l)
        sides.append(side)
    if normalize:
        sims = [(v + 1) / 2 for v in sims]
        css = [(v + 1) / 2 for v in css]
    value = 1.0
    for i in range(4):
        value *= css[i] ** WEIGHTS[i] * sims[4] ** WEIGHTS[4]
    return value, ranges, sides


# --------------------------------------------------------------------------- images
def _pair(shape: tuple[int, ...], seed: int, lo: float = 0.0, hi: float = 1.0):
    """A smooth random image in [lo, hi] and a noisy, dimmed copy of it."""
    rng = np.random.default_rng(seed)
    x = ndi.gaussian_filter(rng.random(shape), (0, 0, 1.5, 1.5))
    x = (x - x.min()) / (x.max() - x.min())
    y = np.clip(0.8 * x + 0.1 + 0.05 * rng.normal(size=shape), 0, 1)
    return lo + (hi - lo) * x, lo + (hi - lo) * y


def _t(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a))


@pytest.mark.parametrize(
    ("shape", "sides"),
    [
        ((1, 1, 32, 32), [11, 11, 8, 4, 2]),  # the window shrinks at the coarse levels
        ((1, 1, 40, 72), [11, 11, 10, 5, 2]),  # not square
        ((3, 2, 48, 56), [11, 11, 11, 6, 3]),  # batch and channels
        ((2, 1, 128, 128), [11, 11, 11, 11, 8]),  # the training crop
        ((1, 1, 16, 16), [11, 8, 4, 2, 1]),  # the smallest: one pixel at the fifth level
    ],
)
def test_matches_the_reference_in_float64(shape: tuple[int, ...], sides: list[int]) -> None:
    x, y = _pair(shape, seed=sum(shape))
    expected, ranges, got_sides = reference(x, y)
    assert got_sides == sides and ranges == [1.0] * 5
    got = published_ms_ssim(_t(x), _t(y))
    assert got.dim() == 0 and got.dtype == torch.float64
    assert float(got) == pytest.approx(expected, abs=1e-6)
    assert float(got) == pytest.approx(expected, abs=1e-12)  # in fact to rounding
    assert 0.5 < expected < 1.0


def test_tanh_range_first_image_gets_data_range_2() -> None:
    # A reconstruction in [-1, 1] (a tanh output) with a dark left half, the
    # reference in [0, 1]: L = 1 - (-1) = 2 at every level.
    x, y = _pair((2, 1, 32, 32), seed=3)
    x = np.tanh(3 * (x - 0.5))
    x[..., :16] = x[..., :16] * 0.05 - 0.95
    expected, ranges, _ = reference(x, y)
    assert ranges == [2.0] * 5 and x.min() >= -1 and x.max() <= 1
    assert float(published_ms_ssim(_t(x), _t(y))) == pytest.approx(expected, abs=1e-6)
    # Swapping the images changes L (now from the [0, 1] image) and the value.
    swapped, ranges, _ = reference(y, x)
    assert ranges == [1.0] * 5 and abs(swapped - expected) > 1e-3
    assert float(published_ms_ssim(_t(y), _t(x))) == pytest.approx(swapped, abs=1e-6)


def test_data_range_is_decided_at_each_level() -> None:
    # A [0, 1] image with a few isolated dark pixels: below -0.5 at full
    # resolution, no longer once pooling has averaged them away.
    x, y = _pair((1, 1, 64, 48), seed=4)
    x = x.copy()
    x[0, 0, 10, 10] = x[0, 0, 30, 21] = -0.9
    expected, ranges, _ = reference(x, y)
    assert ranges[0] == 2.0 and ranges[-1] == 1.0
    assert float(published_ms_ssim(_t(x), _t(y))) == pytest.approx(expected, abs=1e-6)


def test_0_255_first_image_gets_data_range_255() -> None:
    x, y = _pair((1, 3, 64, 64), seed=5, hi=255.0)
    expected, ranges, _ = reference(x, y)
    assert ranges == [255.0] * 5
    assert float(published_ms_ssim(_t(x), _t(y))) == pytest.approx(expected, abs=1e-6)
    # The same images on [0, 1] give the same value (all constants scale with L).
    assert float(published_ms_ssim(_t(x / 255), _t(y / 255))) == pytest.approx(expected, abs=1e-9)


def test_without_normalize() -> None:
    x, y = _pair((1, 1, 48, 48), seed=6)
    expected, _, _ = reference(x, y, normalize=False)
    got = published_ms_ssim(_t(x), _t(y), normalize=False)
    assert float(got) == pytest.approx(expected, abs=1e-6)
    assert float(got) < float(published_ms_ssim(_t(x), _t(y)))


def test_last_sim_enters_four_times_and_last_cs_not_at_all() -> None:
    # Identical images: every sim and cs is 1, the value is 1.
    x, y = _pair((1, 1, 32, 32), seed=7)
    assert float(published_ms_ssim(_t(x), _t(x))) == pytest.approx(1.0, abs=1e-12)
    # The structure of the product, from the per-level terms.
    from napari_gifnet.training.msssim import published_ssim_terms

    a, b = _t(x), _t(y)
    sims, css = [], []
    for level in range(5):
        if level:
            a, b = torch.nn.functional.avg_pool2d(a, 2), torch.nn.functional.avg_pool2d(b, 2)
        sim, cs = published_ssim_terms(a, b)
        sims.append((float(sim) + 1) / 2)
        css.append((float(cs) + 1) / 2)
    product = np.prod([css[i] ** WEIGHTS[i] for i in range(4)]) * sims[4] ** (4 * WEIGHTS[4])
    assert float(published_ms_ssim(_t(x), _t(y))) == pytest.approx(product, abs=1e-12)


def test_window_is_centred_on_tap_side_over_2() -> None:
    for side in (1, 2, 4, 8, 11):
        win = published_window(side).numpy()
        assert win.shape == (side, side) and win.sum() == pytest.approx(1.0, abs=1e-15)
        assert np.unravel_index(win.argmax(), win.shape) == (side // 2, side // 2)
        np.testing.assert_allclose(win, _window(side), atol=1e-16)
    two = published_window(2).numpy()[0]  # taps at -1 and 0: not symmetric
    assert two[1] > two[0]


def test_float32_and_gradients() -> None:
    x, y = _pair((2, 1, 40, 40), seed=8, lo=-1.0, hi=1.0)
    expected, _, _ = reference(x, y)
    a = _t(x).float().requires_grad_(True)
    value = published_ms_ssim(a, _t(y).float())
    assert value.dtype == torch.float32 and float(value.detach()) == pytest.approx(expected, abs=1e-5)
    (1 - value).backward()
    assert a.grad is not None and torch.isfinite(a.grad).all() and float(a.grad.abs().max()) > 0
    # Exact gradients in float64, with respect to both images.
    xs, ys = _pair((1, 2, 16, 18), seed=9)
    xs, ys = 0.1 + 0.8 * xs, 0.1 + 0.8 * ys  # away from the data-range thresholds
    args = (_t(xs).requires_grad_(True), _t(ys).requires_grad_(True))
    assert torch.autograd.gradcheck(published_ms_ssim, args, eps=1e-6, atol=1e-6)


def test_bad_inputs_are_refused() -> None:
    x = torch.rand(1, 1, 32, 32)
    with pytest.raises(ValueError, match="one shape"):
        published_ms_ssim(x, x[..., :31])
    with pytest.raises(ValueError, match="one shape"):
        published_ms_ssim(x[0], x[0])
    with pytest.raises(ValueError, match="at least 16 x 16"):
        published_ms_ssim(x[..., :15, :], x[..., :15, :])
    with pytest.raises(ValueError, match="floating-point"):
        published_ms_ssim((x * 255).to(torch.uint8), (x * 255).to(torch.uint8))
