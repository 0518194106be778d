"""Tests for napari_gifnet.io.tiff_stack: multi-page TIFF stacks read page by page."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest


@pytest.mark.parametrize("compression", [None, "zlib"])
@pytest.mark.parametrize("shape", [(5, 12, 9), (4, 10, 7, 3)])
def test_tiff_stack_is_read_page_by_page(
    tmp_path: Path, tiff_page_reads: list[int], compression: str | None, shape: tuple
) -> None:
    import tifffile

    from napari_gifnet.io.tiff_stack import TiffPlanes, open_tiff_stack

    data = np.random.default_rng(3).integers(0, 65535, shape, dtype=np.uint16)
    photometric = "rgb" if len(shape) == 4 else "minisblack"
    tifffile.imwrite(tmp_path / "z.tif", data, photometric=photometric, compression=compression)
    with open_tiff_stack(tmp_path / "z.tif") as planes:
        assert isinstance(planes, TiffPlanes)
        assert planes.shape == shape and planes.dtype == np.uint16 and len(planes) == shape[0]
        np.testing.assert_array_equal(planes[(3,)], data[3])
        assert tiff_page_reads == [3]  # one page, nothing else
        np.testing.assert_array_equal(planes[-1], data[-1])
        with pytest.raises(IndexError, match="out of range"):
            planes[shape[0]]
        with pytest.raises(TypeError, match="one page"):
            planes[1:3]


def test_tiff_stack_other_layouts_fall_back(tmp_path: Path) -> None:
    import tifffile

    from napari_gifnet.io.tiff_stack import TiffPlanes, open_tiff_stack

    data = np.arange(3 * 2 * 8 * 6, dtype=np.uint16).reshape(3, 2, 8, 6)  # Z, C, H, W
    tifffile.imwrite(tmp_path / "h.tif", data, imagej=True, metadata={"axes": "ZCYX"})
    got = open_tiff_stack(tmp_path / "h.tif")  # pages are (Z, C) planes: memory-mapped
    assert not isinstance(got, TiffPlanes)
    np.testing.assert_array_equal(np.asarray(got), data)
    assert not np.asarray(got).flags.writeable  # the user's file is never written
    tifffile.imwrite(tmp_path / "c.tif", data, imagej=True, compression="zlib",
                     metadata={"axes": "ZCYX"})  # fmt: skip
    np.testing.assert_array_equal(open_tiff_stack(tmp_path / "c.tif"), data)  # read whole
    with pytest.raises(FileNotFoundError):
        open_tiff_stack(tmp_path / "none.tif")
    (tmp_path / "bad.tif").write_bytes(b"not a tiff")
    with pytest.raises(ValueError, match="not a valid TIFF"):
        open_tiff_stack(tmp_path / "bad.tif")
    (tmp_path / "a.png").write_bytes(b"")
    with pytest.raises(ValueError, match="cannot read a stack from .*unsupported extension"):
        open_tiff_stack(tmp_path / "a.png")
    (tmp_path / "folder.tif").mkdir()
    with pytest.raises(ValueError, match="not a file"):
        open_tiff_stack(tmp_path / "folder.tif")


# -- image_info: shape and dtype from the header -------------------------------


def test_a_damaged_page_is_an_error_naming_the_file(tmp_path: Path) -> None:
    """The headers are sound, the compressed data of one page are not: found on reading it."""
    import tifffile

    from napari_gifnet.io.tiff_stack import TiffPlanes, open_tiff_stack

    path = tmp_path / "damaged.tif"
    tifffile.imwrite(path, np.ones((3, 16, 16), np.uint16), compression="zlib",
                     photometric="minisblack")
    with tifffile.TiffFile(path) as tif:
        start, count = tif.pages[1].dataoffsets[0], tif.pages[1].databytecounts[0]
    content = bytearray(path.read_bytes())
    content[start:start + count] = b"\xff" * count
    path.write_bytes(bytes(content))
    with open_tiff_stack(path) as planes:
        assert isinstance(planes, TiffPlanes)
        np.testing.assert_array_equal(planes[0], 1)
        with pytest.raises(ValueError, match=f"cannot read {path}: not a valid TIFF file"):
            planes[1]
