"""The slab resampling core (``affine_slab``, ``resample_slab``) against whole-volume
``scipy.ndimage.affine_transform``: the same values from a few planes at a time."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage
from scipy.spatial.transform import Rotation

from napari_gifnet.workflows.registration import affine_slab, resample_slab

RNG = np.random.default_rng(7)
VOLUME = RNG.random((16, 20, 18))
MATRIX = Rotation.from_euler("XYZ", [8.0, -5.0, 3.0], degrees=True).as_matrix() @ np.diag(
    [0.8, 1.1, 1.0]
)
OFFSET = np.array([-2.5, 1.5, -1.0])
SHAPE = (24, 18, 20)  # its first and last planes lie outside the volume


@pytest.mark.parametrize("order", [0, 1])
def test_planes_resampled_from_their_slabs_equal_a_whole_volume_resample(order: int) -> None:
    whole = ndimage.affine_transform(VOLUME, MATRIX, OFFSET, SHAPE, order=order,
                                     mode="constant", cval=-1.0)  # fmt: skip
    sizes, missed = [], 0
    for z in range(SHAPE[0]):
        box = affine_slab(MATRIX, OFFSET, (z, 0, 0), (1, *SHAPE[1:]), VOLUME.shape[:1], margin=1)
        (planes,) = box
        if planes.start == planes.stop:  # misses the volume: every value the constant
            missed += 1
            assert np.all(whole[z] == -1.0)
            continue
        sizes.append(planes.stop - planes.start)
        plane = resample_slab(VOLUME[box], box, MATRIX, OFFSET, (z, 0, 0), (1, *SHAPE[1:]),
                              order=order, cval=-1.0)  # fmt: skip
        np.testing.assert_allclose(plane[0], whole[z], rtol=0, atol=1e-12)
    assert missed >= 1 and max(sizes) < VOLUME.shape[0] // 2  # a few planes each


def test_blocks_of_rows_from_a_box_on_every_axis_equal_a_whole_resample_with_channels() -> None:
    colour = np.stack([VOLUME, 2.0 * VOLUME[::-1]], axis=-1)  # a last axis of channels
    whole = np.stack([ndimage.affine_transform(colour[..., c], MATRIX, OFFSET, SHAPE, order=1,
                                               mode="nearest") for c in range(2)], -1)  # fmt: skip
    z = 9
    for r0, rows in ((0, 7), (7, 7), (14, 4)):
        block = (1, rows, SHAPE[2])
        box = affine_slab(MATRIX, OFFSET, (z, r0, 0), block, VOLUME.shape)
        assert len(box) == 3 and np.prod([s.stop - s.start for s in box]) < VOLUME.size / 2
        values = resample_slab(colour[box], box, MATRIX, OFFSET, (z, r0, 0), block,
                               mode="nearest")  # fmt: skip
        assert values.shape == (*block, 2)
        np.testing.assert_allclose(values[0], whole[z, r0 : r0 + rows], rtol=0, atol=1e-12)


def test_a_block_beyond_the_source_has_an_empty_slab_on_its_side() -> None:
    eye, block = np.eye(3), (1, 4, 4)
    assert affine_slab(eye, np.array([40.0, 0, 0]), (0, 0, 0), block, (10,)) == (slice(10, 10),)
    assert affine_slab(eye, np.array([-40.0, 0, 0]), (0, 0, 0), block, (10,)) == (slice(0, 0),)
    # 0.8 of a plane beyond: within linear reach of a constant outside, not of the pixel extent
    near = np.array([-0.8, 0, 0])
    assert affine_slab(eye, near, (0, 0, 0), block, (10,)) == (slice(0, 1),)
    assert affine_slab(eye, near, (0, 0, 0), block, (10,), tol=1e-6) == (slice(0, 0),)
    # a spline's margin widens the slab on both sides, clipped to the source
    assert affine_slab(eye, np.zeros(3), (5, 0, 0), block, (10,), margin=2) == (slice(3, 8),)
