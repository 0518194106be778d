"""``napari-gifnet register`` and ``fuse --register``: multimodal pairs moved by known transforms."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import tifffile

from cli_run import one_error_line, run_cli
from napari_gifnet.io import read_image, read_tiff_metadata
from napari_gifnet.io.images import tiff_calibration
from napari_gifnet.methods.classical import fuse_pair
from registration_cases import (
    FIXED_SPACING_3D,
    MOVING_SPACING_3D,
    case_2d,
    case_3d,
    mapping_error,
)

PIXEL = 0.5  # micrometres per pixel of both 2-D inputs


def _imagej(path: Path, data: np.ndarray, spacing: tuple[float, ...], unit: str = "micron") -> str:
    """An ImageJ TIFF with Fiji's calibration: Y/X resolution, and the Z spacing of a volume."""
    meta = {"unit": unit, "axes": "ZYX" if data.ndim == 3 else "YX"}
    if data.ndim == 3:
        meta["spacing"] = spacing[0]
    tifffile.imwrite(path, data.astype(np.float32), imagej=True,
                     resolution=(1 / spacing[-1], 1 / spacing[-2]), metadata=meta)  # fmt: skip
    return str(path)


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str, np.ndarray]:
    """(fixed.tif, moving.tif, true fixed -> moving matrix in pixels): a rigid multimodal
    pair, both calibrated at PIXEL micrometres."""
    folder = tmp_path_factory.mktemp("pair")
    fixed, moving, true = case_2d("rigid")
    return (_imagej(folder / "fixed.tif", fixed, (PIXEL, PIXEL)),
            _imagej(folder / "moving.tif", moving, (PIXEL, PIXEL)), true)  # fmt: skip


def _pixels(matrix: np.ndarray, spacing: float) -> np.ndarray:
    """A world matrix (both images at ``spacing``) in pixel units."""
    s = np.diag([spacing, spacing, 1.0])
    return np.linalg.inv(s) @ np.asarray(matrix) @ s


def test_register_recovers_a_rigid_transform_and_apply_reuses_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], pair: tuple[str, str, np.ndarray]
) -> None:
    fixed, moving, true = pair
    out, saved = tmp_path / "moved.tif", tmp_path / "t.json"
    code, stdout, err = run_cli(capsys, "register", fixed, moving, "-o", str(out),
                                "--save-transform", str(saved))  # fmt: skip
    assert code == 0, err
    assert stdout.startswith(f"registered {moving} onto {fixed} -> {out} (rigid): registered by "
                             "mutual information (Mattes) 0.")  # fmt: skip
    assert stdout.rstrip().endswith(f"; transform -> {saved}") and len(stdout.splitlines()) == 1
    stored = json.loads(saved.read_text())
    assert stored["fixed_spacing"] == stored["moving_spacing"] == [PIXEL, PIXEL]
    assert stored["unit"] == "micrometer"
    error = mapping_error(true, _pixels(stored["matrix"], PIXEL), (128, 128))
    assert error < 0.5, error
    moved = read_image(out)
    assert moved.shape == (128, 128) and moved.dtype == np.float32
    meta = read_tiff_metadata(out)
    assert meta["registration"]["kind"] == "rigid" and meta["registration"]["unit"] == "micrometer"
    assert np.allclose(meta["registration"]["matrix"], stored["matrix"])
    assert meta["input_files"] == {"fixed": fixed, "moving": moving}
    assert tiff_calibration(out) == tiff_calibration(fixed)  # calibrated like the fixed input

    again = tmp_path / "again.tif"
    code, stdout, err = run_cli(capsys, "register", "--apply", str(saved), fixed, moving,
                                "-o", str(again))  # fmt: skip
    assert code == 0, err
    assert "registered by a transform file" in stdout
    np.testing.assert_array_equal(read_image(again), moved)
    assert read_tiff_metadata(again)["transform_file"] == str(saved)


def test_register_from_landmarks_in_napari_csv(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], pair: tuple[str, str, np.ndarray]
) -> None:
    fixed, moving, true = pair
    points = np.array([[20.0, 30.0], [100.0, 25.0], [60.0, 110.0], [90.0, 90.0]])
    moved_points = points @ true[:2, :2].T + true[:2, 2]
    for name, p in (("f.csv", points), ("m.csv", moved_points)):
        rows = [f"{i},{y},{x}" for i, (y, x) in enumerate(p)]
        (tmp_path / name).write_text("index,axis-0,axis-1\n" + "\n".join(rows) + "\n")
    saved = tmp_path / "t.json"
    code, stdout, err = run_cli(capsys, "register", fixed, moving, "-o", str(tmp_path / "m.tif"),
                                "--landmarks", str(tmp_path / "f.csv"), str(tmp_path / "m.csv"),
                                "--save-transform", str(saved))  # fmt: skip
    assert code == 0, err
    assert "registered by landmarks" in stdout and "residual mean" in stdout
    error = mapping_error(true, _pixels(json.loads(saved.read_text())["matrix"], PIXEL), (128, 128))
    assert error < 1e-6, error


def test_register_volumes_with_their_spacing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fixed, moving, true = case_3d()
    f = _imagej(tmp_path / "fixed.tif", fixed, FIXED_SPACING_3D)
    m = str(tmp_path / "moving.tif")
    tifffile.imwrite(m, moving.astype(np.float32))  # no calibration: given on the command line
    out, saved = tmp_path / "moved.tif", tmp_path / "t.json"
    code, _, err = run_cli(capsys, "register", f, m, "-o", str(out), "--save-transform",
                           str(saved))  # fmt: skip
    assert code == 2
    one_error_line(err, f"{f} has a pixel size (1 x 1 x 1 micrometer) and {m} none: "
                   "give --moving-spacing (in micrometer)")  # fmt: skip
    spacing = ",".join(str(s) for s in MOVING_SPACING_3D)
    code, stdout, err = run_cli(capsys, "register", f, m, "-o", str(out), "--save-transform",
                                str(saved), "--moving-spacing", spacing)  # fmt: skip
    assert code == 0, err
    stored = json.loads(saved.read_text())
    assert stored["moving_spacing"] == list(MOVING_SPACING_3D) and stored["ndim"] == 3
    error = mapping_error(true, np.asarray(stored["matrix"]), fixed.shape, FIXED_SPACING_3D)
    assert error < 1.0, error
    assert read_image(out).shape == fixed.shape
    with tifffile.TiffFile(out) as tif:
        assert tif.imagej_metadata["spacing"] == pytest.approx(FIXED_SPACING_3D[0])


def test_fuse_register_fuses_the_registered_pair(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], pair: tuple[str, str, np.ndarray]
) -> None:
    fixed, moving, _ = pair
    moved = tmp_path / "moved.tif"
    assert run_cli(capsys, "register", fixed, moving, "-o", str(moved))[0] == 0
    out, saved = tmp_path / "fused.tif", tmp_path / "t.json"
    code, stdout, err = run_cli(capsys, "fuse", fixed, moving, "-o", str(out), "--method", "mean",
                                "--register", "rigid", "--save-transform", str(saved))  # fmt: skip
    assert code == 0, err
    assert (
        "; rigid registered by mutual information (Mattes)" in stdout
        and f"transform -> {saved}" in stdout
    )
    expected = fuse_pair("mean", read_image(fixed), read_image(moved)).image
    np.testing.assert_allclose(read_image(out), expected, atol=1e-6)
    meta = read_tiff_metadata(out)["registration"]
    assert meta["kind"] == "rigid" and meta["moved"] == "second onto first"
    stored = json.loads(saved.read_text())
    assert np.allclose(meta["matrix"], stored["matrix"])
    assert stored["unit"] == meta["unit"] == "micrometer"  # the unit of its world coordinates


def test_fuse_register_of_a_half_calibrated_pair_says_what_to_do(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], pair: tuple[str, str, np.ndarray]
) -> None:
    fixed = pair[0]
    plain = str(tmp_path / "plain.tif")
    tifffile.imwrite(plain, read_image(pair[1]))  # no pixel size
    out = tmp_path / "fused.tif"
    code, _, err = run_cli(capsys, "fuse", fixed, plain, "-o", str(out), "--method", "mean",
                           "--register", "rigid")  # fmt: skip
    assert code == 2 and not out.exists()
    one_error_line(err, f"{fixed} has a pixel size (0.5 x 0.5 micrometer) and {plain} none: "
                   f"`fuse --register` takes both pixel sizes from the files: give {plain} a "
                   f"pixel size too, or register first with `napari-gifnet register {fixed} "
                   f"{plain} -o MOVED.tif --moving-spacing S` (S in micrometer) and fuse {fixed} "
                   "with MOVED.tif")  # fmt: skip
    assert "`napari-gifnet register`" not in err  # no option that fuse lacks


@pytest.mark.parametrize(
    ("argv", "code", "match"),
    [
        (["fuse", "{f}", "{m}", "-o", "{t}/x.tif", "--register", "rigid", "--align"], 2,
         "--register and --align both move the second input onto the first"),
        (["fuse", "{f}", "{m}", "-o", "{t}/x.tif", "--save-transform", "{t}/t.json"], 2,
         "--save-transform saves the transform of --register"),
        (["register", "{f}", "{m}", "-o", "{f}"], 2, "-o {f} is an input: inputs are never "
         "overwritten"),
        (["register", "{f}", "{m}", "-o", "{t}/x.png"], 2, "written as a TIFF"),
        (["register", "--apply", "{t}/missing.json", "{f}", "{m}", "-o", "{t}/x.tif"], 1,
         "transform file not found: {t}/missing.json"),
        (["register", "--apply", "{t}/bad.json", "{f}", "{m}", "-o", "{t}/x.tif"], 1,
         "{t}/bad.json is not a valid napari-gifnet transform file: not JSON"),
        (["register", "--apply", "{t}/bad.json", "--transform", "affine", "{f}", "{m}", "-o",
          "{t}/x.tif"], 2, "--apply moves MOVING with a saved transform: it takes no --transform"),
        (["register", "{f}", "{t}/flat.tif", "-o", "{t}/x.tif"], 1,
         "{t}/flat.tif is constant (every value 7): nothing to register on"),
        (["register", "{f}", "{m}", "-o", "{t}/x.tif", "--moving-spacing", "0"], 2,
         "invalid spacing '0'"),
    ],
)  # fmt: skip
def test_bad_cases_get_one_clear_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], pair: tuple[str, str, np.ndarray],
    argv: list[str], code: int, match: str,
) -> None:  # fmt: skip
    (tmp_path / "bad.json").write_text('{"format": "napari-gifnet-transform", "matrix": [[1,')
    _imagej(tmp_path / "flat.tif", np.full((128, 128), 7.0), (PIXEL, PIXEL))
    names = {"f": pair[0], "m": pair[1], "t": str(tmp_path)}
    got, _, err = run_cli(capsys, *(a.format(**names) for a in argv))
    assert got == code
    if code == 2 and "invalid spacing" in match:  # argparse's usage error: usage, then the line
        assert "Traceback" not in err and match in err.strip().splitlines()[-1]
        return
    one_error_line(err, match.format(**names))
    assert not (tmp_path / "x.tif").exists()


def test_spacings_come_in_the_first_inputs_unit(tmp_path: Path) -> None:
    from napari_gifnet.cli.common import UsageError
    from napari_gifnet.cli.register import pair_spacing

    image = np.zeros((8, 8))
    um = _imagej(tmp_path / "um.tif", image, (0.5, 0.5))
    nm = _imagej(tmp_path / "nm.tif", image, (250.0, 250.0), "nm")
    volume = _imagej(tmp_path / "v.tif", np.zeros((4, 8, 8)), (3.0, 0.5, 0.5))
    plain = str(tmp_path / "plain.tif")
    tifffile.imwrite(plain, image)
    fixed, moving, unit = pair_spacing((um, nm), 2)  # 250 nm is 0.25 micrometres
    assert fixed == (0.5, 0.5) and moving == pytest.approx((0.25, 0.25)) and unit == "micrometer"
    assert pair_spacing((volume, volume), 3) == ((3.0, 0.5, 0.5), (3.0, 0.5, 0.5), "micrometer")
    assert pair_spacing((plain, plain), 2) == ((1.0, 1.0), (1.0, 1.0), None)
    assert pair_spacing((um, plain), 2, (None, (2.0,))) == ((0.5, 0.5), (2.0, 2.0), "micrometer")
    with pytest.raises(UsageError, match=f"{um} has a pixel size .* and {plain} none"):
        pair_spacing((um, plain), 2)
    with pytest.raises(UsageError, match="--moving-spacing: 3 numbers for a 2-D input"):
        pair_spacing((um, plain), 2, (None, (1.0, 2.0, 3.0)))


def _shifted_pair(folder: Path, shift: tuple[int, int], calibrated: bool) -> tuple[str, str]:
    """(fixed.tif, moving.tif): 64 px of smooth noise and the same moved by ``shift`` px
    (moving[i] = fixed[i - shift]); at PIXEL micrometres, or without a pixel size."""
    from scipy import ndimage

    rng = np.random.default_rng(5)
    fixed = ndimage.gaussian_filter(rng.random((64, 64)), 2.0).astype(np.float32)
    moving = ndimage.shift(fixed, shift, order=0, mode="nearest")
    paths = []
    for name, image in (("fixed.tif", fixed), ("moving.tif", moving)):
        if calibrated:
            paths.append(_imagej(folder / name, image, (PIXEL, PIXEL)))
        else:
            tifffile.imwrite(folder / name, image)
            paths.append(str(folder / name))
    return paths[0], paths[1]


def _transform_file(path: Path, matrix: np.ndarray, unit: str | None) -> str:
    """A transform file holding ``matrix`` in ``unit``; with ``unit="none stored"``, a file
    written before the unit was stored."""
    from napari_gifnet.io.transform_file import save_transform

    stored = None if unit == "none stored" else unit
    save_transform(path, {"kind": "rigid" if matrix.shape == (3, 3) else "affine",
                          "matrix": matrix}, unit=stored)  # fmt: skip
    if unit == "none stored":
        data = json.loads(path.read_text())
        del data["unit"]
        path.write_text(json.dumps(data))
    return str(path)


def _shift_matrix(shift: tuple[float, ...]) -> np.ndarray:
    matrix = np.eye(len(shift) + 1)
    matrix[:-1, -1] = shift
    return matrix


def test_apply_converts_the_stored_unit_and_refuses_a_pixel_transform_on_a_calibrated_pair(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    d = (4, -6)  # px
    calibrated, plain = tmp_path / "um", tmp_path / "px"
    calibrated.mkdir(), plain.mkdir()
    f, m = _shifted_pair(calibrated, d, calibrated=True)
    pf, pm = _shifted_pair(plain, d, calibrated=False)
    expected = read_image(f)[8:-8, 8:-8]
    out = tmp_path / "moved.tif"

    def moved_right(*argv: str) -> None:
        code, _, err = run_cli(capsys, "register", *argv, "-o", str(out))
        assert code == 0, err
        np.testing.assert_allclose(read_image(out)[8:-8, 8:-8], expected, atol=1e-5)
        out.unlink()

    # saved in nanometres, applied to a pair in micrometres: the shift is converted
    in_nm = _transform_file(tmp_path / "nm.json", _shift_matrix([v * PIXEL * 1000 for v in d]),
                            "nm")  # fmt: skip
    moved_right("--apply", in_nm, f, m)
    # a transform in pixels (an older file stores no unit) on a calibrated pair: refused,
    # saying which options apply it
    in_px = _transform_file(tmp_path / "px.json", _shift_matrix(d), "none stored")
    for pair in ((f, m), (f, pm)):
        argv = ["--apply", in_px, *pair] + (["--moving-spacing", "1"] if pair[1] == pm else [])
        code, _, err = run_cli(capsys, "register", *argv, "-o", str(out))
        assert code == 2 and not out.exists()
        one_error_line(err, f"{in_px} is in pixels (saved from inputs without a pixel size) and "
                       f"{pair[0]} and {pair[1]} are calibrated in micrometer: give --fixed-"
                       "spacing and --moving-spacing in the transform's pixels")  # fmt: skip
    moved_right("--apply", in_px, f, m, "--fixed-spacing", "1", "--moving-spacing", "1")
    moved_right("--apply", in_px, pf, pm)  # pixels on pixels
    # a transform in micrometres on a pair without pixel sizes: refused, then given
    in_um = _transform_file(tmp_path / "um.json", _shift_matrix([v * PIXEL for v in d]),
                            "micrometer")  # fmt: skip
    code, _, err = run_cli(capsys, "register", "--apply", in_um, pf, pm, "-o", str(out))
    assert code == 2 and not out.exists()
    one_error_line(err, f"{in_um} is in micrometer and {pf} and {pm} have no pixel size: give "
                   "--fixed-spacing and --moving-spacing in micrometer")  # fmt: skip
    moved_right("--apply", in_um, pf, pm, "--fixed-spacing", "0.5", "--moving-spacing", "0.5")
    saved = tmp_path / "again.json"
    moved_right("--apply", in_um, f, m, "--save-transform", str(saved))
    assert json.loads(saved.read_text())["unit"] == "micrometer"


def test_apply_refuses_a_transform_that_misses_or_collapses_before_writing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    f, m = _shifted_pair(tmp_path, (0, 0), calibrated=True)
    out, saved = tmp_path / "moved.tif", tmp_path / "t.json"
    far = _transform_file(tmp_path / "far.json", _shift_matrix((0.0, 500.0)), "micrometer")
    code, _, err = run_cli(capsys, "register", "--apply", far, f, m, "-o", str(out),
                           "--save-transform", str(saved))  # fmt: skip
    assert code == 1
    one_error_line(err, f"moved by this transform, {m} covers 0 % of {f} (under 10 %): refused")
    squash = _transform_file(tmp_path / "squash.json", np.diag([3.0, 3.0, 1.0]), "micrometer")
    code, _, err = run_cli(capsys, "register", "--apply", squash, f, m, "-o", str(out))
    assert code == 1
    one_error_line(err, f"registering {m} onto {f} gave scales 3, 3, outside 0.5..2")
    assert not out.exists() and not saved.exists()


def test_landmarks_that_move_the_image_away_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    f, m = _shifted_pair(tmp_path, (0, 0), calibrated=True)
    points = np.array([[10.0, 10.0], [50.0, 12.0], [30.0, 50.0]])
    for name, p in (("f.csv", points), ("m.csv", points + [0.0, 900.0])):
        (tmp_path / name).write_text("y,x\n" + "\n".join(f"{y},{x}" for y, x in p) + "\n")
    out = tmp_path / "moved.tif"
    code, _, err = run_cli(capsys, "register", f, m, "-o", str(out), "--landmarks",
                           str(tmp_path / "f.csv"), str(tmp_path / "m.csv"))  # fmt: skip
    assert code == 1 and not out.exists()
    one_error_line(err, f"{m} covers 0 % of {f}")


def test_a_calibrated_volume_without_a_z_step_is_one_unit_deep_with_a_warning(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    volume = np.random.default_rng(2).random((24, 24, 24)).astype(np.float32)
    paths = []
    for name in ("fixed.tif", "moving.tif"):  # Fiji omits a Z step of 1
        tifffile.imwrite(tmp_path / name, volume, imagej=True, resolution=(2.0, 2.0),
                         metadata={"unit": "micron", "axes": "ZYX"})  # fmt: skip
        paths.append(str(tmp_path / name))
    identity = _transform_file(tmp_path / "t.json", np.eye(4), "micrometer")
    out = tmp_path / "moved.tif"
    code, _, err = run_cli(capsys, "register", "--apply", identity, *paths, "-o", str(out))
    assert code == 0, err
    lines = err.strip().splitlines()
    assert lines == [f"napari-gifnet: warning: {p} states no Z step: taken as 1 micrometer "
                     f"(ImageJ's default); give {o} Z,0.5,0.5 to set it"
                     for p, o in zip(paths, ("--fixed-spacing", "--moving-spacing"))]  # fmt: skip
    np.testing.assert_array_equal(read_image(out), volume)
    spacing = ["--fixed-spacing", "1,0.5,0.5", "--moving-spacing", "1,0.5,0.5"]
    code, _, err = run_cli(
        capsys, "register", "--apply", identity, *paths, "-o", str(out), *spacing
    )
    assert code == 0 and err == ""
