"""Exposure fusion. Mertens exposure fusion against a second implementation written from the paper
(Mertens, Kautz & Van Reeth 2007) and the steps OpenCV documents for
``MergeMertens`` (its pyrDown / pyrUp, reflect-101 borders, floor(log2(min side))
levels), plus properties; OpenCV itself is compared in benchmarks/bench_exposure.py.
The N-image Laplacian pyramid fusion against its rule written out.
"""

from __future__ import annotations

import numpy as np
import pytest

from napari_gifnet.engine.preprocess import to_rgb_unit
from napari_gifnet.methods.classical import (
    fuse_laplacian,
    fuse_mertens,
    laplacian_fusion,
    laplacian_pyramid,
    mertens_fusion,
    reconstruct_laplacian,
)

KERNEL = np.array([1.0, 4.0, 6.0, 4.0, 1.0]) / 16.0


def _correlate5(padded: np.ndarray, h: int, w: int) -> np.ndarray:
    """5 x 5 binomial correlation of an image padded by 2 on each side, (h, w) out."""
    out = np.zeros((h, w))
    for u in range(5):
        for v in range(5):
            out += KERNEL[u] * KERNEL[v] * padded[u : u + h, v : v + w]
    return out


def _pyr_down(x: np.ndarray) -> np.ndarray:
    # numpy's "reflect" padding is reflect-101 (the edge sample is not repeated)
    blurred = _correlate5(np.pad(x, 2, mode="reflect"), *x.shape)
    return blurred[::2, ::2]  # ((H + 1) // 2, (W + 1) // 2)


def _pyr_up(x: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    h, w = 2 * x.shape[0], 2 * x.shape[1]
    zeros = np.zeros((h, w))
    zeros[::2, ::2] = x
    return 4.0 * _correlate5(np.pad(zeros, 2, mode="reflect"), h, w)[: shape[0], : shape[1]]


def _reference(images: list[np.ndarray], wc=1.0, ws=1.0, we=1.0) -> np.ndarray:
    """Exposure fusion written out step by step, loops and all, in float64."""
    chans = [im if im.ndim == 3 else im[..., None] for im in images]
    weights = []
    for c in chans:
        grey = c[..., 0] if c.shape[2] == 1 else c @ np.array([0.299, 0.587, 0.114])
        p = np.pad(grey, 1, mode="reflect")
        lap = p[:-2, 1:-1] + p[2:, 1:-1] + p[1:-1, :-2] + p[1:-1, 2:] - 4.0 * grey
        wt = np.abs(lap) ** wc
        if c.shape[2] == 3:
            wt = wt * np.sqrt(((c - c.mean(axis=2, keepdims=True)) ** 2).sum(axis=2)) ** ws
        well = np.ones(grey.shape)
        for k in range(c.shape[2]):
            well = well * np.exp(-((c[..., k] - 0.5) ** 2) / 0.08)
        weights.append(wt * well**we + 1e-12)
    total = sum(weights)
    levels = int(np.floor(np.log2(min(grey.shape))))
    out = None
    for c, wt in zip(chans, weights):
        gw = [wt / total]
        for _ in range(levels):
            gw.append(_pyr_down(gw[-1]))
        per_channel = []
        for k in range(c.shape[2]):
            g = [c[..., k]]
            for _ in range(levels):
                g.append(_pyr_down(g[-1]))
            lap = [g[i] - _pyr_up(g[i + 1], g[i].shape) for i in range(levels)] + [g[-1]]
            per_channel.append([lv * gl for lv, gl in zip(lap, gw)])
        out = per_channel if out is None else [
            [a + b for a, b in zip(oa, ob)] for oa, ob in zip(out, per_channel)
        ]  # fmt: skip
    result = []
    for pyr in out:
        img = pyr[-1]
        for lv in reversed(pyr[:-1]):
            img = lv + _pyr_up(img, lv.shape)
        result.append(img)
    stacked = np.stack(result, axis=-1)
    return stacked if images[0].ndim == 3 else stacked[..., 0]


def _bracket(shape, gains, seed=0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    scene = np.cumsum(np.cumsum(rng.random(shape), axis=0), axis=1)
    scene = scene / scene.max() + 0.2 * rng.random(shape)
    # 8-bit levels as multiples of 1/256: the Laplacian's sums are exact in float64, so
    # clipped (flat) regions have weights exactly at the 1e-12 floor in both computations
    return [np.round(np.clip(scene * g, 0, 1) * 255) / 256 for g in gains]


@pytest.mark.parametrize("shape", [(23, 30, 3), (16, 16, 3), (9, 40, 3), (21, 17)])
def test_matches_the_step_by_step_reference(shape) -> None:
    images = _bracket(shape, (0.35, 0.9, 2.4), seed=len(shape) + shape[0])
    np.testing.assert_allclose(mertens_fusion(images), _reference(images), rtol=0, atol=1e-10)
    np.testing.assert_allclose(
        mertens_fusion(images[:2], contrast=0.5, saturation=2.0, exposure=0.0),
        _reference(images[:2], 0.5, 2.0, 0.0),
        rtol=0,
        atol=1e-10,
    )


def test_fuse_mertens_blends_colour_pairs_in_rgb() -> None:
    under, over = (np.round(b * 256).astype(np.uint8) for b in _bracket((24, 33, 3), (0.5, 2.0)))
    result = fuse_mertens(under, over)
    unit = [to_rgb_unit(x).astype(np.float64) for x in (under, over)]  # the engine's x / 255
    expected = np.clip(_reference(unit), 0, 1)
    np.testing.assert_allclose(result.image, expected, rtol=0, atol=1e-6)
    assert result.metadata["colour"] == "RGB channels blended"
    np.testing.assert_allclose(
        result.luma, result.image @ np.array([0.299, 0.587, 0.114]), rtol=0, atol=1e-6
    )
    grey = fuse_mertens(under[..., 1], over[..., 1])  # grey pairs: the 1-channel path
    np.testing.assert_allclose(
        grey.luma, np.clip(_reference([u[..., 1] for u in unit]), 0, 1),
        rtol=0, atol=1e-6,
    )  # fmt: skip


def test_properties() -> None:
    images = _bracket((20, 26, 3), (0.4, 1.0, 2.5), seed=7)
    # a single image (weights 1) and copies of one image come back unchanged
    np.testing.assert_allclose(mertens_fusion(images[1:2]), images[1], rtol=0, atol=1e-12)
    np.testing.assert_allclose(mertens_fusion([images[0]] * 3), images[0], rtol=0, atol=1e-12)
    # constants: no contrast anywhere, equal weights, so the mean of the bracket
    flat = [np.full((20, 26, 3), v) for v in (0.1, 0.45, 0.9)]
    np.testing.assert_allclose(mertens_fusion(flat), np.mean(flat, axis=0), rtol=0, atol=1e-12)
    # all exponents 0: equal weights, the pyramid blend of the mean is the mean
    np.testing.assert_allclose(
        mertens_fusion(images, contrast=0, saturation=0, exposure=0),
        np.mean(images, axis=0),
        rtol=0,
        atol=1e-12,
    )
    copies = [im.copy() for im in images]
    mertens_fusion(images)
    for im, c in zip(images, copies):
        np.testing.assert_array_equal(im, c)


def test_refuses_bad_input() -> None:
    with pytest.raises(ValueError, match="at least one"):
        mertens_fusion([])
    with pytest.raises(ValueError, match="one shape"):
        mertens_fusion([np.zeros((8, 8)), np.zeros((8, 9))])
    with pytest.raises(ValueError, match=r"\(H, W\) or \(H, W, 3\)"):
        mertens_fusion([np.zeros((8, 8, 4))])


def test_laplacian_fusion_of_n_images() -> None:
    grey = _bracket((24, 28), (0.4, 1.0, 2.5), seed=11)
    # two images: exactly the "laplacian" baseline's luma
    pair = fuse_laplacian(grey[0], grey[1], normalization=(0.0, 1.0)).luma
    np.testing.assert_allclose(laplacian_fusion(grey[:2]), pair, rtol=0, atol=1e-6)
    # three: per coefficient the largest magnitude (first on ties), the base averaged
    pyramids = [laplacian_pyramid(g) for g in grey]
    fused = []
    for lvl in range(len(pyramids[0]) - 1):
        out = pyramids[0][lvl].copy()
        for p in pyramids[1:]:
            out = np.where(np.abs(p[lvl]) > np.abs(out), p[lvl], out)
        fused.append(out)
    fused.append(sum(p[-1] for p in pyramids) / 3)
    expected = np.clip(reconstruct_laplacian(fused), 0, 1)
    np.testing.assert_allclose(laplacian_fusion(grey), expected, rtol=0, atol=1e-6)
    np.testing.assert_allclose(laplacian_fusion([grey[1]] * 3), grey[1], rtol=0, atol=1e-6)
    # colour: the luma is fused, and a lone colour input keeps its chroma
    tint = np.clip(grey[1][..., None] * 0.8 + np.array([0.1, 0.0, -0.05]), 0, 1)
    out = laplacian_fusion([grey[0], tint])
    assert out.shape == (24, 28, 3)
    luma = laplacian_fusion([grey[0], tint @ np.array([0.299, 0.587, 0.114])])
    inside = (out > 0.01).all(axis=2) & (out < 0.99).all(axis=2)  # not clipped
    np.testing.assert_allclose(
        (out @ np.array([0.299, 0.587, 0.114]))[inside], luma[inside], atol=1e-5
    )
    cb = (out[..., 2] - out @ np.array([0.299, 0.587, 0.114])) / 1.772
    cb_tint = (tint[..., 2] - tint @ np.array([0.299, 0.587, 0.114])) / 1.772
    np.testing.assert_allclose(cb[inside], cb_tint[inside], atol=1e-5)
