"""Multispectral + panchromatic fusion (pansharpening) in Python: :func:`pansharpen`.

Two families of methods, one function:

* **Spectral pansharpening** (the default, ``"mtf_glp_rr"``; also ``"mtf_glp"``,
  ``"gsa"``, ``"gihs"``, ``"brovey"``, ``"mtf_glp_hpm"``, ``"gsa_gifnet"``): the
  component-substitution and multiresolution methods of
  :mod:`napari_gifnet.methods.pansharpening`, which inject the panchromatic
  image's details into every band and keep each band's colour. They measure
  best under Wald's protocol (``benchmarks/bench_pansharpen.py``,
  docs/pansharpening.md). ``"gsa_gifnet"`` takes the details from GIFNet
  (GSA's intensity fused with the matched panchromatic image).
* **Per-band fusion** (``"gifnet"``, as the published release did, or a
  baseline of :data:`napari_gifnet.methods.classical.BASELINES`): every band
  is fused with the panchromatic image (band first, panchromatic second, as
  the model was trained) and the bands are put back together in the input's
  layout.

Each run resamples the bands onto the panchromatic grid
(:mod:`~napari_gifnet.workflows.pan_grid`), fuses them and brings each fused
band back to its band's values (``rescale``, :func:`_rescale`): the three
steps are told in docs/pansharpening.md, "Grid, fusion and range".
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .. import __version__
from ..engine.options import FusionOptions
from ..util.progress import Progress
from ._dtype_cast import cast_to_dtype
from .pan_grid import check_grid, pair_arg, resample_band

__all__ = ["DEFAULT_METHOD", "PansharpenResult", "pansharpen", "pansharpen_method_names"]

RESCALES = ("range", "moments", "none")
#: ``"gsa_gifnet"``'s progress total: the network fusion reported in these steps.
GSA_GIFNET_STEPS = 100
#: The method :func:`pansharpen` uses by default: the best measured under Wald's protocol.
DEFAULT_METHOD = "mtf_glp_rr"


def pansharpen_method_names() -> tuple[str, ...]:
    """Every method :func:`pansharpen` takes, best measured first: the spectral
    methods, then ``"gifnet"`` and the per-band fusion baselines."""
    from ..methods.pansharpening import PANSHARPENING_METHODS
    from ..methods.registry import method_names

    return (*PANSHARPENING_METHODS, *method_names())


def _method(method: str) -> str:
    """The canonical key of a pansharpening method; ValueError naming every valid one."""
    key = str(method).strip().lower().replace("-", "_")
    valid = pansharpen_method_names()
    if key not in valid:
        raise ValueError(f"unknown pansharpening method {method!r}; valid: {', '.join(valid)}")
    return key


@dataclass
class PansharpenResult:
    """What :func:`pansharpen` returns.

    Attributes
    ----------
    image
        The pansharpened multiband image in the input's layout (band axis
        where it was) on the panchromatic grid, in the input's dtype (float
        input: float32).
    luma
        float32 (bands, H, W) in [0, 1]: per-band fusion, the network (or
        baseline) output of each band; spectral methods, each fused band
        over its original band's minimum..maximum (clipped).
    band_ranges
        (bands, 2): the (min, max) of each input band, as given (before any
        upsampling).
    metadata
        Provenance: method, family ("spectral" or "per-band fusion"),
        resolution ratio (spectral), band axis, resampling, rescaling, fusion
        metadata (weights, device), time.
    elapsed
        Wall time in seconds.
    """

    image: np.ndarray
    luma: np.ndarray
    band_ranges: np.ndarray
    metadata: dict[str, Any] = field(default_factory=dict)
    elapsed: float = 0.0


def band_axis_of(shape: tuple[int, ...], band_axis: int | None) -> int:
    """The band axis (0 or 2) of a multiband image of ``shape``.

    ``band_axis`` 0 or -1 (2) as given; None picks the shorter end axis.
    Raises ValueError for another value (shown by its repr).
    """
    if band_axis is not None:
        integer = isinstance(band_axis, (int, np.integer)) and not isinstance(band_axis, bool)
        if not integer or band_axis not in (0, -1, 2):
            raise ValueError(
                f"band_axis must be 0 (bands, H, W) or -1 (H, W, bands), not {band_axis!r}"
            )
        return 0 if band_axis == 0 else 2
    return 0 if shape[0] <= shape[2] else 2


def _rescale(
    values: np.ndarray, band: np.ndarray, span: tuple[float, float], rescale: str,
    dtype: np.dtype, luma_of: dict[str, Any] | None = None,
) -> np.ndarray:  # fmt: skip
    """A fused band back to ``band``'s values (original range ``span``, rule ``rescale``), in
    ``dtype`` (float: float32). ``values``: the luma in [0, 1] of the band normalised as
    ``luma_of`` says (per-band fusion), or, ``luma_of`` None, a spectral band in its units."""
    lo, hi = span
    if rescale == "moments":
        b, sd = band.astype(np.float64), float(values.std())
        out = (values - values.mean()) * (b.std() / sd if sd > 0 else 0.0) + b.mean()
    elif luma_of is None:
        out = np.clip(values, lo, hi) if rescale == "range" else values
    elif rescale == "range":
        v_lo, v_hi = float(values.min()), float(values.max())
        t = (values - v_lo) / (v_hi - v_lo) if v_hi > v_lo else np.zeros_like(values, np.float64)
        out = np.clip(lo + t * (hi - lo), lo, hi)
    else:
        n_lo, n_hi = luma_of.get("range", (0.0, 1.0))
        out = n_lo + values.astype(np.float64) * (n_hi - n_lo)
    target = np.float32 if dtype.kind == "f" else dtype  # float bands: float32
    return cast_to_dtype(out, target, within=span if rescale == "range" else None)


def _grey(pan: np.ndarray) -> np.ndarray:
    """The panchromatic image as float64 (H, W): an RGB(A) one by its BT.601 luma."""
    if pan.ndim == 3:
        from ..engine.colour import rgb_to_ycbcr

        return rgb_to_ycbcr(pan[..., :3].astype(np.float64))[0].astype(np.float64)
    return pan.astype(np.float64)


_Pair = tuple[float, float]


@dataclass(frozen=True)
class _Bands:
    """The multispectral bands split off their ``axis`` (0 or -1; None: one band (H, W)),
    each band's original (min, max), the panchromatic image and both grids: sizes,
    (multispectral, panchromatic) pixel sizes (None without them) and positions."""

    bands: tuple[np.ndarray, ...]
    ranges: tuple[_Pair, ...]
    pan: np.ndarray
    axis: int | None
    ms_hw: tuple[int, int]
    pan_hw: tuple[int, int]
    scales: tuple[_Pair, _Pair] | None
    translates: tuple[_Pair, _Pair]

    @property
    def resampled(self) -> bool:
        """Whether the bands are resampled onto the panchromatic grid."""
        return self.ms_hw != self.pan_hw or self.scales is not None

    def on_pan_grid(self, band: np.ndarray, float64: bool = False) -> np.ndarray:
        """``band`` on the panchromatic grid (:func:`resample_band`); as it is if already there."""
        if not self.resampled:
            return band
        src_scale, dst_scale = self.scales or (None, None)
        src_translate, dst_translate = self.translates
        return resample_band(band, self.pan_hw, src_scale=src_scale, dst_scale=dst_scale,
                             src_translate=src_translate, dst_translate=dst_translate,
                             float64=float64)  # fmt: skip

    def grid_ratio(self) -> float:
        """The resolution ratio the grids imply (4 for equal sizes without pixel sizes)."""
        if self.scales is None and self.ms_hw == self.pan_hw:
            return 4.0
        # pixel sizes; without them, one extent: a pixel's size is inverse to the pixel count
        ms_px, pan_px = self.scales or (self.pan_hw, self.ms_hw)
        return max(1.0, float(np.mean([ms_px[i] / pan_px[i] for i in range(2)])))

    def resampling(self, spectral: bool) -> dict[str, Any] | None:
        """How the bands reached the panchromatic grid, for the metadata (None: already on it)."""
        if not self.resampled:
            return None
        ms_s, pan_s = (list(s) for s in self.scales) if self.scales else (None, None)
        ms_t, pan_t = (list(t) for t in self.translates) if self.scales else (None, None)
        return {"from": list(self.ms_hw), "to": list(self.pan_hw), "order": 3,
                "clipped_to_band_range": True, "kept_as_float": spectral, "ms_scale": ms_s,
                "pan_scale": pan_s, "ms_translate": ms_t, "pan_translate": pan_t}  # fmt: skip


def _check_arguments(
    rescale: str, ratio: float | None, ms_scale: Any, pan_scale: Any, ms_translate: Any,
    pan_translate: Any,
) -> tuple[tuple[_Pair, _Pair] | None, tuple[_Pair, _Pair]]:  # fmt: skip
    """Refuse a bad rescale rule, ratio, scale or translate; return (scales or None, translates)."""
    if rescale not in RESCALES:
        raise ValueError(f"unknown rescale {rescale!r}; valid: {', '.join(RESCALES)}")
    number = type(ratio) is not bool and isinstance(ratio, (int, float, np.integer, np.floating))
    if ratio is not None and not (number and np.isfinite(ratio) and ratio >= 1):
        raise ValueError(f"ratio must be a finite number >= 1, not {ratio!r}")
    if (ms_scale is None) != (pan_scale is None):
        raise ValueError("give both ms_scale and pan_scale, or neither")
    translates = (pair_arg(ms_translate, "ms_translate", positive=False),
                  pair_arg(pan_translate, "pan_translate", positive=False))  # fmt: skip
    if ms_scale is not None and pan_scale is not None:
        return (pair_arg(ms_scale, "ms_scale", positive=True),
                pair_arg(pan_scale, "pan_scale", positive=True)), translates  # fmt: skip
    if translates != ((0.0, 0.0), (0.0, 0.0)):
        raise ValueError(
            "ms_translate and pan_translate need the pixel sizes (ms_scale, pan_scale)"
        )
    return None, translates


def _read(ms: Any, pan: Any, band_axis: int | None) -> tuple[np.ndarray, np.ndarray, int | None]:
    """Both images as arrays and the axis (0 or -1; None: one band (H, W)) the bands lie
    along; refused unless of a shape and dtype pansharpening takes, with a band at least."""
    from ..engine.inputs import as_array

    ms_arr, pan_arr = as_array(ms, "ms"), as_array(pan, "pan")
    if not (pan_arr.ndim == 2 or (pan_arr.ndim == 3 and pan_arr.shape[-1] in (3, 4))):
        raise ValueError(f"the panchromatic image must be (H, W), got shape {pan_arr.shape}")
    if ms_arr.ndim not in (2, 3):
        raise ValueError(
            f"the multispectral image must be (bands, H, W), (H, W, bands) or (H, W), "
            f"got shape {ms_arr.shape}"
        )
    for name, arr in (("multispectral", ms_arr), ("panchromatic", pan_arr)):
        if arr.dtype.kind not in "buif":
            raise ValueError(
                f"the {name} image must be bool, integer or float data, not {arr.dtype}"
            )
    if ms_arr.ndim == 2:
        if band_axis is not None:
            raise ValueError(
                f"band_axis must be None for a single-band (H, W) multispectral image "
                f"{ms_arr.shape}, not {band_axis!r}"
            )
        return ms_arr, pan_arr, None
    axis = 0 if band_axis_of(ms_arr.shape, band_axis) == 0 else -1
    if ms_arr.shape[axis] == 0:
        raise ValueError(f"the multispectral image {ms_arr.shape} has no bands along axis {axis}")
    return ms_arr, pan_arr, axis


def _prepare(
    ms: np.ndarray, pan: np.ndarray, axis: int | None, axis_given: bool,
    scales: tuple[_Pair, _Pair] | None, translates: tuple[_Pair, _Pair],
) -> _Bands:  # fmt: skip
    """The bands and their grids; refused when empty, off the panchromatic grid or not finite."""
    ms_hw = ms.shape if axis is None else ms.shape[1:] if axis == 0 else ms.shape[:2]
    ms_hw, pan_hw = (int(ms_hw[0]), int(ms_hw[1])), (int(pan.shape[0]), int(pan.shape[1]))
    if 0 in ms_hw or 0 in pan_hw:
        raise ValueError(f"empty image: multispectral {ms.shape}, panchromatic {pan.shape}")
    hint = ""
    if axis is not None:
        how = "given" if axis_given else "chosen as the shorter end axis"
        hint = (
            f"; the bands were taken along axis {axis} ({how}) of the multispectral image "
            f"{ms.shape}: pass band_axis={-1 if axis == 0 else 0} if they lie there"
        )
    check_grid(ms_hw, pan_hw, scales, translates, hint)
    for name, arr in (("multispectral", ms), ("panchromatic", pan)):
        if arr.dtype.kind == "f" and not np.isfinite(arr).all():
            raise ValueError(f"the {name} image holds NaN or infinite values")
    bands = (ms,) if axis is None else tuple(np.take(ms, i, axis) for i in range(ms.shape[axis]))
    ranges = tuple((float(b.min()), float(b.max())) for b in bands)
    return _Bands(bands, ranges, pan, axis, ms_hw, pan_hw, scales, translates)


def _spectral(
    method: str, prep: _Bands, rescale: str, ratio: float, options: FusionOptions,
    progress: Progress | None,
) -> tuple[list[np.ndarray], list[np.ndarray], dict[str, Any]]:  # fmt: skip
    """All bands by a spectral method: (output bands, lumas, the run's metadata)."""
    from ..methods.pansharpening import NYQUIST_GAIN, gsa_detail, pansharpen_bands

    pan = _grey(prep.pan)
    # float64 bands are resampled in float64, the others as float32 (then float64)
    ms = np.stack([prep.on_pan_grid(b.astype(np.float64), b.dtype == np.float64)
                   for b in prep.bands]).astype(np.float64)  # fmt: skip
    meta: dict[str, Any] = {"method": method, "nyquist_gain": NYQUIST_GAIN}
    steps = GSA_GIFNET_STEPS if method == "gsa_gifnet" else 1
    if progress is not None:
        progress(0, steps)
    if method == "gsa_gifnet":
        from ..methods.classical import fuse_pair

        def relay(done: int, total: int) -> None:  # the tiles' share never goes down
            shown = min(steps - 1, done * (steps - 1) // max(total, 1))
            progress(shown, steps)  # type: ignore[misc]

        report = None if progress is None else relay

        def detail(intensity: np.ndarray, sharp: np.ndarray) -> np.ndarray:
            lo = float(min(intensity.min(), sharp.min()))
            hi = float(max(intensity.max(), sharp.max()))
            hi = hi if hi > lo else lo + 1.0
            common = options.but(normalization=(lo, hi))  # the two inputs' common range
            res = fuse_pair("gifnet", intensity, sharp, common, report)
            meta.update({k: res.metadata[k] for k in ("weights_sha256", "device")
                         if k in res.metadata})  # fmt: skip
            return lo + res.luma.astype(np.float64) * (hi - lo)

        fused = gsa_detail(ms, pan, ratio, detail)
    else:
        fused = pansharpen_bands(method, ms, pan, ratio)
    if progress is not None:
        progress(steps, steps)
    outputs, lumas = [], []
    for k, (band, (lo, hi)) in enumerate(zip(prep.bands, prep.ranges)):
        outputs.append(_rescale(fused[k], ms[k], (lo, hi), rescale, band.dtype))
        scaled = (fused[k] - lo) / (hi - lo) if hi > lo else np.zeros_like(fused[k])
        lumas.append(np.clip(scaled, 0, 1).astype(np.float32))
    return outputs, lumas, meta


def _per_band(
    method: str, prep: _Bands, rescale: str, options: FusionOptions, progress: Progress | None
) -> tuple[list[np.ndarray], list[np.ndarray], dict[str, Any]]:  # fmt: skip
    """Each band fused with the panchromatic image: (output bands, lumas, the first's metadata)."""
    from ..methods.classical import fuse_pair

    outputs, lumas, metas = [], [], []
    for i, (band, span) in enumerate(zip(prep.bands, prep.ranges)):
        band = prep.on_pan_grid(band)

        def report(done: int, total: int, i: int = i) -> None:
            if progress is not None:
                progress(i * total + done, len(prep.bands) * total)

        res = fuse_pair(method, band, prep.pan, options, report)
        luma_of = res.metadata["inputs"]["a"]
        outputs.append(_rescale(res.luma, band, span, rescale, band.dtype, luma_of))
        lumas.append(res.luma)
        metas.append(res.metadata)
    return outputs, lumas, metas[0]


def _metadata(
    method: str, ratio: float | None, rescale: str, prep: _Bands, image: np.ndarray,
    first: dict[str, Any], elapsed: float,
) -> dict[str, Any]:  # fmt: skip
    """The provenance; ``ratio`` None: per-band fusion; ``first``: the first fusion's metadata."""
    spectral = ratio is not None
    return {
        "method": first.get("method", method),
        "family": "spectral" if spectral else "per-band fusion",
        "ratio": None if ratio is None else round(float(ratio), 6),
        "napari_gifnet_version": __version__,
        "task": "pansharpening: the panchromatic details injected into every multispectral band"
        if spectral
        else "pansharpening: each multispectral band (first input) + panchromatic (second)",
        **({"nyquist_gain": first["nyquist_gain"]} if spectral else {}),
        "bands": len(prep.bands),
        "band_axis": prep.axis,
        "output_shape": list(image.shape),
        "dtype": str(image.dtype),
        "resampled": prep.resampling(spectral),
        "rescale": rescale,
        "band_ranges": list(prep.ranges),
        **{k: first[k] for k in ("weights_sha256", "device") if k in first},
        "elapsed_s": round(elapsed, 4),
    }


def pansharpen(
    ms: Any,
    pan: Any,
    *,
    band_axis: int | None = None,
    method: str = DEFAULT_METHOD,
    rescale: str = "range",
    ratio: float | None = None,
    ms_scale: Sequence[float] | float | None = None,
    pan_scale: Sequence[float] | float | None = None,
    ms_translate: Sequence[float] | float = (0.0, 0.0),
    pan_translate: Sequence[float] | float = (0.0, 0.0),
    normalization: Any = "auto",
    weights: Any = None,
    device: Any = "auto",
    progress: Progress | None = None,
) -> PansharpenResult:
    """Fuse every band of a multispectral image with a panchromatic image.

    Parameters
    ----------
    ms : array_like
        Multispectral image, (bands, H, W) or (H, W, bands), or one band
        (H, W); bool, integer or float. May be smaller than ``pan``
        (upsampled first). Never modified.
    pan : array_like
        Panchromatic image, (H, W) (an RGB image is reduced to its luma by
        the fusion).
    band_axis : {0, -1}, optional
        Where the bands are; default: the shorter of the first and last axes.
        Bands whose grid does not fit the panchromatic one (see Raises) are
        refused, with a hint to pass the other band axis. None (left out)
        for a single-band (H, W) image.
    method : str
        A spectral method of :data:`napari_gifnet.methods.pansharpening.PANSHARPENING_METHODS`
        (default ``"mtf_glp_rr"``, the best measured), ``"gifnet"`` (each band
        fused with the panchromatic image by the network) or a baseline of
        :data:`napari_gifnet.methods.classical.BASELINES`; see
        :func:`pansharpen_method_names`.
    rescale : {"range", "moments", "none"}
        How each fused band returns to its band's values: ``"range"`` within
        the band's minimum..maximum, ``"moments"`` its mean and standard
        deviation, ``"none"``: a spectral method's band as it comes, a
        per-band fusion's with its input normalisation undone
        (docs/pansharpening.md, step 3).
    ratio : float, optional
        The panchromatic / multispectral resolution ratio the spectral
        methods assume (their low-pass filters); default: from the grids
        (the size ratio, or the scales' ratio), 4 when the bands already have
        the panchromatic size. At least 1. Per-band fusion resamples by the
        grids alone and takes no ratio (refused).
    ms_scale, pan_scale : float or (float, float), optional
        Pixel sizes (y, x) in world units, e.g. napari layers' ``scale``
        (one number: the same on both axes); positive and finite; give both
        or neither.
    ms_translate, pan_translate : float or (float, float)
        World position of pixel (0, 0), e.g. napari layers' ``translate``
        (one number: the same on both axes); finite; only with the scales.
    normalization, weights, device
        Passed to each fusion (:func:`napari_gifnet.fuse`; baselines ignore
        weights and device); spectral methods use weights and device only for
        ``"gsa_gifnet"``'s network, whose inputs are normalised by their
        common range.
    progress : callable, optional
        ``progress(done, total)``, ``total`` the same in every call: per-band
        fusion counts the steps of every band's fusion; spectral methods
        report (0, 1) and (1, 1), ``"gsa_gifnet"`` (0, 100) to (100, 100)
        (:data:`GSA_GIFNET_STEPS`, its network fusion in between). An
        exception raised by it stops the run.

    Returns
    -------
    PansharpenResult

    Raises
    ------
    ValueError
        Unsupported shapes or dtypes, empty images or no bands, NaN or
        infinite values, an unknown method or rescale rule, a ratio below 1 or
        with a per-band method, a ``band_axis`` for one (H, W) band; scales or
        translates that are not one or two finite numbers (scales: > 0),
        only one of the two scales, translates without scales. And a
        multispectral grid that does not fit the panchromatic one
        (:func:`~napari_gifnet.workflows.pan_grid.check_grid`): a wrong
        ``band_axis`` shows up this way.
    """
    from ..methods.pansharpening import PANSHARPENING_METHODS

    start = time.perf_counter()
    method = _method(method)
    options = FusionOptions(weights=weights, device=device, normalization=normalization)
    scales, translates = _check_arguments(rescale, ratio, ms_scale, pan_scale,
                                          ms_translate, pan_translate)  # fmt: skip
    if ratio is not None and method not in PANSHARPENING_METHODS:
        raise ValueError(
            f"ratio is used by the spectral methods only; per-band fusion ({method!r}) "
            f"takes none, not {ratio!r}"
        )
    ms_arr, pan_arr, axis = _read(ms, pan, band_axis)
    prep = _prepare(ms_arr, pan_arr, axis, band_axis is not None, scales, translates)
    if method in PANSHARPENING_METHODS:
        used_ratio = float(ratio if ratio is not None else prep.grid_ratio())
        outputs, lumas, first = _spectral(method, prep, rescale, used_ratio, options, progress)
    else:
        used_ratio = None
        outputs, lumas, first = _per_band(method, prep, rescale, options, progress)
    image = outputs[0] if axis is None else np.stack(outputs, axis=axis)
    elapsed = time.perf_counter() - start
    metadata = _metadata(method, used_ratio, rescale, prep, image, first, elapsed)
    return PansharpenResult(image, np.stack(lumas), np.array(prep.ranges), metadata, elapsed)
