"""napari-gifnet: GIFNet image fusion for napari, the console and the command line.

>>> from napari_gifnet import fuse
>>> result = fuse(infrared, visible)        # doctest: +SKIP
>>> result.image.shape                      # doctest: +SKIP
>>> fuse(near, far, task="mfif").metadata["method"]   # doctest: +SKIP
'focus_pyramid'

The public names are loaded lazily (lazy-loader): ``import napari_gifnet``
(e.g. by napari's plugin discovery) imports neither torch nor napari; the
first use of a name imports its module. The package's folders are its
layers (see README, "How the code is organised").
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

import lazy_loader as _lazy

try:
    __version__ = version("napari-gifnet")
except PackageNotFoundError:  # running from a source tree
    __version__ = "0.0.0+unknown"

#: Where each public name is defined (module under the package -> names).
_PUBLIC = {
    "engine.result": ["FusionResult"],
    # GIFNet without a task (engine.fusion.fuse, the same call); with one, its best method
    "workflows.tasks": ["fuse"],
    "plugin.layer_fusion": ["fuse_layers"],
    "workflows.focus_stack": ["fuse_stack"],
    "workflows.pansharpening": ["pansharpen"],
    "workflows.enhancement": ["enhance"],
    "workflows.registration": ["register"],
}

__getattr__, __dir__, _ = _lazy.attach(__name__, submod_attrs=_PUBLIC)

__all__ = [
    "FusionResult",
    "__version__",
    "enhance",
    "fuse",
    "fuse_layers",
    "fuse_stack",
    "pansharpen",
    "register",
]
