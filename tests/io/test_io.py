"""Tests for napari_gifnet.io.images: reading inputs, writing results and feature maps."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import tifffile

from napari_gifnet.io.formats import output_format
from napari_gifnet.io.images import (
    read_image,
    read_tiff_metadata,
    write_features,
    write_image,
)

RNG = np.random.default_rng(0)


def _grey_u8(h: int = 17, w: int = 23) -> np.ndarray:
    return RNG.integers(0, 256, (h, w), dtype=np.uint8)


# -- round trips ------------------------------------------------------------


@pytest.mark.parametrize("shape", [(17, 23), (17, 23, 3), (17, 23, 4)])
def test_uint8_png_round_trip(tmp_path: Path, shape: tuple[int, ...]) -> None:
    image = RNG.integers(0, 256, shape, dtype=np.uint8)
    write_image(tmp_path / "x.png", image)
    back = read_image(tmp_path / "x.png")
    assert back.dtype == np.uint8
    np.testing.assert_array_equal(back, image)


def test_uint16_png_round_trip(tmp_path: Path) -> None:
    image = RNG.integers(0, 65536, (19, 11), dtype=np.uint16)
    write_image(tmp_path / "x.png", image, bit_depth=16)
    back = read_image(tmp_path / "x.png")
    assert back.dtype == np.uint16
    np.testing.assert_array_equal(back, image)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int32, np.float64])
@pytest.mark.parametrize("ext", [".tif", ".tiff", ".TIF"])
def test_tiff_round_trip_keeps_dtype(tmp_path: Path, dtype: type, ext: str) -> None:
    image = (RNG.random((13, 9)) * 1000).astype(dtype)
    write_image(tmp_path / f"x{ext}", image)
    back = read_image(tmp_path / f"x{ext}")
    assert back.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(back, image)


@pytest.mark.parametrize("shape", [(12, 14), (12, 14, 3)])
def test_float_tiff_with_metadata(tmp_path: Path, shape: tuple[int, ...]) -> None:
    image = RNG.random(shape).astype(np.float32)
    metadata = {
        "method": "GIFNet",
        "height": np.int64(12),
        "scale": np.float32(0.5),
        "path": tmp_path,
        "inputs": {"a": {"rule": "dtype"}},
    }
    out = write_image(tmp_path / "f.tif", image, metadata)
    assert out == tmp_path / "f.tif"
    back = read_image(out)
    assert back.dtype == np.float32
    np.testing.assert_array_equal(back, image)
    meta = read_tiff_metadata(out)
    assert meta == {
        "method": "GIFNet",
        "height": 12,
        "scale": 0.5,
        "path": str(tmp_path),
        "inputs": {"a": {"rule": "dtype"}},
    }
    with tifffile.TiffFile(out) as tif:  # an ImageJ file, the JSON in its Info entry
        assert tif.is_imagej
        stored = json.loads(tif.imagej_metadata["Info"])
    assert stored["metadata"]["method"] == "GIFNet" and stored["dtype"] == "float32"


def test_nested_shape_keys_and_reserved_shape(tmp_path: Path) -> None:
    # tifffile reads any JSON description containing '"shape":' as its own
    # "shaped" metadata; the engine's metadata has such nested keys.
    image = RNG.random((5, 7, 3)).astype(np.float32)
    meta = {"inputs": {"a": {"shape": [5, 7, 3], "dtype": "uint8"}}, "width": 7}
    write_image(tmp_path / "x.tif", image, meta)
    np.testing.assert_array_equal(read_image(tmp_path / "x.tif"), image)
    assert read_tiff_metadata(tmp_path / "x.tif") == meta
    write_image(tmp_path / "y.tif", image, {"shape": [1]})  # nested in the writer's JSON
    assert read_tiff_metadata(tmp_path / "y.tif") == {"shape": [1]}


def test_tiff_without_metadata_reads_empty(tmp_path: Path) -> None:
    write_image(tmp_path / "x.tif", np.zeros((4, 4), np.float32))
    assert read_tiff_metadata(tmp_path / "x.tif") == {}


def test_float_png_is_clipped_and_rounded(tmp_path: Path) -> None:
    image = np.array([[0.0, 1.0, -0.5, 2.0], [0.5 / 255, 1.4 / 255, 1.6 / 255, 0.5]], np.float32)
    write_image(tmp_path / "x.png", image)
    back = read_image(tmp_path / "x.png")
    np.testing.assert_array_equal(back, [[0, 255, 0, 255], [0, 1, 2, 128]])
    write_image(tmp_path / "y.png", image, bit_depth=16)
    back16 = read_image(tmp_path / "y.png")
    assert back16.dtype == np.uint16
    np.testing.assert_array_equal(back16, np.rint(np.clip(image, 0, 1) * 65535))


@pytest.mark.parametrize("ext", [".jpg", ".jpeg", ".JPG"])
def test_jpeg_is_8_bit(tmp_path: Path, ext: str) -> None:
    image = np.full((16, 16, 3), 0.5, np.float32)
    write_image(tmp_path / f"x{ext}", image)
    back = read_image(tmp_path / f"x{ext}")
    assert back.dtype == np.uint8 and back.shape == (16, 16, 3)
    assert np.abs(back.astype(int) - 128).max() <= 2


def test_inputs_are_never_modified(tmp_path: Path) -> None:
    image = np.linspace(-0.5, 1.5, 64, dtype=np.float32).reshape(8, 8)
    before = image.copy()
    for name in ("x.png", "x.jpg", "x.tif"):
        write_image(tmp_path / name, image)
    write_image(tmp_path / "y.png", image, bit_depth=16)
    np.testing.assert_array_equal(image, before)


def test_write_features(tmp_path: Path) -> None:
    features = {k: RNG.random((98, 6, 5)).astype(np.float32) for k in ("shared", "branch")}
    written = write_features(tmp_path / "deep" / "feats", features, {"method": "GIFNet"})
    assert written == [tmp_path / "deep" / "feats" / f"{k}.tif" for k in features]
    for name, path in zip(features, written):
        back = read_image(path)
        assert back.shape == (98, 6, 5) and back.dtype == np.float32
        np.testing.assert_array_equal(back, features[name])
        assert read_tiff_metadata(path) == {"method": "GIFNet", "feature": name, "axes": "CYX"}


# -- errors -----------------------------------------------------------------


def test_read_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="not found: .*missing.png"):
        read_image(tmp_path / "missing.png")


def test_read_unsupported_extension(tmp_path: Path) -> None:
    (tmp_path / "x.bmp").write_bytes(b"BM")
    with pytest.raises(ValueError, match=r"x\.bmp.*unsupported extension '\.bmp'.*\.tiff"):
        read_image(tmp_path / "x.bmp")


@pytest.mark.parametrize("name", ["broken.png", "broken.tif", "broken.jpg"])
def test_read_corrupt_file(tmp_path: Path, name: str) -> None:
    (tmp_path / name).write_bytes(b"this is not an image")
    with pytest.raises(ValueError, match=f"cannot read .*{name}: not a valid"):
        read_image(tmp_path / name)


def test_read_directory(tmp_path: Path) -> None:
    (tmp_path / "d.png").mkdir()
    with pytest.raises(ValueError, match="not a file"):
        read_image(tmp_path / "d.png")


def test_write_unsupported_extension(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"'\.bmp'; supported: \.tif, \.tiff, \.png, \.jpg"):
        write_image(tmp_path / "x.bmp", np.zeros((4, 4), np.float32))
    with pytest.raises(ValueError, match="'\\(none\\)'"):
        output_format(tmp_path / "noext")
    assert output_format("a/B.TIFF") == ".tiff"


@pytest.mark.parametrize(
    ("name", "image", "kwargs", "match"),
    [
        ("x.png", np.zeros((4, 4, 2), np.float32), {}, "expected an"),
        ("x.png", np.zeros((4,), np.float32), {}, "expected an"),
        ("x.png", np.full((4, 4), np.nan, np.float32), {}, "NaN"),
        ("x.png", np.zeros((4, 4), np.int32), {}, "floats in"),
        ("x.png", np.zeros((4, 4, 3), np.float32), {"bit_depth": 16}, "grey images only"),
        ("x.tif", np.zeros((4, 4), np.float32), {"bit_depth": 16}, "bit_depth"),
        ("x.png", np.zeros((4, 4), np.float32), {"bit_depth": 12}, "bit_depth"),
        ("x.jpg", np.zeros((4, 4, 4), np.float32), {}, "no alpha"),
    ],
)
def test_write_rejects(
    tmp_path: Path, name: str, image: np.ndarray, kwargs: dict, match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        write_image(tmp_path / name, image, **kwargs)
    assert not (tmp_path / name).exists()


# -- check_writable: the rules write_image follows, checked up front ----------


_DTYPES = [np.bool_, np.uint8, np.uint16, np.int16, np.int32, np.float32, np.float64]
_SHAPES = [(4, 5), (4, 5, 3), (4, 5, 4), (4, 5, 2)]


@pytest.mark.parametrize("ext", [".tif", ".png", ".jpg"])
@pytest.mark.parametrize("bit_depth", [8, 16, None])
def test_check_writable_agrees_with_write_image(tmp_path: Path, ext: str, bit_depth) -> None:
    from napari_gifnet.io.formats import check_writable

    for dtype in _DTYPES:
        for shape in _SHAPES:
            path = tmp_path / f"{np.dtype(dtype).name}-{len(shape)}-{shape[-1]}{ext}"
            image = np.zeros(shape, dtype)
            try:
                bits = check_writable(path, dtype, shape, bit_depth=bit_depth)
            except ValueError as exc:
                with pytest.raises(ValueError) as written:
                    write_image(path, image, bit_depth=bit_depth)
                assert str(written.value) == str(exc)
                assert not path.exists()
                continue
            write_image(path, image, bit_depth=bit_depth)
            back = read_image(path)
            assert back.shape == shape
            if ext == ".tif":  # bool colour is stored as 0/255 (ImageJ's masks), read as bool
                assert back.dtype == dtype, path.name
            if ext == ".png":
                assert back.dtype == (np.uint16 if bits == 16 else np.uint8), path.name


@pytest.mark.parametrize(
    ("name", "dtype", "shape", "needs"),
    [
        ("x.png", np.uint16, (4, 5, 3), "needs .tif (16-bit PNG is grey only)"),
        ("x.jpg", np.uint16, (4, 5), "needs .tif or .png (JPEG is 8-bit)"),
        ("x.jpg", np.uint16, (4, 5, 3), "needs .tif (JPEG is 8-bit, 16-bit PNG is grey only)"),
        ("x.png", np.int16, (4, 5),
         "needs .tif (PNG and JPEG hold unsigned 8- or 16-bit data only)"),
        ("x.jpg", np.float32, (4, 5), "needs .tif (PNG and JPEG hold unsigned 8- or 16-bit data, "
         "or floats in [0, 1])"),
    ],
)  # fmt: skip
def test_check_writable_says_which_format_holds_the_data(name, dtype, shape, needs) -> None:
    from napari_gifnet.io.formats import FormatError, check_writable

    with pytest.raises(FormatError) as info:
        check_writable(name, dtype, shape, bit_depth=None, unit_floats=False)
    assert info.value.needs == needs and str(info.value).endswith(needs)
    assert check_writable("x.tif", dtype, shape, bit_depth=None, unit_floats=False) == 8


def test_check_writable_picks_the_bit_depth(tmp_path: Path) -> None:
    from napari_gifnet.io.formats import check_writable

    assert check_writable("x.png", np.uint16, (4, 5), bit_depth=None) == 16
    assert check_writable("x.png", np.float32, (4, 5), bit_depth=None) == 16
    assert check_writable("x.png", np.float32, (4, 5, 3), bit_depth=None) == 8
    assert check_writable("x.png", np.bool_, (4, 5), bit_depth=None) == 8
    assert check_writable("x.jpg", np.float32, bit_depth=None) == 8
    assert check_writable("x.png", "float32") == 8  # the shape not known yet: extension only
    with pytest.raises(ValueError, match="unsupported extension"):
        check_writable("x.bmp", "float32")
    image = np.array([[0.0, 0.5, 1.0]], np.float32)
    write_image(tmp_path / "f.png", image, bit_depth=None)
    np.testing.assert_array_equal(read_image(tmp_path / "f.png"), [[0, 32768, 65535]])
    mask = np.array([[True, False]])
    write_image(tmp_path / "b.png", mask)  # bool: 0 and 255
    np.testing.assert_array_equal(read_image(tmp_path / "b.png"), [[255, 0]])
    write_image(tmp_path / "b.tif", mask)  # TIFF: as it is
    assert read_image(tmp_path / "b.tif").dtype == np.bool_


def test_memory_errors_pass_through_the_decoder_errors(tmp_path: Path, monkeypatch) -> None:
    write_image(tmp_path / "x.tif", _grey_u8())

    def out_of_memory(*_args, **_kwargs):
        raise MemoryError("no room")

    monkeypatch.setattr(tifffile, "imread", out_of_memory)
    with pytest.raises(MemoryError, match="no room"):
        read_image(tmp_path / "x.tif")


def test_write_features_rejects_bad_names(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="plain file name"):
        write_features(tmp_path, {"../evil": np.zeros((2, 3, 3), np.float32)})
    with pytest.raises(ValueError, match=r"\(C, H, W\)"):
        write_features(tmp_path, {"flat": np.zeros((3, 3), np.float32)})


def test_16_bit_colour_png_warns(tmp_path: Path) -> None:
    # A hand-made 16-bit RGB PNG (Pillow cannot write one, and reads it as 8-bit).
    import struct
    import zlib

    data = RNG.integers(0, 65536, (3, 4, 3), dtype=np.uint16).astype(">u2")
    raw = b"".join(b"\x00" + row.tobytes() for row in data)

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    png = (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", 4, 3, 16, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )
    (tmp_path / "rgb16.png").write_bytes(png)
    with pytest.warns(UserWarning, match="16-bit colour PNG.*TIFF"):
        back = read_image(tmp_path / "rgb16.png")
    assert back.shape == (3, 4, 3)


def _image_files(folder: Path) -> list[Path]:
    """One small file per layout read_image handles, written with Pillow and tifffile."""
    import tifffile
    from PIL import Image

    rgb = RNG.integers(0, 256, (7, 9, 3), dtype=np.uint8)
    grey = rgb[..., 0]
    saves = {
        "l.png": Image.fromarray(grey),
        "rgb.png": Image.fromarray(rgb),
        "rgba.png": Image.fromarray(np.dstack([rgb, grey])),
        "la.png": Image.fromarray(grey).convert("LA"),
        "palette.png": Image.fromarray(rgb).convert("P"),
        "one.png": Image.fromarray(grey > 128),
        "grey16.png": Image.fromarray(grey.astype(np.uint16) * 257),
        "rgb.jpg": Image.fromarray(rgb),
        "grey.jpeg": Image.fromarray(grey),
        "cmyk.jpg": Image.fromarray(rgb).convert("CMYK"),
    }
    for name, image in saves.items():
        image.save(folder / name)
    tiffs = {
        "stack.tif": RNG.random((3, 7, 9)).astype(np.float32),
        "rgb.tif": rgb,
        "signed.tiff": RNG.integers(-5, 5, (7, 9)).astype(np.int16),
        "bool.tif": grey > 100,
    }
    for name, data in tiffs.items():
        tifffile.imwrite(folder / name, data, photometric="rgb" if data.ndim == 3 and
                         data.shape[-1] == 3 else "minisblack")  # fmt: skip
    return sorted(folder.iterdir())


def test_image_info_matches_read_image_without_decoding(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from PIL import ImageFile

    from napari_gifnet.io.images import image_info

    files = _image_files(tmp_path)
    expected = {p.name: read_image(p) for p in files}

    def no_decoding(*_args, **_kwargs):
        raise AssertionError("pixels were decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decoding)
    monkeypatch.setattr(tifffile.TiffPage, "asarray", no_decoding)
    monkeypatch.setattr(tifffile.TiffFile, "asarray", no_decoding)
    for path in files:
        shape, dtype = image_info(path)
        arr = expected[path.name]
        assert (shape, dtype) == (arr.shape, arr.dtype), path.name


def test_image_info_errors(tmp_path: Path) -> None:
    from napari_gifnet.io.images import image_info

    with pytest.raises(FileNotFoundError, match="not found"):
        image_info(tmp_path / "none.png")
    (tmp_path / "x.bmp").write_bytes(b"BM")
    with pytest.raises(ValueError, match="unsupported extension"):
        image_info(tmp_path / "x.bmp")
    for name in ("broken.png", "broken.tif", "broken.jpg"):
        (tmp_path / name).write_bytes(b"this is not an image")
        with pytest.raises(ValueError, match=f"cannot read .*{name}: not a valid"):
            image_info(tmp_path / name)
    (tmp_path / "d.tif").mkdir()
    with pytest.raises(ValueError, match="not a file"):
        image_info(tmp_path / "d.tif")
