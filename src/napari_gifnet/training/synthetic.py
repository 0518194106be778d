"""Small synthetic training folders, for trying the training out and for tests.

:func:`write_synthetic_pairs` writes ``DIR/first/`` and ``DIR/second/`` in
the layout :class:`~napari_gifnet.training.dataset.RGBJointDataset` reads:
a textured "visible" scene and an "infrared-like" view of it (smooth warm
blobs over a dimmed, blurred copy of the scene).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def synthetic_pair(size: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """One (infrared-like, visible) pair of uint8 (size, size) images."""
    from scipy import ndimage as ndi

    yy, xx = np.mgrid[0:size, 0:size] / size
    texture = ndi.gaussian_filter(rng.normal(size=(size, size)), rng.uniform(1.0, 3.0))
    texture /= np.abs(texture).max() + 1e-12
    visible = 0.5 + 0.25 * np.sin(2 * np.pi * rng.uniform(1, 4) * (xx + rng.uniform() * yy))
    for _ in range(int(rng.integers(3, 7))):  # rectangles of random brightness
        top, left = rng.integers(0, size - size // 4, size=2)
        h, w = rng.integers(size // 8, size // 3, size=2)
        visible[top : top + h, left : left + w] = rng.uniform(0.1, 0.9)
    visible = np.clip(visible + 0.3 * texture, 0, 1)
    heat = np.zeros((size, size))
    for _ in range(int(rng.integers(2, 5))):  # warm blobs
        cy, cx, r = rng.uniform(0.15, 0.85), rng.uniform(0.15, 0.85), rng.uniform(0.05, 0.15)
        heat += np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r * r))
    infrared = np.clip(0.35 * ndi.gaussian_filter(visible, 2.0) + 0.65 * np.clip(heat, 0, 1), 0, 1)
    return (np.round(infrared * 255).astype(np.uint8), np.round(visible * 255).astype(np.uint8))


def write_synthetic_pairs(root: str | Path, n: int = 4, size: int = 96, seed: int = 0) -> Path:
    """Write ``n`` synthetic pairs as PNG files under ``root/first`` and ``root/second``.

    Parameters
    ----------
    root : path
        Folder to create (or fill).
    n : int, default 4
        Number of pairs.
    size : int, default 96
        Side of the square images.
    seed : int, default 0
        Seed of the scenes.

    Returns
    -------
    Path
        ``root``.
    """
    from ..io.images import write_image  # atomic, like every file the project writes

    base = Path(root)
    for sub in ("first", "second"):
        (base / sub).mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(int(n)):
        ir, vis = synthetic_pair(int(size), rng)
        write_image(base / "first" / f"scene{i:03d}.png", ir)
        write_image(base / "second" / f"scene{i:03d}.png", vis)
    return base
