"""Tests of napari_gifnet.methods.presets: which modality goes into which input, per task.

The published model was trained with a fixed order of its two inputs per task
(``../shared/reference/pairs/<task>/a_*`` is the first input, ``b_*`` the
second): a preset that names them the wrong way round makes users feed the
network backwards without any error. The table below is written out by hand
from what each task means, not copied from the module under test.
"""

from __future__ import annotations

import pytest

from napari_gifnet.methods.presets import PRESETS, TaskPreset, get_preset, preset_choices

#: key -> (menu label, first input, second input, normalisation), in menu order.
EXPECTED: dict[str, tuple[str, str, str, str]] = {
    "ivif": ("Infrared + visible", "infrared", "visible", "auto"),
    "medical": ("Medical (PET/SPECT/CT + MRI)", "PET / SPECT / CT", "MRI", "auto"),
    "nir": ("NIR + visible", "near-infrared", "visible", "auto"),
    "mfif": ("Multi-focus", "near-focus", "far-focus", "dtype"),
    "meif": ("Multi-exposure", "over-exposed", "under-exposed", "dtype"),
    "remote": ("Multispectral + panchromatic", "multispectral band", "panchromatic", "auto"),
    "custom": ("Custom", "first image", "second image", "auto"),
}

#: key -> the hint shown under the task menu, written out in full.
HINTS: dict[str, str] = {
    "ivif": "First input: infrared. Second input: visible (published order).",
    "medical": "First input: PET / SPECT / CT. Second input: MRI (published order).",
    "nir": "First input: near-infrared. Second input: visible (published order).",
    "mfif": "First input: near-focus. Second input: far-focus (published order).",
    "meif": "First input: over-exposed. Second input: under-exposed (published order).",
    "remote": "First input: multispectral band. Second input: panchromatic (published order).",
    "custom": "First and second input: any two registered images of one scene.",
}


def test_the_presets_are_exactly_the_tasks_in_menu_order():
    assert list(PRESETS) == list(EXPECTED)
    assert preset_choices() == [(label, key) for key, (label, *_) in EXPECTED.items()]


@pytest.mark.parametrize("key", list(EXPECTED))
def test_each_preset_names_its_first_and_second_input(key):
    label, first, second, normalization = EXPECTED[key]
    preset = PRESETS[key]
    assert isinstance(preset, TaskPreset) and preset.key == key
    assert (preset.label, preset.first, preset.second) == (label, first, second)
    assert preset.normalization == normalization
    assert preset.note  # the tooltip says why


@pytest.mark.parametrize("key", list(HINTS))
def test_each_hint_puts_the_first_input_first(key):
    hint = PRESETS[key].hint
    assert hint == HINTS[key]
    if key != "custom":
        _, first, second, _ = EXPECTED[key]
        assert hint.index(f"First input: {first}.") < hint.index(f"Second input: {second}")


def test_multi_focus_is_near_then_far_and_multi_exposure_over_then_under():
    # The two photographic tasks whose inputs differ only in one word: easy to swap.
    mfif, meif = get_preset("mfif"), get_preset("meif")
    assert (mfif.first, mfif.second) == ("near-focus", "far-focus")
    assert mfif.hint.index("near-focus") < mfif.hint.index("far-focus")
    assert (meif.first, meif.second) == ("over-exposed", "under-exposed")
    assert meif.hint.index("over-exposed") < meif.hint.index("under-exposed")


@pytest.mark.parametrize("key", list(EXPECTED))
def test_get_preset_accepts_the_key_or_the_label_in_any_case(key):
    label = EXPECTED[key][0]
    for name in (key, key.upper(), label, label.lower(), f"  {label.upper()} "):
        assert get_preset(name) is PRESETS[key]


def test_an_unknown_preset_lists_the_valid_keys():
    with pytest.raises(KeyError, match="unknown task preset 'sonar'; choose one of ivif, medical"):
        get_preset("sonar")
