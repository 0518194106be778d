"""Offline sample image pairs for trying GIFNet fusion (no Qt, no napari needed).

The offline samples (:data:`SAMPLES`) are computed on the fly, deterministically,
from images bundled with scikit-image or from seeded random numbers; see
``docs/samples.md`` for the recipes and the licences of the sources.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from . import multispectral
from .sample import Sample, _layer, check_size, fit_within, rgb_luma, to_uint8

# --------------------------------------------------------------- multi-focus
_MOTO_SOURCE = "skimage.data.stereo_motorcycle"


def _motorcycle(size: int) -> tuple[np.ndarray, np.ndarray]:
    """The left motorcycle view (float RGB) and its nearness in [0, 1] (1 = near)."""
    from scipy import ndimage as ndi
    from skimage import data

    left, _right, disparity = data.stereo_motorcycle()
    unknown = ~np.isfinite(disparity)  # pixels without ground truth: nearest known value
    index = ndi.distance_transform_edt(unknown, return_distances=False, return_indices=True)
    disparity = ndi.median_filter(disparity[tuple(index)], size=5)
    lo, hi = np.percentile(disparity, [1, 99])
    nearness = np.clip((disparity - lo) / (hi - lo), 0.0, 1.0)
    image = fit_within(left / 255.0, size)
    return image, np.clip(fit_within(nearness, size), 0.0, 1.0)


def defocus(
    image: np.ndarray, nearness: np.ndarray, focus: float, max_sigma: float, levels: int = 12
) -> np.ndarray:
    """Blur each pixel by a Gaussian of sigma ``max_sigma * |nearness - focus|``.

    ``image`` is a float (H, W) or (H, W, C) array and ``nearness`` (H, W) in
    [0, 1], 1 = nearest. The nearness range is cut into ``levels`` depth
    layers; each is the whole image blurred with its layer's sigma, and every
    pixel mixes the two layers around its nearness linearly. Returns a float
    array shaped like ``image``.
    """
    from scipy import ndimage as ndi

    position = np.clip(nearness, 0.0, 1.0) * (levels - 1)
    lower = np.minimum(np.floor(position).astype(int), levels - 2)
    frac = position - lower
    out = np.zeros(image.shape, dtype=np.float64)
    for k, depth in enumerate(np.linspace(0.0, 1.0, levels)):
        weight = np.where(lower == k, 1.0 - frac, 0.0) + np.where(lower == k - 1, frac, 0.0)
        if not weight.any():
            continue
        sigma = max_sigma * abs(depth - focus)
        sigmas = (sigma, sigma, 0.0)[: image.ndim]
        blurred = ndi.gaussian_filter(image.astype(np.float64), sigmas, mode="reflect")
        out += (weight[..., None] if image.ndim == 3 else weight) * blurred
    return out


def multifocus_pair(size: int = 512, max_sigma: float = 4.0) -> Sample:
    """Near-focus and far-focus views of the motorcycle, with the sharp truth.

    Parameters
    ----------
    size : int, default 512
        Longest side in pixels (the 741 x 500 photograph is downscaled).
    max_sigma : float, default 4.0
        Blur sigma (pixels) per unit of nearness away from the focus.

    Returns
    -------
    Sample
        Layers "near focus" (first input), "far focus" (second input) and
        "all-in-focus truth" (hidden), uint8 RGB; ``extras["nearness"]``.
    """
    image, nearness = _motorcycle(check_size(size))
    near_f, far_f = (float(v) for v in np.percentile(nearness, [90, 10]))
    recipe = (
        "left view of the stereo motorcycle; nearness = its ground-truth disparity scaled to "
        f"[0, 1]; Gaussian defocus with sigma = {max_sigma} px x |nearness - focus|, layered "
        "in 12 depth bins; 'near focus' focuses the nearness at the 90th percentile, "
        "'far focus' the one at the 10th"
    )
    key = "multifocus"
    near = to_uint8(defocus(image, nearness, near_f, max_sigma))
    far = to_uint8(defocus(image, nearness, far_f, max_sigma))
    return Sample(key, "Multi-focus pair (motorcycle)", [
        _layer("near focus", near, key, "first input", recipe, _MOTO_SOURCE,
               {"focus_nearness": near_f}, rgb=True),
        _layer("far focus", far, key, "second input", recipe, _MOTO_SOURCE,
               {"focus_nearness": far_f}, rgb=True),
        _layer("all-in-focus truth", to_uint8(image), key, "truth", recipe, _MOTO_SOURCE, rgb=True),
    ], {"nearness": nearness})


def focus_stack(size: int = 512, planes: int = 5, max_sigma: float = 4.0) -> Sample:
    """A grey focus stack of the motorcycle, focus swept from far to near.

    Parameters
    ----------
    size : int, default 512
        Longest side in pixels.
    planes : int, default 5
        Number of focal planes (>= 2).
    max_sigma : float, default 4.0
        Blur sigma (pixels) per unit of nearness away from the focus.

    Returns
    -------
    Sample
        Layers "focus stack" (uint8, (planes, H, W), plane 0 focused
        farthest) and "all-in-focus truth" (uint8 (H, W), hidden);
        ``extras["nearness"]`` and ``extras["focus"]``.
    """
    if int(planes) != planes or planes < 2:
        raise ValueError(f"planes must be an integer >= 2, got {planes!r}")
    image, nearness = _motorcycle(check_size(size))
    grey = rgb_luma(image)
    focus = np.linspace(*np.percentile(nearness, [5, 95]), int(planes))
    stack = np.stack([to_uint8(defocus(grey, nearness, float(f), max_sigma)) for f in focus])
    recipe = (
        "luma of the left motorcycle view; plane i is Gaussian-defocused with sigma = "
        f"{max_sigma} px x |nearness - focus_i| (12 depth bins), focus_i spread evenly from "
        "the 5th to the 95th percentile of the nearness (disparity scaled to [0, 1])"
    )
    key = "focus_stack"
    return Sample(key, "Focus stack (motorcycle)", [
        _layer("focus stack", stack, key, "input stack", recipe, _MOTO_SOURCE,
               {"focus_nearness": focus.tolist(), "axes": "ZYX"}),
        _layer("all-in-focus truth", to_uint8(grey), key, "truth", recipe, _MOTO_SOURCE),
    ], {"nearness": nearness, "focus": focus})


# ------------------------------------------------------------------- medical
#: Tissue -> (phantom label, CT-like value, MRI-like value), values in [0, 1].
_TISSUES = {
    "background": (0, 0.00, 0.00),
    "skull": (10, 1.00, 0.10),
    "brain": (2, 0.36, 0.52),
    "ventricles": (-1, 0.30, 0.92),
    "lesions 0.1": (1, 0.32, 0.26),
    "lesions 0.3": (3, 0.44, 0.34),
    "lesions 0.4": (4, 0.50, 0.76),
}


def medical_pair(size: int = 256, seed: int = 20250227) -> Sample:
    """A CT-like and an MRI-like image of the Shepp-Logan phantom.

    Parameters
    ----------
    size : int, default 256
        Side in pixels (the 400 x 400 phantom is resized).
    seed : int
        Seed of the noise.

    Returns
    -------
    Sample
        Layers "CT-like" (first input) and "MRI-like" (second input), uint8.
    """
    from scipy import ndimage as ndi
    from skimage import data
    from skimage.transform import resize

    size = check_size(size)
    level = np.rint(data.shepp_logan_phantom() * 10).astype(int)
    zero, _ = ndi.label(level == 0)
    border = np.unique(np.concatenate([zero[0], zero[-1], zero[:, 0], zero[:, -1]]))
    ventricles = (level == 0) & ~np.isin(zero, border)
    level[ventricles] = -1
    ct = np.zeros(level.shape)
    mri = np.zeros(level.shape)
    for label, ct_value, mri_value in _TISSUES.values():
        ct[level == label] = ct_value
        mri[level == label] = mri_value
    rng = np.random.default_rng(seed)
    ct = resize(ct, (size, size), order=1, anti_aliasing=True)
    mri = resize(mri, (size, size), order=1, anti_aliasing=True)
    ct = ndi.gaussian_filter(ct, 0.6) + rng.normal(0.0, 0.015, ct.shape)
    y, x = np.mgrid[-1:1:size * 1j, -1:1:size * 1j]
    bias = 1.0 + 0.2 * x - 0.12 * y - 0.1 * (x**2 + y**2)
    mri = ndi.gaussian_filter(mri, 0.8) * bias
    noise = rng.normal(0.0, 0.02, (2, *mri.shape))
    mri = np.hypot(mri + noise[0], noise[1])  # magnitude image: Rician noise
    recipe = (
        "Shepp-Logan phantom split into tissues (background, skull, brain, ventricles, small "
        "ellipses); CT-like: bone bright, soft tissue dim, Gaussian noise; MRI-like: bone dark, "
        "ventricles (CSF) bright, other contrasts remapped, smooth multiplicative bias field, "
        "Rician noise; both resized to "
        f"{size} px, seed {seed}; tissue values (CT, MRI): "
        + ", ".join(f"{k} ({c}, {m})" for k, (_, c, m) in _TISSUES.items())
    )
    source, key = "skimage.data.shepp_logan_phantom", "medical"
    return Sample(key, "CT-like + MRI-like pair (Shepp-Logan phantom)", [
        _layer("CT-like", to_uint8(ct), key, "first input", recipe, source),
        _layer("MRI-like", to_uint8(mri), key, "second input", recipe, source),
    ])


# ------------------------------------------------------------------ exposure
def exposure_pair(size: int = 512, stops: float = 2.0, seed: int = 7) -> Sample:
    """Over- and under-exposed versions of the coffee photograph.

    Parameters
    ----------
    size : int, default 512
        Longest side in pixels (the 600 x 400 photograph is downscaled).
    stops : float, default 2.0
        Exposure change each way, in stops (factor ``2**stops`` in linear light).
    seed : int
        Seed of the sensor noise.

    Returns
    -------
    Sample
        Layers "over-exposed" (first input), "under-exposed" (second input)
        and "reference exposure" (truth, hidden), uint8 RGB.
    """
    from skimage import data

    image = fit_within(data.coffee() / 255.0, check_size(size))
    linear = image**2.2
    rng = np.random.default_rng(seed)
    over = (linear * 2.0**stops).clip(0.0, 1.0) ** (1 / 2.2)
    under = (linear * 2.0**-stops) ** (1 / 2.2) + rng.normal(0.0, 0.006, image.shape)
    recipe = (
        "coffee photograph in linear light (gamma 2.2) multiplied by 2**stops (over) or "
        f"2**-stops (under) with stops = {stops}, clipped to [0, 1], gamma re-applied; mild "
        f"Gaussian noise (sd 0.006, seed {seed}) added to the under-exposed image"
    )
    source, key = "skimage.data.coffee", "exposure"
    return Sample(key, "Over/under-exposed pair (coffee)", [
        _layer("over-exposed", to_uint8(over), key, "first input", recipe, source, rgb=True),
        _layer("under-exposed", to_uint8(under), key, "second input", recipe, source, rgb=True),
        _layer("reference exposure", to_uint8(image), key, "truth", recipe, source, rgb=True),
    ])


# -------------------------------------------------------------- fluorescence
def _cells(size: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Cell labels (Voronoi cells cut to a disc) and cell centres, (N, 2)."""
    from scipy import ndimage as ndi

    centres: list[np.ndarray] = []
    spacing = size / 7.0
    for _ in range(4000):
        point = rng.uniform(0.04 * size, 0.96 * size, 2)
        if all(np.hypot(*(point - c)) > spacing for c in centres):
            centres.append(point)
    marks = np.zeros((size, size), dtype=np.int32)
    for i, (r, c) in enumerate(centres, start=1):
        marks[int(r), int(c)] = i
    dist, index = ndi.distance_transform_edt(marks == 0, return_indices=True)
    labels = marks[tuple(index)]
    labels[dist > 0.75 * spacing] = 0
    return labels, np.array(centres)


def fluorescence_pair(size: int = 384, seed: int = 12) -> Sample:
    """A synthetic two-channel fluorescence image: nuclei and membranes of the same cells.

    Parameters
    ----------
    size : int, default 384
        Side in pixels.
    seed : int
        Seed of the cell layout, brightness and camera noise.

    Returns
    -------
    Sample
        Layers "nuclei" (first input) and "membranes" (second input), uint16
        with a 12-bit range (0..4095); ``extras["labels"]`` holds the cells.
    """
    from scipy import ndimage as ndi
    from skimage.segmentation import find_boundaries

    size = check_size(size)
    rng = np.random.default_rng(seed)
    labels, centres = _cells(size, rng)
    y, x = np.mgrid[0:size, 0:size]
    nuclei = np.zeros((size, size))
    for r, c in centres:
        a, b = rng.uniform(0.045, 0.065, 2) * size
        angle = rng.uniform(0, np.pi)
        u = (x - c - rng.normal(0, 2)) * np.cos(angle) + (y - r) * np.sin(angle)
        v = -(x - c) * np.sin(angle) + (y - r - rng.normal(0, 2)) * np.cos(angle)
        nuclei = np.maximum(nuclei, ((u / a) ** 2 + (v / b) ** 2 <= 1) * rng.uniform(0.5, 1.0))
    texture = ndi.gaussian_filter(rng.normal(0, 1, nuclei.shape), 2.0)
    nuclei = ndi.gaussian_filter(nuclei * (1 + 0.8 * texture), 1.5)
    edges = find_boundaries(labels, mode="inner") & (labels > 0)
    gain = np.concatenate([[0.0], rng.uniform(0.6, 1.0, labels.max())])[labels]
    membranes = ndi.gaussian_filter(edges * gain + 0.06 * (labels > 0), 1.2) * 2.2
    images = []
    for signal, peak in ((nuclei, 3200.0), (membranes, 2600.0)):
        photons = rng.poisson(np.clip(signal, 0, None) * peak + 60.0)  # shot noise
        counts = photons + 100.0 + rng.normal(0.0, 4.0, signal.shape)  # offset + read noise
        images.append(np.clip(np.rint(counts), 0, 4095).astype(np.uint16))
    recipe = (
        f"synthetic cells (seed {seed}): Voronoi cells cut to discs; nuclei = textured ellipses "
        "at the cell centres; membranes = cell boundaries; each blurred (PSF-like Gaussian), "
        "then camera model: Poisson shot noise, offset 100, read noise sd 4, clipped to 12 bits "
        "(0..4095) and stored as uint16"
    )
    source, key = "synthetic (numpy random generator)", "fluorescence"
    common = {"blending": "additive", "contrast_limits": (0, 4095)}
    return Sample(key, "Two-channel fluorescence pair (synthetic, 12-bit)", [
        _layer("nuclei", images[0], key, "first input", recipe, source, colormap="magenta",
               **common),
        _layer("membranes", images[1], key, "second input", recipe, source, colormap="green",
               **common),
    ], {"labels": labels})


#: Offline sample key -> generator (all arguments have defaults).
SAMPLES: dict[str, Callable[[], Sample]] = {
    "multifocus": multifocus_pair,
    "focus_stack": focus_stack,
    "medical": medical_pair,
    "exposure": exposure_pair,
    "fluorescence": fluorescence_pair,
    "pansharpening": multispectral.pansharpening_sample,
}


def __getattr__(name: str) -> Any:
    """``pansharpening_sample`` here is deprecated: it lives in :mod:`.multispectral`."""
    if name == "pansharpening_sample":
        warnings.warn(
            "napari_gifnet.data.synthetic.pansharpening_sample is deprecated; import it from "
            "napari_gifnet.data.multispectral",
            DeprecationWarning,
            stacklevel=2,
        )
        return multispectral.pansharpening_sample
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
