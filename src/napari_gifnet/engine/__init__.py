"""The engine: arrays in, :class:`FusionResult` out (its modules: README, "How the code
is organised"). Loaded lazily: importing ``napari_gifnet.engine`` imports no torch until
a name is used.
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
