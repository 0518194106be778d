"""Tests of the ``stack``, ``pansharpen`` and ``enhance`` commands (napari_gifnet.cli.main).

Also that every command, ``fuse`` included, refuses an impossible output
before fusing.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile

from cli_run import one_error_line, run_cli
from napari_gifnet.io.images import read_image, read_tiff_metadata, write_image
from napari_gifnet.workflows.focus_stack import fuse_stack

_run, _one_error_line = run_cli, one_error_line


@pytest.fixture
def stack(tmp_path: Path) -> np.ndarray:
    from scipy import ndimage

    rng = np.random.default_rng(0)
    sharp = ndimage.gaussian_filter(rng.random((40, 48)), 1.0)
    sharp = (sharp - sharp.min()) / (sharp.max() - sharp.min())
    planes = [ndimage.gaussian_filter(sharp, s) for s in (0.0, 1.5, 3.0)]
    planes[2][:, 24:] = sharp[:, 24:]
    return np.rint(np.stack(planes) * 65535).astype(np.uint16)


@pytest.mark.parametrize("ext", [".tif", ".png"])
def test_stack_from_a_tiff_with_depth_map(tmp_path, capsys, stack, ext):
    tifffile.imwrite(tmp_path / "z.tif", stack, photometric="minisblack")
    out, depth = tmp_path / f"aif{ext}", tmp_path / f"depth{ext}"
    code, text, err = _run(
        capsys, "stack", str(tmp_path / "z.tif"), "-o", str(out), "--depth-map", str(depth),
        "--keep-dtype", "--method", "focus",
    )
    assert code == 0, err
    expected = fuse_stack(stack, method="focus", keep_dtype=True)
    got = read_image(out)
    assert got.dtype == np.uint16  # 16-bit grey PNG too
    np.testing.assert_array_equal(got, expected.image)
    np.testing.assert_array_equal(read_image(depth), expected.depth_map)
    assert "3 planes" in text
    if ext == ".tif":
        assert read_tiff_metadata(out)["planes"] == 3


def test_stack_streams_a_multi_page_tiff_page_by_page(tmp_path, capsys, stack, monkeypatch,
                                                      tiff_page_reads):  # fmt: skip
    tifffile.imwrite(tmp_path / "z.tif", stack, photometric="minisblack", compression="zlib")
    out = tmp_path / "aif.tif"
    code, _, err = _run(capsys, "stack", str(tmp_path / "z.tif"), "-o", str(out), "--method",
                        "focus", "--keep-dtype")  # fmt: skip
    assert code == 0, err
    assert set(tiff_page_reads) == {0, 1, 2}
    monkeypatch.undo()
    np.testing.assert_array_equal(
        read_image(out), fuse_stack(stack, method="focus", keep_dtype=True).image
    )


def test_stack_from_a_folder_and_files_agree(tmp_path, capsys, stack):
    folder = tmp_path / "planes"
    folder.mkdir()
    for i, plane in enumerate(stack):
        write_image(folder / f"p{i}.tif", plane)
    code, _, err = _run(capsys, "stack", str(folder), "-o", str(tmp_path / "a.tif"),
                        "--method", "laplacian", "--align", "-q")
    assert code == 0, err
    files = [str(folder / f"p{i}.tif") for i in range(3)]
    code, _, err = _run(capsys, "stack", *files, "-o", str(tmp_path / "b.tif"),
                        "--method", "laplacian", "--align", "-q")
    assert code == 0, err
    np.testing.assert_array_equal(read_image(tmp_path / "a.tif"), read_image(tmp_path / "b.tif"))


def test_stack_align_scale_matches_the_api(tmp_path, capsys, stack):
    tifffile.imwrite(tmp_path / "z.tif", stack, photometric="minisblack")
    out = tmp_path / "aif.tif"
    code, text, err = _run(capsys, "stack", str(tmp_path / "z.tif"), "-o", str(out),
                           "--method", "focus", "--align-scale")
    assert code == 0, err
    expected = fuse_stack(stack, method="focus", align="scale")
    np.testing.assert_array_equal(read_image(out), expected.image)
    meta = read_tiff_metadata(out)
    assert meta["alignment"] == "scale" and len(meta["scales"]) == 3
    assert "scales" in text


def test_stack_errors_are_one_line(tmp_path, capsys, stack):
    code, _, err = _run(capsys, "stack", str(tmp_path / "none.tif"), "-o", str(tmp_path / "o.tif"))
    assert code == 1
    _one_error_line(err, "not found")
    tifffile.imwrite(tmp_path / "z.tif", stack, photometric="minisblack")
    code, _, err = _run(capsys, "stack", str(tmp_path / "z.tif"), "-o", str(tmp_path / "o.tif"),
                        "--method", "magic")
    assert code == 1
    _one_error_line(err, "unknown stack method")
    code, _, err = _run(capsys, "stack", str(tmp_path / "z.tif"), "-o", str(tmp_path / "o.bmp"))
    assert code == 2
    _one_error_line(err, "unsupported extension")


@pytest.fixture
def no_fusion(monkeypatch):
    """Make any call of fuse_stack fail: the command must refuse before fusing."""
    import napari_gifnet.workflows.focus_stack

    def refuse(*_args, **_kwargs):
        raise AssertionError("fuse_stack was called")

    monkeypatch.setattr(napari_gifnet.workflows.focus_stack, "fuse_stack", refuse)


def test_stack_keep_dtype_signed_and_float_need_tiff(tmp_path, capsys, stack, no_fusion):
    signed = (stack.astype(np.int32) - 30000).astype(np.int16)
    tifffile.imwrite(tmp_path / "s.tif", signed, photometric="minisblack")
    tifffile.imwrite(tmp_path / "f.tif", signed.astype(np.float32), photometric="minisblack")
    for name, dtype in (("s.tif", "int16"), ("f.tif", "float32")):
        for ext in (".png", ".jpg"):
            out = tmp_path / f"o{ext}"
            code, _, err = _run(capsys, "stack", str(tmp_path / name), "-o", str(out),
                                "--keep-dtype", "--method", "focus")  # fmt: skip
            assert code == 2
            _one_error_line(err, f"the stack is {dtype}; with --keep-dtype that needs .tif")
            assert not out.exists()


def test_stack_keep_dtype_int16_tiff_keeps_signed_values(tmp_path, capsys, stack):
    signed = (stack.astype(np.int32) - 30000).astype(np.int16)
    tifffile.imwrite(tmp_path / "s.tif", signed, photometric="minisblack")
    out = tmp_path / "o.tif"
    code, _, err = _run(capsys, "stack", str(tmp_path / "s.tif"), "-o", str(out),
                        "--keep-dtype", "--method", "focus", "-q")  # fmt: skip
    assert code == 0, err
    got = read_image(out)
    expected = fuse_stack(signed, method="focus", keep_dtype=True)
    assert got.dtype == np.int16 and got.min() < 0
    np.testing.assert_array_equal(got, expected.image)
    np.testing.assert_array_equal(got, np.take_along_axis(signed, expected.depth_map[None], 0)[0])


def test_stack_uint16_outputs_checked_before_fusing(tmp_path, capsys, stack, no_fusion):
    rgb = np.stack([stack, stack // 2, stack // 3], axis=-1)
    tifffile.imwrite(tmp_path / "rgb.tif", rgb, photometric="rgb")
    tifffile.imwrite(tmp_path / "z.tif", stack, photometric="minisblack")
    cases = [
        ("rgb.tif", "o.png", ["--keep-dtype"], "needs .tif (16-bit PNG is grey only)"),
        ("rgb.tif", "o.jpg", ["--keep-dtype"], "needs .tif"),
        ("z.tif", "o.jpg", ["--keep-dtype"], "needs .tif or .png (JPEG is 8-bit)"),
        ("z.tif", "o.tif", ["--depth-map", str(tmp_path / "d.jpg")], "--depth-map"),
        ("z.tif", "o.tif", ["--depth-map", str(tmp_path / "o.tif")], "is also the -o output"),
        ("z.tif", "o.tif", ["--confidence", str(tmp_path / "c.png")], "use one of .tif"),
        ("z.tif", "z.tif", [], "is an input"),
    ]
    for source, out, extra, match in cases:
        code, _, err = _run(capsys, "stack", str(tmp_path / source), "-o", str(tmp_path / out),
                            "--method", "focus", *extra)  # fmt: skip
        assert code == 2, (source, out, extra)
        _one_error_line(err, match)
        assert not (tmp_path / "o.tif").exists() and not (tmp_path / "o.png").exists()
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "z.tif"), stack)


def test_stack_folder_of_mixed_dtypes_or_shapes_is_refused(tmp_path, capsys, stack, no_fusion):
    folder = tmp_path / "mixed"
    folder.mkdir()
    write_image(folder / "a.png", (stack[0] // 257).astype(np.uint8))
    write_image(folder / "b.tif", stack[1])
    write_image(folder / "c.tif", stack[2])
    out = tmp_path / "o.tif"
    code, _, err = _run(capsys, "stack", str(folder), "-o", str(out))
    assert code == 1
    _one_error_line(err, "differ in dtype (uint8: a.png; uint16: b.tif, c.tif)")
    code, _, err = _run(capsys, "stack", *(str(folder / n) for n in ("b.tif", "a.png")),
                        "-o", str(out))  # fmt: skip
    assert code == 1
    _one_error_line(err, "uint16: b.tif; uint8: a.png")
    write_image(folder / "a.png", (stack[0, :, :40] // 257).astype(np.uint8))
    write_image(folder / "a.tif", stack[0, :, :40])
    (folder / "a.png").unlink()
    code, _, err = _run(capsys, "stack", str(folder), "-o", str(out))
    assert code == 1
    _one_error_line(err, "b.tif has shape (40, 48), the first file a.tif (40, 40)")
    assert not out.exists()


def test_stack_folder_or_files_refuse_another_axis(tmp_path, capsys, stack, no_fusion):
    folder = tmp_path / "planes"
    folder.mkdir()
    for i, plane in enumerate(stack):
        write_image(folder / f"p{i}.tif", plane)
    for inputs in ([str(folder)], [str(folder / f"p{i}.tif") for i in range(3)]):
        code, _, err = _run(capsys, "stack", *inputs, "-o", str(tmp_path / "o.tif"), "--axis", "1")
        assert code == 2
        _one_error_line(err, "--axis 1: a folder or a list of files is stacked along axis 0")


def test_stack_depth_map_and_keep_dtype_messages(tmp_path, capsys, stack, no_fusion):
    tifffile.imwrite(tmp_path / "z.tif", stack, photometric="minisblack")
    code, _, err = _run(capsys, "stack", str(tmp_path / "z.tif"), "-o", str(tmp_path / "o.tif"),
                        "--depth-map", str(tmp_path / "d.jpg"))  # fmt: skip
    assert code == 2
    _one_error_line(err, "a depth map (uint16 plane indices) needs .tif or .png (JPEG is 8-bit)")
    code, _, err = _run(capsys, "stack", str(tmp_path / "z.tif"), "-o", str(tmp_path / "o.jpg"),
                        "--keep-dtype")  # fmt: skip
    assert code == 2
    _one_error_line(err, "the stack is uint16; with --keep-dtype that needs .tif or .png")


@pytest.mark.parametrize(
    ("command", "module", "function"),
    [
        ("stack", "napari_gifnet.workflows.focus_stack", "fuse_stack"),
        ("pansharpen", "napari_gifnet.workflows.pansharpening", "pansharpen"),
        ("enhance", "napari_gifnet.workflows.enhancement", "enhance"),
        ("fuse", "napari_gifnet.engine.fusion", "fuse"),
    ],
)
def test_every_command_refuses_an_impossible_output_before_fusing(
    tmp_path, capsys, monkeypatch, command, module, function
):
    import importlib

    def refuse(*_args, **_kwargs):
        raise AssertionError(f"{function} was called")

    monkeypatch.setattr(importlib.import_module(module), function, refuse)
    grey = np.zeros((32, 32), np.uint16)
    inputs = []
    for name in ("a.tif", "b.tif", "c.tif"):
        tifffile.imwrite(tmp_path / name, grey)
        inputs.append(str(tmp_path / name))
    inputs = inputs[:1] if command == "enhance" else inputs[:2] if command == "fuse" else inputs
    outputs = [("o.bmp", 2, "unsupported extension '.bmp'"),
               ("none/o.tif", 1, "output folder does not exist")]  # fmt: skip
    if command == "pansharpen":
        outputs.append(("o.png", 2, "use one of .tif, .tiff"))  # bands: TIFF only
    for out, status, match in outputs:
        code, _, err = _run(capsys, command, *inputs, "-o", str(tmp_path / out), "--device", "cpu")
        assert code == status, (command, out, err)
        _one_error_line(err, match)
        assert not (tmp_path / out).exists()


def test_pansharpen_pixel_sizes_are_checked_by_pair_arg(tmp_path, capsys):
    for value in ("0", "1,2,3", "a,b", "nan"):
        code, _, err = _run(capsys, "pansharpen", "ms.tif", "pan.tif", "-o", "x.tif",
                            "--ms-scale", value, "--pan-scale", "1")  # fmt: skip
        assert code == 2
        last = err.strip().splitlines()[-1]
        assert f"argument --ms-scale: invalid value {value!r}: the pixel size (S or SY,SX) " \
            "must be a positive finite number or a (y, x) pair of them" in last, last


def test_pansharpen_band_files_and_multiband_file(tmp_path, capsys, reference_dir):
    folder = reference_dir / "pairs" / "Remote"
    ms = tifffile.imread(folder / "ms_4band.tif")[:64, :48]
    pan = tifffile.imread(folder / "b_pan.tif")[:64, :48]
    tifffile.imwrite(tmp_path / "ms.tif", ms)
    tifffile.imwrite(tmp_path / "pan.tif", pan)
    code, _, err = _run(capsys, "pansharpen", str(tmp_path / "ms.tif"), str(tmp_path / "pan.tif"),
                           "-o", str(tmp_path / "out.tif"), "--method", "laplacian")
    assert code == 0, err
    from napari_gifnet.workflows.pansharpening import pansharpen

    np.testing.assert_array_equal(
        tifffile.imread(tmp_path / "out.tif"), pansharpen(ms, pan, method="laplacian").image
    )
    bands = []
    for i in range(4):
        tifffile.imwrite(tmp_path / f"b{i}.tif", ms[..., i])
        bands.append(str(tmp_path / f"b{i}.tif"))
    code, _, err = _run(capsys, "pansharpen", *bands, str(tmp_path / "pan.tif"),
                        "-o", str(tmp_path / "bands.tif"), "--method", "laplacian", "-q")
    assert code == 0, err
    out = tifffile.imread(tmp_path / "bands.tif")
    np.testing.assert_array_equal(np.moveaxis(out, 0, -1), tifffile.imread(tmp_path / "out.tif"))
    code, _, err = _run(capsys, "pansharpen", str(tmp_path / "pan.tif"), "-o", "x.tif")
    assert code == 2
    _one_error_line(err, "panchromatic")
    code, _, err = _run(capsys, "pansharpen", str(tmp_path / "ms.tif"), str(tmp_path / "pan.tif"),
                        "-o", str(tmp_path / "out.png"))
    assert code == 2
    _one_error_line(err, ".tif")


def test_enhance_command(tmp_path, capsys, reference_dir, reference_weights):
    with np.load(reference_dir / "official" / "Medical.npz") as data:
        image = data["input_b"][:48, :48].copy()
    write_image(tmp_path / "in.png", image)
    code, _, err = _run(capsys, "enhance", str(tmp_path / "in.png"), "-o",
                           str(tmp_path / "e.tif"), "--weights", str(reference_weights),
                           "--device", "cpu")
    assert code == 0, err
    from napari_gifnet.workflows.enhancement import enhance

    expected = enhance(image, weights=reference_weights, device="cpu")
    np.testing.assert_allclose(read_image(tmp_path / "e.tif"), expected.image, atol=1e-6)
    code, _, err = _run(capsys, "enhance", str(tmp_path / "in.png"), "-o", str(tmp_path / "f.tif"),
                        "--variant", "exposure", "--gamma", "3", "--device", "cpu")
    assert code == 1
    _one_error_line(err, "gamma")


def test_a_folder_of_stacks_in_one_call(tmp_path, capsys, stack):
    """--stacks: each TIFF and each folder of images is a stack; failures reported by name,
    the others fused; a re-run skips finished outputs."""
    root = tmp_path / "stacks"
    (root / "planes").mkdir(parents=True)
    tifffile.imwrite(root / "z1.tif", stack, photometric="minisblack")
    for i, plane in enumerate(stack):
        write_image(root / "planes" / f"p{i}.png", plane, bit_depth=None)
    (root / "broken.tif").write_bytes(b"not a tiff at all")
    (root / "notes.txt").write_text("not a stack")
    out = tmp_path / "out"
    argv = ["stack", "--stacks", str(root), "-o", str(out), "--method", "focus", "--maps"]
    code, stdout, err = _run(capsys, *argv)
    assert code == 1
    assert sorted(p.name for p in out.iterdir()) == [
        "planes.tif", "planes_confidence.tif", "planes_depth.tif",
        "z1.tif", "z1_confidence.tif", "z1_depth.tif"]  # fmt: skip
    assert "fused 2 stack(s)" in stdout and "failed 1" in stdout
    assert "failed: broken: cannot read" in err and "Traceback" not in err
    expected = fuse_stack(stack, 0, "focus")
    np.testing.assert_array_equal(read_image(out / "z1.tif"), expected.image)
    np.testing.assert_array_equal(read_image(out / "z1_depth.tif"), expected.depth_map)
    np.testing.assert_array_equal(read_image(out / "planes.tif"), expected.image)
    stamp = (out / "z1.tif").stat().st_mtime_ns
    code, stdout, _ = _run(capsys, *argv)
    assert code == 1 and "fused 0 stack(s)" in stdout and "skipped 2" in stdout
    assert (out / "z1.tif").stat().st_mtime_ns == stamp
    code, stdout, _ = _run(capsys, *argv, "--overwrite")
    assert "fused 2 stack(s)" in stdout


def test_stack_inputs_or_stacks_not_both(tmp_path, capsys, stack):
    tifffile.imwrite(tmp_path / "z.tif", stack, photometric="minisblack")
    for argv, match in [
        (["-o", str(tmp_path / "o.tif")], "give the stack as INPUT"),
        ([str(tmp_path / "z.tif"), "--stacks", str(tmp_path), "-o", str(tmp_path / "o")],
         "give the stack as INPUT"),
        (["--stacks", str(tmp_path), "-o", str(tmp_path / "o"), "--depth-map", "d.tif"],
         "--maps writes every stack's depth"),
    ]:
        code, _, err = _run(capsys, "stack", *argv, "--method", "focus")
        assert code == 2
        _one_error_line(err, match)


def test_stack_aligns_by_the_data_unless_told_otherwise(tmp_path, capsys, stack):
    tifffile.imwrite(tmp_path / "z.tif", stack, photometric="minisblack")
    runs = {"default": (), "--no-align": ("--no-align",), "--align": ("--align",)}
    requested = {}
    for name, flags in runs.items():
        out = tmp_path / f"{name.strip('-')}.tif"
        code, _, err = _run(capsys, "stack", str(tmp_path / "z.tif"), "-o", str(out), *flags)
        assert code == 0, err
        requested[name] = read_tiff_metadata(out)["alignment_requested"]
    assert requested == {"default": "auto", "--no-align": "none", "--align": "translation"}
    code, _, err = _run(capsys, "stack", str(tmp_path / "z.tif"), "-o", str(tmp_path / "x.tif"),
                        "--no-align", "--align-similarity")  # fmt: skip
    assert code == 2
    _one_error_line(err, "--no-align cannot be combined with an --align option")


def test_sizes_are_reported_as_width_x_height(tmp_path, capsys, stack):
    tifffile.imwrite(tmp_path / "z.tif", stack, photometric="minisblack")  # 40 high, 48 wide
    code, text, err = _run(capsys, "stack", str(tmp_path / "z.tif"), "-o", str(tmp_path / "o.tif"),
                           "--method", "mean", "--no-align")  # fmt: skip
    assert code == 0, err
    assert "48 x 40 px (width x height)" in text
