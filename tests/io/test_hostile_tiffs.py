"""Hostile TIFFs: forged or damaged files are refused by every reader, from the headers.

Each file is small and forged with tifffile: a header claiming a huge image
over a few bytes of data, a file truncated mid-way, a header with no pages.
Every reader path (``read_image``, ``image_info``, ``read_tiff_metadata``,
``open_tiff_stack``, a stack of files, the napari reader) must refuse them
with a ValueError naming the file, before allocating the pixels (checked
with :mod:`tracemalloc`, which sees numpy's allocations).
"""

from __future__ import annotations

import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tifffile

from napari_gifnet.io import images as io
from napari_gifnet.io.tiff_stack import open_tiff_stack
from napari_gifnet.plugin.reader import read_layers
from napari_gifnet.plugin.writer import read_fused_tiff, write_fused_tiff
from napari_gifnet.workflows.planes import FileStack

#: The most a refused read may allocate (a forged header claims gigabytes).
ALLOWED_BYTES = 32 * 2**20

READERS: dict[str, Callable[[Path], Any]] = {
    "read_image": io.read_image,
    "image_info": io.image_info,
    "read_tiff_metadata": io.read_tiff_metadata,
    "open_tiff_stack": open_tiff_stack,
    "file stack": lambda p: FileStack([p, p]),
    "read_fused_tiff": read_fused_tiff,
}
#: The readers that go on to the pixels (read_tiff_metadata reads the headers only).
PIXEL_READERS = {k: v for k, v in READERS.items() if k != "read_tiff_metadata"}


def _forge_size(path: Path, height: int, width: int, planes: int = 1,
                compression: str | None = None) -> Path:
    """A TIFF of 4 x 4 pixels per page whose headers claim ``height`` x ``width``."""
    data = np.zeros((planes, 4, 4), np.uint8)
    tifffile.imwrite(path, data, compression=compression, rowsperstrip=4, metadata=None,
                     photometric="minisblack")
    with tifffile.TiffFile(path, mode="r+") as tif:
        for page in tif.pages:
            page.tags["ImageWidth"].overwrite(width)
            page.tags["ImageLength"].overwrite(height)
            page.tags["RowsPerStrip"].overwrite(height)
            if compression is None:
                page.tags["StripByteCounts"].overwrite(height * width)
    with open(path, "ab") as fh:  # about 4 kB in all
        fh.write(bytes(max(0, 4096 - path.stat().st_size)))
    return path


def _refused(reader: Callable[[Path], Any], path: Path, match: str) -> None:
    """``reader(path)`` raises a ValueError naming ``path`` and matching ``match``,
    and allocates little on the way."""
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match=match) as caught:
            reader(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert str(path) in str(caught.value)
    assert peak < ALLOWED_BYTES, f"{peak / 2**30:.2f} GiB allocated before the refusal"


@pytest.mark.parametrize("reader", READERS.values(), ids=READERS.keys())
def test_a_header_claiming_60000_squared_over_4_kB_is_refused(tmp_path: Path,
                                                               reader: Callable) -> None:
    path = _forge_size(tmp_path / "huge.tif", 60000, 60000)
    assert path.stat().st_size == 4096
    _refused(reader, path, "incomplete or corrupted .*needs 3600000")


@pytest.mark.parametrize("reader", READERS.values(), ids=READERS.keys())
def test_a_two_plane_stack_claiming_60000_squared_is_refused(tmp_path: Path,
                                                              reader: Callable) -> None:
    path = _forge_size(tmp_path / "huge stack.tif", 60000, 60000, planes=2)
    _refused(reader, path, "incomplete or corrupted")


@pytest.mark.parametrize("reader", PIXEL_READERS.values(), ids=PIXEL_READERS.keys())
def test_compressed_pages_declaring_more_than_the_memory_are_refused(
    tmp_path: Path, reader: Callable
) -> None:
    """The data are all there (a few compressed bytes); what they decode to is not."""
    path = _forge_size(tmp_path / "bomb.tif", 4_000_000_000, 4_000_000_000, planes=2,
                       compression="zlib")
    _refused(reader, path, r"declares a .*4000000000 x 4000000000 uint8 .*more than the .* "
                           "of memory available")


def test_the_memory_rule_is_the_memory_available(tmp_path: Path, monkeypatch) -> None:
    """One rule for every reader: what the header declares must fit in the free memory."""
    from napari_gifnet.io import formats

    path = tmp_path / "fine.tif"
    tifffile.imwrite(path, np.zeros((2, 64, 64), np.uint16), compression="zlib")
    np.testing.assert_array_equal(io.read_image(path), 0)
    monkeypatch.setattr(formats, "available_memory", lambda: 12_000)
    assert io.read_tiff_metadata(path) == {}  # the headers alone: no pixels
    with open_tiff_stack(path) as planes:  # read page by page: one plane (8 KiB) fits
        np.testing.assert_array_equal(planes[1], 0)
    whole = r"2 x 64 x 64 uint16 image \(16 KiB\), more than the 11.7 KiB of memory available"
    for name, reader in PIXEL_READERS.items():
        if name != "open_tiff_stack":
            with pytest.raises(ValueError, match=whole if name != "file stack" else "16 KiB"):
                reader(path)
    monkeypatch.setattr(formats, "available_memory", lambda: 4_000)
    with pytest.raises(ValueError, match=r"a 64 x 64 uint16 plane \(8 KiB\)"):
        open_tiff_stack(path)


@pytest.mark.parametrize("reader", [*READERS.values(), read_layers],
                         ids=[*READERS.keys(), "napari reader"])
def test_a_truncated_writer_stack_is_an_error_naming_the_file(tmp_path: Path,
                                                              reader: Callable) -> None:
    whole = tmp_path / "two planes.tif"
    data = np.arange(2 * 64 * 64, dtype=np.uint16).reshape(2, 64, 64)
    write_fused_tiff(str(whole), data, {"name": "two", "metadata": {}})
    cut = tmp_path / "cut.tif"
    content = whole.read_bytes()
    cut.write_bytes(content[: int(len(content) * 0.6)])
    _refused(reader, cut, "incomplete or corrupted")
    assert whole.read_bytes() == content


def test_a_one_page_imagej_stack_cut_short_is_refused(tmp_path: Path) -> None:
    """ImageJ's own large files: one page, the other planes' data after it."""
    path = tmp_path / "virtual.tif"
    tifffile.imwrite(path, np.ones((3, 16, 16), np.uint8), imagej=True,
                     metadata={"axes": "ZYX"})
    with tifffile.TiffFile(path) as tif:
        first = tif.pages[0].offset
        ends = tif.pages[0].dataoffsets[0] + 2 * 16 * 16  # two planes and no more
    content = bytearray(path.read_bytes()[:ends])
    link = first + 2 + 12 * int.from_bytes(content[first:first + 2], "little")
    content[link:link + 4] = bytes(4)  # the first page links to no other
    path.write_bytes(bytes(content))
    for reader in READERS.values():
        with pytest.raises(ValueError, match="ImageJ header declares 3 images"):
            reader(path)


@pytest.mark.parametrize("reader", [*READERS.values(), read_layers],
                         ids=[*READERS.keys(), "napari reader"])
def test_a_tiff_with_no_pages_is_a_value_error(tmp_path: Path, reader: Callable) -> None:
    path = tmp_path / "empty.tif"
    path.write_bytes(b"II*\x00" + bytes(12))  # a valid header, no first page
    with pytest.raises(ValueError, match="empty.tif") as caught:
        reader(path)
    assert "IndexError" not in repr(caught.value)


def test_good_files_still_read(tmp_path: Path) -> None:
    data = np.arange(3 * 8 * 6, dtype=np.uint16).reshape(3, 8, 6)
    tifffile.imwrite(tmp_path / "z.tif", data, photometric="minisblack")
    np.testing.assert_array_equal(io.read_image(tmp_path / "z.tif"), data)
    assert io.image_info(tmp_path / "z.tif") == ((3, 8, 6), np.dtype(np.uint16))
    with open_tiff_stack(tmp_path / "z.tif") as planes:
        np.testing.assert_array_equal(planes[2], data[2])


@pytest.mark.parametrize("planes", [1, 2])
def test_the_stack_command_refuses_a_forged_size_before_allocating(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], planes: int
) -> None:
    from cli_run import one_error_line, run_cli

    path = _forge_size(tmp_path / "huge.tif", 60000, 60000, planes=planes)
    tracemalloc.start()
    try:
        code, _, err = run_cli(capsys, "stack", str(path), "-o", str(tmp_path / "out.tif"),
                               "--method", "focus", "-q")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert code == 1
    one_error_line(err, f"cannot read {path}: the TIFF is incomplete or corrupted")
    assert peak < ALLOWED_BYTES and not (tmp_path / "out.tif").exists()
