"""Classical image fusion baselines, called like :func:`napari_gifnet.fuse`.

Each baseline takes the inputs of the GIFNet engine (grey or RGB, any dtype,
the same ``normalization`` option), fuses the two lumas, gives an RGB result
the chroma of the colour input(s) as the engine does, and returns the
engine's :class:`~napari_gifnet.engine.result.FusionResult` (no ``features``, device
``"cpu"``). Inputs are never modified.

Methods (keys of :data:`BASELINES`):

``"mean"``, ``"max"``
    Per-pixel average and maximum of the two lumas.
``"laplacian"``
    Laplacian pyramid fusion (:func:`laplacian_pyramid`): per level, the
    detail coefficient of larger magnitude; the coarsest (Gaussian) level
    averaged. :func:`laplacian_fusion` applies the rule to N images at once.
``"dwt"``
    Discrete wavelet fusion (PyWavelets; default ``'db2'``, 3 levels,
    symmetric extension): larger-magnitude detail coefficients, averaged
    approximation.
``"guided"``
    Guided filtering fusion (Li, Kang & Hu, IEEE TIP 22(7), 2013): base =
    31 x 31 mean filter, detail = image - base; saliency = Gaussian-smoothed
    (11 x 11, sigma 5) absolute 3 x 3 Laplacian; binary maps of the larger
    saliency (ties: both) refined by :func:`guided_filter` with the source
    as guide, (r1 = 45, eps1 = 0.3) for the base and (r2 = 7, eps2 = 1e-6)
    for the detail weights, clipped at 0 and normalised to sum to 1.
``"mertens"``
    Exposure fusion as OpenCV's ``MergeMertens`` (:func:`mertens_fusion`):
    two colour inputs are blended channel by channel in RGB; a grey input (or
    a grey and a colour one) blends the lumas, coloured as the other baselines.

:func:`fuse_with` dispatches by name, ``"gifnet"`` included.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable
from functools import partial
from itertools import pairwise
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy import ndimage

from .. import __version__
from ..engine.colour import KB, KG, KR, ColourPlan, apply_colour, rgb_to_ycbcr
from ..engine.inputs import prepare_pair
from ..engine.options import OPTION_NAMES, FusionOptions
from ..engine.preprocess import Normalization
from ..util.progress import Progress
from .registry import METHODS, method_key

if TYPE_CHECKING:
    from ..engine.result import FusionResult

_BINOMIAL = np.array([1.0, 4.0, 6.0, 4.0, 1.0]) / 16.0


# --------------------------------------------------------------------------- shared driver
def _run(
    method: str,
    fuse_luma: Callable[..., np.ndarray],
    a: Any,
    b: Any,
    normalization: Normalization,
    progress: Progress | None,
    params: dict[str, Any],
) -> FusionResult:
    """Validate and normalise like the engine, fuse the lumas, add colour."""
    from ..engine.result import FusionResult  # imports torch: only when a baseline runs

    start = time.perf_counter()
    pair = prepare_pair(a, b, normalization)
    plan = pair.plan
    fused = fuse_luma(
        pair.luma_a.astype(np.float64), pair.luma_b.astype(np.float64), pair.rgb_a, pair.rgb_b
    )
    fused = np.ascontiguousarray(np.clip(fused, 0.0, 1.0), dtype=np.float32)
    if fused.ndim == 3:  # a rule that blends the RGB channels itself
        image, luma = fused, rgb_to_ycbcr(fused)[0]
    else:
        luma = fused
        image = luma if plan is None else apply_colour(luma, plan)
    if progress is not None:
        progress(1, 1)
    elapsed = time.perf_counter() - start
    h, w = luma.shape
    metadata = {
        "method": method,
        "parameters": params,
        "napari_gifnet_version": __version__,
        "device": "cpu",
        "height": h,
        "width": w,
        **pair.provenance(normalization),
        **({"colour": "RGB channels blended"} if fused.ndim == 3 else {}),
        "elapsed_s": round(elapsed, 4),
    }
    return FusionResult(image=image, luma=luma, device="cpu", elapsed=elapsed, metadata=metadata)


def _pick_abs(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Per element, the coefficient of larger magnitude (``x`` on ties)."""
    return np.where(np.abs(x) >= np.abs(y), x, y)


# --------------------------------------------------------------------------- pyramids
def _blur(x: np.ndarray, gain: float = 1.0) -> np.ndarray:
    k = _BINOMIAL * gain
    return ndimage.correlate1d(
        ndimage.correlate1d(x, k, axis=0, mode="mirror"), k, axis=1, mode="mirror"
    )


def _expand(x: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    # Upsample to twice the size, then crop an odd side: as OpenCV's pyrUp.
    up = np.zeros((2 * x.shape[0], 2 * x.shape[1]))
    up[::2, ::2] = x
    return _blur(up, gain=2.0)[: shape[0], : shape[1]]  # gain 2 per axis: the zeros


def _gaussian_pyramid(image: np.ndarray, levels: int) -> list[np.ndarray]:
    pyr = [np.asarray(image, dtype=np.float64)]
    for _ in range(levels):
        pyr.append(_blur(pyr[-1])[::2, ::2])
    return pyr


def _default_levels(shape: tuple[int, ...], cap: int = 6) -> int:
    """Levels until the smallest side would drop below about 8 pixels."""
    return int(max(0, min(cap, np.floor(np.log2(max(min(shape), 1))) - 3)))


def laplacian_pyramid(image: np.ndarray, levels: int | None = None) -> list[np.ndarray]:
    """Laplacian pyramid of a 2-D image.

    The 5-tap binomial kernel ``[1, 4, 6, 4, 1] / 16`` (mirrored borders)
    blurs before every second pixel is taken, and zero insertion plus the
    same blur expands (an odd side cropped from the doubled size), as
    OpenCV's ``pyrDown`` / ``pyrUp``.

    Parameters
    ----------
    image : numpy.ndarray
        2-D array (any real dtype; computed in float64).
    levels : int, optional
        Number of detail levels; default: until the smallest side would drop
        below about 8 pixels (at most 6).

    Returns
    -------
    list of numpy.ndarray
        ``levels`` detail images (finest first), then the coarsest Gaussian
        level. :func:`reconstruct_laplacian` inverts it exactly.
    """
    gauss = _gaussian_pyramid(
        image, _default_levels(np.shape(image)) if levels is None else int(levels)
    )
    details = [g - _expand(g_next, g.shape) for g, g_next in pairwise(gauss)]
    return details + [gauss[-1]]


def reconstruct_laplacian(pyramid: list[np.ndarray]) -> np.ndarray:
    """Collapse a pyramid from :func:`laplacian_pyramid` back to the image."""
    out = np.asarray(pyramid[-1], dtype=np.float64)
    for detail in reversed(pyramid[:-1]):
        out = detail + _expand(out, detail.shape)
    return out


# --------------------------------------------------------------------------- guided filter
def _box_mean(x: np.ndarray, r: int) -> np.ndarray:
    """Mean over the (2r+1)^2 window, truncated at the borders (cumulative sums)."""
    out = np.asarray(x, dtype=np.float64)
    for axis in (0, 1):
        out = np.moveaxis(out, axis, 0)
        n = out.shape[0]
        csum = np.concatenate([np.zeros((1, *out.shape[1:])), np.cumsum(out, axis=0)])
        hi, lo = np.minimum(np.arange(n) + r + 1, n), np.maximum(np.arange(n) - r, 0)
        out = np.moveaxis((csum[hi] - csum[lo]) / (hi - lo)[:, None], 0, axis)
    return out


def guided_filter(guide: np.ndarray, src: np.ndarray, radius: int, eps: float) -> np.ndarray:
    """Grey guided filter (He, Sun & Tang 2010/2013) with box means.

    Parameters
    ----------
    guide, src : numpy.ndarray
        2-D arrays of the same shape: the guidance image and the image to
        filter.
    radius : int
        Window radius: windows of (2 radius + 1)^2 pixels, truncated at the
        borders.
    eps : float
        Regularisation (for data in [0, 1]).

    Returns
    -------
    numpy.ndarray
        float64, the filtered ``src``.
    """
    guide = np.asarray(guide, dtype=np.float64)
    src = np.asarray(src, dtype=np.float64)
    mean_i, mean_p = _box_mean(guide, radius), _box_mean(src, radius)
    var_i = _box_mean(guide * guide, radius) - mean_i * mean_i
    cov_ip = _box_mean(guide * src, radius) - mean_i * mean_p
    slope = cov_ip / (np.maximum(var_i, 0.0) + eps)
    offset = mean_p - slope * mean_i
    return _box_mean(slope, radius) * guide + _box_mean(offset, radius)


def _normalised(wa: np.ndarray, wb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    wa, wb = np.maximum(wa, 0.0), np.maximum(wb, 0.0)
    total = wa + wb
    ok = total > 1e-12
    na = np.where(ok, wa / np.where(ok, total, 1.0), 0.5)
    return na, 1.0 - na


# --------------------------------------------------------------------------- luma rules
def _mean_rule(x, y, *_):
    return (x + y) / 2.0


def _max_rule(x, y, *_):
    return np.maximum(x, y)


def _laplacian_lumas(lumas: list[np.ndarray], levels: int | None) -> np.ndarray:
    """Per level the detail of largest magnitude (the first on ties), the coarsest averaged."""
    pyramids = [laplacian_pyramid(x, levels) for x in lumas]
    fused = []
    for lvl in range(len(pyramids[0]) - 1):
        details = np.stack([p[lvl] for p in pyramids])
        pick = np.abs(details).argmax(axis=0)
        fused.append(np.take_along_axis(details, pick[None], axis=0)[0])
    fused.append(np.mean([p[-1] for p in pyramids], axis=0))
    return reconstruct_laplacian(fused)


def _laplacian_rule(x, y, _ra, _rb, levels):
    return _laplacian_lumas([x, y], levels)


def laplacian_fusion(images: Any, *, levels: int | None = None) -> np.ndarray:
    """Laplacian pyramid fusion of N images at once (the ``"laplacian"`` rule for N inputs).

    The lumas (BT.601 ``0.299 R + 0.587 G + 0.114 B`` of colour images) are
    fused as the ``"laplacian"`` baseline fuses two: per pyramid level the
    detail coefficient of largest magnitude, the coarsest level averaged
    (:func:`laplacian_pyramid`). With colour inputs the result gets, per
    pixel and chroma channel, the chroma ``sum_k |c_k| c_k / sum_k |c_k|``
    of the colour inputs (:func:`~napari_gifnet.engine.colour.combine_chroma`
    for N sources; grey inputs count as neutral), as the other baselines
    colour a fused luma.

    Parameters
    ----------
    images : sequence of array_like
        N >= 1 images of one height and width, (H, W) grey or (H, W, 3)
        colour, values in [0, 1]. Never modified.
    levels : int, optional
        Detail levels, as for :func:`laplacian_pyramid`.

    Returns
    -------
    numpy.ndarray
        float32 (H, W) (all inputs grey) or (H, W, 3), clipped to [0, 1].

    Raises
    ------
    ValueError
        No images, a shape that is not (H, W) or (H, W, 3), or images of
        different heights and widths.
    """
    arrays = [np.asarray(x, dtype=np.float64) for x in images]
    if not arrays:
        raise ValueError("laplacian_fusion needs at least one image")
    for x in arrays:
        if x.ndim not in (2, 3) or (x.ndim == 3 and x.shape[2] != 3) or 0 in x.shape:
            raise ValueError(f"laplacian_fusion takes (H, W) or (H, W, 3) images, got {x.shape}")
    if len({x.shape[:2] for x in arrays}) > 1:
        raise ValueError(
            f"laplacian_fusion needs images of one height and width, got {[x.shape for x in arrays]}"
        )
    lumas = [x @ np.array([KR, KG, KB]) if x.ndim == 3 else x for x in arrays]
    luma = np.clip(_laplacian_lumas(lumas, levels), 0.0, 1.0).astype(np.float32)
    colour = [rgb_to_ycbcr(x)[1:] for x in arrays if x.ndim == 3]
    if not colour:
        return luma
    chroma = []
    for ch in (0, 1):  # each source weighted by its chroma's magnitude
        num = np.sum([np.abs(c[ch]) * c[ch] for c in colour], axis=0, dtype=np.float64)
        den = np.sum([np.abs(c[ch]) for c in colour], axis=0, dtype=np.float64)
        chroma.append(np.divide(num, den, out=np.zeros_like(num), where=den > 0).astype(np.float32))
    return apply_colour(luma, ColourPlan(chroma[0], chroma[1], "all colour inputs"))


def _dwt_rule(x, y, _ra, _rb, wavelet, levels):
    try:
        import pywt
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("the 'dwt' baseline needs PyWavelets: pip install PyWavelets") from exc
    level = min(int(levels), pywt.dwt_max_level(min(x.shape), pywt.Wavelet(wavelet).dec_len))
    if level < 1:
        return _mean_rule(x, y)
    ca = pywt.wavedec2(x, wavelet, mode="symmetric", level=level)
    cb = pywt.wavedec2(y, wavelet, mode="symmetric", level=level)
    fused = [(ca[0] + cb[0]) / 2] + [
        tuple(_pick_abs(da, db) for da, db in zip(la, lb)) for la, lb in zip(ca[1:], cb[1:])
    ]
    return pywt.waverec2(fused, wavelet, mode="symmetric")[: x.shape[0], : x.shape[1]]


def _guided_rule(x, y, _ra, _rb, r1, eps1, r2, eps2):
    lap = np.array([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]])
    sal = [
        ndimage.gaussian_filter(
            np.abs(ndimage.correlate(i, lap, mode="reflect")), 5.0, truncate=1.0, mode="reflect"
        )
        for i in (x, y)
    ]
    pa, pb = (sal[0] >= sal[1]).astype(np.float64), (sal[1] >= sal[0]).astype(np.float64)
    wba, wbb = _normalised(guided_filter(x, pa, r1, eps1), guided_filter(y, pb, r1, eps1))
    wda, wdb = _normalised(guided_filter(x, pa, r2, eps2), guided_filter(y, pb, r2, eps2))
    base_a, base_b = _box_mean(x, 15), _box_mean(y, 15)  # 31 x 31 mean filter
    return wba * base_a + wbb * base_b + wda * (x - base_a) + wdb * (y - base_b)


def _mertens_weight(
    channels: np.ndarray, contrast: float, saturation: float, exposure: float, sigma: float
) -> np.ndarray:
    """One image's Mertens weight, with OpenCV's terms (``channels``: (H, W, 1) or (H, W, 3))."""
    rgb = channels.shape[-1] == 3
    grey = KR * channels[..., 0] + KG * channels[..., 1] + KB * channels[..., 2] if rgb \
        else channels[..., 0]  # fmt: skip
    # Contrast: |3 x 3 Laplacian [[0, 1, 0], [1, -4, 1], [0, 1, 0]]|, reflect-101 borders.
    weight = np.abs(ndimage.laplace(grey, mode="mirror")) ** contrast
    if rgb:  # saturation: the root of the summed squared deviations from the channel mean
        dev = channels - channels.mean(axis=-1, keepdims=True)
        weight = weight * np.sqrt(np.sum(dev * dev, axis=-1)) ** saturation
    well = np.prod(np.exp(-((channels - 0.5) ** 2) / (2.0 * sigma**2)), axis=-1)
    return weight * well**exposure + 1e-12


def _pyramid_levels(shape: tuple[int, ...]) -> int:
    """OpenCV's ``MergeMertens`` depth: ``floor(log2(min(H, W)))`` downsamplings."""
    return max(int(min(shape[:2])).bit_length() - 1, 0)


def mertens_fusion(
    images: Any,
    *,
    contrast: float = 1.0,
    saturation: float = 1.0,
    exposure: float = 1.0,
    sigma: float = 0.2,
) -> np.ndarray:
    """Exposure fusion of N images (Mertens, Kautz & Van Reeth 2007), as OpenCV computes it.

    The steps of OpenCV's ``MergeMertens.process``: per image, contrast
    ``|Laplacian|`` of the grey image (``0.299 R + 0.587 G + 0.114 B`` of
    the channels in the order given; the 3 x 3 kernel, reflect-101 borders),
    saturation ``sqrt(sum_c (v_c - mean_c v)^2)`` (colour only; the paper's
    standard deviation times sqrt(3), a factor the normalisation removes) and
    well-exposedness ``prod_c exp(-(v_c - 0.5)^2 / (2 sigma^2))``, raised to
    the three exponents and multiplied, plus 1e-12; the weights normalised
    to sum to 1 per pixel. Each image's Laplacian pyramid (per channel) is
    multiplied by the Gaussian pyramid of its weight and the products summed
    and collapsed. The pyramids are OpenCV's ``pyrDown`` / ``pyrUp`` (the
    5-tap binomial kernel, reflect-101 borders, odd sides cropped;
    :func:`laplacian_pyramid`) with ``floor(log2(min(H, W)))`` levels.

    Parameters
    ----------
    images : sequence of array_like
        N >= 1 images of the same shape, (H, W) grey or (H, W, 3) colour,
        values in [0, 1] (OpenCV's 8-bit input divided by 255). Never modified.
    contrast, saturation, exposure : float
        Exponents of the three measures (OpenCV's ``contrast_weight``,
        ``saturation_weight``, ``exposure_weight``; default 1).
    sigma : float
        Width of the well-exposedness Gaussian (OpenCV: 0.2, fixed).

    Returns
    -------
    numpy.ndarray
        float64, the shape of one input. Not clipped: as OpenCV's output,
        values may leave [0, 1] slightly (clip before storing).

    Raises
    ------
    ValueError
        No images, images of different shapes, or a shape that is not
        (H, W) or (H, W, 3).

    Notes
    -----
    The defaults are the paper's exponents (1, 1, 1); OpenCV's
    ``createMergeMertens()`` defaults to an exposure exponent of 0. With the
    same exponents the result equals OpenCV's steps computed in float64 with
    OpenCV's own filters (to about 1e-6). OpenCV computes in float32, where
    the channel mean of a grey pixel (R = G = B) can round away from the
    channel value, giving it a saturation of about 1e-8 instead of 0; where
    no exposure has a real weight (each flat, clipped or grey), that
    rounding noise outweighs the 1e-12 floor and OpenCV follows it, while
    this computation gives the exposures equal weights there
    (``benchmarks/bench_exposure.py`` measures the difference).
    """
    arrays = [np.asarray(x, dtype=np.float64) for x in images]
    if not arrays:
        raise ValueError("mertens_fusion needs at least one image")
    shape = arrays[0].shape
    if len(shape) not in (2, 3) or (len(shape) == 3 and shape[2] != 3) or 0 in shape:
        raise ValueError(f"mertens_fusion takes (H, W) or (H, W, 3) images, got shape {shape}")
    if any(x.shape != shape for x in arrays):
        raise ValueError(
            f"mertens_fusion needs images of one shape, got {[x.shape for x in arrays]}"
        )
    stacks = [x.reshape(*shape[:2], -1) for x in arrays]
    weights = [_mertens_weight(x, contrast, saturation, exposure, sigma) for x in stacks]
    total = np.sum(weights, axis=0)
    levels = _pyramid_levels(shape)
    fused: list[np.ndarray] | None = None
    for x, w in zip(stacks, weights):
        w_pyr = _gaussian_pyramid(w / total, levels)
        x_pyr = [laplacian_pyramid(x[..., c], levels) for c in range(x.shape[-1])]
        terms = [np.stack([p[lvl] for p in x_pyr], axis=-1) * wl[..., None]
                 for lvl, wl in enumerate(w_pyr)]  # fmt: skip
        fused = terms if fused is None else [f + t for f, t in zip(fused, terms)]
    assert fused is not None
    out = np.stack(
        [reconstruct_laplacian([f[..., c] for f in fused]) for c in range(fused[0].shape[-1])],
        axis=-1,
    )
    return out.reshape(shape)


def _mertens_rule(x, y, ra, rb, contrast, saturation, exposure, sigma):
    opts = {"contrast": contrast, "saturation": saturation, "exposure": exposure, "sigma": sigma}
    if ra is not None and rb is not None:  # both colour: OpenCV's RGB fusion
        return mertens_fusion([ra, rb], **opts)
    return mertens_fusion([x, y], **opts)  # a grey input: the lumas


# --------------------------------------------------------------------------- public
_DOC_ARGS = """
    Parameters
    ----------
    a, b : array_like
        The two inputs, as for :func:`napari_gifnet.fuse`: (H, W), (H, W, 3)
        or (H, W, 4), bool, integer or float; never modified.
    normalization : str or (lo, hi)
        As for :func:`napari_gifnet.fuse`.
    progress : callable, optional
        Called once as ``progress(1, 1)`` when done.

    Returns
    -------
    FusionResult
        ``image`` (grey, or RGB with chroma as the engine gives it), ``luma``
        (float32 in [0, 1]) and ``metadata`` (method, parameters, inputs).

    Raises
    ------
    ValueError
        Inputs of different height and width, or inputs the engine refuses.
"""


def _baseline(name: str, rule: Callable[..., np.ndarray], summary: str):
    """Make the public ``fuse_<name>`` function of a luma fusion rule (its own parameters:
    the table's, :attr:`napari_gifnet.methods.registry.Method.params`)."""
    defaults = METHODS[name].defaults

    def fuse_baseline(
        a: Any,
        b: Any,
        *,
        normalization: Normalization = "auto",
        progress: Progress | None = None,
        **params: Any,
    ) -> FusionResult:
        unknown = set(params) - set(defaults)
        if unknown:
            raise TypeError(f"unknown parameter(s) {sorted(unknown)}; valid: {sorted(defaults)}")
        opts = {**defaults, **params}
        return _run(name, partial(rule, **opts), a, b, normalization, progress, opts)

    fuse_baseline.__name__ = fuse_baseline.__qualname__ = f"fuse_{name}"
    sig = inspect.signature(fuse_baseline)
    own = [
        inspect.Parameter(k, inspect.Parameter.KEYWORD_ONLY, default=v) for k, v in defaults.items()
    ]
    fuse_baseline.__signature__ = sig.replace(
        parameters=[*list(sig.parameters.values())[:-1], *own]
    )  # type: ignore[attr-defined]
    keywords = "".join(f"\n    {k} : default {v!r}" for k, v in defaults.items())
    fuse_baseline.__doc__ = f"{summary}\n{_DOC_ARGS}" + (
        f"\n    Method parameters (keyword only){keywords}\n" if defaults else ""
    )
    return fuse_baseline


fuse_mean = _baseline("mean", _mean_rule, "Fuse by the per-pixel mean of the two lumas.")
fuse_max = _baseline("max", _max_rule, "Fuse by the per-pixel maximum of the two lumas.")
fuse_laplacian = _baseline(
    "laplacian", _laplacian_rule, "Laplacian pyramid fusion (max-abs details)."
)
fuse_dwt = _baseline("dwt", _dwt_rule, "Wavelet fusion (max-abs details).")
fuse_guided = _baseline("guided", _guided_rule, "Guided filtering fusion (Li, Kang & Hu 2013).")
fuse_mertens = _baseline(
    "mertens", _mertens_rule, "Exposure fusion (Mertens et al. 2007, as OpenCV's MergeMertens)."
)

#: The classical baselines by name.
BASELINES: dict[str, Callable[..., FusionResult]] = {
    "mean": fuse_mean, "max": fuse_max, "laplacian": fuse_laplacian, "dwt": fuse_dwt,
    "guided": fuse_guided, "mertens": fuse_mertens,
}  # fmt: skip


def fuse_pair(
    method: str,
    a: Any,
    b: Any,
    options: FusionOptions | None = None,
    progress: Progress | None = None,
    **params: Any,
) -> FusionResult:
    """Fuse a pair with a pairwise method of the table
    (:data:`napari_gifnet.methods.registry.METHODS`), giving it only the options it takes.

    Parameters
    ----------
    method : str
        ``"gifnet"`` or a baseline of :data:`BASELINES` (any case).
    a, b
        The first and second input (see :func:`napari_gifnet.fuse`).
    options : FusionOptions, optional
        Checked options (None: the defaults); GIFNet takes them all as they
        are, a baseline only ``normalization``
        (:attr:`napari_gifnet.methods.registry.Method.options`).
    progress : callable, optional
        ``progress(done, total)``; an exception raised by it stops the fusion.
    **params
        A baseline's own parameters, e.g. ``levels``.

    Returns
    -------
    FusionResult

    Raises
    ------
    ValueError
        An unknown method, or inputs the method refuses.
    TypeError
        Parameters the method does not have.
    """
    spec = METHODS[method_key(method)]
    options = FusionOptions() if options is None else options
    if spec.kind == "baseline":
        return BASELINES[spec.key](
            a, b, normalization=options.normalization, progress=progress, **params
        )
    if params:
        raise TypeError(f"{spec.key!r} takes no parameter(s) {sorted(params)}")
    from ..engine import fusion as engine

    return engine.fuse_options(a, b, options, progress)


def fuse_with(method: str, a: Any, b: Any, **kw: Any) -> FusionResult:
    """Fuse with GIFNet (``"gifnet"``) or a baseline of :data:`BASELINES`, by name.

    The keyword form of :func:`fuse_pair`.

    Parameters
    ----------
    method, a, b
        As for :func:`fuse_pair`.
    **kw
        The options of :func:`napari_gifnet.fuse` (weights, device,
        normalization, ...; checked, and those a baseline does not take
        ignored), ``progress`` and a baseline's own parameters.

    Returns
    -------
    FusionResult

    Raises
    ------
    ValueError
        An unknown method or a bad option.
    """
    progress = kw.pop("progress", None)
    options = FusionOptions(**{k: kw.pop(k) for k in OPTION_NAMES if k in kw})
    return fuse_pair(method, a, b, options, progress, **kw)
