"""``napari-gifnet fuse`` with an offline sample, a folder of pairs (batches) and --align."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile
from scipy import ndimage
from skimage import data

from cli_run import one_error_line, run_cli
from napari_gifnet.data.synthetic import SAMPLES
from napari_gifnet.engine.fusion import fuse
from napari_gifnet.io import read_image, read_tiff_metadata, write_image

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(autouse=True)
def _weights(reference_weights: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GIFNET_WEIGHTS", str(reference_weights))


def test_list_samples(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "fuse", "--list-samples")
    assert code == 0
    assert [line.split()[0] for line in out.splitlines()] == [
        "multifocus", "medical", "exposure", "fluorescence"]
    assert "first 'near focus', second 'far focus'" in out


def test_a_sample_fuses_like_its_layers(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "fused.tif"
    code, stdout, err = run_cli(capsys, "fuse", "--sample", "medical", "-o", str(out),
                                "--device", "cpu")  # fmt: skip
    assert code == 0, err
    assert "fused sample 'medical' (CT-like + MRI-like)" in stdout
    sample = SAMPLES["medical"]()
    expected = fuse(sample.data("CT-like"), sample.data("MRI-like"), device="cpu").image
    assert np.array_equal(read_image(out), expected)
    assert read_tiff_metadata(out)["input_files"] == {"sample": "medical", "a": "CT-like",
                                                      "b": "MRI-like"}  # fmt: skip


@pytest.mark.parametrize(
    ("argv", "match"),
    [
        (["--sample", "medical"], "required: -o/--output"),
        (["a.png", "--sample", "medical", "-o", "x.png"], "got A B and --sample"),
        (["-o", "x.png"], "got none"),
        (["a.png", "-o", "x.png"], "the second input B is missing"),
        (["--pairs", "p", "-o", "out", "--features", "f"], "--features is for one pair"),
    ],
)
def test_input_choices_are_checked(capsys, argv, match) -> None:
    code, _, err = run_cli(capsys, "fuse", *argv)
    assert code == 2
    one_error_line(err, match)


def _pairs(root: Path) -> None:
    rng = np.random.default_rng(0)
    for i in range(3):
        for sub in ("first", "second"):
            (root / sub).mkdir(parents=True, exist_ok=True)
            write_image(root / sub / f"p{i}.png", (rng.random((48, 48)) * 255).astype(np.uint8))
    write_image(root / "second" / "p1.png", np.zeros((32, 48), np.uint8))  # a bad pair
    write_image(root / "first" / "lonely.png", np.zeros((48, 48), np.uint8))


def test_a_batch_goes_on_past_failures_and_skips_finished_outputs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], heap_calls, store_runs
) -> None:
    _pairs(tmp_path / "pairs")
    out = tmp_path / "out"
    argv = ["fuse", "--pairs", str(tmp_path / "pairs"), "-o", str(out), "--device", "cpu"]
    code, stdout, err = run_cli(capsys, *argv)
    assert code == 1
    assert heap_calls.trims == 1 and store_runs == [1]  # one heap and one set of maps
    assert sorted(p.name for p in out.iterdir()) == ["p0.tif", "p2.tif"]
    assert "fused 2 pair(s)" in stdout and "skipped 0" in stdout and "failed 2" in stdout
    assert "failed: lonely: no partner in second/" in err
    assert "failed: p1: the inputs must have the same height and width" in err
    assert "Traceback" not in err
    first = read_image(tmp_path / "pairs" / "first" / "p0.png")
    second = read_image(tmp_path / "pairs" / "second" / "p0.png")
    assert np.array_equal(read_image(out / "p0.tif"), fuse(first, second, device="cpu").image)
    stamp = (out / "p0.tif").stat().st_mtime_ns
    code, stdout, _ = run_cli(capsys, *argv)  # a re-run skips what is written
    assert code == 1 and "fused 0 pair(s)" in stdout and "skipped 2" in stdout
    assert (out / "p0.tif").stat().st_mtime_ns == stamp
    code, stdout, _ = run_cli(capsys, *argv, "--overwrite", "--format", "png")
    assert "fused 2 pair(s)" in stdout and (out / "p0.png").is_file()


def test_align_moves_the_second_input_onto_the_first(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a = data.camera()[128:384, 128:384]
    b = np.clip(np.rint(ndimage.shift(a.astype(float), (4.0, -3.0), order=3, mode="nearest")),
                0, 255).astype(np.uint8)  # fmt: skip
    tifffile.imwrite(tmp_path / "a.tif", a)
    tifffile.imwrite(tmp_path / "b.tif", b)
    out = tmp_path / "fused.tif"
    code, stdout, err = run_cli(capsys, "fuse", str(tmp_path / "a.tif"), str(tmp_path / "b.tif"),
                                "-o", str(out), "--align", "--device", "cpu")  # fmt: skip
    assert code == 0, err
    assert "aligned second onto first: shift (" in stdout
    meta = read_tiff_metadata(out)["alignment"]
    assert meta["mode"] == "translation" and np.allclose(meta["shift"], (-4.0, 3.0), atol=0.1)
