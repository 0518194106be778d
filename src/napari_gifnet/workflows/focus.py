"""Per-pixel focus measures and plane selection for focus stacks (no torch).

Everything here streams over the planes of a stack: it keeps the best and
the second-best score per pixel and the index of the best plane
(:class:`BestPlane`), so memory holds a few full-size planes whatever the
number of planes. :func:`edge_focus` is the score ``fuse_stack(method="focus")``
decides by, :func:`guarded_median` cleans the plane map, :func:`noise_sigma`
measures the noise, :func:`dissimilarity` compares a plane with a fused result.

The noisy-stack path (noise above :data:`NOISE_THRESHOLD`: :func:`noisy_focus`,
:class:`SoftBlend`, :func:`selection_share`) blends the planes by weights
``exp(-(best - score) / T)`` instead (docs/stacks.md, "Noisy stacks").
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import ndimage

from ..engine.colour import LUMA_WEIGHTS

__all__ = [
    "BestPlane", "dissimilarity", "edge_focus", "edge_focus_torch", "guarded_median", "luma_of",
    "noise_sigma", "noisy_focus", "noisy_temperature", "selection_share", "SoftBlend",
]  # fmt: skip

#: Gaussian sigma (pixels) of :func:`dissimilarity`'s local averaging.
FOCUS_SIGMA = 2.0
#: :func:`edge_focus`: Gaussian pre-blur of the luma (noise) and fine window (3 taps each);
#: the coarse term's block size (px), its Gaussian on the block grid (blocks) and weight.
EDGE_PRE_SIGMA, EDGE_FINE_SIGMA = 0.5, 0.5
EDGE_COARSE_BLOCK, EDGE_COARSE_SIGMA, EDGE_COARSE_WEIGHT = 4, 1.1, 0.07
#: :func:`guarded_median`: window and the confidence above which a decision is kept.
GUARD_SIZE, GUARD_CONFIDENCE = 5, 0.4
#: Noise (standard deviation on the [0, 1] scale) above which ``fuse_stack`` takes the
#: noisy-stack path: clean 8-bit stacks of scikit-image photographs measure 0.25-0.5 / 255
#: (quantisation, the photographs' own grain), noise of 1 / 255 0.99, and the soft blend
#: gains 1.2 dB over selection at 1 / 255 (``docs/stacks.md``).
NOISE_THRESHOLD = 0.9 / 255
#: The noisy-stack path: the Laplacian of Gaussian's sigma, the windows of the
#: weights' and the depth map's scores (px) and the temperature in units of the
#: noise's mean contribution to the weights' score.
NOISY_LOG_SIGMA, NOISY_WEIGHT_SIGMA, NOISY_DEPTH_SIGMA, NOISY_TEMPERATURE = 1.0, 1.0, 4.0, 4.0
#: :func:`selection_share`: the best plane's weights' score, in units of the noise's mean
#: contribution, from which the selected plane's own value starts to take over the blend,
#: and from which it is taken alone.
SHARE_FROM, SHARE_FULL = 32.0, 128.0
_MAD = 0.6744897501960817  # the median of |N(0, 1)|
_BT601 = np.array(LUMA_WEIGHTS, dtype=np.float32)
_EPS = 1e-12


def luma_of(plane: np.ndarray) -> np.ndarray:
    """Float32 (H, W) luma of a grey (H, W) or RGB (H, W, 3) float plane (BT.601)."""
    plane = np.asarray(plane, dtype=np.float32)
    return plane @ _BT601 if plane.ndim == 3 else plane


def _gaussian_taps(sigma: float, radius: int) -> list[float]:
    """A normalised Gaussian kernel of ``sigma`` truncated at ``radius`` px (Python floats)."""
    k = np.exp(-(np.arange(-radius, radius + 1, dtype=np.float64) ** 2) / (2 * sigma * sigma))
    return [float(v) for v in k / k.sum()]


def _valid(x: np.ndarray, taps: list[float], axis: int) -> np.ndarray:
    """Symmetric filter of float32 ``x`` along ``axis``, "valid" part only (loses len // 2 a side).

    numpy slices instead of :func:`scipy.ndimage.correlate1d`, which computes
    in float64 and is several times slower for these short kernels.
    """
    r = len(taps) // 2
    n = x.shape[axis] - 2 * r

    def at(start: int) -> np.ndarray:
        return x[start : start + n] if axis == 0 else x[:, start : start + n]

    out = np.multiply(at(r), np.float32(taps[r]))
    tmp = np.empty_like(out)
    for j in range(1, r + 1):
        np.add(at(r - j), at(r + j), out=tmp)
        tmp *= np.float32(taps[r + j])
        out += tmp
    return out


def _smooth(x: np.ndarray, taps: list[float]) -> np.ndarray:
    """Separable "valid" filter along both axes."""
    return _valid(_valid(x, taps, 0), taps, 1)


def _laplace(x: np.ndarray) -> np.ndarray:
    """The 3 x 3 (4-neighbour) Laplacian of float32 ``x``, "valid" part only."""
    out = x[:-2, 1:-1] + x[2:, 1:-1]
    out += x[1:-1, :-2]
    out += x[1:-1, 2:]
    out -= np.float32(4.0) * x[1:-1, 1:-1]
    return out


_PRE_TAPS = _gaussian_taps(EDGE_PRE_SIGMA, 1)
_FINE_TAPS = _gaussian_taps(EDGE_FINE_SIGMA, 1)
_REACH = 3  # pre-blur, Laplacian and fine window: 1 px each


def _fine_mirror(x: np.ndarray) -> np.ndarray:
    """The fine term on a plane too small to mirror by slicing (scipy, filter by filter)."""
    pre = ndimage.correlate1d(x, _PRE_TAPS, axis=0, mode="mirror")
    pre = ndimage.correlate1d(pre, _PRE_TAPS, axis=1, mode="mirror")
    lap = ndimage.laplace(pre, mode="mirror")
    fine = ndimage.correlate1d(lap * lap, _FINE_TAPS, axis=0, mode="mirror")
    return ndimage.correlate1d(fine, _FINE_TAPS, axis=1, mode="mirror").astype(np.float32)


def edge_focus(luma: np.ndarray) -> np.ndarray:
    """Two-scale focus score that keeps depth edges (``fuse_stack``'s default decision).

    Fine term: ``e = G_0.5 * (Laplacian(G_0.5 * luma))^2``, the squared
    3 x 3 Laplacian of the luma pre-blurred by a 3-tap Gaussian of sigma
    0.5 px (against noise), averaged by the same 3-tap Gaussian (mirrored
    borders). Coarse term: ``e`` averaged over 4 x 4 blocks, smoothed on that
    grid by a Gaussian of sigma 1.1 blocks and spread back over its blocks
    (about a sigma-4.5 px window at 1/16 of the cost). The score is ``e +
    0.07 x coarse``. The fine term reaches about 1 px, so an in-focus edge
    does not lend its energy to defocused pixels across a depth step (the old
    sigma-2 window reached about 4 px); the small coarse term decides where the
    fine one is flat, noisy or cannot tell neighbouring focus depths apart.

    Parameters
    ----------
    luma : numpy.ndarray
        2-D float image (values in [0, 1]).

    Returns
    -------
    numpy.ndarray
        float32, same shape; larger is sharper.
    """
    x = np.asarray(luma, dtype=np.float32)
    h, w = x.shape
    if min(h, w) <= _REACH:
        fine = _fine_mirror(x)
    else:  # mirrored once by the reach of the three filters (the same: they are symmetric)
        fine = _laplace(_smooth(np.pad(x, _REACH, mode="reflect"), _PRE_TAPS))
        np.square(fine, out=fine)
        fine = _smooth(fine, _FINE_TAPS)
    f = EDGE_COARSE_BLOCK
    gh, gw = -(-h // f), -(-w // f)
    if (gh * f, gw * f) != (h, w):
        fine = np.pad(fine, ((0, gh * f - h), (0, gw * f - w)), mode="edge")
    cols = fine[:, 0::f].copy()  # block sums by strided slices (a reduce over axes 1 and 3
    for j in range(1, f):  # of the 4-D view is several times slower)
        cols += fine[:, j::f]
    grid = cols[0::f].copy()
    for j in range(1, f):
        grid += cols[j::f]
    grid = ndimage.gaussian_filter(grid, EDGE_COARSE_SIGMA, mode="mirror")
    grid *= np.float32(EDGE_COARSE_WEIGHT / (f * f))
    fine.reshape(gh, f, gw, f)[...] += grid[:, None, :, None]
    return fine if fine.shape == (h, w) else np.ascontiguousarray(fine[:h, :w])


def edge_focus_torch(luma: Any, device: Any = "cpu") -> Any:
    """:func:`edge_focus` in torch, on ``device`` (the path ``fuse_stack`` takes on a GPU).

    The same filters in the same order (reflected borders, the 3-tap
    Gaussians and the 3 x 3 Laplacian as "valid" convolutions, the coarse
    term on 4 x 4 blocks), so it agrees with :func:`edge_focus` to float32
    rounding. Planes too small to mirror by the filters' reach, or whose
    block grid is too small for the coarse Gaussian, are left to
    :func:`edge_focus` (they cost nothing).

    Parameters
    ----------
    luma
        2-D float image (numpy array or tensor, values in [0, 1]).
    device
        A torch device (``"cuda"``, ``"cuda:1"``, ``"cpu"``...).

    Returns
    -------
    torch.Tensor
        float32 (H, W) on ``device``; larger is sharper.
    """
    import torch
    import torch.nn.functional as F

    dev = torch.device(device)
    x = torch.as_tensor(np.asarray(luma, dtype=np.float32) if not torch.is_tensor(luma) else luma,
                        dtype=torch.float32, device=dev)  # fmt: skip
    h, w = x.shape
    f = EDGE_COARSE_BLOCK
    gh, gw = -(-h // f), -(-w // f)
    radius = int(4.0 * EDGE_COARSE_SIGMA + 0.5)  # scipy's gaussian_filter truncates at 4 sigma
    if min(h, w) <= _REACH or min(gh, gw) <= radius:
        return torch.from_numpy(edge_focus(x.cpu().numpy())).to(dev)

    def separable(t: Any, taps: list[float]) -> Any:
        k = torch.tensor(taps, dtype=torch.float32, device=dev)
        t = F.conv2d(t, k.view(1, 1, -1, 1))
        return F.conv2d(t, k.view(1, 1, 1, -1))

    laplace = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]],
                           dtype=torch.float32, device=dev).view(1, 1, 3, 3)  # fmt: skip
    t = F.pad(x[None, None], (_REACH,) * 4, mode="reflect")
    fine = separable(F.conv2d(separable(t, _PRE_TAPS), laplace).square(), _FINE_TAPS)
    fine = F.pad(fine, (0, gw * f - w, 0, gh * f - h), mode="replicate")
    grid = F.avg_pool2d(fine, f) * float(f * f)  # block sums
    gauss = _gaussian_taps(EDGE_COARSE_SIGMA, radius)
    grid = separable(F.pad(grid, (radius,) * 4, mode="reflect"), gauss)
    grid = grid * float(EDGE_COARSE_WEIGHT / (f * f))
    fine = fine + grid.repeat_interleave(f, dim=2).repeat_interleave(f, dim=3)
    return fine[0, 0, :h, :w].contiguous()


def noise_sigma(luma: np.ndarray) -> float:
    """The standard deviation of the white noise in a 2-D image (robust Immerkaer).

    The 3 x 3 kernel ``[1, -2, 1]^T [1, -2, 1]`` (Immerkaer, 1996; the sum
    of its squared taps is 36) cancels flat areas and linear ramps, so what
    defocus leaves of the scene hardly answers; the median of the response's
    magnitude, ``0.6745 x 6 sigma`` for white noise, ignores the minority of
    pixels where texture answers. ``fuse_stack`` takes the smallest over
    the planes (the most defocused plane holds the least texture).

    Parameters
    ----------
    luma : numpy.ndarray
        2-D float image.

    Returns
    -------
    float
        Sigma on the image's scale (0.0 for images under 3 px a side).
    """
    x = np.asarray(luma, dtype=np.float32)
    if min(x.shape) < 3:
        return 0.0
    d = x[:, :-2] - 2 * x[:, 1:-1] + x[:, 2:]
    d = d[:-2] - 2 * d[1:-1] + d[2:]
    return float(np.median(np.abs(d)) / (_MAD * 6.0))


def _log_energy(luma: np.ndarray) -> np.ndarray:
    """The squared Laplacian of Gaussian (sigma :data:`NOISY_LOG_SIGMA`) of a plane."""
    x = np.asarray(luma, dtype=np.float32)
    lap = ndimage.gaussian_laplace(x, NOISY_LOG_SIGMA, mode="mirror")
    return lap * lap


def _noise_energy(sigma: float) -> float:
    """The mean that white noise of ``sigma`` adds to the weights' score: ``sigma**2``
    times the sum of the squared Laplacian-of-Gaussian taps (the window keeps means)."""
    impulse = np.zeros((33, 33), np.float32)
    impulse[16, 16] = 1.0
    taps = ndimage.gaussian_laplace(impulse, NOISY_LOG_SIGMA, mode="constant")
    return float(sigma * sigma * np.square(taps, dtype=np.float64).sum())


def noisy_temperature(sigma: float) -> float:
    """The soft blend's temperature for noise ``sigma``: ``NOISY_TEMPERATURE`` times
    the mean that the noise adds to the weights' score."""
    return NOISY_TEMPERATURE * _noise_energy(sigma)


def selection_share(top: np.ndarray, sigma: float) -> np.ndarray:
    """Per pixel, the share of the selected plane's own value in the noisy-stack output.

    ``top`` is the best plane's weights' score; in units of the noise's mean
    contribution (``r``) the share rises linearly from 0 at
    :data:`SHARE_FROM` to 1 at :data:`SHARE_FULL`: detail that stands far
    above the noise (a sharp texture, a photograph's grain) is copied from
    its plane rather than averaged with the neighbouring, slightly defocused
    planes; flat and weak areas take the blend, which averages the noise
    away.

    Returns
    -------
    numpy.ndarray
        float64 (H, W) in [0, 1].
    """
    r = np.asarray(top, dtype=np.float64) / max(_noise_energy(sigma), 1e-300)
    return np.clip((r - SHARE_FROM) / (SHARE_FULL - SHARE_FROM), 0.0, 1.0)


def noisy_focus(luma: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The noisy-stack scores of a luma plane: (weights' score, depth score).

    Both are the squared Laplacian of Gaussian (sigma
    :data:`NOISY_LOG_SIGMA`), averaged by Gaussians of
    :data:`NOISY_WEIGHT_SIGMA` and :data:`NOISY_DEPTH_SIGMA` px (mirrored
    borders): wider windows than :func:`edge_focus` so the noise's energy
    averages out; the depth map takes the wider one.

    Returns
    -------
    tuple of numpy.ndarray
        float32 (H, W) each; larger is sharper.
    """
    energy = _log_energy(luma)
    return (ndimage.gaussian_filter(energy, NOISY_WEIGHT_SIGMA, mode="mirror"),
            ndimage.gaussian_filter(energy, NOISY_DEPTH_SIGMA, mode="mirror"))  # fmt: skip


class SoftBlend:
    """Running average of planes weighted by ``exp((score - max score) / temperature)``.

    One pass over the planes, O(1) planes in memory: the running maximum is
    kept and the sums are rescaled when it rises (a streaming log-sum-exp).

    Parameters
    ----------
    temperature : float
        In the score's units (> 0).
    """

    def __init__(self, temperature: float) -> None:
        self.temperature = float(temperature)
        self.top: np.ndarray | None = None
        self.total: np.ndarray | None = None
        self.sums: list[np.ndarray] = []

    def update(self, score: np.ndarray, *values: np.ndarray) -> None:
        """Add a plane: its (H, W) ``score`` and any number of (H, W[, C]) value arrays."""
        s = np.asarray(score, dtype=np.float64)
        if self.top is None:
            self.top, self.total = s.copy(), np.ones_like(s)
            self.sums = [np.array(v, dtype=np.float64) for v in values]
            return
        top = np.maximum(self.top, s)
        old = np.exp((self.top - top) / self.temperature)
        new = np.exp((s - top) / self.temperature)
        self.top = top
        self.total = self.total * old + new
        for acc, v in zip(self.sums, values):
            w_old, w_new = (old, new) if acc.ndim == 2 else (old[..., None], new[..., None])
            acc *= w_old
            acc += w_new * np.asarray(v, dtype=np.float64)

    def result(self) -> list[np.ndarray]:
        """The weighted averages (float64), one per value array given to :meth:`update`."""
        assert self.total is not None, "no planes were added"
        return [acc / (self.total if acc.ndim == 2 else self.total[..., None])
                for acc in self.sums]  # fmt: skip


def guarded_median(
    index: np.ndarray,
    confidence: np.ndarray,
    size: int = GUARD_SIZE,
    threshold: float = GUARD_CONFIDENCE,
    planes: int | None = None,
) -> np.ndarray:
    """Median-filter a plane map only where its decision is unconfident.

    A blind median moves confident decisions across depth steps (at an
    occlusion edge the minority side loses up to ``size // 2`` pixels); here
    pixels whose ``confidence`` exceeds ``threshold`` keep their index and
    only the others (flat, noisy, ambiguous areas) take the ``size x size``
    median (borders: nearest). With ``planes`` (the number of planes, at
    most 16) the median is computed by counting (one box filter per plane
    index, faster than a rank filter; the same result).

    Returns
    -------
    numpy.ndarray
        int32, shaped like ``index``.
    """
    index = np.asarray(index)
    h, w = index.shape
    if planes is not None and planes <= 16 and size < 16 and min(h, w) > 0:
        r, need = size // 2, size * size // 2 + 1  # the median is the need-th smallest
        med = np.zeros(index.shape, np.int32)
        padded = np.pad(index, r, mode="edge")
        for k in range(planes - 1):  # med = the number of k with fewer than need at or below k
            at_most = (padded <= k).view(np.uint8)
            rows = at_most[:h].copy()
            for j in range(1, size):
                rows += at_most[j : j + h]
            box = rows[:, :w].copy()
            for j in range(1, size):
                box += rows[:, j : j + w]
            med += box < need
    else:
        med = ndimage.median_filter(index, size=size, mode="nearest")
    return np.where(confidence > threshold, index, med).astype(np.int32)


def dissimilarity(x: np.ndarray, y: np.ndarray, sigma: float = FOCUS_SIGMA) -> np.ndarray:
    """Local mean squared difference of two 2-D images (Gaussian window ``sigma``)."""
    d = np.asarray(x, dtype=np.float32) - np.asarray(y, dtype=np.float32)
    return ndimage.gaussian_filter(d * d, sigma, mode="mirror")


class BestPlane:
    """Running per-pixel selection of the best plane by a score.

    Parameters
    ----------
    shape : tuple of int
        (H, W) of the planes.
    larger_is_better : bool
        True for a focus measure (argmax), False for a dissimilarity (argmin).

    Attributes
    ----------
    index : numpy.ndarray
        int32 (H, W), the index of the best plane so far (ties: the first).
    """

    def __init__(self, shape: tuple[int, int], larger_is_better: bool = True) -> None:
        self.sign = 1.0 if larger_is_better else -1.0
        self.best = np.full(shape, -np.inf, dtype=np.float32)
        self.second = np.full(shape, -np.inf, dtype=np.float32)
        self.index = np.zeros(shape, dtype=np.int32)
        self.count = 0

    def update(self, i: int, score: np.ndarray) -> np.ndarray:
        """Offer plane ``i`` with its per-pixel ``score``.

        Returns
        -------
        numpy.ndarray
            bool (H, W): the pixels where plane ``i`` is now the best (ties
            keep the earlier plane), so a caller can carry per-pixel values of
            the best plane along.
        """
        s = np.asarray(score, dtype=np.float32)
        s = s if self.sign > 0 else -s
        better = s > self.best
        # the new second best: max(second, min(s, best)) (best if s wins, else max(second, s))
        np.maximum(self.second, np.minimum(s, self.best), out=self.second)
        np.maximum(self.best, s, out=self.best)
        self.index[better] = i
        self.count += 1
        return better

    def confidence(self) -> np.ndarray:
        """Normalised margin between the best and second-best score, in [0, 1].

        For scores where larger is better (focus): ``(best - second) / best``;
        for dissimilarities: ``(second - best) / second`` (both 0 where the
        two are equal, e.g. flat regions; 1 where only one plane fits). With a
        single plane offered: all ones.
        """
        if self.count < 2:
            return np.ones(self.best.shape, np.float32)
        best, second = self.sign * self.best, self.sign * self.second
        if self.sign > 0:
            margin, scale = best - second, best
        else:
            margin, scale = second - best, second
        out = np.where(scale > _EPS, margin / np.maximum(scale, _EPS), 0.0)
        return np.clip(out, 0.0, 1.0).astype(np.float32)
