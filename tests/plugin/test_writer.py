"""The napari TIFF writer: pixels as they are, provenance as JSON, pixel size in tags."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import tifffile

from napari_gifnet.io import images as io
from napari_gifnet.plugin.writer import (
    json_safe,
    layer_description,
    read_fused_tiff,
    write_fused_tiff,
)

PROVENANCE = {
    "model": "GIFNet",
    "weights": {"sha256": "bfc1" * 16, "source": "cache"},
    "inputs": {"a": {"name": "infrared", "range": (np.float32(0.0), np.float64(1.0))},
               "b": {"name": "visible", "shape": (4, 5)}},
    "elapsed": np.float64(0.25),
    "tile": np.int64(512),
    "flags": [np.bool_(True), None],
    "histogram": np.arange(3, dtype=np.uint16),
    3: "integer key",
}


def _meta(**extra) -> dict:
    return {"name": "fused", "scale": [0.5, 0.25], "translate": [10.0, -2.0],
            "metadata": PROVENANCE, "rgb": False, **extra}


def _resolution(page: tifffile.TiffPage) -> tuple[float, float, int]:
    xn, xd = page.tags["XResolution"].value
    yn, yd = page.tags["YResolution"].value
    return xn / xd, yn / yd, int(page.tags["ResolutionUnit"].value)


def test_json_safe_converts_nested_numpy() -> None:
    safe = json_safe(PROVENANCE)
    assert json.loads(json.dumps(safe)) == safe
    assert safe["inputs"]["a"]["range"] == [0.0, 1.0]
    assert safe["histogram"] == [0, 1, 2] and safe["tile"] == 512 and safe["3"] == "integer key"
    assert safe["flags"] == [True, None] and json_safe(Path("/x")) == "/x"
    assert json_safe(object).startswith("<class")


def test_float32_round_trip(tmp_path: Path) -> None:
    data = np.random.default_rng(0).random((31, 47), dtype=np.float32)
    (written,) = write_fused_tiff(str(tmp_path / "fused.tif"), data, _meta())
    back, description = read_fused_tiff(written)
    assert back.dtype == np.float32
    np.testing.assert_array_equal(back, data)
    assert description == {
        "name": "fused", "scale": [0.5, 0.25], "translate": [10.0, -2.0],
        "metadata": json_safe(PROVENANCE),
    }
    assert description["metadata"]["inputs"]["b"]["shape"] == [4, 5]  # a nested "shape" is fine
    assert io.read_tiff_metadata(written) == description
    with tifffile.TiffFile(written) as tif:
        page = tif.pages[0]
        assert page.photometric == tifffile.PHOTOMETRIC.MINISBLACK
        assert _resolution(page) == pytest.approx((4.0, 2.0, 1))  # pixels per unit, no unit


def test_rgb_and_rgba(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    for channels in (3, 4):
        data = rng.integers(0, 256, (20, 30, channels), dtype=np.uint8)
        (written,) = write_fused_tiff(str(tmp_path / f"rgb{channels}.tiff"), data,
                                      _meta(rgb=True, scale=[1.0, 1.0]))
        back, description = read_fused_tiff(written)
        np.testing.assert_array_equal(back, data)
        assert description["name"] == "fused"
        with tifffile.TiffFile(written) as tif:
            assert tif.pages[0].photometric == tifffile.PHOTOMETRIC.RGB
            assert tif.pages[0].shape == (20, 30, channels)


def test_stack_uint16_and_metric_units(tmp_path: Path) -> None:
    data = np.random.default_rng(2).integers(0, 4096, (3, 16, 18), dtype=np.uint16)
    meta = _meta(scale=[2.0, 0.5, 0.25], translate=[0, 0, 0],
                 units=("micrometer", "micrometer", "micrometer"))
    (written,) = write_fused_tiff(str(tmp_path / "stack.tif"), data, meta)
    back, description = read_fused_tiff(written)
    assert back.dtype == np.uint16
    np.testing.assert_array_equal(back, data)
    assert description["units"] == ["micrometer"] * 3 and description["scale"] == [2.0, 0.5, 0.25]
    with tifffile.TiffFile(written) as tif:  # 0.25 um pixels -> 40000 per cm
        assert _resolution(tif.pages[0]) == pytest.approx((40000.0, 20000.0, 3))


def test_other_suffix_multiscale_bool_and_empty_metadata(tmp_path: Path) -> None:
    levels = [np.eye(8, dtype=bool), np.eye(4, dtype=bool)]
    meta = {"name": "mask", "multiscale": True, "metadata": {}}
    (written,) = write_fused_tiff(str(tmp_path / "mask.out"), levels, meta)
    assert written.endswith("mask.out.tif")
    back, description = read_fused_tiff(written)
    assert back.dtype == np.uint8
    np.testing.assert_array_equal(back, np.eye(8, dtype=np.uint8))
    assert description == {"name": "mask", "metadata": {}}


def test_bad_data_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no data"):
        write_fused_tiff(str(tmp_path / "e.tif"), np.zeros((0, 3)), _meta())
    with pytest.raises(ValueError, match="3 or 4"):
        write_fused_tiff(str(tmp_path / "c.tif"), np.zeros((4, 4, 5)), _meta(rgb=True))


def test_layer_description_leaves_out_missing_keys() -> None:
    assert layer_description({}) == {"metadata": {}}
    units = layer_description({"units": ("pixel", "pixel"), "metadata": {"shape": 1}})
    assert units == {"units": ["pixel", "pixel"], "metadata": {"shape": 1}}


def test_save_from_napari_round_trip(tmp_path: Path, gifnet_plugin: str) -> None:
    """Through npe2 and napari's layer list (no window needed)."""
    from napari.components import ViewerModel

    viewer = ViewerModel()
    data = np.random.default_rng(3).random((24, 32), dtype=np.float32)
    metadata = {"model": "GIFNet", "weights": {"sha256": "ab" * 32}, "elapsed": np.float64(1.5),
                "inputs": ["infrared", "visible"]}
    viewer.add_image(data, name="GIFNet fused", scale=(0.5, 0.5), translate=(3, 4),
                     metadata=metadata)
    path = tmp_path / "fused.tif"
    written = viewer.layers.save(str(path), plugin=gifnet_plugin)
    assert [Path(p) for p in written] == [path]
    back, description = read_fused_tiff(path)
    np.testing.assert_array_equal(back, data)
    assert back.dtype == np.float32
    assert description["metadata"] == json_safe(metadata)
    assert description["name"] == "GIFNet fused"
    assert description["scale"] == [0.5, 0.5] and description["translate"] == [3.0, 4.0]
    reopened = viewer.open(str(path), plugin="napari")[0]  # napari's own TIFF reader
    np.testing.assert_array_equal(np.asarray(reopened.data), data)


def test_save_rgb_sample_layer_from_napari(tmp_path: Path, gifnet_plugin: str) -> None:
    from napari.components import ViewerModel

    viewer = ViewerModel()
    viewer.open_sample(gifnet_plugin, "exposure")
    layer = viewer.layers["over-exposed"]
    path = tmp_path / "over.tiff"
    viewer.layers.selection = {layer}
    written = viewer.layers.save(str(path), selected=True, plugin=gifnet_plugin)
    assert [Path(p) for p in written] == [path]
    back, description = read_fused_tiff(path)
    np.testing.assert_array_equal(back, layer.data)
    assert description["metadata"] == layer.metadata
    with tifffile.TiffFile(path) as tif:
        assert tif.pages[0].photometric == tifffile.PHOTOMETRIC.RGB
