"""The public fuse() API: parity with the published model, inputs, colour, errors."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from napari_gifnet import FusionResult, fuse
from napari_gifnet.engine.colour import rgb_to_ycbcr
from napari_gifnet.engine.preprocess import published_luma_uint8
from napari_gifnet.engine.result import NonFiniteResultError
from napari_gifnet.engine.tiled.grid import TileShape
from napari_gifnet.model.weights import OFFICIAL_SHA256
from reference_cases import CASES


@pytest.fixture(scope="module")
def weights(reference_weights: Path) -> Path:
    return reference_weights


def _fuse(a, b, weights, **kw) -> FusionResult:
    return fuse(a, b, weights=weights, device="cpu", **kw)


def _published(reference_dir: Path, case: str) -> tuple[np.ndarray, ...]:
    with np.load(reference_dir / "official" / f"{case}.npz") as data:
        return data["input_a"], data["input_b"], data["fused_luma"]


@pytest.mark.parametrize("case", CASES)
def test_parity_with_the_published_outputs(case: str, reference_dir: Path, weights: Path) -> None:
    """Every published case at full size, in square tiles of 200 (many tiles, every seam)."""
    a, b, expected = _published(reference_dir, case)
    result = _fuse(a, b, weights, tile_size=200)
    assert result.metadata["tile_size"] == 200
    assert result.luma.shape == expected.shape and result.luma.dtype == np.float32
    assert result.image.shape == expected.shape  # grey in, grey out
    assert np.abs(result.luma - expected).max() <= 1e-4


def test_parity_in_automatic_tiles(reference_dir: Path, weights: Path) -> None:
    """One published case in the tiles the engine picks by itself (bands of whole rows)."""
    a, b, expected = _published(reference_dir, "Remote-band1")
    result = _fuse(a, b, weights)
    assert result.metadata["tile_size"] is None
    rows, cols = result.metadata["tile_shape"]
    assert rows < a.shape[0] and cols >= a.shape[1]  # more than one band
    assert np.abs(result.luma - expected).max() <= 1e-4


def test_features_are_the_published_intermediate_maps(reference_dir: Path, weights: Path) -> None:
    with np.load(reference_dir / "official" / "activations_small.npz") as data:
        act = dict(data)
    result = _fuse(act["input_a_uint8"], act["input_b_uint8"], weights, return_features=True)
    h, w = act["fused"].shape
    assert set(result.features) == {"shared", "multimodal", "photographic", "branch"}
    for name, ref in (
        ("shared", act["shared_S"]),
        ("branch", act["branch_T"]),
        ("multimodal", act["block0_out_mm"][:, :h, :w]),
        ("photographic", act["block1_out_dp"][:, :h, :w]),
    ):
        got = result.features[name]
        assert got.shape == (98, h, w) and got.dtype == np.float32
        np.testing.assert_allclose(got, ref, rtol=0, atol=1e-5 * float(np.abs(ref).max()))
    assert not _fuse(act["input_a_uint8"], act["input_b_uint8"], weights).features


@pytest.fixture(scope="module")
def medical(reference_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    with np.load(reference_dir / "official" / "Medical.npz") as data:
        return data["input_a"][64:128, 64:160].copy(), data["input_b"][64:128, 64:160].copy()


def test_rgb_uint8_becomes_the_published_luma(medical, weights: Path) -> None:
    grey, mri = medical
    tint = np.array([25, -5, -30])  # a warm, moderately saturated tint
    rgb = np.clip(grey[..., None].astype(int) // 2 + 60 + tint, 0, 255).astype(np.uint8)
    result = _fuse(rgb, mri, weights)
    same = _fuse(published_luma_uint8(rgb), mri, weights)
    np.testing.assert_array_equal(result.luma, same.luma)
    assert result.image.shape == (*grey.shape, 3) and result.image.dtype == np.float32
    # the colour image carries the fused luma (BT.601) wherever it was not clipped
    y, _, _ = rgb_to_ycbcr(result.image)
    inside = (result.image > 1e-3).all(-1) & (result.image < 1 - 1e-3).all(-1)
    assert inside.mean() > 0.5
    np.testing.assert_allclose(y[inside], result.luma[inside], atol=1e-5)


def test_inputs_are_never_modified(medical, weights: Path) -> None:
    a, b = medical
    a16 = (a.astype(np.uint16) * 16).copy()
    rgb = np.stack([b, a, b], axis=-1)
    for x, y in ((a, b), (a16, b.astype(np.float64) / 255), (rgb, a)):
        before = (x.copy(), y.copy())
        x.flags.writeable = False
        _fuse(x, y, weights)
        np.testing.assert_array_equal(x, before[0])
        np.testing.assert_array_equal(y, before[1])


def test_shape_mismatch_names_both_shapes(weights: Path) -> None:
    with pytest.raises(ValueError, match=r"a is \(10, 12\), b is \(10, 13\)"):
        _fuse(np.zeros((10, 12), np.uint8), np.zeros((10, 13), np.uint8), weights)
    with pytest.raises(ValueError, match=r"a is \(10, 12, 3\), b is \(11, 12\)"):
        _fuse(np.zeros((10, 12, 3), np.uint8), np.zeros((11, 12), np.uint8), weights)


def test_non_finite_values_are_refused(weights: Path) -> None:
    a = np.full((16, 16), 0.5, np.float32)
    a[3, 4] = np.nan
    with pytest.raises(ValueError, match="non-finite"):
        _fuse(a, np.zeros((16, 16), np.float32), weights)


@pytest.mark.parametrize("size", [(1, 1), (1, 7), (3, 3), (4, 9), (7, 2), (5, 5)])
def test_any_size_from_one_pixel(size: tuple[int, int], weights: Path) -> None:
    rng = np.random.default_rng(1)
    a = rng.integers(0, 256, size, dtype=np.uint8)
    b = rng.integers(0, 256, size, dtype=np.uint8)
    result = _fuse(a, b, weights, return_features=True)
    assert result.image.shape == size and result.luma.shape == size
    assert np.isfinite(result.luma).all() and (0 <= result.luma).all() and (result.luma <= 1).all()
    assert result.features["shared"].shape == (98, *size)


def test_small_images_are_padded_symmetrically_and_cropped(weights: Path) -> None:
    """A 4 x 4 image is fused as its 8 x 8 symmetric extension, then cropped."""
    rng = np.random.default_rng(2)
    a = rng.integers(0, 256, (4, 4), dtype=np.uint8)
    b = rng.integers(0, 256, (4, 4), dtype=np.uint8)
    small = _fuse(a, b, weights).luma
    big = _fuse(np.pad(a, ((0, 4), (0, 4)), "symmetric"), np.pad(b, ((0, 4), (0, 4)), "symmetric"), weights)
    np.testing.assert_allclose(small, big.luma[:4, :4], atol=1e-6)


def test_uint16_normalisation_is_recorded(medical, weights: Path) -> None:
    a, b = medical
    a12 = a.astype(np.uint16) * 16  # 12-bit data in a 16-bit container
    result = _fuse(a12, b, weights)
    meta = result.metadata["inputs"]["a"]
    assert meta["normalization"] == "percentile"
    assert result.metadata["inputs"]["b"]["normalization"] == "dtype"
    fixed = _fuse(a12, b, weights, normalization="dtype")
    assert fixed.metadata["inputs"]["a"]["range"] == [0, 65535] or tuple(
        fixed.metadata["inputs"]["a"]["range"]
    ) == (0, 65535)
    assert not np.allclose(result.luma, fixed.luma, atol=1e-3)


def test_metadata_and_device(medical, weights: Path) -> None:
    result = _fuse(*medical, weights)
    assert result.device == "cpu"
    meta = result.metadata
    assert meta["method"] == "GIFNet"
    assert meta["weights_sha256"] == OFFICIAL_SHA256
    assert meta["device"] == "cpu" and meta["height"] == 64 and meta["width"] == 96
    json.dumps(meta)  # provenance must be serialisable (TIFF description, layer metadata)


def test_unavailable_and_unknown_devices(medical, weights: Path) -> None:
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            fuse(*medical, weights=weights, device="cuda")
    with pytest.raises(ValueError, match="unknown device 'banana'"):
        fuse(*medical, weights=weights, device="banana")


def test_auto_device_records_what_ran(medical, weights: Path) -> None:
    result = fuse(*medical, weights=weights, device="auto")
    expected = "cuda:0" if torch.cuda.is_available() else "cpu"
    assert result.device == expected


def test_progress_reports_and_can_stop_the_fusion(medical, weights: Path) -> None:
    seen: list[tuple[int, int]] = []
    _fuse(*medical, weights, progress=lambda done, total: seen.append((done, total)))
    assert seen and seen[-1][0] == seen[-1][1]
    assert [d for d, _ in seen] == list(range(1, len(seen) + 1))

    class Stop(Exception):
        pass

    def stop(done: int, total: int) -> None:
        if done == 2:
            raise Stop

    with pytest.raises(Stop):
        _fuse(*medical, weights, progress=stop)


def test_rgba_alpha_is_dropped_with_a_warning(medical, weights: Path) -> None:
    a, b = medical
    rgba = np.dstack([a, a, a, np.full_like(a, 7)])
    with pytest.warns(UserWarning, match="alpha"):
        result = _fuse(rgba, b, weights)
    np.testing.assert_allclose(result.luma, _fuse(np.dstack([a, a, a]), b, weights).luma, atol=1e-7)


@pytest.mark.parametrize(
    "error",
    [
        RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate"),
        torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"),
        MemoryError("Unable to allocate 1.2 GiB for an array with shape (98, 4096, 800)"),
    ],
)
def test_out_of_memory_retries_with_smaller_tiles_on_disk(
    medical, weights: Path, monkeypatch: pytest.MonkeyPatch, error: Exception
) -> None:
    from napari_gifnet.engine import eager as engine
    from napari_gifnet.engine.tiled import run as tiled_run
    from napari_gifnet.engine.tiled.plan import TilePlan

    calls: list[TilePlan] = []
    real = tiled_run.fuse_tiled

    def flaky(model, a, b, *, plan, **kw):
        calls.append(plan)
        if len(calls) <= 1:
            raise error
        return real(model, a, b, tile_size=None, storage="memory", **kw)  # fast: one tile

    monkeypatch.setattr(engine, "fuse_tiled", flaky)
    result = _fuse(*medical, weights)
    # "auto" resolved: the small image fits in memory, in one automatic 64 x 96 tile
    assert (calls[0].tile_size, calls[0].storage, calls[0].out) == (None, "memory", TileShape(64, 96))
    # then one retry in a quarter of the pixels: 32 x 32 on disk
    assert [(c.tile_size, c.storage) for c in calls[1:]] == [(32, "disk")]
    meta = result.metadata
    # tile_size: what was asked for (automatic); the tiles used: the retry's
    assert (meta["storage"], meta["tile_size"], meta["tile_shape"]) == ("disk", None, [32, 32])
    assert meta["tile_pixels"] == 1024 and meta["out_of_memory_retries"] == 1
    assert meta["retry_tile_size"] == 32
    monkeypatch.setattr(engine, "fuse_tiled", real)
    np.testing.assert_allclose(result.luma, _fuse(*medical, weights).luma, atol=2e-6)


def test_the_tiles_used_are_recorded(medical, weights: Path) -> None:
    meta = _fuse(*medical, weights, tile_size=np.int64(40)).metadata
    assert (meta["tile_size"], meta["tile_shape"], meta["tile_pixels"]) == (40, [40, 40], 1600)
    assert type(meta["tile_size"]) is int and meta["out_of_memory_retries"] == 0
    assert meta["retry_tile_size"] is None
    json.dumps(meta)
    meta = _fuse(*medical, weights).metadata  # automatic: one tile for this small image
    assert (meta["tile_size"], meta["tile_shape"], meta["tile_pixels"]) == (None, [64, 96], 6144)


def test_a_retry_keeps_the_tile_size_asked_for(
    medical, weights: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from napari_gifnet.engine import eager as engine
    from napari_gifnet.engine.tiled import run as tiled_run

    monkeypatch.setenv("NAPARI_GIFNET_SCRATCH", str(tmp_path))

    real, tries = tiled_run.fuse_tiled, []

    def once(model, a, b, *, plan, **kw):
        tries.append(plan)
        if len(tries) == 1:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real(model, a, b, plan=plan, **kw)

    monkeypatch.setattr(engine, "fuse_tiled", once)
    meta = _fuse(*medical, weights, tile_size=48, storage="memory").metadata
    assert [(p.storage, p.tile_size) for p in tries] == [("memory", 48), ("disk", 24)]
    assert (meta["tile_size"], meta["retry_tile_size"], meta["tile_shape"]) == (48, 24, [24, 24])
    assert (meta["storage"], meta["out_of_memory_retries"]) == ("disk", 1)


def test_a_storage_that_cannot_fit_is_refused_before_any_work(
    medical, weights: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from napari_gifnet.engine import eager as engine
    from napari_gifnet.engine.tiled import plan as tile_plan
    from napari_gifnet.engine.tiled.stores import ScratchError

    monkeypatch.setattr(tile_plan, "scratch_free_bytes", lambda: 999)
    ran: list[object] = []
    monkeypatch.setattr(engine, "fuse_tiled", lambda *a, **k: ran.append(k))
    for storage in ("disk", "recompute"):
        with pytest.raises(ScratchError, match=rf"storage='{storage}' needs .* has 999 B free"):
            _fuse(*medical, weights, storage=storage)
    assert ran == []


def test_out_of_memory_everywhere_is_a_clear_memory_error(
    medical, weights: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from napari_gifnet.engine import eager as engine

    def broke(*args, **kwargs):
        raise RuntimeError("DefaultCPUAllocator: can't allocate memory")

    monkeypatch.setattr(engine, "fuse_tiled", broke)
    with pytest.raises(MemoryError, match=r"64 x 96 fusion does not fit in the memory of cpu"):
        _fuse(*medical, weights)
    other = RuntimeError("something else")
    monkeypatch.setattr(engine, "fuse_tiled", lambda *a, **k: (_ for _ in ()).throw(other))
    with pytest.raises(RuntimeError, match="something else"):
        _fuse(*medical, weights)


# ---- nothing silently wrong --------------------------------------------------------


def test_a_non_finite_network_output_is_an_error_naming_the_weights(
    weights: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import copy

    from napari_gifnet.engine import eager as engine
    from napari_gifnet.model.weights import load_model

    model, info = load_model(weights)
    broken = copy.deepcopy(model)  # NaN weights that bypass the checkpoint check
    next(broken.parameters()).data.fill_(float("nan"))
    monkeypatch.setattr(engine, "load_model", lambda *_a, **_k: (broken, info))
    rng = np.random.default_rng(4)
    a, b = (rng.integers(0, 256, (24, 20), dtype=np.uint8) for _ in range(2))
    with pytest.raises(NonFiniteResultError) as exc:
        _fuse(a, b, weights)
    message = str(exc.value)
    assert isinstance(exc.value, ValueError)
    assert "NaN or infinite" in message and str(info.path) in message
    assert "damaged weights" in message and "inputs with non-finite values" in message


def test_huge_float64_range_gives_a_finite_image(weights: Path) -> None:
    a = np.tile(np.array([[-1.7e308, 1.7e308]]), (16, 8))
    b = np.linspace(0, 1, 256).reshape(16, 16)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = _fuse(a, b, weights)
    assert np.isfinite(result.image).all()
    assert (0 <= result.image).all() and (result.image <= 1).all()


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float8_e4m3fn])
def test_float_tensors_numpy_lacks_fuse_like_float32_ones(weights: Path, dtype: torch.dtype) -> None:
    rng = np.random.default_rng(5)
    a = torch.from_numpy(rng.random((24, 28), dtype=np.float32)).to(dtype)
    b = torch.from_numpy(rng.random((24, 28, 3), dtype=np.float32)).to(dtype)
    result = _fuse(a, b, weights)
    expected = _fuse(a.float(), b.float(), weights)  # the same values, exactly, in float32
    np.testing.assert_array_equal(result.image, expected.image)
    np.testing.assert_array_equal(result.luma, expected.luma)


@pytest.mark.parametrize("first", [3, 4])
def test_a_channel_first_array_gets_a_hint(weights: Path, first: int) -> None:
    a = np.zeros((first, 20, 30), np.uint8)
    b = np.zeros((20, 30), np.uint8)
    with pytest.raises(ValueError, match=r"input 'a' .*looks channel-first.*np\.moveaxis\(x, 0, -1\)"):
        _fuse(a, b, weights)
    with pytest.raises(ValueError, match=r"input 'b' .*looks channel-first"):
        _fuse(b, a, weights)
