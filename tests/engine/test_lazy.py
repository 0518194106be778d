"""Lazy fusion of Dask arrays: equal to eager fusion, computed chunk by chunk,
runnable on a distributed cluster."""

from __future__ import annotations

import threading
from pathlib import Path

import dask
import dask.array as da
import numpy as np
import pytest

from napari_gifnet import fuse
from napari_gifnet.engine import lazy
from napari_gifnet.engine.lazy import fuse_dask


@pytest.fixture(scope="module")
def stack() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    a = (rng.random((2, 150, 170)) * 65535).astype(np.uint16)
    b = (rng.random((2, 150, 170)) * 65535).astype(np.uint16)
    a[0, :75] //= 3  # planes with different ranges: normalised per plane
    return a, b


@pytest.fixture(scope="module")
def eager(stack, reference_weights: Path) -> np.ndarray:
    a, b = stack
    return np.stack([fuse(a[z], b[z], weights=reference_weights, device="cpu").image for z in range(2)])


def test_lazy_stack_equals_eager_fusion_plane_by_plane(stack, eager, reference_weights: Path) -> None:
    a, b = stack
    before = a.copy(), b.copy()
    result = fuse(da.from_array(a, chunks=(1, 64, 64)), da.from_array(b, chunks=(1, 50, 100)),
                  weights=reference_weights, device="cpu")  # fmt: skip
    assert isinstance(result.image, da.Array) and result.metadata["lazy"] is True
    assert result.image.shape == (2, 150, 170) and result.image.dtype == np.float32
    np.testing.assert_allclose(result.image.compute(), eager, rtol=0, atol=1e-5)
    np.testing.assert_array_equal(a, before[0])
    np.testing.assert_array_equal(b, before[1])


def test_small_chunks_give_the_same_values(stack, eager, reference_weights: Path) -> None:
    a, b = stack
    image = fuse_dask(a, b, weights=reference_weights, device="cpu", chunk=64)
    assert image.chunks[1:] == ((64, 64, 22), (64, 64, 42))
    np.testing.assert_allclose(image.compute(scheduler="threads"), eager, rtol=0, atol=1e-5)


def test_one_chunk_is_computed_alone(stack, eager, reference_weights: Path, monkeypatch) -> None:
    calls = {"chunk": 0, "stats": 0}
    lock = threading.Lock()
    real_chunk, real_stats = lazy._fuse_chunk, lazy._plane_statistics

    def counting(name, real):
        def wrapper(*args, **kwargs):
            with lock:
                calls[name] += 1
            return real(*args, **kwargs)

        return wrapper

    monkeypatch.setattr(lazy, "_fuse_chunk", counting("chunk", real_chunk))
    monkeypatch.setattr(lazy, "_plane_statistics", counting("stats", real_stats))
    a, b = stack
    image = fuse_dask(a, b, weights=reference_weights, device="cpu", chunk=64)
    corner = image[1, 64:128, :64].compute(scheduler="sync")
    assert calls == {"chunk": 1, "stats": 1}  # one statistics pass, one chunk
    np.testing.assert_allclose(corner, eager[1, 64:128, :64], rtol=0, atol=1e-5)


def test_compute_plane_fills_one_plane_and_leaves_the_rest_lazy(
    stack, eager, reference_weights: Path, monkeypatch
) -> None:
    calls: list[int] = []
    real_chunk = lazy._fuse_chunk

    def counting(*args, **kwargs):
        calls.append(1)
        return real_chunk(*args, **kwargs)

    monkeypatch.setattr(lazy, "_fuse_chunk", counting)
    a, b = stack
    image = fuse_dask(a, b, weights=reference_weights, device="cpu", chunk=64)
    seen: list[tuple[int, int]] = []
    shown, plane = lazy.compute_plane(image, (1,), lambda d, t: seen.append((d, t)))
    assert len(calls) == 9  # the 3 x 3 chunks of plane 1, nothing of plane 0
    np.testing.assert_allclose(plane, eager[1], rtol=0, atol=1e-5)
    assert seen and seen[-1][0] == seen[-1][1] and [d for d, _ in seen] == list(range(1, len(seen) + 1))
    assert shown.shape == image.shape and shown.chunks == image.chunks
    calls.clear()
    np.testing.assert_array_equal(shown[1].compute(scheduler="sync"), plane)
    assert calls == []  # the shown plane is held, not recomputed
    np.testing.assert_allclose(shown[0].compute(scheduler="sync"), eager[0], rtol=0, atol=1e-5)
    assert len(calls) == 9
    for bad in [(2,), (0, 0), (), (-1,)]:
        with pytest.raises(ValueError, match="does not name a plane"):
            lazy.compute_plane(image, bad)

    def stop(done: int, total: int) -> None:
        raise KeyboardInterrupt("cancelled")

    with pytest.raises(KeyboardInterrupt):
        lazy.compute_plane(image, (0,), stop)


def test_compute_plane_of_a_single_rgb_image(reference_weights: Path) -> None:
    rng = np.random.default_rng(2)
    rgb = (rng.random((70, 80, 3)) * 255).astype(np.uint8)
    image = fuse_dask(rgb, rgb[..., 0], weights=reference_weights, device="cpu", chunk=64)
    shown, plane = lazy.compute_plane(image, ())
    assert plane.shape == (70, 80, 3)
    np.testing.assert_array_equal(shown.compute(), plane)
    np.testing.assert_allclose(plane, image.compute(), rtol=0, atol=1e-6)


def test_colour_and_grey_mixed(reference_weights: Path) -> None:
    rng = np.random.default_rng(1)
    rgb = (rng.random((100, 90, 3)) * 255).astype(np.uint8)
    grey = (rng.random((100, 90)) * 255).astype(np.uint8)
    image = fuse_dask(da.from_array(rgb, chunks=(40, 40, 3)), grey, weights=reference_weights,
                      device="cpu", chunk=64)  # fmt: skip
    expected = fuse(rgb, grey, weights=reference_weights, device="cpu").image
    assert image.shape == (100, 90, 3)
    np.testing.assert_allclose(image.compute(), expected, rtol=0, atol=1e-5)


def test_tiny_planes_are_padded_like_eager_fusion(reference_weights: Path) -> None:
    a, b = np.eye(3, dtype=np.float32), np.ones((3, 3), np.float32) * 0.5
    image = fuse_dask(a, b, weights=reference_weights, device="cpu").compute()
    np.testing.assert_allclose(image, fuse(a, b, weights=reference_weights, device="cpu").image)


def test_zarr_in_and_out(stack, eager, reference_weights: Path, tmp_path: Path) -> None:
    zarr = pytest.importorskip("zarr")
    a, b = stack
    da.from_array(a, chunks=(1, 100, 100)).to_zarr(str(tmp_path / "a.zarr"))
    da.from_array(b, chunks=(1, 100, 100)).to_zarr(str(tmp_path / "b.zarr"))
    result = fuse(da.from_zarr(str(tmp_path / "a.zarr")), da.from_zarr(str(tmp_path / "b.zarr")),
                  weights=reference_weights, device="cpu")  # fmt: skip
    result.image.to_zarr(str(tmp_path / "fused.zarr"))
    back = np.asarray(zarr.open(str(tmp_path / "fused.zarr"), mode="r"))
    np.testing.assert_allclose(back, eager, rtol=0, atol=1e-5)


def test_bad_lazy_inputs_are_refused(reference_weights: Path) -> None:
    a = da.zeros((2, 40, 40), chunks=(1, 40, 40))
    with pytest.raises(ValueError, match="same shape"):
        fuse(a, da.zeros((2, 40, 41)), weights=reference_weights, device="cpu")
    with pytest.raises(ValueError, match="return_features is not available for Dask"):
        fuse(a, a, weights=reference_weights, device="cpu", return_features=True)
    with pytest.raises(ValueError, match="chunk must be at least 64"):
        fuse_dask(a, a, weights=reference_weights, device="cpu", chunk=16)


def test_a_local_cluster_gives_the_local_result(stack, eager, reference_weights: Path) -> None:
    distributed = pytest.importorskip("distributed")
    a, b = stack
    image = fuse_dask(da.from_array(a, chunks=(1, 150, 170)), da.from_array(b, chunks=(1, 150, 170)),
                      weights=reference_weights, device="cpu", chunk=96)  # fmt: skip
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
            dashboard_address=None, silence_logs=40,
        ) as cluster,  # fmt: skip
        distributed.Client(cluster) as client,
    ):
        assert len(client.scheduler_info()["workers"]) == 2
        remote = client.compute(image).result()
    with dask.config.set(scheduler="sync"):
        local = image.compute()
    # worker processes may run torch with other thread counts: float32 rounding
    np.testing.assert_allclose(remote, local, rtol=0, atol=2e-6)
    np.testing.assert_allclose(remote, eager, rtol=0, atol=1e-5)


@pytest.mark.parametrize(
    ("normalization", "message"),
    [
        ("bogus", r"unknown normalization 'bogus'; valid choices are"),
        ((1, 0), r"invalid normalization range \(1, 0\); valid choices are"),
        ((0, float("nan")), r"invalid normalization range"),
        (("a", "b"), r"invalid normalization \('a', 'b'\)"),
    ],
)
def test_lazy_options_are_checked_up_front_like_eager_ones(
    reference_weights: Path, monkeypatch: pytest.MonkeyPatch, normalization, message: str
) -> None:
    a = np.random.default_rng(4).random((16, 16), np.float32)
    with pytest.raises(ValueError, match=message):  # the eager message...
        fuse(a, a, weights=reference_weights, device="cpu", normalization=normalization)

    def no_graph(*args, **kwargs):
        raise AssertionError("a task was built")

    monkeypatch.setattr(dask, "delayed", no_graph)
    x = da.from_array(a, chunks=8)
    with pytest.raises(ValueError, match=message):  # ...and the same, before any task
        fuse(x, x, weights=reference_weights, device="cpu", normalization=normalization)
    with pytest.raises(ValueError, match=message):
        fuse_dask(x, x, weights=reference_weights, device="cpu", normalization=normalization)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"chunk": 64.0}, "chunk must be an integer"),
        ({"chunk": True}, "chunk must be an integer"),
        ({"chunk": 63}, "chunk must be at least 64 pixels, not 63"),
        ({"tile_pixels": 0}, "tile_pixels must be at least 64 pixels, not 0"),
        ({"tile_pixels": "big"}, "tile_pixels must be an integer"),
    ],
)
def test_bad_chunk_and_tile_options_are_refused(reference_weights: Path, options, message) -> None:
    x = da.zeros((40, 40), chunks=20)
    with pytest.raises(ValueError, match=message):
        fuse_dask(x, x, weights=reference_weights, device="cpu", **options)
    image = fuse_dask(x, x, weights=reference_weights, device="cpu", chunk=np.int64(64),
                      tile_pixels=np.int32(4096))  # fmt: skip
    assert image.chunks == ((40,), (40,))


@pytest.mark.parametrize("shape", [(0, 40, 40), (2, 0, 40, 40), (0, 40, 40, 3)])
def test_an_empty_stack_is_a_clear_error(reference_weights: Path, shape: tuple[int, ...]) -> None:
    x = da.zeros(shape, dtype=np.uint8)
    with pytest.raises(ValueError, match=r"the inputs hold no plane to fuse: a is \((\d+, )?0, "):
        fuse(x, x, weights=reference_weights, device="cpu")
    with pytest.raises(ValueError, match="no plane to fuse"):
        fuse_dask(x, x, weights=reference_weights, device="cpu")


def test_as_dask_gives_one_chunk_per_plane() -> None:
    rgb = np.zeros((2, 30, 40, 3), np.uint8)
    assert lazy.as_dask(rgb).chunks == ((1, 1), (30,), (40,), (3,))
    assert lazy.as_dask(rgb[0]).chunks == ((30,), (40,), (3,))
    assert lazy.as_dask(np.zeros((30, 40, 4))).chunks == ((30,), (40,), (4,))
    grey = np.zeros((3, 30, 40), np.uint16)
    assert lazy.as_dask(grey).chunks == ((1, 1, 1), (30,), (40,))
    assert lazy.as_dask(grey[0]).chunks == ((30,), (40,))
    # a grey stack whose planes are 3 pixels wide: say so
    assert lazy.as_dask(np.zeros((5, 30, 3)), rgb=False).chunks == ((1,) * 5, (30,), (3,))
    np.testing.assert_array_equal(lazy.as_dask(rgb).compute(), rgb)


def test_one_colour_rule_for_as_dask_fuse_dask_and_fuse() -> None:
    assert lazy.is_colour((30, 40, 3)) and lazy.is_colour((2, 30, 40, 4))
    assert not lazy.is_colour((30, 40)) and not lazy.is_colour((40, 3))  # 2-D: grey
    assert not lazy.is_colour((5, 30, 40))
    assert not lazy.is_colour((5, 30, 3), rgb=False) and lazy.is_colour((30, 40, 5), rgb=True)


def test_a_grey_stack_three_pixels_wide_keeps_one_chunk_per_plane(reference_weights: Path) -> None:
    rng = np.random.default_rng(3)
    a, b = (rng.random((3, 20, 3)).astype(np.float32) for _ in range(2))
    assert lazy.as_dask(a).chunks == ((3,), (20,), (3,))  # guessed: one colour image
    image = fuse_dask(lazy.as_dask(a, rgb=False), lazy.as_dask(b, rgb=False), rgb=False,
                      weights=reference_weights, device="cpu")  # fmt: skip
    assert image.shape == (3, 20, 3) and image.chunks[0] == (1, 1, 1)
    for z in range(3):
        expected = fuse(a[z], b[z], weights=reference_weights, device="cpu").image
        np.testing.assert_allclose(image[z].compute(), expected, rtol=0, atol=1e-5)


@pytest.mark.parametrize("colour", ["rgb", "grey"])
def test_lazy_luma_equals_eager_luma(reference_weights: Path, colour: str) -> None:
    rng = np.random.default_rng(3)
    a = (rng.random((90, 100)) * 255).astype(np.uint8)
    b = (rng.random((90, 100)) * 255).astype(np.uint8)
    if colour == "rgb":  # channels that differ strongly: a swapped luma weight shows
        ramp = np.linspace(0, 255, 100, dtype=np.float64)[None, :].repeat(90, 0)
        b = np.stack([ramp, 255 - ramp, (rng.random((90, 100)) * 40)], axis=-1).astype(np.uint8)
    lazy_result = fuse(da.from_array(a, chunks=(45, 50)), da.from_array(b, chunks=(45, 50, *b.shape[2:])),
                       weights=reference_weights, device="cpu")  # fmt: skip
    eager_result = fuse(a, b, weights=reference_weights, device="cpu")
    assert lazy_result.luma.shape == eager_result.luma.shape == (90, 100)
    np.testing.assert_allclose(lazy_result.luma.compute(), eager_result.luma, rtol=0, atol=1e-5)
    np.testing.assert_allclose(lazy_result.image.compute(), eager_result.image, rtol=0, atol=1e-5)


@pytest.mark.parametrize(
    "data",
    [
        np.ones((32, 32), np.complex64),
        np.array([["a"] * 32] * 32),
        np.full((32, 32), np.datetime64("2024-01-01")),
        np.full((32, 32), None, dtype=object),
    ],
    ids=["complex", "str", "datetime", "object"],
)
def test_unfusable_dtypes_are_refused_when_the_graph_is_built(
    reference_weights: Path, data: np.ndarray
) -> None:
    good = np.zeros((32, 32), np.float32)
    for pair in ((data, good), (good, data)):
        with pytest.raises((ValueError, TypeError)) as eager:
            fuse(*pair, weights=reference_weights, device="cpu")
        lazy_pair = [da.from_array(x, chunks=16) if x is data else x for x in pair]
        for lazy_fuse in (fuse, fuse_dask):
            with pytest.raises(type(eager.value)) as exc:  # here, not only at .compute()
                lazy_fuse(*lazy_pair, weights=reference_weights, device="cpu")
            assert str(exc.value) == str(eager.value)
