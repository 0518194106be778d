"""Task presets: which modality goes into which input, and each task's default method.

GIFNet was trained with a fixed order of its two inputs per task (see
:func:`napari_gifnet.engine.fusion.fuse`). A preset names the two inputs (the
labels and hint of the napari widget's layer pickers), the normalisation, and
the method a task runs when no method is given (``method``, with one line on
why in ``why``: the measurement it rests on, tabled in :data:`QUALITY_DOC`).
This module is the one place those defaults live: ``fuse(a, b, task=...)``
(:mod:`napari_gifnet.workflows.tasks`), ``napari-gifnet fuse --task`` and the
widget read them from here. A preset never changes how the network runs.

>>> from napari_gifnet.methods.presets import get_preset
>>> get_preset("medical").first
'PET / SPECT / CT'
>>> get_preset("mfif").method
'focus_pyramid'
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["PRESETS", "QUALITY_DOC", "TaskPreset", "get_preset", "preset_choices", "task_keys"]

#: Where the per-task ground-truth tables behind the defaults are (relative to the repository).
QUALITY_DOC = "docs/quality.md"


@dataclass(frozen=True)
class TaskPreset:
    """Defaults for one fusion task.

    Attributes
    ----------
    key
        Short identifier, e.g. ``"ivif"``.
    label
        Name shown in the task menu, e.g. ``"Infrared + visible"``.
    first, second
        The modality that goes into the first and the second input, in the
        order the published model expects.
    normalization
        Default normalisation rule (see :mod:`napari_gifnet.engine.preprocess`).
    note
        One sentence on why these defaults were chosen.
    method
        The method the task runs when none is given: ``"gifnet"``,
        ``"focus"`` (focus selection, the pair as a 2-plane focus stack),
        ``"focus_pyramid"`` (that selection guiding a Laplacian pyramid blend)
        or a baseline of :data:`napari_gifnet.methods.classical.BASELINES`.
    why
        One line on why that method is the default, with the measured figure.
    """

    key: str
    label: str
    first: str
    second: str
    normalization: str = "auto"
    note: str = ""
    method: str = "gifnet"
    why: str = ""

    @property
    def reason(self) -> str:
        """``why`` with where its table is: ``"<why> (docs/quality.md)"``."""
        return f"{self.why} ({QUALITY_DOC})"

    @property
    def hint(self) -> str:
        """One line telling which modality goes where."""
        if self.key == "custom":
            return "First and second input: any two registered images of one scene."
        return f"First input: {self.first}. Second input: {self.second} (published order)."


_AUTO_NOTE = "uint8 is divided by 255 as published; other data uses a robust percentile range."
_SAME_SENSOR_NOTE = (
    "both inputs come from one sensor, so both use the data type's range and "
    "keep their relative brightness."
)

#: Why GIFNet is the default of the tasks without ground truth: what it trades.
_GIFNET_WHY = (
    "GIFNet, the published network: first on AG and EI (sharpness) on the published "
    "pairs, sixth of seven on VIF and Qabf (simple rules keep more of the inputs)"
)

#: The presets, in menu order.
PRESETS: dict[str, TaskPreset] = {
    p.key: p
    for p in (
        TaskPreset(
            "ivif", "Infrared + visible", "infrared", "visible", "auto", _AUTO_NOTE,
            "gifnet", _GIFNET_WHY,
        ),
        TaskPreset(
            "medical", "Medical (PET/SPECT/CT + MRI)", "PET / SPECT / CT", "MRI", "auto",
            _AUTO_NOTE, "gifnet", _GIFNET_WHY,
        ),
        TaskPreset(
            "nir", "NIR + visible", "near-infrared", "visible", "auto", _AUTO_NOTE,
            "gifnet", _GIFNET_WHY,
        ),
        TaskPreset(
            "mfif", "Multi-focus", "near-focus", "far-focus", "dtype", _SAME_SENSOR_NOTE,
            "focus_pyramid",
            "the focus-guided pyramid (focus selection, with depth and confidence maps, "
            "guiding a Laplacian pyramid blend): 36.5 dB luma PSNR on 4 held-out "
            "defocus-from-depth pairs; openfocus StackMFF-V3 36.3, focus selection 35.9, "
            "GIFNet 24.8",
        ),
        TaskPreset(
            "meif", "Multi-exposure", "over-exposed", "under-exposed", "dtype",
            _SAME_SENSOR_NOTE, "laplacian",
            "Laplacian pyramid: MEF-SSIM 0.977 on 6 exposure pairs rendered from radiance; "
            "OpenCV MergeMertens 0.967, GIFNet 0.866",
        ),
        TaskPreset(
            "remote", "Multispectral + panchromatic", "multispectral band", "panchromatic",
            "auto", _AUTO_NOTE, "gifnet",
            "GIFNet for one band with the panchromatic image, as published; a multispectral "
            "image goes through pansharpen (default MTF-GLP with reduced-resolution gains: "
            "35.8 dB, ERGAS 1.17, SAM 1.54 deg under Wald's protocol; GIFNet per band 23.3 dB)",
        ),
        TaskPreset(
            "custom", "Custom", "first image", "second image", "auto", _AUTO_NOTE, "gifnet",
            "GIFNet, the published all-task network, where no ground-truth benchmark applies",
        ),
    )
}


def get_preset(key: str) -> TaskPreset:
    """Return the preset named by ``key`` (its key or its label, any case).

    Raises
    ------
    KeyError
        When no preset has that key or label.
    """
    wanted = key.strip().lower()
    for preset in PRESETS.values():
        if wanted in (preset.key, preset.label.lower()):
            return preset
    raise KeyError(f"unknown task preset {key!r}; choose one of {', '.join(PRESETS)}")


def preset_choices() -> list[tuple[str, str]]:
    """``(label, key)`` pairs for a menu, in order."""
    return [(p.label, p.key) for p in PRESETS.values()]


def task_keys() -> tuple[str, ...]:
    """The task keys, in menu order (the command line's ``--task`` choices)."""
    return tuple(PRESETS)
