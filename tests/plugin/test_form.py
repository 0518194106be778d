"""The form pieces the dock widgets share (``_qt/_form.py``)."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest


def test_level0_is_the_full_resolution_array_of_any_layer():
    from napari_gifnet.plugin._qt._form import level0

    full, half = np.zeros((8, 8)), np.zeros((4, 4))
    assert level0(SimpleNamespace(multiscale=True, data=[full, half])) is full
    assert level0(SimpleNamespace(multiscale=False, data=half)) is half


@pytest.mark.parametrize("value", [0.0, 0.12344, 0.99996, -3.5, math.nan])
def test_number_text_reads_back_to_its_value(value):
    from napari_gifnet.plugin._qt._form import number_text

    text = number_text(value)
    if math.isnan(value):
        assert text == "nan"
    else:
        assert len(text.split(".")[1]) == 4 and abs(float(text) - value) <= 5e-5


def test_data_task_names_the_one_sample_the_layers_are():
    from napari_gifnet.data.sample import SAMPLE_TASKS
    from napari_gifnet.plugin._qt._form import data_task

    first, second = sorted(SAMPLE_TASKS)[:2]

    def layer(sample):
        return SimpleNamespace(metadata={"sample": sample})

    assert data_task(layer(first), layer(first)) == (SAMPLE_TASKS[first], first)
    assert data_task(layer(first), SimpleNamespace(metadata=None)) == (SAMPLE_TASKS[first], first)
    assert data_task(layer(first), layer(second)) is None  # two samples say nothing
    assert data_task(layer("not a sample"), layer(["a", "list"])) is None


def test_a_box_has_no_margins_and_labels_only_when_asked(qtbot):
    from magicgui.widgets import Label, PushButton

    from napari_gifnet.plugin._qt._form import box

    row = box([PushButton(text="a"), PushButton(text="b")])
    assert row.margins == (0, 0, 0, 0) and not row.labels and row.layout == "horizontal"
    form = box([Label(label="x", value="")], layout="vertical", labels=True, label="form")
    assert form.labels and form.layout == "vertical" and form.label == "form"
