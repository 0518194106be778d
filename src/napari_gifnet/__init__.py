"""napari-gifnet: GIFNet image fusion for napari, the console and the command line.

>>> from napari_gifnet import fuse
>>> result = fuse(infrared, visible)        # doctest: +SKIP
>>> result.image.shape                      # doctest: +SKIP
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("napari-gifnet")
except PackageNotFoundError:  # running from a source tree
    __version__ = "0.0.0+unknown"

__all__ = [
    "FusionResult",
    "__version__",
    "enhance",
    "fuse",
    "fuse_layers",
    "fuse_stack",
    "pansharpen",
]


def __getattr__(name: str):
    # torch is imported only when the engine is first used, so that
    # ``import napari_gifnet`` (e.g. by napari's plugin discovery) stays fast.
    if name in ("fuse", "FusionResult"):
        from . import engine

        return getattr(engine, name)
    if name == "fuse_layers":
        from .layers import fuse_layers

        return fuse_layers
    if name == "fuse_stack":
        from .stack import fuse_stack

        return fuse_stack
    if name == "pansharpen":
        from .pansharpen import pansharpen

        return pansharpen
    if name == "enhance":
        from .enhance import enhance

        return enhance
    raise AttributeError(f"module 'napari_gifnet' has no attribute {name!r}")
