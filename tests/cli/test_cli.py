"""Tests for the ``napari-gifnet`` command line (napari_gifnet.cli.main)."""

from __future__ import annotations

import io as _stdio
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cli_run import one_error_line, run_cli
from napari_gifnet.cli import common
from napari_gifnet.cli import fuse as fuse_command
from napari_gifnet.cli import main as cli
from napari_gifnet.io.images import read_image, read_tiff_metadata, write_image

SRC = Path(__file__).resolve().parents[2] / "src"
OFFICIAL_SHA256 = "bfc1dfef0d5b386b0c04f172daf8f6af52ba395f26dc3dd5757425fd32eb1038"
_PROXIES = ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY", "all_proxy")


@pytest.fixture(autouse=True)
def _offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No GIFNET_WEIGHTS, an empty private cache, downloads to a closed port."""
    monkeypatch.delenv("GIFNET_WEIGHTS", raising=False)
    monkeypatch.setenv("NAPARI_GIFNET_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.setenv("NAPARI_GIFNET_WEIGHTS_URL", "http://127.0.0.1:9/none.pth")
    for var in _PROXIES:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)


@pytest.fixture(scope="module")
def medical(reference_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """64 x 64 uint8 crops of the published Medical pair."""
    with np.load(reference_dir / "official" / "Medical.npz") as data:
        return data["input_a"][:64, :64].copy(), data["input_b"][:64, :64].copy()


@pytest.fixture
def pngs(tmp_path: Path, medical: tuple[np.ndarray, np.ndarray]) -> tuple[str, str]:
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    write_image(a, medical[0])
    write_image(b, medical[1])
    return str(a), str(b)


_run, _one_error_line = run_cli, one_error_line


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _PROXIES}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SRC), env.get("PYTHONPATH")]))
    return env


# -- basics -----------------------------------------------------------------


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    from napari_gifnet import __version__

    code, out, _ = _run(capsys, "--version")
    assert code == 0
    assert out.strip() == f"napari-gifnet {__version__}"


def test_help_lists_commands_and_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "--help")
    assert code == 0
    for name in cli.COMMAND_MODULES:
        assert name in out
    assert "130 interrupted" in out


def test_no_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(capsys)
    assert code == 2
    assert err.strip().splitlines()[-1].startswith("napari-gifnet: error: a command is required")


def test_python_m_version() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "napari_gifnet", "--version"],
        env=_env(), capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("napari-gifnet ")


def test_subcommands_are_pluggable(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def add(parser):  # type: ignore[no-untyped-def]
        parser.add_argument("--n", type=int, default=1)

    def run(args):  # type: ignore[no-untyped-def]
        print(f"echo {args.n}")
        return 0 if args.n > 0 else 1

    commands = {**cli.commands(), "echo": common.Subcommand("echo a number", add, run)}
    monkeypatch.setattr(cli, "commands", lambda: commands)
    assert _run(capsys, "echo", "--n", "3")[:2] == (0, "echo 3\n")
    assert _run(capsys, "echo", "--n", "0")[0] == 1


# -- fuse, end to end -------------------------------------------------------


def test_fuse_matches_engine(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    pngs: tuple[str, str],
    medical: tuple[np.ndarray, np.ndarray],
    reference_weights: Path,
) -> None:
    from napari_gifnet.engine.fusion import fuse

    out, feats = tmp_path / "out.tif", tmp_path / "feats"
    code, stdout, err = _run(
        capsys, "fuse", *pngs, "-o", str(out), "--weights", str(reference_weights),
        "--device", "cpu", "--features", str(feats),
    )
    assert code == 0, err
    assert "Traceback" not in err and "fusing" not in err  # stderr is not a terminal
    line = stdout.strip()
    assert "\n" not in line
    assert line.startswith(f"fused {pngs[0]} + {pngs[1]} -> {out}: 64 x 64 px (width x height), device cpu, ")
    assert line.endswith(f"features shared, multimodal, photographic, branch -> {feats}")

    expected = fuse(*medical, weights=reference_weights, device="cpu", return_features=True)
    fused = read_image(out)
    assert fused.dtype == np.float32 and fused.shape == (64, 64)
    np.testing.assert_allclose(fused, expected.image, atol=1e-6)

    meta = read_tiff_metadata(out)
    assert meta["method"] == "GIFNet"
    assert meta["weights_sha256"] == OFFICIAL_SHA256
    assert meta["device"] == "cpu" and (meta["height"], meta["width"]) == (64, 64)
    assert meta["input_files"] == {"a": pngs[0], "b": pngs[1]}

    for name in ("shared", "multimodal", "photographic", "branch"):
        stack = read_image(feats / f"{name}.tif")
        assert stack.shape == (98, 64, 64) and stack.dtype == np.float32
        np.testing.assert_allclose(stack, expected.features[name], atol=1e-5)
        assert read_tiff_metadata(feats / f"{name}.tif")["feature"] == name


def test_fuse_png_output_and_quiet(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    pngs: tuple[str, str],
    reference_weights: Path,
) -> None:
    tif, png = tmp_path / "o.tif", tmp_path / "o.png"
    common = ("--weights", str(reference_weights), "--device", "cpu", "--quiet")
    assert _run(capsys, "fuse", *pngs, "-o", str(tif), *common) == (0, "", "")
    assert _run(capsys, "fuse", *pngs, "-o", str(png), *common) == (0, "", "")
    assert not (tmp_path / "feats").exists()
    as_png = read_image(png)
    assert as_png.dtype == np.uint8
    np.testing.assert_array_equal(as_png, np.rint(read_image(tif) * 255).astype(np.uint8))


def test_progress_on_a_terminal() -> None:
    class Tty(_stdio.StringIO):
        def isatty(self) -> bool:
            return True

    stream = Tty()
    progress = common.Progress(stream, enabled=True)
    for done in range(5):
        progress(done, 4)
    progress.close()
    text = stream.getvalue()
    assert "\rfusing:   0%" in text and "\rfusing: 100%" in text
    assert text.endswith("\r")
    silent = Tty()
    common.Progress(silent, enabled=False)(1, 2)
    assert silent.getvalue() == ""


# -- fuse, errors -----------------------------------------------------------


def test_missing_input(capsys: pytest.CaptureFixture[str], pngs: tuple[str, str]) -> None:
    code, out, err = _run(capsys, "fuse", pngs[0], "nope.png", "-o", "out.tif")
    assert code == 1 and out == ""
    _one_error_line(err, "image file not found: nope.png")
    assert not Path("out.tif").exists()


def test_corrupt_input(capsys: pytest.CaptureFixture[str], pngs: tuple[str, str]) -> None:
    Path("bad.png").write_bytes(b"not a png")
    code, _, err = _run(capsys, "fuse", "bad.png", pngs[1], "-o", "out.tif")
    assert code == 1
    _one_error_line(err, "cannot read bad.png: not a valid PNG file")


def test_mismatched_shapes(
    capsys: pytest.CaptureFixture[str], pngs: tuple[str, str], medical: tuple[np.ndarray, ...]
) -> None:
    write_image("small.png", medical[1][:60])
    code, _, err = _run(capsys, "fuse", pngs[0], "small.png", "-o", "out.tif")
    assert code == 1
    _one_error_line(err, "same height and width")


def test_missing_weights_file(capsys: pytest.CaptureFixture[str], pngs: tuple[str, str]) -> None:
    code, _, err = _run(capsys, "fuse", *pngs, "-o", "out.tif", "--weights", "nope.pth")
    assert code == 1
    _one_error_line(err, "weights file not found")
    assert "nope.pth" in err


def test_fuse_in_small_tiles_on_disk_gives_the_same_image(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], pngs: tuple[str, str],
    reference_weights: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    monkeypatch.setenv("NAPARI_GIFNET_SCRATCH", str(tmp_path))
    common = ("--weights", str(reference_weights), "--device", "cpu", "--quiet")
    whole, tiled = tmp_path / "whole.tif", tmp_path / "tiled.tif"
    assert _run(capsys, "fuse", *pngs, "-o", str(whole), *common)[0] == 0
    args = ("--tile-size", "16", "--storage", "disk")
    assert _run(capsys, "fuse", *pngs, "-o", str(tiled), *common, *args)[0] == 0
    np.testing.assert_allclose(read_image(tiled), read_image(whole), rtol=0, atol=3e-6)
    meta = read_tiff_metadata(tiled)
    assert (meta["tile_size"], meta["storage"]) == (16, "disk")


def test_too_small_tile_size(capsys: pytest.CaptureFixture[str], pngs: tuple[str, str]) -> None:
    code, _, err = _run(capsys, "fuse", *pngs, "-o", "out.tif", "--tile-size", "4")
    assert code == 2
    _one_error_line(err, "--tile-size 4 is too small: the smallest tile is 8")


@pytest.mark.parametrize("device", ["gpu", "cuda:99"])
def test_bad_device(capsys: pytest.CaptureFixture[str], pngs: tuple[str, str], device: str) -> None:
    code, _, err = _run(capsys, "fuse", *pngs, "-o", "out.tif", "--device", device)
    assert code == 2
    _one_error_line(err, "--device")
    assert repr(device) in err


def test_unsupported_output_extension(
    capsys: pytest.CaptureFixture[str], pngs: tuple[str, str]
) -> None:
    code, _, err = _run(capsys, "fuse", *pngs, "-o", "out.bmp")
    assert code == 2
    _one_error_line(err, "unsupported extension '.bmp'; supported: .tif, .tiff, .png, .jpg")


def test_missing_output_folder(capsys: pytest.CaptureFixture[str], pngs: tuple[str, str]) -> None:
    code, _, err = _run(capsys, "fuse", *pngs, "-o", "no/such/dir/out.tif")
    assert code == 1
    _one_error_line(err, "output folder does not exist")


@pytest.mark.parametrize("value", ["bogus", "3,1", "1,2,3", "a,b", "nan,1"])
def test_bad_normalization(
    capsys: pytest.CaptureFixture[str], pngs: tuple[str, str], value: str
) -> None:
    code, _, err = _run(capsys, "fuse", *pngs, "-o", "out.tif", "--normalization", value)
    assert code == 2
    assert "Traceback" not in err
    assert "argument --normalization: invalid value" in err.strip().splitlines()[-1]


def test_normalization_values_are_parsed() -> None:
    assert fuse_command._normalization("Percentile") == "percentile"
    assert fuse_command._normalization(" 0, 4095 ") == (0.0, 4095.0)


def test_missing_required_output(capsys: pytest.CaptureFixture[str], pngs: tuple[str, str]) -> None:
    code, _, err = _run(capsys, "fuse", *pngs)
    assert code == 2
    assert "required: -o/--output" in err and "Traceback" not in err


def test_offline_weights_subprocess(tmp_path: Path, pngs: tuple[str, str]) -> None:
    env = _env()
    env.pop("GIFNET_WEIGHTS", None)
    env["NAPARI_GIFNET_CACHE"] = str(tmp_path / "empty")
    env["NAPARI_GIFNET_WEIGHTS_URL"] = "http://127.0.0.1:9/none.pth"
    proc = subprocess.run(
        [sys.executable, "-m", "napari_gifnet", "fuse", *pngs, "-o", "out.tif", "--device", "cpu"],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 1, proc.stderr
    assert proc.stdout == ""
    assert "Traceback" not in proc.stderr
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("napari-gifnet: error:")]
    assert len(errors) == 1 and "weights are not available" in errors[0]
    assert OFFICIAL_SHA256 in proc.stderr
    assert not (tmp_path / "out.tif").exists()


def test_ctrl_c(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, pngs: tuple[str, str]
) -> None:
    import napari_gifnet.io.images

    def interrupt(path):  # type: ignore[no-untyped-def]
        raise KeyboardInterrupt

    monkeypatch.setattr(napari_gifnet.io.images, "read_image", interrupt)
    code, _, err = _run(capsys, "fuse", *pngs, "-o", "out.tif")
    assert code == 130
    assert err.strip() == "napari-gifnet: interrupted"


def test_warnings_are_one_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, pngs: tuple[str, str]
) -> None:
    import warnings

    import napari_gifnet.io.images

    def warn_then_fail(path):  # type: ignore[no-untyped-def]
        warnings.warn("something odd", UserWarning)
        raise FileNotFoundError(f"image file not found: {path}")

    monkeypatch.setattr(napari_gifnet.io.images, "read_image", warn_then_fail)
    code, _, err = _run(capsys, "fuse", *pngs, "-o", "out.tif")
    assert code == 1
    assert err.splitlines() == [
        "napari-gifnet: warning: something odd",
        f"napari-gifnet: error: image file not found: {pngs[0]}",
    ]


# -- weights ----------------------------------------------------------------


def test_weights_nothing_found(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run(capsys, "weights")
    assert code == 0 and err == ""
    assert "Found: nothing" in out
    assert "no usable weights file" in out
    assert OFFICIAL_SHA256 in out


def test_weights_with_file(capsys: pytest.CaptureFixture[str], reference_weights: Path) -> None:
    code, out, _ = _run(capsys, "weights", "--weights", str(reference_weights))
    assert code == 0
    assert "(argument)" in out.splitlines()[-1]
    assert "no usable weights file" not in out
