"""Tests of napari_gifnet.methods.presets: which modality goes into which input, per task.

The published model was trained with a fixed order of its two inputs per task
(``../shared/reference/pairs/<task>/a_*`` is the first input, ``b_*`` the
second): a preset that names them the wrong way round makes users feed the
network backwards without any error. The table below is written out by hand
from what each task means, not copied from the module under test.
"""

from __future__ import annotations

import pytest

from napari_gifnet.methods.presets import (
    PRESETS,
    TaskPreset,
    get_preset,
    preset_choices,
    task_keys,
)
from napari_gifnet.methods.registry import (
    method_names,
    task_method_key,
    task_method_label,
    task_method_names,
)

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


#: key -> the method the task runs without one, as issue 22 decided from the
#: ground-truth benchmarks (docs/quality.md), written out by hand.
DEFAULT_METHODS: dict[str, str] = {
    "ivif": "gifnet", "medical": "gifnet", "nir": "gifnet", "mfif": "focus_pyramid",
    "meif": "laplacian", "remote": "gifnet", "custom": "gifnet",
}  # fmt: skip


@pytest.mark.parametrize("key", list(EXPECTED))
def test_each_task_has_its_measured_default_method_and_a_reason(key):
    preset = PRESETS[key]
    assert preset.method == DEFAULT_METHODS[key]
    assert task_method_key(preset.method) == preset.method  # a method the tasks can run
    assert preset.why and "\n" not in preset.why
    assert preset.reason == f"{preset.why} (docs/quality.md)"


def test_the_reasons_carry_their_measured_figures():
    # a number per benchmarked task: the one line on why is the measurement
    assert "dB" in PRESETS["mfif"].why and "MEF-SSIM" in PRESETS["meif"].why
    for key in ("ivif", "medical", "nir"):
        assert "VIF" in PRESETS[key].why and "AG" in PRESETS[key].why  # what GIFNet trades


def test_task_keys_are_the_presets_in_menu_order():
    assert task_keys() == tuple(EXPECTED)


def test_task_methods_are_the_pair_methods_plus_focus_selection():
    assert task_method_names() == ("gifnet", "focus", "focus_pyramid", *method_names()[1:])
    assert task_method_key(" Focus Selection ") == "focus"
    assert task_method_key("Focus-guided pyramid") == "focus_pyramid"
    assert task_method_label("focus") == "Focus selection"
    assert task_method_label("gifnet") == "GIFNet"
    with pytest.raises(ValueError, match="unknown fusion method 'z'; valid: gifnet, focus, focus_pyramid, mean"):
        task_method_key("z")
