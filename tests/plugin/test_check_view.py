"""The check view of a registration (napari_gifnet.plugin.check_view), in a real viewer."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("napari")

H, W = 64, 96


def _pair() -> tuple[np.ndarray, np.ndarray]:
    """A first image of values 10..73 by row and a second of values 200..295 by column."""
    a = np.repeat(np.arange(10, 10 + H, dtype=np.float32)[:, None], W, axis=1)
    b = np.repeat(np.arange(200, 200 + W, dtype=np.float32)[None, :], H, axis=0)
    return a, b


def test_checkerboard_wipe_and_overlay_show_the_second_layer_as_moved(make_napari_viewer):
    from napari_gifnet.plugin.check_view import CHECK_LAYER, CheckView, to_unit

    viewer = make_napari_viewer()
    a, b = _pair()
    first = viewer.add_image(a, name="CT", contrast_limits=(0, 100))
    second = viewer.add_image(b, name="MRI", contrast_limits=(200, 300))
    before = b.copy()
    view = CheckView(viewer)

    # checkerboard: the top-left tile is the first, the next tile across the second
    layer = view.show(first, second, "checkerboard")
    assert layer is viewer.layers[-1] and layer.name == CHECK_LAYER
    assert layer.data.shape == (H, W) and not layer.rgb
    assert tuple(layer.contrast_limits) == (0.0, 1.0)
    side = min(H, W) // 8  # 8 tiles across the shorter side
    ua, ub = to_unit(a, (0, 100)), to_unit(b, (200, 300))
    np.testing.assert_allclose(layer.data[:side, :side], ua[:side, :side])
    np.testing.assert_allclose(layer.data[:side, side : 2 * side], ub[:side, side : 2 * side])
    np.testing.assert_allclose(layer.data[side : 2 * side, :side], ub[side : 2 * side, :side])
    np.testing.assert_allclose(layer.data[side : 2 * side, side : 2 * side],
                               ua[side : 2 * side, side : 2 * side])  # fmt: skip

    # the second moved 8 px right (as a registration's affine moves it): the view follows
    second.affine = np.array([[1.0, 0, 0], [0, 1, 8.0], [0, 0, 1]])
    layer = view.refresh()
    tile_b = layer.data[:side, side : 2 * side]
    np.testing.assert_allclose(tile_b, ub[:side, side - 8 : 2 * side - 8], atol=1e-6)
    assert np.all(layer.data[side : 2 * side, :8] == 0)  # not covered by the moved second

    # wipe: the first left of the boundary, the second right of it; the position moves it
    layer = view.show(first, second, "wipe")
    assert layer.name == CHECK_LAYER and len(viewer.layers) == 3
    view.set_position(0.25)
    col = W // 4
    np.testing.assert_allclose(layer.data[:, :col], ua[:, :col])
    np.testing.assert_allclose(layer.data[:, col + 8 :], ub[:, col : W - 8], atol=1e-6)
    view.set_position(0.75)
    col = round(0.75 * W)
    np.testing.assert_allclose(layer.data[:, :col], ua[:, :col])
    np.testing.assert_allclose(layer.data[:, col:], ub[:, col - 8 : W - 8], atol=1e-6)
    assert layer.metadata["position"] == 0.75 and not layer.mouse_pan

    # a drag on the canvas moves the boundary to the pointer (napari's layer callbacks)
    from types import SimpleNamespace

    from napari.utils import interactions
    from napari.utils._proxies import ReadOnlyWrapper

    def mouse(kind: str, x: float) -> ReadOnlyWrapper:  # as napari's canvas passes them
        event = SimpleNamespace(type=kind, is_dragging=kind == "mouse_move", modifiers=[],
                                position=(H / 2, x), handled=False)  # fmt: skip
        return ReadOnlyWrapper(event, exceptions=("handled",))

    followed = []
    view.on_position = followed.append
    interactions.mouse_press_callbacks(layer, mouse("mouse_press", 23.5))
    interactions.mouse_move_callbacks(layer, mouse("mouse_move", 47.5))
    interactions.mouse_release_callbacks(layer, mouse("mouse_release", 47.5))
    assert view.position == 0.5 and followed == [0.25, 0.5]
    np.testing.assert_allclose(layer.data[:, :48], ua[:, :48])

    # red-green overlay: an RGB layer, red the first, green the second
    layer = view.show(first, second, "overlay")
    assert layer.rgb and layer.data.shape == (H, W, 3) and len(viewer.layers) == 3
    np.testing.assert_allclose(layer.data[..., 0], ua)
    np.testing.assert_allclose(layer.data[:, 8:, 1], ub[:, : W - 8], atol=1e-6)
    assert np.all(layer.data[..., 2] == 0)

    # a new check view goes just above the inputs: landmarks above them stay in sight
    view.show(first, second, None)
    points = viewer.add_points(np.array([[10.0, 10.0]]), name="landmarks")
    layer = view.show(first, second, "checkerboard")
    assert [ly.name for ly in viewer.layers] == ["CT", "MRI", CHECK_LAYER, "landmarks"]
    viewer.layers.remove(points)

    # off removes the check layer; the inputs were never changed
    assert view.show(first, second, None) is None
    assert [ly.name for ly in viewer.layers] == ["CT", "MRI"]
    np.testing.assert_array_equal(second.data, before)
    with pytest.raises(ValueError, match="check view must be one of"):
        view.show(first, second, "blink")


def test_a_layer_of_another_dimensionality_is_refused_by_name(make_napari_viewer):
    from napari_gifnet.plugin.check_view import moved_onto_first

    viewer = make_napari_viewer()
    first = viewer.add_image(np.zeros((4, H, W), np.float32), name="volume")
    second = viewer.add_image(np.zeros((H, W), np.float32), name="slice")
    with pytest.raises(ValueError, match="'volume' .3-D. and 'slice' .2-D."):
        moved_onto_first(first, second)


class _Counting:
    """A read-only (Z, Y, X) array that records the Z planes of each read."""

    def __init__(self, data: np.ndarray) -> None:
        self.data, self.shape, self.dtype, self.ndim = data, data.shape, data.dtype, data.ndim
        self.planes: list[int] = []

    def __getitem__(self, key):
        out = self.data[key]
        first = key[0] if isinstance(key, tuple) else key
        if out.size and isinstance(first, slice):
            self.planes.extend(range(*first.indices(self.shape[0])))
        elif out.size:
            self.planes.append(int(first))
        return out


def test_a_lazy_volume_pair_is_read_plane_by_plane_and_follows_the_z_slider(
    make_napari_viewer,
):
    da = pytest.importorskip("dask.array")
    from napari_gifnet.plugin.check_view import CheckView

    z, h, w = 16, 32, 48
    zz, yy, xx = np.mgrid[:z, :h, :w].astype(np.float32)
    a_store, b_store = _Counting(zz * 10 + yy), _Counting(zz * 5 + xx)  # 0..181, 0..122
    a = da.from_array(a_store, chunks=(1, h, w), asarray=True)
    b = da.from_array(b_store, chunks=(1, h, w), asarray=True)
    viewer = make_napari_viewer()
    first = viewer.add_image(a, name="MRI", contrast_limits=(0, 200))
    # the second moved 2.5 planes up and 4 px right: plane z of the first is 2.5 below in it
    second = viewer.add_image(b, name="PET", contrast_limits=(0, 100),
                              affine=np.array([[1, 0, 0, 2.5], [0, 1, 0, 0], [0, 0, 1, 4],
                                               [0, 0, 0, 1.0]]))  # fmt: skip
    viewer.dims.set_current_step(0, 7)
    a_store.planes.clear()
    b_store.planes.clear()
    view = CheckView(viewer)
    layer = view.show(first, second, "overlay")
    # only the plane shown (7) of the first and the two planes of the second around 4.5
    assert a_store.planes == [7] and sorted(b_store.planes) == [4, 5]
    assert layer.data.shape == (1, h, w, 3)
    np.testing.assert_allclose(layer.data[0, ..., 0], (70 + yy[0]) / 200, atol=1e-6)
    np.testing.assert_allclose(layer.data[0, :, 4:, 1], (4.5 * 5 + xx[0, :, :-4]) / 100,
                               atol=1e-6)  # fmt: skip
    assert np.all(layer.data[0, :, :4, 1] == 0)  # left of the moved second
    np.testing.assert_allclose(layer.data_to_world((0, 3, 5)), first.data_to_world((7, 3, 5)))

    # the Z slider moves: the view shows the new plane, reading only what it needs
    a_store.planes.clear()
    b_store.planes.clear()
    viewer.dims.set_current_step(0, 12)
    layer = viewer.layers["check view"]
    np.testing.assert_allclose(layer.data[0, ..., 0], (120 + yy[0]) / 200, atol=1e-6)
    np.testing.assert_allclose(layer.data[0, :, 4:, 1], (9.5 * 5 + xx[0, :, :-4]) / 100,
                               atol=1e-6)  # fmt: skip
    np.testing.assert_allclose(layer.data_to_world((0, 3, 5)), first.data_to_world((12, 3, 5)))
    assert set(a_store.planes) == {12} and set(b_store.planes) == {9, 10}  # napari draws 10

    # a plane the moved second does not reach: its half is 0, nothing of it is read
    b_store.planes.clear()
    viewer.dims.set_current_step(0, 0)
    assert np.all(viewer.layers["check view"].data[0, ..., 1] == 0)
    assert set(b_store.planes) <= {0, 1}  # what napari itself draws of the second

    # off: no longer follows the slider; the inputs were never changed
    step = viewer.dims.events.current_step
    connected = len(step.callbacks)
    view.show(first, second, None)
    assert len(step.callbacks) == connected - 1 and "check view" not in viewer.layers
    a_store.planes.clear()
    viewer.dims.set_current_step(0, 3)
    assert set(a_store.planes) <= {3}
    np.testing.assert_array_equal(a_store.data, zz * 10 + yy)
