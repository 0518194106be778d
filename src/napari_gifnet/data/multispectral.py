"""The offline pansharpening sample: a multispectral + panchromatic pair with its truth.

Made on the fly from scikit-image's bundled astronaut photograph (nothing is
downloaded), following Wald's protocol: the four-band truth seen through a
coarser sensor (:func:`degrade`) and as one panchromatic band (docs/samples.md).
"""

from __future__ import annotations

import numpy as np

from .sample import Sample, _layer, check_size, fit_within, to_uint8

_SOURCE = "skimage.data.astronaut"
#: Resolution ratio between the panchromatic and the multispectral grids.
RATIO = 4
#: Band names, in the order of the multispectral layer's first axis.
BANDS = ("red", "green", "blue", "NIR-like")
#: Panchromatic weights of the bands (a broad 450-900 nm response: little blue).
PAN_WEIGHTS = (0.3, 0.3, 0.1, 0.3)
#: Modulation (gain) of the whole sensor model at the multispectral Nyquist frequency.
NYQUIST_GAIN = 0.3


def nir_like(rgb: np.ndarray) -> np.ndarray:
    """A NIR-like band from a float RGB image in [0, 1]: ``0.7 R + 0.3 G + 1.5 max(G - R, 0)``.

    Bright where green exceeds red (a vegetation-like response), clipped to
    [0, 1]; a stand-in for a near-infrared band, not a measurement.
    """
    red, green = rgb[..., 0], rgb[..., 1]
    return np.clip(0.7 * red + 0.3 * green + 1.5 * np.maximum(green - red, 0.0), 0.0, 1.0)


def mtf_sigma(ratio: int = RATIO, gain: float = NYQUIST_GAIN) -> float:
    """Gaussian sigma (fine pixels) that, followed by a ``ratio`` x ``ratio`` block mean,
    leaves ``gain`` of the modulation at the coarse grid's Nyquist frequency.

    The block mean of ``ratio`` pixels passes ``sin(pi r f) / (r sin(pi f))`` at
    frequency ``f``; a Gaussian passes ``exp(-2 pi^2 sigma^2 f^2)``; at
    ``f = 1 / (2 r)`` their product is ``gain``.
    """
    f = 1.0 / (2.0 * ratio)
    box = np.sin(np.pi * ratio * f) / (ratio * np.sin(np.pi * f))
    return float(np.sqrt(-np.log(gain / box) / (2.0 * np.pi**2 * f**2)))


def degrade(bands: np.ndarray, ratio: int = RATIO, gain: float = NYQUIST_GAIN) -> np.ndarray:
    """Bands (C, H, W), H and W multiples of ``ratio``, seen by the coarse sensor.

    Each band is blurred by the Gaussian of :func:`mtf_sigma` (edges
    reflected), then every ``ratio`` x ``ratio`` block is averaged. Returns a
    float array (C, H // ratio, W // ratio); pixel ``j`` covers fine pixels
    ``ratio j .. ratio j + ratio - 1`` (pixel corners aligned).
    """
    from scipy import ndimage as ndi

    c, h, w = bands.shape
    sigma = mtf_sigma(ratio, gain)
    blurred = ndi.gaussian_filter(bands.astype(np.float64), (0.0, sigma, sigma), mode="reflect")
    return blurred.reshape(c, h // ratio, ratio, w // ratio, ratio).mean(axis=(2, 4))


def pansharpening_sample(size: int = 512) -> Sample:
    """Multispectral (4 bands, 1/4 resolution) + panchromatic astronaut, with the truth.

    Parameters
    ----------
    size : int, default 512
        Side of the panchromatic image in pixels (the 512 x 512 photograph is
        downscaled; rounded down to a multiple of 4, at least 32).

    Returns
    -------
    Sample
        Layers "multispectral" (first input, uint8 (4, size/4, size/4),
        bands red, green, blue, NIR-like; ``scale`` (1, 4, 4) and
        ``translate`` (0, 1.5, 1.5) so each pixel covers the 4 x 4
        panchromatic pixels it was made from), "panchromatic" (second input,
        uint8 (size, size)) and "multispectral truth" (hidden, uint8
        (4, size, size)).
    """
    from skimage import data

    side = check_size(size) // RATIO * RATIO
    rgb = fit_within(data.astronaut() / 255.0, side)[:side, :side]
    truth = np.concatenate([np.moveaxis(rgb, -1, 0), nir_like(rgb)[None]])
    pan = np.tensordot(np.asarray(PAN_WEIGHTS), truth, axes=1)
    ms = degrade(truth)
    sigma = mtf_sigma()
    recipe = (
        f"astronaut downscaled to {side} x {side}; bands red, green, blue and NIR-like "
        "(0.7 R + 0.3 G + 1.5 max(G - R, 0), clipped); truth = the four bands at full "
        f"resolution; multispectral = each band blurred by a Gaussian of sigma {sigma:.2f} px "
        f"then averaged over {RATIO} x {RATIO} blocks (the sensor passes {NYQUIST_GAIN} of the "
        "modulation at its Nyquist frequency); panchromatic = "
        f"{' + '.join(f'{w} {b}' for w, b in zip(PAN_WEIGHTS, BANDS, strict=True))} at full "
        "resolution"
    )
    key = "pansharpening"
    info = {"bands": list(BANDS), "axes": "CYX", "ratio": RATIO}
    offset = (RATIO - 1) / 2.0  # the centre of the covered block, in panchromatic pixels
    return Sample(key, "Multispectral + panchromatic (astronaut)", [
        _layer("multispectral", to_uint8(ms), key, "first input", recipe, _SOURCE, info,
               scale=(1.0, float(RATIO), float(RATIO)), translate=(0.0, offset, offset)),
        _layer("panchromatic", to_uint8(pan), key, "second input", recipe, _SOURCE,
               {"pan_weights": list(PAN_WEIGHTS)}),
        _layer("multispectral truth", to_uint8(truth), key, "truth", recipe, _SOURCE, info),
    ])
