"""Registering napari layers (napari_gifnet.plugin.layer_registration) and fusing them registered.

napari's ``ViewerModel`` (no Qt); the classical ``mean`` fusion, so that what is
checked is where the second layer lands, not the network.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("napari")

from napari.components import ViewerModel

from napari_gifnet.plugin.fusion_plan import _capture
from napari_gifnet.plugin.layer_fusion import fuse_layers
from napari_gifnet.plugin.layer_registration import (
    layer_points,
    move_layer,
    register_layers,
    restore_layer,
)
from napari_gifnet.plugin.resampling import VolumeResampling
from napari_gifnet.workflows.registration import Registration, RegistrationReport, Transform
from registration_cases import (
    FIXED_SPACING_3D,
    MOVING_SPACING_3D,
    case_2d,
    case_3d,
    mapping_error,
)


def _pixels(matrix: np.ndarray, fixed: float, moving: float) -> np.ndarray:
    """A world matrix in pixel units of a fixed and a moving image of those spacings."""
    return np.diag([1 / moving, 1 / moving, 1.0]) @ matrix @ np.diag([fixed, fixed, 1.0])


def test_fuse_layers_registers_a_2d_pair_and_move_layer_gives_the_same_fusion() -> None:
    fixed, moving, true = case_2d("rigid")
    v = ViewerModel()
    first = v.add_image(fixed, name="CT", scale=(0.5, 0.5), translate=(4.0, -2.0))
    second = v.add_image(moving, name="MRI", scale=(0.5, 0.5))
    registered = fuse_layers(v, "CT", "MRI", method="mean", register="rigid", keep_previous=True)[0]
    meta = registered.metadata["registration"]
    assert meta["kind"] == "rigid" and meta["fixed_spacing"] == [0.5, 0.5]
    assert meta["report"]["method"] == "mattes" and meta["report"]["converged"]
    error = mapping_error(true, _pixels(np.asarray(meta["matrix"]), 0.5, 0.5), fixed.shape)
    assert error < 0.5, error
    assert np.allclose(second.affine.affine_matrix, np.eye(3))  # the layer is not moved

    registration = register_layers(first, second, "rigid")
    assert np.allclose(registration.transform.matrix, meta["matrix"], atol=1e-9)
    previous = move_layer(second, registration, fixed=first)
    moved = fuse_layers(v, "CT", "MRI", method="mean", keep_previous=True)[0]
    np.testing.assert_allclose(moved.data, registered.data, atol=1e-5)
    assert moved.metadata["registration"] is None and moved.metadata["resampled"] is not None
    # napari draws the moved layer on the first: the true position of a fixed pixel
    pixel = np.array([40.0, 70.0])
    on_moving = true[:2, :2] @ pixel + true[:2, 2]
    np.testing.assert_allclose(second.data_to_world(on_moving), first.data_to_world(pixel),
                               atol=0.5 * 0.5)  # fmt: skip
    restore_layer(second, previous)
    np.testing.assert_array_equal(second.affine.affine_matrix, previous)
    unmoved = fuse_layers(v, "CT", "MRI", method="mean", keep_previous=True)[0]
    resampled = unmoved.metadata["resampled"]  # back where it was: shifted by the translates
    assert resampled["matrix"] == [[1.0, 0.0], [0.0, 1.0]] and resampled["offset"] == [8.0, -4.0]

    with pytest.raises(ValueError, match="both move the second layer"):
        fuse_layers(v, "CT", "MRI", method="mean", register="rigid", align="translation")
    given = fuse_layers(v, "CT", "MRI", method="mean", register=registration.transform)[0]
    np.testing.assert_allclose(given.data, registered.data, atol=1e-5)
    assert given.metadata["registration"]["report"]["method"] == "given transform"


def test_fuse_layers_registers_volumes_of_different_scales() -> None:
    fixed, moving, true = case_3d()
    v = ViewerModel()
    first = v.add_image(fixed, name="MRI", scale=FIXED_SPACING_3D)
    second = v.add_image(moving.astype(np.float32), name="PET", scale=MOVING_SPACING_3D)
    registered = fuse_layers(v, first, second, method="mean", register="rigid",
                             keep_previous=True)[0]  # fmt: skip
    assert registered.data.shape == fixed.shape
    meta = registered.metadata["registration"]
    assert meta["ndim"] == 3 and meta["moving_spacing"] == list(MOVING_SPACING_3D)
    error = mapping_error(true, np.asarray(meta["matrix"]), fixed.shape, FIXED_SPACING_3D)
    assert error < 1.0, error

    registration = Registration(  # the one recorded, as register_layers returned it
        Transform(meta["kind"], np.asarray(meta["matrix"])), None,
        RegistrationReport(**meta["report"]), FIXED_SPACING_3D, MOVING_SPACING_3D,
    )  # fmt: skip

    with pytest.warns(UserWarning, match="Non-orthogonal slicing"):  # napari draws a tilt flat
        previous = move_layer(second, registration, fixed=first)
        moved = fuse_layers(v, first, second, method="mean", keep_previous=True)[0]
    np.testing.assert_allclose(moved.data, registered.data, atol=1e-5)
    assert moved.metadata["resampled"]["source_shape"] == list(moving.shape)
    restore_layer(second, previous)
    np.testing.assert_array_equal(second.affine.affine_matrix, np.eye(4))


def test_a_time_series_registers_by_the_plane_the_viewer_shows() -> None:
    fixed, moving, true = case_2d("rigid")
    v = ViewerModel()
    labels = ("t", "y", "x")
    v.add_image(np.stack([np.zeros_like(fixed), fixed]), name="a", axis_labels=labels)
    v.add_image(np.stack([moving, moving]), name="b", axis_labels=labels)
    with pytest.raises(ValueError, match="'a' is constant"):  # plane 0 shown: nothing on it
        fuse_layers(v, "a", "b", method="mean", register="rigid")
    v.dims.set_current_step(0, 1)
    fused = fuse_layers(v, "a", "b", method="mean", register="rigid")[0]
    meta = fused.metadata["registration"]
    assert meta["ndim"] == 2 and fused.data.shape == (2, *fixed.shape)
    assert mapping_error(true, np.asarray(meta["matrix"]), fixed.shape) < 0.5
    assert fused.metadata["resampled"]["source_shape"] == list(fixed.shape)


def test_volume_resampling_reads_only_the_planes_it_needs() -> None:
    rng = np.random.default_rng(0)
    volume = rng.random((12, 20, 24))
    tilt = np.deg2rad(3.0)
    m = np.array([[np.cos(tilt), np.sin(tilt), 0.0], [-np.sin(tilt), np.cos(tilt), 0.0],
                  [0.0, 0.0, 1.0]])  # fmt: skip
    offset = np.array([0.3, 1.2, -0.7])
    res = VolumeResampling(m, offset, volume.shape, 1.0)
    from scipy import ndimage

    whole = ndimage.affine_transform(volume, m, offset, order=1, mode="nearest")
    for z in (0, 5, 11):
        start, stop = res.slab(z, (20, 24))
        assert stop - start <= 3  # a 3 degree tilt over 20 rows: a few planes
        plane = res.apply(volume[start:stop], start, z, (20, 24), fill=-1.0)
        rows, cols = np.mgrid[:20, :24]
        coords = np.stack([np.full_like(rows, z), rows, cols], -1) @ m.T + offset
        inside = np.all((coords >= -0.5) & (coords <= np.array(volume.shape) - 0.5), -1)
        np.testing.assert_allclose(plane[inside], whole[z][inside], atol=1e-12)
        assert np.all(plane[~inside] == -1.0)


def test_points_layers_register_in_their_own_coordinates() -> None:
    fixed, moving, true = case_2d("similarity")
    v = ViewerModel()
    first = v.add_image(fixed, name="visible", scale=(0.5, 0.5), translate=(3.0, 1.0))
    second = v.add_image(moving, name="infrared", scale=(0.5, 0.5), translate=(-2.0, 5.0))
    pixels = np.array([[20.0, 30.0], [100.0, 25.0], [60.0, 110.0], [90.0, 90.0]])
    on_second = pixels @ true[:2, :2].T + true[:2, 2]
    # Points layers with their own scale and translate: data = (world - translate) / scale
    world = lambda layer, pts: np.array([layer.data_to_world(p) for p in pts])  # noqa: E731
    a = v.add_points((world(first, pixels) - (1.0, -4.0)) / 2.0, name="a", scale=(2.0, 2.0),
                     translate=(1.0, -4.0))  # fmt: skip
    b = v.add_points((world(second, on_second) - (0.5, 0.5)) / 0.25, name="b",
                     scale=(0.25, 0.25), translate=(0.5, 0.5))  # fmt: skip
    np.testing.assert_allclose(layer_points(a, _capture(first, "first"), 2, "fixed"),
                               pixels * 0.5, atol=1e-9)  # fmt: skip
    np.testing.assert_allclose(layer_points(b, _capture(second, "second"), 2, "moving"),
                               on_second * 0.5, atol=1e-9)  # fmt: skip
    registration = register_layers(first, second, "similarity", fixed_points=a, moving_points=b)
    assert registration.report.method == "landmarks"
    found = _pixels(registration.transform.matrix, 0.5, 0.5)
    assert mapping_error(true, found, fixed.shape) < 1e-6
    with pytest.raises(ValueError, match="give fixed_points and moving_points, or neither"):
        register_layers(first, second, "rigid", fixed_points=a)


def test_a_transform_of_the_wrong_dimension_is_refused() -> None:
    v = ViewerModel()
    v.add_image(np.zeros((32, 32)), name="a")
    v.add_image(np.ones((32, 32)), name="b")
    with pytest.raises(ValueError, match="a 3-D transform cannot register 'b' onto 'a'"):
        fuse_layers(v, "a", "b", method="mean", register=Transform("rigid", np.eye(4)))
