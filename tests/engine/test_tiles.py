"""Tiled evaluation: tile planning, exact convolutions on regions, and tiled
fusion equal to whole-image fusion for every tile size."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from napari_gifnet.engine.tiled.grid import (
    MIN_TILE,
    TileShape,
    count_tiles,
    pixel_count,
    tile_shape,
    tiles,
)
from napari_gifnet.engine.tiled.plan import TilePlan, plan_tiles
from napari_gifnet.engine.tiled.run import fuse_tiled
from napari_gifnet.model.network import GIFNet
from napari_gifnet.model.weights import load_model
from napari_gifnet.model.windows import conv_region, reflect_indices


@pytest.fixture(scope="module")
def model(reference_weights: Path) -> GIFNet:
    return load_model(reference_weights, device="cpu")[0]


def _pair(h: int, w: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    a = torch.rand(1, 1, h, w, generator=gen).contiguous(memory_format=torch.channels_last)
    b = torch.rand(1, 1, h, w, generator=gen).contiguous(memory_format=torch.channels_last)
    return a, b


# ---- planning ----------------------------------------------------------------


def test_tile_size_is_rounded_to_the_window_grid_and_covers_small_images() -> None:
    assert tile_shape(100, 300, tile_size=8) == TileShape(8, 8)
    assert tile_shape(100, 300, tile_size=61) == TileShape(56, 56)
    assert tile_shape(100, 300, tile_size=128) == TileShape(100, 128)  # covers the rows
    assert tile_shape(100, 300, tile_size=10_000) == TileShape(100, 300)  # the whole image


@pytest.mark.parametrize("bad", [7, 0, -8])
def test_tile_sizes_below_one_window_are_refused(bad: int) -> None:
    with pytest.raises(ValueError, match=f"tile_size {bad} is too small: the smallest tile is 8"):
        tile_shape(100, 100, tile_size=bad)


@pytest.mark.parametrize("bad", [8.5, "64", True, np.True_, np.float64(16.0), 16.0])
def test_tile_size_must_be_an_integer(bad: object) -> None:
    with pytest.raises(ValueError, match="tile_size must be an integer"):
        tile_shape(100, 100, tile_size=bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("size", [np.int64(61), np.int32(61), np.uint16(61), np.intp(61)])
def test_numpy_integer_tile_sizes_are_accepted(size: object) -> None:
    shape = tile_shape(100, 300, tile_size=size)  # type: ignore[arg-type]
    assert shape == TileShape(56, 56) and type(shape.rows) is int
    with pytest.raises(ValueError, match="tile_size 7 is too small"):
        tile_shape(100, 100, tile_size=np.int64(7))  # type: ignore[arg-type]


def test_one_integer_rule_for_tile_sizes_and_lazy_options() -> None:
    assert pixel_count("chunk", np.uint16(64), 64) == 64
    assert type(pixel_count("chunk", np.int64(70), 64)) is int
    for bad in (64.0, True, np.True_, "64", None):
        with pytest.raises(ValueError, match=r"chunk must be an integer number of pixels, not"):
            pixel_count("chunk", bad, 64)
    with pytest.raises(ValueError, match="^chunk must be at least 64 pixels, not 63$"):
        pixel_count("chunk", 63, 64)
    with pytest.raises(ValueError, match="^edge 3 is too small, 8$"):
        pixel_count("edge", np.int8(3), 8, "{name} {value} is too small, {minimum}")


def test_a_tile_plan_tiles_the_padded_grid_and_the_output() -> None:
    cpu = torch.device("cpu")
    plan = plan_tiles(50, 70, cpu, "memory", tile_size=np.int64(40))
    assert plan == TilePlan((50, 70), "memory", 40, TileShape(40, 40), TileShape(40, 40))
    assert type(plan.tile_size) is int
    plan = plan_tiles(50, 70, cpu, "memory", tile_pixels=40 * 72)
    assert (plan.grid, plan.out) == (TileShape(40, 72), TileShape(40, 70))  # grid: 52 x 72
    with pytest.raises(ValueError, match="unknown storage 'cloud'"):
        plan_tiles(50, 70, cpu, "cloud")
    with pytest.raises(ValueError, match="tile_size 4 is too small"):
        plan_tiles(50, 70, cpu, "memory", tile_size=4)


def test_fuse_tiled_refuses_a_plan_for_another_size(model: GIFNet) -> None:
    a, b = _pair(24, 32, 0)
    plan = plan_tiles(24, 40, torch.device("cpu"), "memory", tile_size=16)
    with torch.inference_mode(), pytest.raises(ValueError, match=r"plan is for a \(24, 40\) pair"):
        fuse_tiled(model, a, b, plan=plan)


def test_unknown_storage_is_refused(model: GIFNet) -> None:
    a = torch.rand(1, 1, 8, 8)
    with pytest.raises(ValueError, match="unknown storage 'cloud'"):
        fuse_tiled(model, a, a, storage="cloud")


def test_automatic_tiles_are_bands_when_wide_enough_else_squares() -> None:
    assert tile_shape(2000, 1000, tile_pixels=1 << 17) == TileShape(128, 1000)
    assert tile_shape(20, 1000, tile_pixels=1 << 17) == TileShape(20, 1000)
    # 8192 columns leave bands of 8 rows: square tiles of the same area instead
    assert tile_shape(8192, 8192, tile_pixels=1 << 16) == TileShape(256, 256)


@settings(max_examples=200, deadline=None)
@given(
    h=st.integers(1, 300),
    w=st.integers(1, 300),
    shift=st.sampled_from([0, 4]),
    edge=st.integers(MIN_TILE, 320),
)
def test_tiles_cover_the_map_once_with_edges_on_the_window_grid(
    h: int, w: int, shift: int, edge: int
) -> None:
    shape = tile_shape(h, w, tile_size=edge)
    cover = np.zeros((h, w), int)
    listed = list(tiles(h, w, shift, shape))
    for (r0, r1), (c0, c1) in listed:
        cover[r0:r1, c0:c1] += 1
        for e in (r0, r1):
            assert e in (0, h) or (e + shift) % 8 == 0
        for e in (c0, c1):
            assert e in (0, w) or (e + shift) % 8 == 0
        assert r1 - r0 <= max(shape.rows, 8) and c1 - c0 <= max(shape.cols, 8)
    assert (cover == 1).all()
    assert count_tiles(h, w, shift, shape) == len(listed)


@settings(max_examples=60, deadline=None)
@given(
    h=st.integers(2, 40),
    w=st.integers(2, 40),
    data=st.data(),
)
def test_a_region_of_a_convolution_reads_its_reflected_neighbourhood(h: int, w: int, data) -> None:
    r0 = data.draw(st.integers(0, h - 1))
    r1 = data.draw(st.integers(r0 + 1, h))
    c0 = data.draw(st.integers(0, w - 1))
    c1 = data.draw(st.integers(c0 + 1, w))
    torch.manual_seed(h * 41 + w)
    conv = torch.nn.Conv2d(3, 4, 3)
    x = torch.rand(1, 3, h, w)
    with torch.no_grad():
        whole = F.conv2d(F.pad(x, (1, 1, 1, 1), mode="reflect"), conv.weight, conv.bias)
        got = conv_region(x, (0, 0), (r0, r1), (c0, c1), (h, w), conv)
        # the same from a crop that holds just what is read, at its origin
        ri, ci = reflect_indices(r0 - 1, r1 + 1, h), reflect_indices(c0 - 1, c1 + 1, w)
        lo = (int(ri.min()), int(ci.min()))
        part = x[..., lo[0] : int(ri.max()) + 1, lo[1] : int(ci.max()) + 1]
        got_crop = conv_region(part, lo, (r0, r1), (c0, c1), (h, w), conv)
    torch.testing.assert_close(got, whole[..., r0:r1, c0:c1], rtol=0, atol=1e-6)
    torch.testing.assert_close(got_crop, got, rtol=0, atol=0)


# ---- tiled fusion equals whole-image fusion ----------------------------------


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    h=st.integers(5, 72),
    w=st.integers(5, 72),
    edge=st.integers(MIN_TILE, 80),
    bands=st.booleans(),
    storage=st.sampled_from(["memory", "disk", "recompute"]),
)
def test_tiles_of_any_size_and_storage_equal_whole_image_evaluation(
    model: GIFNet, h: int, w: int, edge: int, bands: bool, storage: str
) -> None:
    """Square tiles of any edge, or bands of whole rows about ``edge`` high (``tile_pixels``)."""
    a, b = _pair(h, w, h * 1000 + w)
    size = {"tile_pixels": edge * w} if bands else {"tile_size": edge}
    with torch.inference_mode():
        whole = model(a, b)
        tiled = fuse_tiled(model, a, b, storage=storage, **size)
    torch.testing.assert_close(tiled, whole, rtol=0, atol=3e-6)


@pytest.mark.parametrize("size", [(5, 200), (200, 5), (6, 7), (9, 131)])
def test_thin_images_in_small_tiles(model: GIFNet, size: tuple[int, int]) -> None:
    a, b = _pair(*size, seed=sum(size))
    with torch.inference_mode():
        whole = model(a, b)
        for edge in (8, 16, 48):
            tiled = fuse_tiled(model, a, b, tile_size=edge, storage="memory")
            torch.testing.assert_close(tiled, whole, rtol=0, atol=3e-6)


def test_tiled_features_equal_whole_image_features(model: GIFNet) -> None:
    a, b = _pair(45, 70, 7)
    whole: dict[str, torch.Tensor] = {}
    tiled: dict[str, torch.Tensor] = {}
    with torch.inference_mode():
        model(a, b, whole)
        fuse_tiled(model, a, b, tile_size=16, storage="disk", features=tiled)
    for name in ("shared", "multimodal", "photographic", "branch"):
        ref = whole[name][..., :45, :70]
        scale = float(ref.abs().max())
        torch.testing.assert_close(tiled[name], ref, rtol=0, atol=1e-5 * scale, msg=name)


@pytest.mark.parametrize("case", ["IVIF", "Remote-band1"])
def test_reference_cases_in_tiles_from_the_smallest_to_the_whole(
    case: str, model: GIFNet, reference_dir: Path
) -> None:
    """Crops of two published cases (a photographic and a remote-sensing band) in tiles
    of every size: tiling does not depend on the content, and the full-size parity sweep
    (tests/engine/test_engine.py) covers all nine cases in tiles of 200."""
    with np.load(reference_dir / "official" / f"{case}.npz") as data:
        a, b = data["input_a"][:72, :100], data["input_b"][:72, :100]
    ta = torch.from_numpy(np.ascontiguousarray(a, np.float32))[None, None]
    tb = torch.from_numpy(np.ascontiguousarray(b, np.float32))[None, None]
    with torch.inference_mode():
        whole = model(ta, tb)
        for edge in (24, 64, 100):
            tiled = fuse_tiled(model, ta, tb, tile_size=edge, storage="memory")
            assert float((tiled - whole).abs().max()) <= 1e-4, edge
        # the smallest tile (much halo per tile, so slower) on a corner
        ta, tb = ta[..., :24, :36], tb[..., :24, :36]
        tiled = fuse_tiled(model, ta, tb, tile_size=8, storage="memory")
        assert float((tiled - model(ta, tb)).abs().max()) <= 1e-4


def test_progress_counts_tiles(model: GIFNet) -> None:
    a, b = _pair(40, 40, 1)
    seen: list[tuple[int, int]] = []
    with torch.inference_mode():
        fuse_tiled(model, a, b, tile_size=16, storage="memory", progress=lambda d, t: seen.append((d, t)))
    total = seen[0][1]
    assert [d for d, _ in seen] == list(range(1, total + 1))
    shape, shift = TileShape(16, 16), model.branch.layer1.blocks[0].shift
    assert total == 2 * count_tiles(40, 40, 0, shape) + count_tiles(40, 40, shift, shape)


@settings(max_examples=200, deadline=None)
@given(length=st.integers(2, 40), start=st.integers(-30, 40), size=st.integers(1, 60),
       dim=st.sampled_from([2, 3]), channels_last=st.booleans())  # fmt: skip
def test_take_reads_reflected_positions_as_index_select_does(
    length: int, start: int, size: int, dim: int, channels_last: bool
) -> None:
    """``take`` joins runs of views instead of gathering: the same values, the same layout."""
    from napari_gifnet.model.windows import index_runs, take

    start = max(start, -(length - 1))
    stop = min(start + size, 2 * length - 1)
    if stop <= start:
        return
    idx = reflect_indices(start, stop, length)
    x = torch.randn(1, 3, length + 2, length + 3)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    out = take(x, idx, dim)
    assert torch.equal(out, x.index_select(dim, idx))
    runs = index_runs(idx)
    assert sum(n for _, n, _ in runs) == idx.numel()
    assert len(runs) <= 3 + 2 * (size // length + 1)  # reflections turn back at most that often
    if channels_last and len(runs) > 1:
        assert out.is_contiguous(memory_format=torch.channels_last)
