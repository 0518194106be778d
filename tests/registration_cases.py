"""Registration cases with known transforms (tests and benchmarks).

A 2-D case is scikit-image's camera reduced to 128 px as the fixed image and,
as the moving image, the same scene warped by a known transform with a second
"modality" made by a non-monotonic intensity mapping (``|sin(3 pi v)|``) and
noise. The 3-D case is a phantom of ellipsoids of different intensities,
sampled on a 32^3 fixed grid of spacing 1 and on a coarser, anisotropic moving
grid with inverted contrast. Every matrix maps a fixed world point to the
moving world point (numpy axis order), as ``Transform.matrix``.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from scipy.spatial.transform import Rotation

SIZE = 128
#: The known 2-D transforms: rotation (degrees), scales (y, x), shear, shift (px), about
#: the image centre.
CASES_2D = {
    "rigid": (8.0, (1.0, 1.0), 0.0, (6.0, -9.0)),
    "similarity": (-6.0, (1.08, 1.08), 0.0, (-5.0, 7.5)),
    "affine": (5.0, (1.06, 0.93), 0.06, (8.0, 4.0)),
}


def homogeneous(linear: np.ndarray, translation: np.ndarray) -> np.ndarray:
    n = len(translation)
    m = np.eye(n + 1)
    m[:n, :n], m[:n, n] = linear, translation
    return m


def matrix_2d(kind: str, size: int = SIZE) -> np.ndarray:
    """The known fixed -> moving matrix of a 2-D case (pixel units)."""
    angle, scales, shear, shift = CASES_2D[kind]
    t = np.deg2rad(angle)
    rot = np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])
    linear = rot @ np.array([[1.0, shear], [0.0, 1.0]]) @ np.diag(scales)
    c = np.full(2, (size - 1) / 2.0)
    return homogeneous(linear, c - linear @ c + np.asarray(shift))


def camera(size: int = SIZE) -> np.ndarray:
    from skimage import data
    from skimage.transform import resize

    return resize(data.camera() / 255.0, (size, size), anti_aliasing=True)


def other_modality(values: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A second modality: a non-monotonic mapping of the intensity, and noise."""
    return np.abs(np.sin(3 * np.pi * values)) + rng.normal(0.0, 0.03, values.shape)


def case_2d(kind: str, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(fixed, moving, true matrix) of a multimodal 2-D case; float64 images."""
    fixed = camera()
    inv = np.linalg.inv(matrix_2d(kind))  # the moving image shows fixed(inv @ q)
    warped = ndimage.affine_transform(fixed, inv[:2, :2], offset=inv[:2, 2], order=3,
                                      mode="nearest")  # fmt: skip
    return fixed, other_modality(warped, np.random.default_rng(seed)), matrix_2d(kind)


#: Ellipsoids of the phantom: centre, radii (world units), intensity.
_ELLIPSOIDS = [((16, 16, 16), (11, 13, 12), 1.0), ((13, 18, 15), (4, 6, 5), 0.3),
               ((19, 12, 18), (3, 3, 4), 0.6), ((16, 16, 21), (3, 5, 3), 0.15)]  # fmt: skip
#: The 3-D case: fixed grid and spacing, moving grid and spacing, the known rigid transform.
FIXED_3D, FIXED_SPACING_3D = (32, 32, 32), (1.0, 1.0, 1.0)
MOVING_3D, MOVING_SPACING_3D = (16, 22, 22), (2.0, 1.5, 1.5)


def matrix_3d() -> np.ndarray:
    rot = Rotation.from_euler("XYZ", [6.0, -4.0, 8.0], degrees=True).as_matrix()
    c = np.full(3, 16.0)
    return homogeneous(rot, c - rot @ c + np.array([2.0, -1.5, 3.0]))


def _phantom(shape: tuple[int, ...], spacing: tuple[float, ...], inv: np.ndarray) -> np.ndarray:
    grid = np.stack(np.meshgrid(*[np.arange(n) * s for n, s in zip(shape, spacing)],
                                indexing="ij"), axis=-1)  # fmt: skip
    points = grid @ inv[:3, :3].T + inv[:3, 3]
    out = np.zeros(shape)
    for centre, radii, value in _ELLIPSOIDS:
        inside = (((points - np.array(centre)) / np.array(radii)) ** 2).sum(-1) <= 1
        out[inside] = value
    return out


def case_3d(seed: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(fixed, moving, true matrix): the phantom, and inverted on the moving grid."""
    fixed = ndimage.gaussian_filter(_phantom(FIXED_3D, FIXED_SPACING_3D, np.eye(4)), 0.7)
    moving = _phantom(MOVING_3D, MOVING_SPACING_3D, np.linalg.inv(matrix_3d()))
    noise = np.random.default_rng(seed).normal(0.0, 0.02, MOVING_3D)
    return fixed, 1.0 - ndimage.gaussian_filter(moving, 0.5) + noise, matrix_3d()


def mapping_error(
    true: np.ndarray,
    found: np.ndarray,
    shape: tuple[int, ...],
    spacing: tuple[float, ...] | None = None,
) -> float:
    """The mean distance between the true and the found moving positions of the fixed
    grid's pixels, in fixed pixels (world distance over the fixed spacing, per axis)."""
    n = len(shape)
    spacing = np.ones(n) if spacing is None else np.asarray(spacing, np.float64)
    grid = np.stack(np.meshgrid(*[np.arange(s) for s in shape], indexing="ij"), -1)
    world = grid.reshape(-1, n) * spacing
    diff = world @ (true - found)[:n, :n].T + (true - found)[:n, n]
    return float(np.linalg.norm(diff / spacing, axis=1).mean())


def camera_uint16(size: int = SIZE) -> np.ndarray:
    """scikit-image's camera as a 16-bit camera image (0..60000): an already registered
    pair with itself."""
    return np.round(camera(size) * 60000.0).astype(np.uint16)
