"""Training runs fail early and clearly: crop minimum, output path, data, corrupt resume state."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import torch

from cli_run import one_error_line
from napari_gifnet.cli.main import main
from napari_gifnet.training.dataset import MIN_CROP, RGBJointDataset
from napari_gifnet.training.features import fallback_densenet, information
from napari_gifnet.training.loop import TrainConfig
from napari_gifnet.training.runfiles import check_outputs, output_paths, save_checkpoint
from napari_gifnet.training.synthetic import write_synthetic_pairs
from training_config import train_config, train_quietly

pytestmark = pytest.mark.usefixtures("one_torch_thread", "no_timm_hub")

RUN_FILES = ("run.pth", "run.train.pt", "run.log.csv", "run.loss.png", "run.train.json")


def _config(pairs: Path, out: Path, **kw: object) -> TrainConfig:
    return train_config(pairs, out, **{"max_steps": 1, **kw})


_train = train_quietly


def _one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    return one_error_line(capsys.readouterr().err)


# -- the crop minimum ---------------------------------------------------------


def test_min_crop_is_what_densenet_needs() -> None:
    # The constant is the true minimum: DenseNet-121 fails one pixel below it.
    extractor = fallback_densenet()
    g = information(extractor, torch.rand(1, 1, MIN_CROP, MIN_CROP))
    assert bool(torch.isfinite(g).all())
    with pytest.raises(RuntimeError, match="Output size is too small"):
        information(extractor, torch.rand(1, 1, MIN_CROP - 1, MIN_CROP - 1))


def test_smallest_crop_trains_one_less_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pairs = write_synthetic_pairs(tmp_path / "pairs", n=1, size=MIN_CROP, seed=0)
    result = _train(_config(pairs, tmp_path / "ok" / "run.pth", crop=MIN_CROP))
    assert result.steps == 1 and np.isfinite(result.rows[0]["total"])
    with pytest.raises(ValueError, match=f"crop must be an integer of at least {MIN_CROP}, got {MIN_CROP - 1}"):
        _train(_config(pairs, tmp_path / "api" / "run.pth", crop=MIN_CROP - 1))
    assert not (tmp_path / "api").exists()
    out = tmp_path / "cli" / "run.pth"
    common = ["train", "--pairs", str(pairs), "--out", str(out), "--init", "scratch", "--no-hub"]
    assert main([*common, "--crop", str(MIN_CROP - 1), "--max-steps", "1"]) == 2
    err = _one_line_error(capsys)
    assert f"--crop: invalid value {MIN_CROP - 1}: at least {MIN_CROP} is needed" in err
    assert not out.parent.exists()


# -- the output path ----------------------------------------------------------


def test_out_must_be_a_writable_file_path(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pairs = write_synthetic_pairs(tmp_path / "pairs", n=1, size=40, seed=1)
    work = tmp_path / "work"
    (work / "r").mkdir(parents=True)
    # An existing directory: refused before any work, nothing left behind.
    with pytest.raises(ValueError, match=r"cannot write the checkpoint .*r: it is an existing directory"):
        _train(_config(pairs, work / "r"))
    assert sorted(p.name for p in work.iterdir()) == ["r"] and not any((work / "r").iterdir())
    # A side file's name taken by a directory.
    (work / "s.log.csv").mkdir()
    with pytest.raises(ValueError, match=r"cannot write the run's log file .*s\.log\.csv: it is an existing"):
        _train(_config(pairs, work / "s.pth"))
    # A parent that is a file.
    (work / "file").write_text("x")
    with pytest.raises(ValueError, match=r"cannot write .*run\.pth: .*file is not a directory"):
        _train(_config(pairs, work / "file" / "sub" / "run.pth"))
    assert sorted(p.name for p in work.iterdir()) == ["file", "r", "s.log.csv"]
    # The command line: one line, exit status 1.
    common = ["train", "--pairs", str(pairs), "--init", "scratch", "--no-hub", "--crop", "32"]
    assert main([*common, "--out", str(work / "r"), "--max-steps", "1"]) == 1
    assert "is an existing directory" in _one_line_error(capsys)
    assert sorted(p.name for p in work.iterdir()) == ["file", "r", "s.log.csv"]
    # A folder that does not exist yet is fine: it is created with the first checkpoint.
    check_outputs(output_paths(work / "new" / "deeper" / "run.pth"))
    assert not (work / "new").exists()


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0,
                    reason="permissions do not stop the superuser")  # fmt: skip
def test_out_in_an_unwritable_folder(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        for out in (locked / "run.pth", locked / "sub" / "run.pth"):
            with pytest.raises(ValueError, match=r"cannot write .*run\.pth: .*locked is not writable"):
                check_outputs(output_paths(out))
    finally:
        locked.chmod(0o700)


def test_run_files_never_touch_what_the_run_reads(tmp_path: Path) -> None:
    # The API refuses what the command line does: every one of the five files is
    # checked against the images, the DenseNet-121 file and the training folders.
    pairs = write_synthetic_pairs(tmp_path / "pairs", n=1, size=40, seed=1)
    image_bytes = (pairs / "first" / "scene000.png").read_bytes()
    densenet = tmp_path / "dn.pth"
    densenet.write_bytes(b"weights")
    cases = [
        (pairs / "first" / "scene000.png", {}, r"the checkpoint .*scene000\.png is an input"),
        (pairs / "second" / "run.pth", {}, r"run\.pth is in the input folder .*second"),
        (densenet, {"densenet_weights": str(densenet)}, r"the checkpoint .*dn\.pth is an input"),
    ]
    for out, extra, match in cases:
        with pytest.raises(ValueError, match=match):
            _train(_config(pairs, out, **extra))
    assert (pairs / "first" / "scene000.png").read_bytes() == image_bytes
    assert densenet.read_bytes() == b"weights"
    assert sorted(p.name for p in (pairs / "second").iterdir()) == ["scene000.png"]


def test_save_checkpoint_leaves_no_temporary_file(tmp_path: Path) -> None:
    target = tmp_path / "r"
    target.mkdir()
    with pytest.raises(OSError):
        save_checkpoint(torch.nn.Linear(2, 2), target)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r"]


def test_bad_image_fails_before_anything_is_written(tmp_path: Path) -> None:
    pairs = write_synthetic_pairs(tmp_path / "pairs", n=3, size=40, seed=2)
    # A grey + alpha PNG, not in the first batch: one step of batch 1 would not read it.
    first = int(RGBJointDataset(pairs, crop=32, seed=0).order(0)[0])
    bad = f"scene{(first + 1) % 3:03d}.png"
    iio.imwrite(pairs / "first" / bad, np.zeros((40, 40, 2), np.uint8))
    out = tmp_path / "run" / "run.pth"
    with pytest.raises(ValueError, match=f"cannot use .*{bad} for training"):
        _train(_config(pairs, out, checkpoint_every=1))
    assert not out.parent.exists()
    out.parent.mkdir()
    with pytest.raises(ValueError, match=bad):
        _train(_config(pairs, out, max_steps=2))
    assert not any(out.parent.iterdir())


# -- resuming from a damaged state --------------------------------------------


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory, one_torch_thread: None) -> Path:
    """A one-step run (its folder holds pairs/ and run/run.pth with its side files)."""
    root = tmp_path_factory.mktemp("resume")
    pairs = write_synthetic_pairs(root / "pairs", n=2, size=40, seed=3)
    _train(_config(pairs, root / "run" / "run.pth"))
    assert sorted(p.name for p in (root / "run").iterdir()) == sorted(set(RUN_FILES) - {"run.loss.png"})
    return root


def _damaged_copy(finished_run: Path, tmp_path: Path, how: str) -> tuple[Path, Path]:
    run = tmp_path / "run"
    shutil.copytree(finished_run / "run", run)
    state = run / "run.train.pt"
    if how == "garbage":
        state.write_bytes(b"this is not a PyTorch file\n" * 20)
    elif how == "weights":
        shutil.copyfile(run / "run.pth", state)
    elif how == "truncated":
        state.write_bytes(state.read_bytes()[: state.stat().st_size // 2])
    elif how == "empty":
        state.write_bytes(b"")
    elif how == "no-config":
        torch.save({"optimizer": {"state": {}, "param_groups": []}, "step": 1}, state)
    elif how == "bad-step":
        saved = torch.load(state, weights_only=True)
        torch.save({**saved, "step": -3}, state)
    return finished_run / "pairs", run / "run.pth"


@pytest.mark.parametrize(("how", "problem"), [
    ("garbage", "is not a readable training state \\(corrupt, truncated or another kind of file"),
    ("truncated", "is not a readable training state \\(corrupt, truncated"),
    ("empty", "is not a readable training state"),
    ("weights", "is not a training state written by napari-gifnet train \\(it holds network weights"),
    ("no-config", "is not a training state .*\\(no 'config' entry\\)"),
    ("bad-step", "is not a training state .*its step -3 is not a non-negative integer"),
])  # fmt: skip
def test_resume_from_a_damaged_state_names_the_file(
    finished_run: Path, tmp_path: Path, how: str, problem: str
) -> None:
    pairs, out = _damaged_copy(finished_run, tmp_path, how)
    before = {p.name: p.read_bytes() for p in out.parent.iterdir()}
    with pytest.raises(ValueError, match=f"cannot resume: .*run\\.train\\.pt {problem}"):
        _train(_config(pairs, out, max_steps=2, resume=True))
    assert {p.name: p.read_bytes() for p in out.parent.iterdir()} == before  # nothing touched


def test_resume_from_a_damaged_state_on_the_command_line(
    finished_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pairs, out = _damaged_copy(finished_run, tmp_path, "weights")
    args = ["train", "--pairs", str(pairs), "--out", str(out), "--init", "scratch", "--no-hub",
            "--crop", "32", "--batch-size", "1", "--max-steps", "2", "--resume"]  # fmt: skip
    assert main(args) == 1
    err = _one_line_error(capsys)
    assert str(out.with_suffix(".train.pt")) in err and "holds network weights" in err


def test_resume_with_a_damaged_log_names_the_file(finished_run: Path, tmp_path: Path) -> None:
    pairs, out = _damaged_copy(finished_run, tmp_path, "")
    log = out.with_suffix(".log.csv")
    header, row = log.read_text().splitlines()
    fields = row.split(",")
    fields[2] = "oops"
    log.write_text(f"{header}\n{','.join(fields)}\n")
    with pytest.raises(ValueError, match=r"cannot resume: line 2 of the log .*run\.log\.csv"):
        _train(_config(pairs, out, max_steps=2, resume=True))
