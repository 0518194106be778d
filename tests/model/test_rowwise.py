"""The CPU arrangement of a transformer block gives the generic path's values."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from napari_gifnet.model import _rowwise
from napari_gifnet.model._transformer import TransformerBlock
from napari_gifnet.model.network import SHIFT
from napari_gifnet.model.windows import block_axis

# (map height, width, output rows, output columns): whole maps, interior
# regions, regions at each edge (reflected windows and depthwise reads)
REGIONS = [
    (64, 96, (0, 64), (0, 96)),
    (100, 124, (8, 60), (4, 124)),
    (100, 124, (20, 100), (0, 36)),
    (52, 44, (0, 52), (12, 44)),
]


def _block(shift: int) -> TransformerBlock:
    torch.manual_seed(shift)
    block = TransformerBlock(shift).eval()
    with torch.no_grad():
        for p in block.parameters():
            p.copy_(torch.randn_like(p) * 0.2)
    return block.requires_grad_(False)


def _both_paths(block, x, stream, region, query=None):
    h, w = x.shape[-2:]
    rows, cols = block_axis(*region[0], h, block.shift), block_axis(*region[1], w, block.shift)
    part = x[:, :, rows.src_start : rows.src_stop, cols.src_start : cols.src_stop]
    stats = block.statistics(x, stream)
    with torch.enable_grad():  # the generic path
        generic = block.region(part, stream, stats, rows, cols, query)
    with torch.inference_mode():  # the CPU path
        cpu = block.region(part, stream, stats, rows, cols, query)
    return generic, cpu


@pytest.mark.parametrize("chunk", [4096, 300])
@pytest.mark.parametrize("shift", [0, SHIFT])
@pytest.mark.parametrize("case", REGIONS, ids=lambda c: f"{c[0]}x{c[1]}-{c[2]}-{c[3]}")
def test_the_cpu_path_equals_the_generic_path(
    case, shift: int, chunk: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_rowwise, "CHUNK_PIXELS", chunk)  # 300: many ragged bands and chunks
    h, w, rows, cols = case
    block = _block(shift)
    x = torch.randn(1, 98, h, w).contiguous(memory_format=torch.channels_last)
    (y0, q0), (y1, q1) = _both_paths(block, x, "dp", (rows, cols))
    assert y1.shape == y0.shape == (1, 98, rows[1] - rows[0], cols[1] - cols[0])
    torch.testing.assert_close(q1, q0, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(y1, y0, rtol=1e-5, atol=2e-5)
    # cross attention: the other stream with this query
    (z0, _), (z1, _) = _both_paths(
        block, x.flip(-1).contiguous(memory_format=torch.channels_last), "mm", (rows, cols), q0
    )
    torch.testing.assert_close(z1, z0, rtol=1e-5, atol=2e-5)


def test_the_cpu_path_is_taken_only_for_one_float32_sample_without_gradients() -> None:
    from napari_gifnet.model._rowwise import cache_friendly as _cache_friendly

    x = torch.zeros(1, 98, 8, 8)
    with torch.inference_mode():
        assert _cache_friendly(x)
        assert not _cache_friendly(torch.zeros(2, 98, 8, 8))
        assert not _cache_friendly(x.double())
        with torch.autocast("cpu", dtype=torch.bfloat16):
            assert not _cache_friendly(x)
    assert not _cache_friendly(x)  # gradients enabled


@pytest.mark.parametrize("chunk", [4096, 300])
@pytest.mark.parametrize("crop", [False, True], ids=["whole", "column-crop"])
def test_the_decoder_complement_band_by_band_equals_the_convolutions(
    chunk: int, crop: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    from napari_gifnet.model.network import GlobalDecoder

    monkeypatch.setattr(_rowwise, "CHUNK_PIXELS", chunk)
    torch.manual_seed(3)
    decoder = GlobalDecoder().eval()
    shared = torch.randn(1, 98, 37, 61).contiguous(memory_format=torch.channels_last)
    branch = torch.randn(1, 98, 37, 61)  # NCHW: read through its permuted view
    if crop:  # views whose rows are not contiguous, as a store's region gives
        shared, branch = shared[..., 5:50], branch[..., 5:50]
    w = decoder.fuseComplementFeatures.mlp[0].weight
    with torch.no_grad():
        hidden = torch.relu(F.conv2d(torch.cat((shared, branch), 1), w))
        expected = decoder.fuseComplementFeatures.mlp[2](hidden)
    with torch.inference_mode():
        got = decoder.complement(shared, branch)
    assert got.shape == expected.shape == (1, 128, 37, shared.shape[-1])
    assert got.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(decoder.complement(shared, branch), expected, rtol=1e-5, atol=1e-5)
