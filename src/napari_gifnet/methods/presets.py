"""Task presets: which modality goes into which input, and sensible defaults.

GIFNet was trained with a fixed order of its two inputs per task (see
:func:`napari_gifnet.engine.fusion.fuse`). A preset only sets defaults in the napari
widget (the labels and hint of the two layer pickers and the normalisation);
it never changes how the network runs.

>>> from napari_gifnet.methods.presets import get_preset
>>> get_preset("medical").first
'PET / SPECT / CT'
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["PRESETS", "TaskPreset", "get_preset", "preset_choices"]


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
    """

    key: str
    label: str
    first: str
    second: str
    normalization: str = "auto"
    note: str = ""

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

#: The presets, in menu order.
PRESETS: dict[str, TaskPreset] = {
    p.key: p
    for p in (
        TaskPreset("ivif", "Infrared + visible", "infrared", "visible", "auto", _AUTO_NOTE),
        TaskPreset(
            "medical", "Medical (PET/SPECT/CT + MRI)", "PET / SPECT / CT", "MRI", "auto",
            _AUTO_NOTE,
        ),
        TaskPreset("nir", "NIR + visible", "near-infrared", "visible", "auto", _AUTO_NOTE),
        TaskPreset("mfif", "Multi-focus", "near-focus", "far-focus", "dtype", _SAME_SENSOR_NOTE),
        TaskPreset(
            "meif", "Multi-exposure", "over-exposed", "under-exposed", "dtype", _SAME_SENSOR_NOTE
        ),
        TaskPreset(
            "remote",
            "Multispectral + panchromatic",
            "multispectral band",
            "panchromatic",
            "auto",
            _AUTO_NOTE,
        ),
        TaskPreset("custom", "Custom", "first image", "second image", "auto", _AUTO_NOTE),
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
