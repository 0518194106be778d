"""The commands' TIFFs are the napari writer's: ImageJ files with the input's calibration.

Every command that writes a TIFF goes through the one writer
(:func:`napari_gifnet.io.imagej_tiff.write_calibrated_tiff`): Fiji sees the
pixel size of the (first) input, the plugin's reader gives the layer its
scale and provenance, and an input without a pixel size gives none. Each
command's --help says what happens to an existing output, and it does.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import tifffile

from cli_run import run_cli
from napari_gifnet.cli.common import REPLACES, SKIPS
from napari_gifnet.cli.main import main
from napari_gifnet.io.images import read_image, read_tiff_metadata, tiff_calibration, write_image
from napari_gifnet.plugin.reader import read_layer
from napari_gifnet.plugin.writer import write_fused_tiff

H, W = 40, 56  # not square: a size printed H x W would show


def _pair(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    first, second = ((rng.random((H, W)) * 255).astype(np.uint8) for _ in range(2))
    return first, second


def _imagej(path: Path, data: np.ndarray, size: float, unit: str = "micron") -> Path:
    """An ImageJ TIFF as Fiji saves it: ``size`` per pixel, in ``unit``."""
    axes = "ZYX" if data.ndim == 3 else "YX"
    tifffile.imwrite(path, data, imagej=True, resolution=(1 / size, 1 / size),
                     metadata={"unit": unit, "axes": axes})  # fmt: skip
    return path


def _tags(path: Path) -> tuple[dict, tuple[float, float], int, set[str]]:
    """(ImageJ metadata without Info, with the axes; (x, y) resolution; ResolutionUnit;
    tag names)."""
    with tifffile.TiffFile(path) as tif:
        page = tif.pages[0]
        ij = {k: v for k, v in (tif.imagej_metadata or {}).items() if k != "Info"}
        ij["axes"] = tif.series[0].axes
        xres, yres = (page.tags[k].value for k in ("XResolution", "YResolution"))
        return (ij, (xres[0] / xres[1], yres[0] / yres[1]), int(page.tags["ResolutionUnit"].value),
                {t.name for t in page.tags})  # fmt: skip


def test_fuse_writes_the_first_inputs_calibration_as_the_napari_writer_does(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a, b = _pair()
    a_path = _imagej(tmp_path / "a.tif", a, 0.65)
    b_path = _imagej(tmp_path / "b.tif", b, 0.5, "nm")  # the first input's calibration wins
    out = tmp_path / "x.tif"
    code, stdout, err = run_cli(capsys, "fuse", str(a_path), str(b_path), "-o", str(out),
                                "--method", "mean")  # fmt: skip
    assert code == 0, err
    assert f": {W} x {H} px (width x height)," in stdout
    ij, resolution, unit, names = _tags(out)
    ij_in, resolution_in, unit_in, _ = _tags(a_path)
    assert ij["unit"] == ij_in["unit"] == "micron" and ij["axes"] == "YX"
    assert resolution == pytest.approx(resolution_in, rel=1e-9) and unit == unit_in
    # the plugin's reader: scale, units and the provenance
    data, kwargs, _ = read_layer(out)
    assert data.shape == (H, W) and data.dtype == np.float32
    assert kwargs["scale"] == pytest.approx((0.65, 0.65))
    assert kwargs["units"] == ("micrometer", "micrometer")
    assert kwargs["name"] == "x" and kwargs["metadata"]["method"] == "mean"
    assert kwargs["metadata"]["input_files"] == {"a": str(a_path), "b": str(b_path)}
    assert read_tiff_metadata(out) == kwargs["metadata"]
    # the napari writer, given the same image and layer, writes the same tags
    (napari_out,) = write_fused_tiff(str(tmp_path / "layer.tif"), data, kwargs)
    ij_n, resolution_n, unit_n, names_n = _tags(Path(napari_out))
    assert (ij_n, resolution_n, unit_n, names_n) == (ij, resolution, unit, names)
    # and a fused output, fused again, passes its calibration on
    again = tmp_path / "again.tif"
    assert main(["fuse", str(out), str(b_path), "-o", str(again), "--method", "max", "-q"]) == 0
    assert _tags(again)[:3] == (ij, resolution, unit)


def test_a_pixel_size_in_resolution_tags_per_centimetre_is_carried(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a, b = _pair(1)
    tifffile.imwrite(tmp_path / "a.tif", a, resolution=(20000, 20000), resolutionunit="CENTIMETER")
    write_image(tmp_path / "b.png", b)
    out = tmp_path / "x.tif"
    code, _, err = run_cli(capsys, "fuse", str(tmp_path / "a.tif"), str(tmp_path / "b.png"),
                           "-o", str(out), "--method", "mean")  # fmt: skip
    assert code == 0, err
    ij, resolution, _, _ = _tags(out)
    assert ij["unit"] == "micron" and resolution == pytest.approx((2.0, 2.0))  # 0.5 um
    assert read_layer(out)[1]["scale"] == pytest.approx((0.5, 0.5))


@pytest.mark.parametrize("first", ["png", "plain tif", "72 dpi tif", "imagej pixels"])
def test_inputs_without_a_pixel_size_give_none(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], first: str
) -> None:
    a, b = _pair(2)
    a_path = tmp_path / ("a.png" if first == "png" else "a.tif")
    if first == "png":
        write_image(a_path, a)
    elif first == "plain tif":
        tifffile.imwrite(a_path, a)
    elif first == "72 dpi tif":  # a print size, not a pixel size
        tifffile.imwrite(a_path, a, resolution=(72, 72), resolutionunit="INCH")
    else:  # ImageJ's default: 1 pixel per pixel
        tifffile.imwrite(a_path, a, imagej=True, resolution=(1, 1), metadata={"unit": "pixel"})
    assert tiff_calibration(a_path) is None
    b_path = _imagej(tmp_path / "b.tif", b, 0.65)  # the second input's is not the output's
    out = tmp_path / "x.tif"
    code, _, err = run_cli(capsys, "fuse", str(a_path), str(b_path), "-o", str(out),
                           "--method", "mean")  # fmt: skip
    assert code == 0, err
    ij, resolution, _, _ = _tags(out)
    assert "unit" not in ij and resolution == (1.0, 1.0)
    kwargs = read_layer(out)[1]
    assert "scale" not in kwargs and "units" not in kwargs
    assert kwargs["metadata"]["method"] == "mean"


def test_a_batch_of_pairs_gives_each_output_its_first_inputs_calibration(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for sub in ("first", "second"):
        (tmp_path / "pairs" / sub).mkdir(parents=True)
    for k, (name, size) in enumerate((("p1", 0.65), ("p2", 2.0))):
        a, b = _pair(10 + k)
        _imagej(tmp_path / "pairs" / "first" / f"{name}.tif", a, size)
        _imagej(tmp_path / "pairs" / "second" / f"{name}.tif", b, 9.0)
    out = tmp_path / "out"
    code, _, err = run_cli(capsys, "fuse", "--pairs", str(tmp_path / "pairs"), "-o", str(out),
                           "--method", "mean")  # fmt: skip
    assert code == 0, err
    for name, size in (("p1", 0.65), ("p2", 2.0)):
        ij, resolution, _, _ = _tags(out / f"{name}.tif")
        assert ij["unit"] == "micron" and resolution == pytest.approx((1 / size, 1 / size))


def test_stack_pansharpen_and_their_maps_are_calibrated(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rng = np.random.default_rng(3)
    stack = _imagej(tmp_path / "stack.tif", (rng.random((3, H, W)) * 255).astype(np.uint8), 0.25)
    out, depth, conf = tmp_path / "aif.tif", tmp_path / "depth.tif", tmp_path / "conf.tif"
    code, stdout, err = run_cli(capsys, "stack", str(stack), "-o", str(out), "--method", "focus",
                                "--depth-map", str(depth), "--confidence", str(conf),
                                "--no-align")  # fmt: skip
    assert code == 0, err
    assert f": {W} x {H} px (width x height)," in stdout
    for path in (out, depth, conf):
        ij, resolution, _, _ = _tags(path)
        assert ij["unit"] == "micron" and resolution == pytest.approx((4.0, 4.0)), path.name
    assert read_image(depth).dtype == np.uint16
    # pansharpening: the output is on the panchromatic grid, with its pixel size
    pan = _imagej(tmp_path / "pan.tif", (rng.random((32, 32)) * 255).astype(np.uint8), 0.5, "m")
    ms = tmp_path / "ms.tif"
    tifffile.imwrite(ms, (rng.random((4, 8, 8)) * 255).astype(np.uint8), photometric="minisblack")
    sharp = tmp_path / "sharp.tif"
    code, stdout, err = run_cli(capsys, "pansharpen", str(ms), str(pan), "-o", str(sharp),
                                "--band-axis", "0", "--method", "brovey")  # fmt: skip
    assert code == 0, err
    assert "32 x 32 px (width x height)" in stdout
    ij, resolution, _, _ = _tags(sharp)
    assert ij["unit"] == "m" and ij["axes"] == "CYX" and resolution == pytest.approx((2.0, 2.0))
    data, kwargs, _ = read_layer(sharp)
    assert data.shape == (4, 32, 32) and kwargs["scale"] == pytest.approx((1.0, 0.5, 0.5))
    assert kwargs["metadata"]["bands"] == 4


def test_fuse_features_and_enhance_are_calibrated(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], reference_weights: Path
) -> None:
    a, b = _pair(4)
    a_path, b_path = _imagej(tmp_path / "a.tif", a, 0.65), _imagej(tmp_path / "b.tif", b, 0.65)
    feats = tmp_path / "feats"
    code, _, err = run_cli(capsys, "fuse", str(a_path), str(b_path), "-o", str(tmp_path / "f.png"),
                           "--features", str(feats), "--weights", str(reference_weights),
                           "--device", "cpu")  # fmt: skip
    assert code == 0, err
    ij, resolution, _, _ = _tags(feats / "shared.tif")
    assert ij["unit"] == "micron" and ij["axes"] == "CYX"
    assert resolution == pytest.approx((1 / 0.65, 1 / 0.65))
    assert read_image(feats / "shared.tif").shape == (98, H, W)
    assert read_tiff_metadata(feats / "shared.tif")["feature"] == "shared"
    out = tmp_path / "enhanced.tif"
    code, stdout, err = run_cli(capsys, "enhance", str(a_path), "-o", str(out),
                                "--weights", str(reference_weights), "--device", "cpu")  # fmt: skip
    assert code == 0, err
    assert f": {W} x {H} px (width x height)," in stdout
    assert _tags(out)[0]["unit"] == "micron"
    assert read_layer(out)[1]["scale"] == pytest.approx((0.65, 0.65))


# -- an existing output: what each --help says, and what happens --------------------------


def _help(capsys: pytest.CaptureFixture[str], command: str) -> str:
    main([command, "--help"])
    return " ".join(capsys.readouterr().out.split())


@pytest.mark.parametrize(
    ("command", "said"),
    [("fuse", [REPLACES, SKIPS]), ("stack", [REPLACES, SKIPS]), ("pansharpen", [REPLACES]),
     ("enhance", [REPLACES]), ("register", [REPLACES]),
     ("evaluate", ["an existing metrics.csv or metrics.md there is replaced atomically"]),
     ("train", ["without --resume, an existing CKPT and its other outputs are replaced by the "
                "new run's, each atomically"])],
)  # fmt: skip
def test_every_help_says_what_happens_to_an_existing_output(
    capsys: pytest.CaptureFixture[str], command: str, said: list[str]
) -> None:
    text = _help(capsys, command)
    for sentence in said:
        assert " ".join(sentence.split()) in text, (command, sentence)


def test_single_outputs_are_replaced_and_kept_by_a_failed_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a, b = _pair(5)
    paths = [tmp_path / f"{n}.png" for n in "abc"]
    for path, image in zip(paths, (a, b, 255 - b)):
        write_image(path, image)
    out = tmp_path / "x.tif"
    argv = ["fuse", str(paths[0]), "", "-o", str(out), "--method", "mean", "-q"]
    for second in paths[1:]:  # run twice: the second run's output replaces the first's
        argv[2] = str(second)
        assert main(argv) == 0
        assert read_tiff_metadata(out)["input_files"]["b"] == str(second)
    before = out.read_bytes()
    tifffile.imwrite(tmp_path / "stack.tif", np.zeros((3, H, W), np.uint8),
                     photometric="minisblack")
    argv[2] = str(tmp_path / "stack.tif")  # refused: the output stays as it was
    assert main(argv) == 1
    assert out.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png", "b.png", "c.png",
                                                          "stack.tif", "x.tif"]  # fmt: skip
    # stack and evaluate: the same rule
    stack = tmp_path / "s.tif"
    for method in ("mean", "max"):
        tifffile.imwrite(stack, np.stack([a, b, a]), photometric="minisblack")
        assert main(["stack", str(stack), "-o", str(tmp_path / "aif.png"), "--method", method,
                     "--no-align", "-q"]) == 0  # fmt: skip
        assert read_image(tmp_path / "aif.png").shape == (H, W)
    scores = tmp_path / "scores"
    for method in ("mean", "max"):
        assert main(["evaluate", "--multifocus-set", "1", "--size", "64", "--methods", method,
                     "--out", str(scores), "-q"]) == 0  # fmt: skip
        table = (scores / "metrics.csv").read_text()
        assert re.search(rf"^{method},", table, re.M) or f",{method}," in table, table
    assert "mean" not in (scores / "metrics.csv").read_text().replace("mean_", "")
