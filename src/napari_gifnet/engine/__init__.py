"""The engine: arrays in, :class:`FusionResult` out.

``fusion`` is :func:`fuse` (checks, preparation, the network over exact
tiles, colour, the result), ``inputs`` and ``preprocess`` check and
normalise the inputs, ``colour`` puts the colour back, ``devices`` picks the
device, ``fusion_run`` keeps memory across a run of fusions,
``lazy`` builds Dask graphs over the same tile functions, and
``tiled/`` evaluates the network tile by tile with the very values of
whole-image evaluation. Loaded lazily: importing ``napari_gifnet.engine``
imports no torch until a name is used.
"""

import lazy_loader as _lazy

__getattr__, __dir__, __all__ = _lazy.attach(
    __name__,
    submod_attrs={
        "fusion": ["FusionResult", "NonFiniteResultError", "fuse"],
        "lazy": ["compute_plane", "fuse_dask"],
        "devices": ["available_devices", "resolve_device"],
        "_memory": ["fusion_run"],
    },
)
