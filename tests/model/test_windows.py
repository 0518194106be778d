"""The region helpers: fast moments equal to a float64 reference, reflected reads, convolutions."""

from __future__ import annotations

import pytest
import torch

from napari_gifnet.model import windows
from napari_gifnet.model.windows import RunningMoments, moments


def _maps() -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(3)
    base = torch.randn(2, 98, 70, 90, generator=gen)
    return {
        "nchw": base * 3 + 1.5,
        "channels-last": (base * 0.01 + 5.0).contiguous(memory_format=torch.channels_last),
        "view": (base * 100 - 3)[:, :, 5:61, 7:80],
        "offset much larger than spread": base * 1e-3 + 1e3,
    }


@pytest.mark.parametrize("name", list(_maps()))
def test_moments_equal_a_float64_computation(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(windows, "_MOMENT_CHUNK", 5000)  # many chunks, a ragged last one
    x = _maps()[name]
    var64, mean64 = torch.var_mean(x.double(), dim=(1, 2, 3), correction=0)
    n, mean, m2 = moments(x)
    assert n == x[0].numel()
    assert mean.dtype == m2.dtype == torch.float64 and mean.shape == (2,)
    torch.testing.assert_close(mean, mean64, rtol=1e-7, atol=0)
    torch.testing.assert_close(m2 / n, var64, rtol=1e-6, atol=0)


def test_moments_of_half_precision_maps_do_not_overflow() -> None:
    x = torch.full((1, 98, 64, 64), 60.0, dtype=torch.float16)
    x[:, :, ::2] = 62.0
    n, mean, m2 = moments(x)
    assert mean.item() == pytest.approx(61.0) and (m2 / n).item() == pytest.approx(1.0)


def test_running_moments_of_pieces_equal_the_whole() -> None:
    x = _maps()["nchw"]
    running = RunningMoments()
    for rows in ((0, 13), (13, 40), (40, 70)):
        running.add(x[:, :, rows[0] : rows[1]])
    mean, std = running.statistics()
    var64, mean64 = torch.var_mean(x.double(), dim=(1, 2, 3), correction=0)
    torch.testing.assert_close(mean.flatten().double(), mean64, rtol=1e-6, atol=0)
    torch.testing.assert_close(std.flatten().double(), (var64 + 1e-5).sqrt(), rtol=1e-6, atol=0)


def test_the_rln_statistics_stay_differentiable() -> None:
    from napari_gifnet.model.network import RLN

    x = _maps()["nchw"].requires_grad_()
    mu, sigma = RLN().statistics(x)
    (mu.sum() + sigma.sum()).backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    with torch.no_grad():
        fast = RLN().statistics(x)
    torch.testing.assert_close(fast[0], mu.detach(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(fast[1], sigma.detach(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "rows, cols",
    [
        ((0, 16), (8, 32)),  # consecutive: the view path
        ((-4, 12), (0, 24)),  # reflected rows
        ((0, 16), (20, 44)),  # reflected columns (past the right edge)
    ],
)
@pytest.mark.parametrize("channels_last", [False, True])
def test_gather_tokens_partitions_windows_in_row_major_order(rows, cols, channels_last) -> None:
    x = torch.randn(2, 5, 24, 40)[:, :, :, :36]  # a view, as the stores give
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    r = windows.reflect_indices(*rows, x.shape[2])
    c = windows.reflect_indices(*cols, x.shape[3])
    tokens = windows.gather_tokens(x, r, c)
    nh, nw = r.numel() // 8, c.numel() // 8
    assert tokens.shape == (2 * nh * nw, 64, 5)
    for s in range(2):
        for i in range(nh):
            for j in range(nw):
                window = x[s][:, r[8 * i : 8 * i + 8]][:, :, c[8 * j : 8 * j + 8]]  # (C, 8, 8)
                expected = window.permute(1, 2, 0).reshape(64, 5)
                assert torch.equal(tokens[(s * nh + i) * nw + j], expected)


@pytest.mark.parametrize("rows, cols", [((0, 20), (3, 30)), ((-2, 22), (-2, 38)), ((4, 26), (20, 40))])
def test_gather_image_reads_the_reflected_positions_channels_last(rows, cols) -> None:
    x = torch.randn(1, 5, 24, 40)[:, :, :, :36].contiguous(memory_format=torch.channels_last)
    r = windows.reflect_indices(*rows, 24)
    c = windows.reflect_indices(*cols, 36)
    got = windows.gather_image(x, r, c)
    assert torch.equal(got, x[:, :, r][:, :, :, c])
    assert got.is_contiguous(memory_format=torch.channels_last)


@pytest.mark.parametrize("h, w", [(2, 7), (5, 5), (13, 21)])
def test_the_whole_map_convolution_is_the_tiles_region_convolution(h: int, w: int) -> None:
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(98, 98, 3)
    x = torch.randn(1, 98, h, w)
    with torch.no_grad():
        whole = windows.reflect_conv3x3(x, conv)
        padded = torch.nn.functional.conv2d(
            torch.nn.functional.pad(x, (1, 1, 1, 1), mode="reflect"), conv.weight, conv.bias
        )
        region = windows.conv_region(x, (0, 0), (0, h), (0, w), (h, w), conv)
    assert torch.equal(whole, region)  # one convolution: tiles and whole maps agree bit for bit
    torch.testing.assert_close(whole, padded, rtol=0, atol=1e-5)
