"""The npe2 reader: napari-gifnet's TIFFs reopen as they were saved; other files are left alone."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import tifffile

from cli_run import run_cli
from napari_gifnet import __version__
from napari_gifnet.io import images as io
from napari_gifnet.plugin.reader import get_reader, read_layers
from napari_gifnet.plugin.writer import write_fused_tiff

PROVENANCE = {"method": "GIFNet", "weights_sha256": "ab" * 32, "elapsed_s": 1.5,
              "inputs": ["infrared", "visible"], "napari_gifnet_version": __version__}


def _viewer():
    from napari.components import ViewerModel

    return ViewerModel()


def test_writer_stack_reopens_in_napari_with_its_attributes(tmp_path: Path,
                                                            gifnet_plugin: str) -> None:
    viewer = _viewer()
    data = np.random.default_rng(0).random((3, 16, 20), dtype=np.float32)
    viewer.add_image(data, name="GIFNet fused", scale=(2.0, 0.5, 0.25), translate=(1, 2, 3),
                     units=("micrometer", "micrometer", "micrometer"),
                     axis_labels=("z", "y", "x"), metadata=PROVENANCE, colormap="magma")
    path = tmp_path / "fused.tif"
    viewer.layers.save(str(path), plugin=gifnet_plugin)
    (layer,) = _viewer().open(str(path), plugin=gifnet_plugin)  # a fresh viewer
    np.testing.assert_array_equal(np.asarray(layer.data), data)
    assert layer.data.dtype == np.float32 and not layer.rgb
    assert layer.name == "GIFNet fused"
    np.testing.assert_allclose(layer.scale, [2.0, 0.5, 0.25])
    np.testing.assert_allclose(layer.translate, [1, 2, 3])
    assert [str(u) for u in layer.units] == ["micrometer"] * 3
    assert tuple(layer.axis_labels) == ("z", "y", "x")
    assert layer.metadata == PROVENANCE
    assert layer.colormap.name == "magma"


def test_custom_colormap_rgb_composite_and_bool_reopen(tmp_path: Path,
                                                       gifnet_plugin: str) -> None:
    viewer = _viewer()
    rng = np.random.default_rng(1)
    reds = {"colors": [[0, 0, 0, 1], [1, 0, 0, 1]], "name": "gifnet test reds"}
    viewer.add_image(rng.random((8, 9), dtype=np.float32), name="grey", colormap=reds)
    viewer.add_image(rng.random((8, 9, 3), dtype=np.float32), name="colour", rgb=True)
    viewer.add_image(rng.random((8, 9)) > 0.5, name="mask")
    for layer in list(viewer.layers):
        path = tmp_path / f"{layer.name}.tif"
        viewer.layers.selection = {layer}
        viewer.layers.save(str(path), selected=True, plugin=gifnet_plugin)
        data, kwargs, kind = read_layers(str(path))[0]
        assert kind == "image" and kwargs["name"] == layer.name
        assert data.dtype == layer.data.dtype and kwargs["rgb"] == layer.rgb
        np.testing.assert_array_equal(data, layer.data)
        (back,) = viewer.open(str(path), plugin=gifnet_plugin)
        assert back.rgb == layer.rgb
        if layer.name == "grey":
            assert back.colormap.name == "gifnet test reds"
            np.testing.assert_allclose(back.colormap.colors, layer.colormap.colors, atol=1e-6)


def test_npe2_read(tmp_path: Path, gifnet_plugin: str) -> None:
    import npe2

    data = np.arange(30, dtype=np.uint16).reshape(5, 6)
    (path,) = write_fused_tiff(str(tmp_path / "n.tiff"), data,
                               {"name": "n", "scale": [2.0, 2.0], "metadata": {"k": 1}})
    ((back, kwargs, kind),) = npe2.read([path], plugin_name=gifnet_plugin, stack=False)
    np.testing.assert_array_equal(back, data)
    assert kind == "image" and kwargs["scale"] == (2.0, 2.0) and kwargs["metadata"] == {"k": 1}


def test_plain_tiff_fallback_reopens(tmp_path: Path, gifnet_plugin: str) -> None:
    data = np.random.default_rng(2).random((2, 5, 6))  # float64: not an ImageJ type
    (path,) = write_fused_tiff(str(tmp_path / "f64.tif"), data,
                               {"name": "f64", "scale": [1.0, 0.5, 0.5], "metadata": {}})
    (layer,) = _viewer().open(path, plugin=gifnet_plugin)
    assert layer.data.dtype == np.float64 and layer.name == "f64"
    np.testing.assert_allclose(layer.scale, [1.0, 0.5, 0.5])


def test_a_command_output_reopens(tmp_path: Path, capsys, gifnet_plugin: str) -> None:
    """``napari-gifnet stack ... -o x.tif``: named after the file, its JSON as metadata."""
    planes = np.random.default_rng(3).integers(0, 255, (3, 24, 28), dtype=np.uint8)
    tifffile.imwrite(tmp_path / "planes.tif", planes, photometric="minisblack")
    out = tmp_path / "all in focus.tif"
    code, _, err = run_cli(capsys, "stack", str(tmp_path / "planes.tif"), "-o", str(out),
                           "--method", "focus", "-q")
    assert code == 0, err
    (layer,) = _viewer().open(str(out), plugin=gifnet_plugin)
    assert layer.name == "all in focus"
    assert layer.metadata == io.read_tiff_metadata(out)
    assert layer.metadata["napari_gifnet_version"] == __version__
    np.testing.assert_array_equal(np.asarray(layer.data), io.read_image(out))


def test_fuse_and_enhance_outputs_reopen(tmp_path: Path, gifnet_plugin: str) -> None:
    """What ``fuse``/``enhance -o x.tif`` write (io.write_image with the result's metadata)."""
    grey = tmp_path / "fused.tif"
    colour = tmp_path / "enhanced.tiff"
    io.write_image(grey, np.random.default_rng(4).random((6, 7), dtype=np.float32), PROVENANCE)
    io.write_image(colour, np.random.default_rng(5).random((6, 7, 3), dtype=np.float32),
                   {**PROVENANCE, "input_file": "x.png"})
    (g,) = read_layers(str(grey))
    assert g[1] == {"name": "fused", "metadata": PROVENANCE, "rgb": False}
    (c,) = _viewer().open(str(colour), plugin=gifnet_plugin)
    assert c.rgb and c.data.shape == (6, 7, 3) and c.metadata["input_file"] == "x.png"


def test_earlier_writer_files_reopen(tmp_path: Path) -> None:
    """Files of the first writer: JSON ImageDescription with the layer keys only."""
    path = tmp_path / "old.tif"
    description = {"shape": [4, 5], "name": "old", "scale": [0.5, 0.5], "metadata": {"m": 1}}
    tifffile.imwrite(path, np.ones((4, 5), np.float32), description=json.dumps(description),
                     metadata=None)
    ((data, kwargs, _),) = get_reader(str(path))(str(path))
    assert kwargs == {"name": "old", "scale": (0.5, 0.5), "metadata": {"m": 1}, "rgb": False}
    assert data.shape == (4, 5)


def test_entries_that_do_not_fit_are_left_out(tmp_path: Path, gifnet_plugin: str) -> None:
    path = tmp_path / "odd.tif"
    write_fused_tiff(str(path), np.ones((4, 5), np.float32),
                     {"name": "odd", "scale": [1.0, 2.0, 3.0], "units": ["parsec-ish", "x"],
                      "metadata": {}})
    with pytest.warns(UserWarning, match="units .* are not units napari knows; left out"):
        ((_, kwargs, _),) = read_layers(str(path))
    assert "scale" not in kwargs and "units" not in kwargs
    with pytest.warns(UserWarning, match="left out"):
        (layer,) = _viewer().open(str(path), plugin=gifnet_plugin)
    assert layer.name == "odd"


def test_other_files_are_left_to_other_readers(tmp_path: Path) -> None:
    plain = tmp_path / "plain.tif"
    tifffile.imwrite(plain, np.zeros((4, 5), np.uint8))
    foreign_json = tmp_path / "foreign.tif"
    tifffile.imwrite(foreign_json, np.zeros((4, 5), np.uint8), metadata={"microscope": "x"})
    fiji = tmp_path / "fiji.tif"
    tifffile.imwrite(fiji, np.zeros((2, 4, 5), np.uint8), imagej=True,
                     metadata={"axes": "ZYX", "Info": "Objective = 10x"})
    png = tmp_path / "fused.png"
    io.write_image(png, np.zeros((4, 5), np.uint8))
    broken = tmp_path / "broken.tif"
    broken.write_bytes(b"II*\x00 not a tiff")
    ours = tmp_path / "ours.tif"
    write_fused_tiff(str(ours), np.zeros((4, 5), np.float32), {"name": "ours"})
    for path in (plain, foreign_json, fiji, png, broken, tmp_path / "missing.tif", tmp_path):
        assert get_reader(str(path)) is None, path
    assert get_reader([str(ours), str(plain)]) is None
    assert get_reader([]) is None
    assert get_reader([str(ours), str(ours)]) is read_layers


def test_napari_does_not_take_a_foreign_tiff_with_this_plugin(tmp_path: Path,
                                                              gifnet_plugin: str) -> None:
    plain = tmp_path / "plain.tif"
    tifffile.imwrite(plain, np.zeros((4, 5), np.uint8))
    with pytest.raises(Exception, match="napari-gifnet"):
        _viewer().open(str(plain), plugin=gifnet_plugin)
    (layer,) = _viewer().open(str(plain), plugin="napari")
    assert layer.data.shape == (4, 5)


def _forged(path: Path, **entries) -> Path:
    """A writer-made ImageJ file whose JSON provenance (ImageJ's Info) holds ``entries``."""
    description = {"name": "forged", "scale": [2.0, 2.0], "translate": [1.0, 1.0],
                   "units": ["micrometer", "micrometer"], "metadata": {"k": 1},
                   "dtype": "float32", "napari_gifnet_version": __version__, **entries}
    tifffile.imwrite(path, np.ones((4, 5), np.float32), imagej=True,
                     metadata={"axes": "YX", "Info": json.dumps(description)})
    return path


@pytest.mark.parametrize(("entries", "dropped", "why"), [
    ({"translate": [float("inf"), 0.0]}, "translate", r"translate \[inf, 0.0\] is not finite"),
    ({"scale": [float("nan"), 1.0]}, "scale", r"scale \[nan, 1.0\] is not finite"),
    ({"scale": [0.0, 1.0]}, "scale", r"scale \[0.0, 1.0\] has an entry of 0"),
    ({"scale": ["a", 1]}, "scale", r"scale \['a', 1\] is not a list of numbers"),
    ({"translate": [1e308, 0.0]}, "translate", r"translate \[1e\+308, 0.0\] is beyond 1e"),
    ({"axis_labels": [1, 2]}, "axis_labels", r"axis_labels \[1, 2\] are not text"),
    ({"name": 5}, "name", "layer name 5 is not text"),
    ({"name": 5, "dtype": ["float32"]}, "name", "layer name 5 is not text"),
], ids=["inf translate", "nan scale", "zero scale", "text scale", "1e308 translate",
        "number labels", "number name", "list dtype"])
def test_forged_calibration_is_dropped_with_a_warning_naming_the_file(
    tmp_path: Path, gifnet_plugin: str, entries: dict, dropped: str, why: str
) -> None:
    path = _forged(tmp_path / "forged.tif", **entries)
    with pytest.warns(UserWarning, match=f"{re.escape(str(path))}: its {why}.*; left out"):
        ((data, kwargs, _),) = read_layers(str(path))
    assert data.shape == (4, 5) and kwargs["metadata"] == {"k": 1}
    assert dropped not in kwargs or kwargs[dropped] == path.stem  # a name: the file's
    viewer = _viewer()
    with pytest.warns(UserWarning, match="left out"):
        (layer,) = viewer.open(str(path), plugin=gifnet_plugin)
    later = viewer.add_image(np.ones((6, 7), np.float32))  # the viewer still works
    assert np.all(np.isfinite(layer.scale)) and np.all(np.isfinite(layer.translate))
    assert np.all(np.isfinite(np.asarray(viewer.layers.extent.world)))
    assert later.data.shape == (6, 7)


def test_a_forged_colormap_drops_only_the_colormap(tmp_path: Path, gifnet_plugin: str) -> None:
    path = _forged(tmp_path / "cmap.tif",
                   colormap={"name": "evil", "colors": [["red", None], "x"], "controls": "y"})
    with pytest.warns(UserWarning, match=f"{re.escape(str(path))}: its colormap .*left out"):
        (layer,) = _viewer().open(str(path), plugin=gifnet_plugin)
    assert layer.name == "forged" and tuple(layer.scale) == (2.0, 2.0)
    assert tuple(layer.translate) == (1.0, 1.0) and layer.metadata == {"k": 1}
    assert layer.colormap.name == "gray"


def test_a_truncated_file_opens_as_an_error_naming_it(tmp_path: Path,
                                                      gifnet_plugin: str) -> None:
    whole = tmp_path / "whole.tif"
    write_fused_tiff(str(whole), np.ones((2, 32, 32), np.uint16), {"name": "two"})
    cut = tmp_path / "cut.tif"
    cut.write_bytes(whole.read_bytes()[: int(whole.stat().st_size * 0.6)])
    assert get_reader(str(cut)) is read_layers  # this project's file: its error, not another's
    with pytest.raises(Exception, match=f"cannot read {re.escape(str(cut))}: the TIFF is "
                                        "incomplete"):
        _viewer().open(str(cut), plugin=gifnet_plugin)
