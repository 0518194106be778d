"""The "Pansharpen" dock widget: a multispectral layer + a panchromatic layer.

A form over :func:`napari_gifnet.workflows.pansharpening.pansharpen`, run in
the widget's worker with the layers' scale and translate, so a coarser
multispectral layer is upsampled onto the panchromatic grid. The result,
``"<ms> pansharpened (<Method>)"``, has the multispectral layer's layout on
the panchromatic grid. "Compare methods" (:mod:`.compare`) shows every
method's QNR (no reference).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
from magicgui.widgets import CheckBox, ComboBox

from ..layer_output import put_image
from ._form import level0, short_combo
from ._job import JobWidget, gifnet_controls, weights_of
from .compare import CompareJob, add_compare_controls

if TYPE_CHECKING:  # pragma: no cover
    import napari

__all__ = ["PansharpenWidget"]

_AXES = [("auto", None), ("first (bands, Y, X)", 0), ("last (Y, X, bands)", -1)]

#: What each pansharpening method is for, in its list entry; the list is in the order of
#: :func:`napari_gifnet.workflows.pansharpening.pansharpen_method_names`, best measured
#: first (PSNR and ERGAS against the truth under Wald's protocol, docs/pansharpening.md).
_METHOD_USES = {
    "mtf_glp_rr": "best measured",
    "mtf_glp": "details scaled by band contrast",
    "gsa": "Gram-Schmidt substitution",
    "gihs": "generalised IHS; for R, G, B bands",
    "mtf_glp_hpm": "details multiplied in",
    "brovey": "band ratios; keeps the spectral angles",
    "gsa_gifnet": "GSA with GIFNet's details",
    "gifnet": "each band with the pan; colours drift",
}
#: The list entry of a per-band fusion baseline (not measured for pansharpening).
_BASELINE_USE = "each band with the pan as a pair"

#: What each pansharpening method does, shown as the method list's tooltip (best measured first).
_METHOD_TIPS = (
    "How the panchromatic details enter the bands, best measured first (PSNR and ERGAS "
    "against the truth under Wald's protocol, docs/pansharpening.md):",
    "MTF-GLP, reduced-resolution gains (default): the panchromatic details above an "
    "MTF-matched low-pass, added to every band with the gain measured one scale down",
    "MTF-GLP: the same details, scaled by each band's contrast",
    "GSA: Gram-Schmidt adaptive component substitution (regression intensity, per-band gains)",
    "GIHS: generalised IHS, the matched pan minus the bands' mean added to each band "
    "(edges out the default when the bands are R, G, B and the pan their mix)",
    "MTF-GLP-HPM: MTF-GLP details injected multiplicatively",
    "Brovey: each band scaled by pan / intensity (best QNR: keeps the upsampled bands' "
    "spectral angles, 1.3 dB below the default against the truth)",
    "GSA + GIFNet detail: GSA with the details of GIFNet's fusion of intensity and pan",
    "GIFNet and the baselines: each band fused with the pan as an image pair "
    "(sharp, but the colours drift; see docs/pansharpening.md)",
)
_TOOLTIPS = {
    "ms": (
        "The multiband layer, (bands, Y, X) or (Y, X, bands), shown as a non-RGB layer; "
        "coarser than the panchromatic layer is fine (upsampled by the layers' scales)"
    ),
    "pan": "The panchromatic layer (Y, X): its grid is the result's",
    "band_axis": (
        "Where the bands are in the multispectral layer:\n"
        "auto (default): the shorter of the first and last axes\n"
        "first: (bands, Y, X)\n"
        "last: (Y, X, bands)\n"
        "Change it when a small image is read the wrong way round (Run then refuses "
        "with a hint)"
    ),
    "rescale": (
        "How each sharpened band returns to its band's values:\n"
        "range (default): within the band's own minimum..maximum (spectral methods clipped "
        "to it, per-band fusion stretched onto it)\n"
        "moments: the band's mean and standard deviation matched instead, for per-band "
        "fusion when stretching onto the full range is too strong\n"
        "none: the values as computed (per-band fusion: the band's normalisation undone), "
        "to inspect a method's own output"
    ),
    "keep_previous": (
        "Off (default): a rerun with the same method updates its own result layer (another "
        "method's result always stays). On: every run adds a new layer, to compare options "
        "such as the band range side by side"
    ),
}


def pansharpen_method_choices() -> list[tuple[str, str]]:
    """``(label, key)`` of every pansharpening method, best measured first.

    Returns
    -------
    list of (str, str)
        Labels saying what each is for, e.g. ``"MTF-GLP, reduced-resolution
        gains — best measured"``; the keys in the order of
        :func:`~napari_gifnet.workflows.pansharpening.pansharpen_method_names`.
    """
    from ...workflows.pansharpening import pansharpen_method_names

    return [
        (f"{method_name(key)} — {_METHOD_USES.get(key, _BASELINE_USE)}", key)
        for key in pansharpen_method_names()
    ]


def method_name(key: str) -> str:
    """A pansharpening method's display name, e.g. ``"GSA"``, ``"GIFNet"``."""
    from ...methods.pansharpening import PANSHARPENING_METHODS
    from ...methods.registry import task_method_label

    return PANSHARPENING_METHODS.get(key) or task_method_label(key)


def _limits(band_ranges: np.ndarray) -> tuple[float, float]:
    """A result's contrast limits: from the lowest band minimum to the highest maximum."""
    lo, hi = float(band_ranges[:, 0].min()), float(band_ranges[:, 1].max())
    return lo, hi if hi > lo else lo + 1


class PansharpenWidget(JobWidget):
    """Dock widget: fuse every band of a multispectral layer with a panchromatic layer."""

    def __init__(self, napari_viewer: napari.viewer.Viewer) -> None:
        from ...workflows.pansharpening import DEFAULT_METHOD, RESCALES

        super().__init__(napari_viewer)
        self.ms = ComboBox(label="multispectral", choices=self._image_choices)
        self.pan = ComboBox(label="panchromatic", choices=self._image_choices)
        self.band_axis = ComboBox(label="bands", choices=_AXES, value=None)
        self.method = ComboBox(
            label="method", choices=pansharpen_method_choices(), value=DEFAULT_METHOD,
            tooltip="\n".join(_METHOD_TIPS),
        )  # fmt: skip
        self.rescale = ComboBox(label="band range", choices=list(RESCALES), value="range")
        self.keep_previous = CheckBox(text="keep previous results", value=False)
        for name, tip in _TOOLTIPS.items():
            getattr(self, name).tooltip = tip
        short_combo(self.method, 20)
        gifnet_controls(self)
        self._pickers = [self.ms, self.pan]
        self.extend([
            self.ms, self.pan, self.band_axis, self.method, self.rescale, self.device,
            self.weights, self.keep_previous, self.buttons, self.status,
        ])  # fmt: skip
        add_compare_controls(self)
        self._refresh_layers()
        self.remember(
            "pansharpen", "band_axis", "method", "rescale", "device", "weights", "keep_previous"
        )

    def _job_inputs(self) -> tuple[Any, Any, dict[str, Any]]:
        """The two arrays (unread) and ``pansharpen``'s options; records the output layout."""
        from ...workflows.pansharpening import band_axis_of

        ms, pan = self.ms.value, self.pan.value
        if ms is None or pan is None or ms is pan:
            raise ValueError("choose a multispectral and a different panchromatic layer")
        # the arrays as they are (Dask, zarr, ...): their pixels are read in the job
        ms_data, pan_data = level0(ms), level0(pan)
        if len(ms_data.shape) != 3 or ms.rgb:
            raise ValueError(
                f"{ms.name!r} has shape {tuple(ms_data.shape)}: the multispectral layer needs three "
                "axes, (bands, Y, X) or (Y, X, bands), shown as a non-RGB layer"
            )
        axis = band_axis_of(tuple(ms_data.shape), self.band_axis.value)
        yx = [1, 2] if axis == 0 else [0, 1]
        ms_scale = tuple(float(ms.scale[i]) for i in yx)
        ms_translate = tuple(float(ms.translate[i]) for i in yx)
        pan_scale = tuple(float(s) for s in pan.scale[-2:])
        pan_translate = tuple(float(t) for t in pan.translate[-2:])
        band_scale = float(ms.scale[0 if axis == 0 else 2])
        if axis == 0:
            scale, translate = (band_scale, *pan_scale), (0.0, *pan_translate)
        else:
            scale, translate = (*pan_scale, band_scale), (*pan_translate, 0.0)
        self._target = (ms.name, scale, translate, method_name(self.method.value))
        options = {
            "band_axis": axis, "method": self.method.value, "rescale": self.rescale.value,
            "ms_scale": ms_scale, "pan_scale": pan_scale, "ms_translate": ms_translate,
            "pan_translate": pan_translate, "weights": weights_of(self),
            "device": self.device.value,
        }  # fmt: skip
        return ms_data, pan_data, options

    def prepare(self) -> tuple[Callable, str]:
        from ...workflows.pansharpening import pansharpen

        ms_data, pan_data, options = self._job_inputs()
        ms, pan = self.ms.value, self.pan.value

        def job(progress: Callable[[int, int], None]) -> Any:
            ms_pixels, pan_pixels = np.asarray(ms_data), np.asarray(pan_data)  # worker thread
            return pansharpen(ms_pixels, pan_pixels, progress=progress, **options)

        return job, f"Pansharpen: {ms.name} + {pan.name}"

    def finish(self, value: Any) -> list[Any]:
        name, scale, translate, label = self._target
        meta = dict(value.metadata, source_layer=name)
        return [
            put_image(
                self.viewer, f"{name} pansharpened ({label})", value.image,
                keep_previous=self.keep_previous.value, rgb=False, colormap="gray",
                contrast_limits=_limits(value.band_ranges), scale=scale, translate=translate,
                metadata=meta,
            )
        ]  # fmt: skip

    def summary(self, value: Any) -> str:
        meta = value.metadata
        up = " (upsampled)" if meta.get("resampled") else ""
        return f"Last run: {meta['bands']} bands{up}, {meta['method']}, {value.elapsed:.1f} s"

    def compare_job(self) -> CompareJob:
        """Every spectral method and GIFNet on the two layers (GUI thread, no pixels read)."""
        from ..compare_methods import compare_pansharpen

        ms_data, pan_data, options = self._job_inputs()
        options.pop("method")
        axis = options.pop("band_axis")
        name, scale, translate, _ = self._target
        tf = {"scale": scale, "translate": translate}
        methods = self.compare_methods  # None: every method of the task

        def work(progress: Callable[[int, int], None]) -> Any:
            ms_pixels, pan_pixels = np.asarray(ms_data), np.asarray(pan_data)  # worker thread
            return compare_pansharpen(
                ms_pixels, pan_pixels, band_axis=axis, methods=methods, progress=progress,
                **options,
            )  # fmt: skip

        def look(result: Any) -> dict[str, Any]:
            limits = _limits(result.result.band_ranges)
            return {"rgb": False, "colormap": "gray", "contrast_limits": limits, **tf}

        base = f"{name} + {self.pan.value.name}"
        return CompareJob(work, f"Compare methods: {base}", base, look)
