"""The napari TIFF writer: ImageJ hyperstacks with calibration, provenance as JSON, plane by plane."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import tifffile

from napari_gifnet import __version__
from napari_gifnet.io import images as io
from napari_gifnet.io.imagej_tiff import TiffWriteError as LayerWriteError
from napari_gifnet.io.imagej_tiff import json_safe, layer_description, plan_layout
from napari_gifnet.io.images import read_description
from napari_gifnet.plugin.writer import read_fused_tiff, write_fused_tiff

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


def _imagej(path: str | Path) -> tuple[dict, str, tuple[int, ...], tifffile.TiffPage]:
    """(ImageJ metadata, series axes, series shape, first page) of an ImageJ file."""
    with tifffile.TiffFile(path) as tif:
        assert tif.is_imagej, "not an ImageJ hyperstack"
        series = tif.series[0]
        page = tif.pages[0]
        page.tags  # noqa: B018 - read while the file is open
        return dict(tif.imagej_metadata), series.axes, series.shape, page


def test_json_safe_converts_nested_numpy() -> None:
    safe = json_safe(PROVENANCE)
    assert json.loads(json.dumps(safe)) == safe
    assert safe["inputs"]["a"]["range"] == [0.0, 1.0]
    assert safe["histogram"] == [0, 1, 2] and safe["tile"] == 512 and safe["3"] == "integer key"
    assert safe["flags"] == [True, None] and json_safe(Path("/x")) == "/x"
    assert json_safe(object).startswith("<class")


def test_float32_round_trip_is_an_imagej_file(tmp_path: Path) -> None:
    data = np.random.default_rng(0).random((31, 47), dtype=np.float32)
    (written,) = write_fused_tiff(str(tmp_path / "fused.tif"), data, _meta())
    back, description = read_fused_tiff(written)
    assert back.dtype == np.float32
    np.testing.assert_array_equal(back, data)
    assert description == {
        "name": "fused", "scale": [0.5, 0.25], "translate": [10.0, -2.0],
        "metadata": json_safe(PROVENANCE), "dtype": "float32", "napari_gifnet_version": __version__,
    }
    assert description["metadata"]["inputs"]["b"]["shape"] == [4, 5]  # a nested "shape" is fine
    assert read_description(written) == description
    ij, axes, shape, page = _imagej(written)
    assert axes == "YX" and shape == (31, 47)
    assert json.loads(ij["Info"]) == description  # the provenance, in ImageJ's Info
    assert page.photometric == tifffile.PHOTOMETRIC.MINISBLACK
    assert _resolution(page) == pytest.approx((4.0, 2.0, 1))  # 1 / pixel size, no unit
    assert ij["xorigin"] == pytest.approx(8.0) and ij["yorigin"] == pytest.approx(-20.0)
    assert "unit" not in ij  # pixels


def test_stack_calibration_for_imagej(tmp_path: Path) -> None:
    """A Z stack in micrometres: Fiji reads axes, pixel size, unit, Z spacing and origin."""
    data = np.random.default_rng(2).integers(0, 4096, (3, 16, 18), dtype=np.uint16)
    meta = _meta(scale=[2.0, 0.5, 0.25], translate=[4.0, 0, 0],
                 units=("micrometer", "micrometer", "micrometer"))
    (written,) = write_fused_tiff(str(tmp_path / "stack.tif"), data, meta)
    back, description = read_fused_tiff(written)
    assert back.dtype == np.uint16
    np.testing.assert_array_equal(back, data)
    assert description["units"] == ["micrometer"] * 3 and description["scale"] == [2.0, 0.5, 0.25]
    ij, axes, shape, page = _imagej(written)
    assert axes == "ZYX" and shape == (3, 16, 18)
    assert ij["slices"] == 3 and ij["images"] == 3
    assert ij["unit"] == "micron" and ij["spacing"] == pytest.approx(2.0)
    assert ij["zorigin"] == pytest.approx(-2.0)
    assert _resolution(page) == pytest.approx((4.0, 2.0, 1))  # pixels per micron


def test_z_spacing_in_the_unit_of_x_and_a_time_axis(tmp_path: Path) -> None:
    data = np.zeros((2, 3, 8, 9), np.float32)
    meta = _meta(scale=[0.5, 500.0, 0.1, 0.1], translate=[0, 0, 0, 0],
                 units=("second", "nanometer", "micrometer", "micrometer"),
                 axis_labels=("t", "z", "y", "x"))
    (written,) = write_fused_tiff(str(tmp_path / "tzyx.tif"), data, meta)
    ij, axes, shape, page = _imagej(written)
    assert axes == "TZYX" and shape == (2, 3, 8, 9)
    assert ij["frames"] == 2 and ij["slices"] == 3
    assert ij["spacing"] == pytest.approx(0.5)  # 500 nm in micron
    assert ij["finterval"] == pytest.approx(0.5)  # seconds
    assert _resolution(page) == pytest.approx((10.0, 10.0, 1))


def test_leading_axes_from_labels_or_the_default() -> None:
    assert plan_layout((4, 5, 6), np.float32).axes == "ZYX"
    assert plan_layout((4, 5, 6), np.float32, axis_labels=["time", "y", "x"]).axes == "TYX"
    assert plan_layout((2, 4, 5, 6), np.uint8, axis_labels=["c", "z", "y", "x"]).axes == "TZYX"
    assert plan_layout((2, 3, 4, 5, 6), np.uint16).axes == "TZCYX"
    assert plan_layout((2, 5, 6, 3), np.uint8, rgb=True).axes == "ZYXS"
    assert plan_layout((2, 5, 6, 3), np.float32, rgb=True).axes == "ZCYX"
    assert not plan_layout((2, 2, 2, 2, 5, 6), np.float32).imagej  # 4 leading axes
    assert not plan_layout((2, 2, 2, 5, 6, 3), np.float32, rgb=True).imagej


def test_rgb_is_imagej_rgb_and_other_colour_a_composite(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    cases = [(np.uint8, 3, "YXS", (20, 30, 3)), (np.uint8, 4, "CYX", (4, 20, 30)),
             (np.float32, 3, "CYX", (3, 20, 30)), (np.uint16, 4, "CYX", (4, 20, 30))]
    for dtype, channels, want_axes, want_shape in cases:
        data = (rng.random((20, 30, channels)) * 200).astype(dtype)
        path = tmp_path / f"rgb{channels}{np.dtype(dtype).name}.tiff"
        (written,) = write_fused_tiff(str(path), data, _meta(rgb=True, scale=[1.0, 1.0]))
        back, description = read_fused_tiff(written)
        assert back.dtype == dtype
        np.testing.assert_array_equal(back, data)  # channels last again
        assert description["name"] == "fused" and description["rgb"] is True
        assert "colormap" not in description
        ij, axes, shape, page = _imagej(written)
        assert (axes, shape) == (want_axes, want_shape)
        if want_axes == "YXS":
            assert page.photometric == tifffile.PHOTOMETRIC.RGB
        else:
            assert ij["mode"] == "composite" and ij["channels"] == channels
            assert len(ij["LUTs"]) == channels and ij["LUTs"][0][0, 255] == 255  # red


@pytest.mark.parametrize(
    ("dtype", "stored"),
    [(np.uint8, np.uint8), (np.uint16, np.uint16), (np.int16, np.int16),
     (np.float32, np.float32), (bool, np.uint8), (np.int8, np.int16),
     (np.float16, np.float32)],
)
def test_dtypes_imagej_holds_or_casts_exactly(tmp_path: Path, dtype, stored) -> None:
    data = (np.random.default_rng(4).random((2, 6, 7)) * 100 - 40).astype(dtype)
    (written,) = write_fused_tiff(str(tmp_path / "d.tif"), data, {"name": "d"})
    back, description = read_fused_tiff(written)
    assert back.dtype == np.dtype(dtype) and description["dtype"] == np.dtype(dtype).name
    np.testing.assert_array_equal(back, data)
    with tifffile.TiffFile(written) as tif:
        assert tif.is_imagej and tif.series[0].dtype == stored
        if dtype is bool:  # ImageJ's mask convention
            assert set(np.unique(tif.asarray())) <= {0, 255}


@pytest.mark.parametrize("dtype", [np.float64, np.int32, np.uint32, np.int64, np.uint64])
def test_dtypes_imagej_cannot_hold_are_a_plain_tiff(tmp_path: Path, dtype) -> None:
    data = (np.random.default_rng(5).random((3, 6, 7)) * 1e6).astype(dtype)
    meta = _meta(scale=[1.0, 0.5, 0.25], translate=[0, 0, 0], units=["micrometer"] * 3)
    (written,) = write_fused_tiff(str(tmp_path / "p.tif"), data, meta)
    back, description = read_fused_tiff(written)
    assert back.dtype == dtype
    np.testing.assert_array_equal(back, data)
    assert io.read_tiff_metadata(written) == description["metadata"]  # the provenance
    with tifffile.TiffFile(written) as tif:  # the JSON in the ImageDescription
        assert json.loads(tif.pages[0].description)["name"] == "fused"
    assert description["name"] == "fused" and description["dtype"] == np.dtype(dtype).name
    with tifffile.TiffFile(written) as tif:
        assert not tif.is_imagej
        assert _resolution(tif.pages[0]) == pytest.approx((40000.0, 20000.0, 3))  # per cm


def test_six_dimensions_are_a_plain_tiff(tmp_path: Path) -> None:
    data = np.arange(2 * 2 * 2 * 2 * 3 * 4, dtype=np.float32).reshape(2, 2, 2, 2, 3, 4)
    (written,) = write_fused_tiff(str(tmp_path / "6d.tif"), data, {"name": "six"})
    back, description = read_fused_tiff(written)
    np.testing.assert_array_equal(back, data)
    assert description["name"] == "six"
    with tifffile.TiffFile(written) as tif:
        assert not tif.is_imagej


def test_colormap_is_kept_and_is_the_imagej_lut(tmp_path: Path) -> None:
    colormap = {"name": "my reds", "colors": np.array([[0, 0, 0, 1], [1, 0, 0, 1]], np.float32),
                "controls": np.array([0.0, 1.0], np.float32), "interpolation": "linear"}
    data = np.random.default_rng(6).random((5, 6), dtype=np.float32)
    (written,) = write_fused_tiff(str(tmp_path / "c.tif"), data, _meta(colormap=colormap))
    _, description = read_fused_tiff(written)
    assert description["colormap"] == {"name": "my reds", "colors": [[0, 0, 0, 1], [1, 0, 0, 1]],
                                       "controls": [0.0, 1.0], "interpolation": "linear"}
    ij, *_ = _imagej(written)
    lut = np.asarray(ij["LUTs"]).reshape(3, 256)  # tifffile gives one LUT as (3, 256)
    np.testing.assert_array_equal(lut[0], np.arange(256))
    assert not lut[1:].any()


class PlaneOnly:
    """An array that hands out at most one YX plane per request (a large lazy layer)."""

    def __init__(self, data: np.ndarray) -> None:
        self._data, self.shape, self.dtype, self.ndim = data, data.shape, data.dtype, data.ndim
        self.requests: list[tuple[int, ...]] = []  # the YX shape of each plane handed out

    def __getitem__(self, key):
        out = self._data[key]
        if out.size:  # (dask asks for an empty slice to learn the type)
            assert int(np.prod(out.shape[:-2])) == 1, f"asked for {out.shape}: several planes"
            self.requests.append(out.shape[-2:])
        return out

    def __array__(self, *args, **kwargs):
        raise AssertionError("the whole array was loaded")


def test_large_lazy_data_is_written_plane_by_plane(tmp_path: Path) -> None:
    data = np.random.default_rng(7).random((4, 3, 10, 12), dtype=np.float32)
    lazy = PlaneOnly(data)
    (written,) = write_fused_tiff(str(tmp_path / "lazy.tif"), lazy, {"name": "lazy"})
    assert lazy.requests == [(10, 12)] * 12
    back, _ = read_fused_tiff(written)
    np.testing.assert_array_equal(back, data)


def test_dask_layer_from_napari_is_computed_plane_by_plane(tmp_path: Path,
                                                           gifnet_plugin: str) -> None:
    import dask.array as da
    from napari.components import ViewerModel

    data = np.random.default_rng(8).random((5, 16, 20), dtype=np.float32)
    source = PlaneOnly(data)
    viewer = ViewerModel()
    viewer.add_image(da.from_array(source, chunks=(1, 16, 20), asarray=False), name="lazy",
                     scale=(3.0, 0.5, 0.5), units=("micrometer",) * 3)
    before = len(source.requests)  # napari reads a plane for the view
    path = tmp_path / "dask.tif"
    viewer.layers.save(str(path), plugin=gifnet_plugin)
    assert len(source.requests) - before == 5 and set(source.requests) == {(16, 20)}
    back, description = read_fused_tiff(path)
    np.testing.assert_array_equal(back, data)
    ij, axes, *_ = _imagej(path)
    assert axes == "ZYX" and ij["spacing"] == pytest.approx(3.0) and ij["unit"] == "micron"


def test_other_suffix_multiscale_bool_and_empty_metadata(tmp_path: Path) -> None:
    levels = [np.eye(8, dtype=bool), np.eye(4, dtype=bool)]
    meta = {"name": "mask", "multiscale": True, "metadata": {}}
    (written,) = write_fused_tiff(str(tmp_path / "mask.out"), levels, meta)
    assert written.endswith("mask.out.tif")
    back, description = read_fused_tiff(written)
    assert back.dtype == bool
    np.testing.assert_array_equal(back, np.eye(8, dtype=bool))
    assert description == {"name": "mask", "metadata": {}, "dtype": "bool",
                           "napari_gifnet_version": __version__}
    np.testing.assert_array_equal(io.read_image(written, as_stored=True),
                                  np.eye(8, dtype=np.uint8) * 255)
    np.testing.assert_array_equal(io.read_image(written), np.eye(8, dtype=bool))


def test_bad_data_is_refused(tmp_path: Path) -> None:
    with pytest.raises(LayerWriteError, match="layer 'fused' .*no data"):
        write_fused_tiff(str(tmp_path / "e.tif"), np.zeros((0, 3)), _meta())
    with pytest.raises(LayerWriteError, match="3 or 4"):
        write_fused_tiff(str(tmp_path / "c.tif"), np.zeros((4, 4, 5)), _meta(rgb=True))
    assert not list(tmp_path.iterdir())


def test_a_failed_write_keeps_the_earlier_file(tmp_path: Path) -> None:
    path = tmp_path / "keep.tif"
    (written,) = write_fused_tiff(str(path), np.ones((4, 5), np.float32), {"name": "first"})

    class Broken(PlaneOnly):
        def __getitem__(self, key):
            if key == (1,):
                raise OSError("disk gone")
            return super().__getitem__(key)

    with pytest.raises(OSError, match="disk gone"):
        write_fused_tiff(str(path), Broken(np.zeros((3, 4, 5), np.float32)), {"name": "second"})
    back, description = read_fused_tiff(written)
    assert description["name"] == "first" and back.shape == (4, 5)
    assert [p.name for p in tmp_path.iterdir()] == ["keep.tif"]


def test_layer_description_leaves_out_missing_keys() -> None:
    assert layer_description({}) == {"metadata": {}}
    units = layer_description({"units": ("pixel", "pixel"), "metadata": {"shape": 1}})
    assert units == {"units": ["pixel", "pixel"], "metadata": {"shape": 1}}
    assert layer_description({"colormap": "magma", "rgb": False})["colormap"] == {"name": "magma"}
    assert "colormap" not in layer_description({"colormap": "gray", "rgb": True})


def test_save_from_napari_round_trip(tmp_path: Path, gifnet_plugin: str) -> None:
    """Through npe2 and napari's layer list (no window needed)."""
    from napari.components import ViewerModel

    viewer = ViewerModel()
    data = np.random.default_rng(3).random((24, 32), dtype=np.float32)
    metadata = {"model": "GIFNet", "weights": {"sha256": "ab" * 32}, "elapsed": np.float64(1.5),
                "inputs": ["infrared", "visible"]}
    viewer.add_image(data, name="GIFNet fused", scale=(0.5, 0.5), translate=(3, 4),
                     metadata=metadata, colormap="magma", units="micrometer")
    path = tmp_path / "fused.tif"
    written = viewer.layers.save(str(path), plugin=gifnet_plugin)
    assert [Path(p) for p in written] == [path]
    back, description = read_fused_tiff(path)
    np.testing.assert_array_equal(back, data)
    assert back.dtype == np.float32
    assert description["metadata"] == json_safe(metadata)
    assert description["name"] == "GIFNet fused" and description["colormap"]["name"] == "magma"
    assert description["scale"] == [0.5, 0.5] and description["translate"] == [3.0, 4.0]
    assert description["units"] == ["micrometer", "micrometer"]
    ij, axes, _, page = _imagej(path)
    assert axes == "YX" and ij["unit"] == "micron"
    assert _resolution(page) == pytest.approx((2.0, 2.0, 1))
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
        if layer.data.dtype == np.uint8:
            assert tif.pages[0].photometric == tifffile.PHOTOMETRIC.RGB
        else:
            assert tif.imagej_metadata["mode"] == "composite"


@pytest.mark.parametrize(("meta", "message"), [
    ({"translate": [float("nan"), 0.0]}, r"translate \[nan, 0.0\] is not finite"),
    ({"scale": [1e10, 1e10], "units": ["m", "m"]},
     r"scale \[10000000000.0, 10000000000.0\] gives 1e-1\d pixels per c?m in X"),
    ({"scale": [1e-10, 1e-10]}, r"scale \[1e-10, 1e-10\] gives 1e\+10 pixels per unit"),
    ({"translate": [1e308, 0.0]}, r"translate \[1e\+308, 0.0\] is beyond 1e\+100"),
    ({"scale": [0.0, 1.0]}, r"scale \[0.0, 1.0\] has an entry of 0"),
], ids=["nan translate", "1e10 m scale", "1e-10 scale", "1e308 translate", "zero scale"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["imagej", "plain"])
def test_calibration_a_tiff_cannot_hold_is_refused_naming_the_layer(
    tmp_path: Path, meta: dict, message: str, dtype: type
) -> None:
    path = tmp_path / "cal.tif"
    layer = {"name": "calibrated", "scale": [1.0, 1.0], "translate": [0.0, 0.0], **meta}
    with pytest.raises(LayerWriteError, match=f"layer 'calibrated' to {path}: its {message}"):
        write_fused_tiff(str(path), np.ones((4, 5), dtype), layer)
    assert not list(tmp_path.iterdir())


def test_calibration_ImageJ_holds_is_written(tmp_path: Path) -> None:
    """Far from 1 but within a TIFF resolution: written, and read back as it was."""
    meta = {"name": "fine", "scale": [1e-3, 2e-3], "translate": [-1e6, 1e6],
            "units": ["m", "m"]}
    (path,) = write_fused_tiff(str(tmp_path / "fine.tif"), np.ones((4, 5), np.float32), meta)
    ij, *_, page = _imagej(path)
    assert _resolution(page)[:2] == pytest.approx((500.0, 1000.0))
    assert ij["unit"] == "m" and ij["yorigin"] == pytest.approx(1e9)
    _, description = read_fused_tiff(path)
    assert description["scale"] == [1e-3, 2e-3] and description["translate"] == [-1e6, 1e6]


@pytest.mark.parametrize("data", [
    np.array([["a", "b"], ["c", "d"]], dtype=object), np.array([["a", "b"], ["c", "d"]]),
    np.array(3.0), np.arange(5.0),
], ids=["object", "str", "0-d", "1-D"])
def test_data_a_tiff_cannot_hold_is_refused_naming_the_layer(tmp_path: Path, data) -> None:
    with pytest.raises(LayerWriteError, match="cannot write layer 'odd' to .*odd.tif: "
                                              "(its data type|an image needs at least 2)"):
        write_fused_tiff(str(tmp_path / "odd.tif"), data, {"name": "odd"})
    assert not list(tmp_path.iterdir())


def test_under_a_file_the_message_names_the_layer_and_the_file(tmp_path: Path) -> None:
    (tmp_path / "afile").write_bytes(b"kept")
    with pytest.raises(NotADirectoryError, match=f"layer 'f' .*{tmp_path / 'afile'} is an "
                                                 "existing file"):
        write_fused_tiff(str(tmp_path / "afile" / "x.tif"), np.ones((4, 5)), {"name": "f"})
    assert (tmp_path / "afile").read_bytes() == b"kept"


def test_napari_multiscale_layer_and_refusals_through_napari(tmp_path: Path,
                                                             gifnet_plugin: str) -> None:
    """napari passes MultiScaleData; a refusal reaches the user (napari drops ValueErrors)."""
    from napari.components import ViewerModel

    viewer = ViewerModel()
    full = np.arange(16 * 16, dtype=np.uint8).reshape(16, 16)
    viewer.add_image([full, full[::2, ::2]], multiscale=True, name="pyramid")
    written = viewer.layers.save(str(tmp_path / "pyramid.tif"), plugin=gifnet_plugin)
    assert written == [str(tmp_path / "pyramid.tif")]
    back, description = read_fused_tiff(written[0])
    np.testing.assert_array_equal(back, full)
    assert description["name"] == "pyramid"
    tiny = ViewerModel()
    tiny.add_image(np.ones((4, 5), np.float32), name="tiny", scale=(1e-10, 1e-10))
    with pytest.raises(LayerWriteError, match="layer 'tiny' .*scale"):
        tiny.layers.save(str(tmp_path / "tiny.tif"), plugin=gifnet_plugin)
    assert not (tmp_path / "tiny.tif").exists()


def test_a_large_layer_goes_to_the_file_in_pieces_without_a_copy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tracemalloc

    from napari_gifnet.io import imagej_tiff

    monkeypatch.setattr(imagej_tiff, "_PIECE_BYTES", 1 << 20)
    data = np.random.default_rng(0).random((1024, 2048), dtype=np.float32)  # 8 MiB
    tracemalloc.start()
    try:
        (written,) = write_fused_tiff(str(tmp_path / "big.tif"), data, _meta())
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 << 20, peak
    np.testing.assert_array_equal(read_fused_tiff(written)[0], data)
