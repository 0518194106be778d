"""``put_image``: the one way every widget updates or adds a result layer."""

from __future__ import annotations

import numpy as np

from napari_gifnet.plugin.layer_output import put_image


def test_put_image_updates_in_place_adds_below_and_keeps_previous(make_napari_viewer) -> None:
    viewer = make_napari_viewer()
    viewer.add_image(np.zeros((8, 8), np.float32), name="input")
    first = np.linspace(0, 1, 64, dtype=np.float32).reshape(8, 8)
    kw = {"rgb": False, "colormap": "gray", "metadata": {"run": 1}}
    layer = put_image(viewer, "result", first, contrast_limits=(0.0, 1.0), **kw)
    assert [ly.name for ly in viewer.layers] == ["input", "result"]

    # the user's display choices survive a rerun; data, limits, transforms, metadata follow it
    layer.visible, layer.colormap = False, "magma"
    viewer.layers.move(1, 0)
    second = first * 4
    kw = {**kw, "metadata": {"run": 2}, "scale": (2.0, 2.0)}
    again = put_image(viewer, "result", second, contrast_limits=(0.0, 4.0), **kw)
    assert again is layer and [ly.name for ly in viewer.layers] == ["result", "input"]
    np.testing.assert_array_equal(layer.data, second)
    assert tuple(layer.contrast_limits) == (0.0, 4.0) and layer.metadata == {"run": 2}
    assert tuple(layer.scale) == (2.0, 2.0) and not layer.visible
    assert layer.colormap.name == "magma"

    # no contrast limits given: the layer keeps its own
    put_image(viewer, "result", first, **kw)
    assert tuple(layer.contrast_limits) == (0.0, 4.0)

    # keep_previous adds a new layer; below= puts a new one under another layer
    kept = put_image(viewer, "result", first, keep_previous=True, **kw)
    assert kept is not layer and kept.name == "result [1]"
    under = put_image(viewer, "features", first, below=layer, visible=False)
    names = [ly.name for ly in viewer.layers]
    assert names.index("features") == names.index("result") - 1

    # grey -> RGB cannot happen in place: a new layer takes the old one's place
    index = names.index("result")
    rgb = put_image(viewer, "result", np.zeros((8, 8, 3), np.float32), rgb=True)
    assert rgb is not layer and rgb.rgb and viewer.layers.index(rgb) == index
    assert layer not in viewer.layers and under in viewer.layers
