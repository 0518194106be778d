"""Differentiable SSIM and multi-scale SSIM (Wang, Simoncelli and Bovik, 2003), two variants.

:func:`published_ms_ssim` is the variant GIFNet's published training code
calls for its common loss (``msssim(rec, vis, normalize=True)``), the default
of ``napari-gifnet train``: always five levels, the data range ``L`` from the
first image alone (:func:`_published_range`), nothing clamped or renormalised.
:func:`ms_ssim` is the standard definition (``napari-gifnet train --ssim
standard``): as many scales as fit (:func:`ms_ssim_plan`; their weights
renormalised to sum 1), negative terms clamped to a small positive number
(the value stays defined, the gradient finite). docs/training.md ("The
losses") defines both in full, with their tests and values.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

#: The standard per-scale weights of MS-SSIM.
MS_SSIM_WEIGHTS: tuple[float, ...] = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
#: Side of the standard Gaussian window.
WINDOW_SIZE = 11
#: Standard deviation of the standard Gaussian window.
WINDOW_SIGMA = 1.5
_K1, _K2 = 0.01, 0.03
_FLOOR = 1e-6


def _gaussian(x: torch.Tensor, sigma: float) -> torch.Tensor:
    g = torch.exp(-(x**2) / (2 * sigma**2))
    return g / g.sum()


def gaussian_window(size: int = WINDOW_SIZE, sigma: float = WINDOW_SIGMA) -> torch.Tensor:
    """Normalised 1-D Gaussian of ``size`` taps (float64)."""
    return _gaussian(torch.arange(size, dtype=torch.float64) - (size - 1) / 2, sigma)


def _filter(x: torch.Tensor, window: torch.Tensor) -> torch.Tensor:
    """Separable "valid" Gaussian filter of each channel of (N, C, H, W)."""
    c = x.shape[1]
    k = window.to(x.dtype).to(x.device)
    x = F.conv2d(x, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)
    return F.conv2d(x, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)


def ssim_terms(
    x: torch.Tensor, y: torch.Tensor, window: torch.Tensor, data_range: float = 1.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean SSIM and mean contrast-structure term per sample.

    Parameters
    ----------
    x, y : torch.Tensor
        (N, C, H, W) images; H and W at least the window length.
    window : torch.Tensor
        1-D window (:func:`gaussian_window`).
    data_range : float
        Dynamic range of the data (1 for [0, 1] images).

    Returns
    -------
    ssim, cs : torch.Tensor
        Shape (N,): the means over channels and valid positions.
    """
    c1, c2 = (_K1 * data_range) ** 2, (_K2 * data_range) ** 2
    mu_x, mu_y = _filter(x, window), _filter(y, window)
    sxx = _filter(x * x, window) - mu_x**2
    syy = _filter(y * y, window) - mu_y**2
    sxy = _filter(x * y, window) - mu_x * mu_y
    cs_map = (2 * sxy + c2) / (sxx + syy + c2)
    ssim_map = (2 * mu_x * mu_y + c1) / (mu_x**2 + mu_y**2 + c1) * cs_map
    return ssim_map.flatten(1).mean(1), cs_map.flatten(1).mean(1)


def ms_ssim_plan(height: int, width: int, max_scales: int = len(MS_SSIM_WEIGHTS)) -> tuple[int, int]:
    """(number of scales, window size) :func:`ms_ssim` uses for an image size.

    As many scales (up to ``max_scales``) as keep the coarsest scale at least
    one 11 x 11 window large; below 11 pixels, one scale with the largest odd
    window that fits.
    """
    side = min(height, width)
    if side < 1:
        raise ValueError(f"MS-SSIM needs a non-empty image, got {height} x {width}")
    scales = 0
    while scales < max_scales and (side >> scales) >= WINDOW_SIZE:
        scales += 1
    if scales == 0:
        return 1, side if side % 2 else side - 1
    return scales, WINDOW_SIZE


def ms_ssim(
    x: torch.Tensor,
    y: torch.Tensor,
    data_range: float = 1.0,
    *,
    scales: int | None = None,
    reduction: str = "mean",
) -> torch.Tensor:
    """Multi-scale SSIM of two image batches (differentiable).

    Parameters
    ----------
    x, y : torch.Tensor
        (N, C, H, W) images of the same shape.
    data_range : float, default 1.0
        Dynamic range of the data.
    scales : int, optional
        Number of scales (1 to 5); default: as many as the size allows
        (:func:`ms_ssim_plan`). One scale is plain SSIM.
    reduction : {"mean", "none"}
        Mean over the batch, or one value per sample.

    Returns
    -------
    torch.Tensor
        A scalar, or shape (N,) with ``reduction="none"``; 1 for identical
        images.

    Raises
    ------
    ValueError
        If the shapes differ or are not 4-D, or ``scales`` does not fit the size.
    """
    if x.shape != y.shape or x.dim() != 4:
        raise ValueError(f"ms_ssim needs two (N, C, H, W) tensors of one shape, got {tuple(x.shape)} "
                         f"and {tuple(y.shape)}")
    h, w = x.shape[-2:]
    auto_scales, size = ms_ssim_plan(h, w)
    if scales is None:
        scales = auto_scales
    elif not 1 <= scales <= len(MS_SSIM_WEIGHTS) or min(h, w) >> (scales - 1) < size:
        raise ValueError(f"{scales} MS-SSIM scales do not fit a {h} x {w} image")
    window = gaussian_window(size)
    weights = torch.tensor(MS_SSIM_WEIGHTS[:scales], dtype=x.dtype, device=x.device)
    weights = weights / weights.sum()
    terms = []
    for j in range(scales):
        ssim, cs = ssim_terms(x, y, window, data_range)
        terms.append(ssim if j == scales - 1 else cs)
        if j < scales - 1:
            x, y = F.avg_pool2d(x, 2), F.avg_pool2d(y, 2)
    stacked = torch.stack(terms, dim=1).clamp_min(_FLOOR)
    value = torch.prod(stacked ** weights, dim=1)
    if reduction == "none":
        return value
    if reduction != "mean":
        raise ValueError(f"reduction must be 'mean' or 'none', got {reduction!r}")
    return value.mean()


# --------------------------------------------------------------------------- published
#: Levels of the published variant (always five).
PUBLISHED_LEVELS = len(MS_SSIM_WEIGHTS)
#: Smallest side :func:`published_ms_ssim` accepts: one pixel at the fifth level.
PUBLISHED_MIN_SIDE = 2 ** (PUBLISHED_LEVELS - 1)


def published_taps(size: int, sigma: float = WINDOW_SIGMA) -> torch.Tensor:
    """The 1-D Gaussian of the published window: ``size`` taps centred on tap
    ``size // 2`` (for even sizes half a pixel right of the middle), sum 1 (float64)."""
    return _gaussian(torch.arange(size, dtype=torch.float64) - size // 2, sigma)


def published_window(size: int, sigma: float = WINDOW_SIGMA) -> torch.Tensor:
    """The published variant's square Gaussian window (float64, sums to 1): the
    outer product of :func:`published_taps` with itself."""
    g = published_taps(size, sigma)
    return torch.outer(g, g)


def _published_range(x: torch.Tensor) -> torch.Tensor:
    """``L`` of a level, from the first image alone (a 0-d tensor, no gradient): ``max_val``
    255 if its maximum exceeds 128, else 1, minus ``min_val`` -1 if its minimum is below
    -0.5, else 0 (a tanh output reaching below -0.5 gets ``L = 2``)."""
    x = x.detach()
    one = torch.ones((), dtype=x.dtype, device=x.device)
    max_val = torch.where(x.max() > 128, 255 * one, one)
    min_val = torch.where(x.min() < -0.5, -one, 0 * one)
    return max_val - min_val


def published_ssim_terms(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(sim, cs)`` of one level of the published variant (0-d tensors, before ``normalize``).

    The means over all of N, C, H, W of the SSIM map and of the
    contrast-structure map, with the window of :func:`published_window` of
    side ``min(11, H, W)`` applied per channel without padding and ``L`` from
    ``x`` (:func:`_published_range`).
    """
    channels, (h, w) = x.shape[1], x.shape[-2:]
    size = min(WINDOW_SIZE, h, w)
    # The window is the outer product of its 1-D Gaussian: filtering the rows,
    # then the columns, is the same valid 2-D correlation (to rounding), and
    # the five maps x, y, x*x, y*y, x*y go through it in one grouped pass.
    maps = _filter(torch.cat([x, y, x * x, y * y, x * y], dim=1), published_taps(size))
    mu1, mu2, xx, yy, xy = maps.split(channels, dim=1)

    big_l = _published_range(x)
    c1, c2 = (_K1 * big_l) ** 2, (_K2 * big_l) ** 2
    sigma1_sq = xx - mu1**2
    sigma2_sq = yy - mu2**2
    sigma12 = xy - mu1 * mu2
    v1, v2 = 2 * sigma12 + c2, sigma1_sq + sigma2_sq + c2
    ssim_map = (2 * mu1 * mu2 + c1) * v1 / ((mu1**2 + mu2**2 + c1) * v2)
    return ssim_map.mean(), (v1 / v2).mean()


def published_ms_ssim(x: torch.Tensor, y: torch.Tensor, *, normalize: bool = True) -> torch.Tensor:
    """MS-SSIM as GIFNet's published training code computes it (differentiable).

    docs/training.md ("The losses") defines it. The order matters (``L`` comes
    from ``x``): training calls it as ``published_ms_ssim(rec, vis)``.

    Parameters
    ----------
    x, y : torch.Tensor
        (N, C, H, W) floating-point images of one shape, H and W at least
        :data:`PUBLISHED_MIN_SIDE` (16: one pixel at the fifth level).
    normalize : bool, default True
        Map ``sim`` and ``cs`` to ``(v + 1) / 2`` (what training uses).
        Without it a negative ``cs`` gives NaN, as in the published code.

    Returns
    -------
    torch.Tensor
        A 0-d tensor; 1 for identical images.

    Raises
    ------
    ValueError
        If the shapes differ, are not 4-D, or are too small, or the images
        are not floating point.
    """
    if x.shape != y.shape or x.dim() != 4:
        raise ValueError(f"published_ms_ssim needs two (N, C, H, W) tensors of one shape, got "
                         f"{tuple(x.shape)} and {tuple(y.shape)}")  # fmt: skip
    if not (x.is_floating_point() and y.is_floating_point()):
        raise ValueError(f"published_ms_ssim needs floating-point images, got {x.dtype} and "
                         f"{y.dtype}")  # fmt: skip
    h, w = x.shape[-2:]
    if min(h, w) < PUBLISHED_MIN_SIDE:
        raise ValueError(f"published_ms_ssim needs images of at least {PUBLISHED_MIN_SIDE} x "
                         f"{PUBLISHED_MIN_SIDE} px (five levels), got {h} x {w}")  # fmt: skip
    sims, css = [], []
    for level in range(PUBLISHED_LEVELS):
        if level:
            x, y = F.avg_pool2d(x, 2), F.avg_pool2d(y, 2)
        sim, cs = published_ssim_terms(x, y)
        sims.append(sim)
        css.append(cs)
    sim_t, cs_t = torch.stack(sims), torch.stack(css)
    if normalize:
        sim_t, cs_t = (sim_t + 1) / 2, (cs_t + 1) / 2
    weights = torch.tensor(MS_SSIM_WEIGHTS, dtype=sim_t.dtype, device=sim_t.device)
    last = sim_t[-1] ** weights[-1]
    return torch.prod(cs_t[:-1] ** weights[:-1] * last)
