"""Image files: reading, writing (atomically) and the formats' rules; no torch.

The names below are the documented paths for users (``napari_gifnet.io.read_image``);
the package's own code imports each from the module that defines it.
"""

from .formats import (
    READ_EXTENSIONS,
    TIFF_EXTENSIONS,
    WRITE_EXTENSIONS,
    FormatError,
    check_writable,
    output_format,
)
from .images import (
    JPEG_QUALITY,
    image_info,
    read_image,
    read_tiff_metadata,
    tiff_calibration,
    write_features,
    write_image,
    write_tiff,
)
from .tiff_stack import TiffPlanes, open_tiff_stack

__all__ = [
    "JPEG_QUALITY", "READ_EXTENSIONS", "TIFF_EXTENSIONS", "WRITE_EXTENSIONS", "FormatError",
    "TiffPlanes", "check_writable", "image_info", "open_tiff_stack", "output_format",
    "read_image", "read_tiff_metadata", "tiff_calibration", "write_features", "write_image",
    "write_tiff",
]  # fmt: skip
