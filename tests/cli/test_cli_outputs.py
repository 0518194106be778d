"""Every file a command writes is an output, and no output may be an input.

The one check (:func:`napari_gifnet.cli.common.check_files`) runs before any
work on the complete set of files a command writes, against every file and
folder it reads and against each other; a batch re-run redoes an item until
every file it writes is there and complete; one bad item of a batch is
reported by name while the others go on.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import tifffile

from cli_run import one_error_line, run_cli
from napari_gifnet.io.images import write_image
from napari_gifnet.training.synthetic import write_synthetic_pairs
from tmpfs import mounted_tmpfs

#: ``train`` options for a quick run that never gets past the checks here.
_TRAIN = ("--init", "scratch", "--no-hub", "--crop", "32", "--max-steps", "1", "--no-progress")


def _stack(seed: int = 0) -> np.ndarray:
    """A tiny three-plane uint16 focus stack."""
    rng = np.random.default_rng(seed)
    return (rng.random((3, 12, 12)) * 65535).astype(np.uint16)


def _snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (relative path -> content)."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file()}  # fmt: skip


@pytest.fixture
def read_only_folder(tmp_path: Path) -> Iterator[Path]:
    """An empty folder on a read-only tmpfs (permissions alone do not stop root)."""
    with mounted_tmpfs(tmp_path / "ro", 64 * 1024, read_only=True) as folder:
        yield folder


# -- train: the run's five files against the images, the DenseNet file, the init ------


def test_train_out_is_never_a_training_image_or_in_the_training_folders(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pairs = write_synthetic_pairs(tmp_path / "pairs", n=1, size=32, seed=0)
    image = pairs / "first" / "scene000.png"
    write_image(pairs / "first" / "run.loss.png", np.zeros((32, 32), np.uint8))
    write_image(pairs / "second" / "run.loss.png", np.zeros((32, 32), np.uint8))
    before = _snapshot(pairs)
    cases = [
        (image, "the checkpoint", "is an input"),
        (pairs / "first" / "run.pth", "the run's plot file", "is an input"),
        (pairs / "second" / "new.pth", "the checkpoint", "is in the input folder"),
    ]
    for out, what, problem in cases:
        code, _, err = run_cli(capsys, "train", "--pairs", str(pairs), "--out", str(out), *_TRAIN)
        assert code == 1, err
        line = one_error_line(err, problem)
        assert what in line
    assert _snapshot(pairs) == before


@pytest.mark.parametrize("how", ["option", "environment"])
def test_train_out_is_never_the_densenet_weights(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    pairs = write_synthetic_pairs(tmp_path / "pairs", n=1, size=32, seed=0)
    densenet = tmp_path / "dn.pth"
    densenet.write_bytes(b"densenet weights")
    extra = ["--densenet-weights", str(densenet)] if how == "option" else []
    if how == "environment":
        monkeypatch.setenv("GIFNET_DENSENET_WEIGHTS", str(densenet))
    code, _, err = run_cli(capsys, "train", "--pairs", str(pairs), "--out", str(densenet),
                           *_TRAIN, *extra)  # fmt: skip
    assert code == 1
    one_error_line(err, f"the checkpoint {densenet} is an input")
    assert densenet.read_bytes() == b"densenet weights"


def test_fuse_feature_stacks_are_outputs_too(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    features = tmp_path / "features"
    features.mkdir()
    a, b = features / "shared.tif", tmp_path / "b.png"
    tifffile.imwrite(a, np.zeros((16, 16), np.uint8))
    write_image(b, np.zeros((16, 16), np.uint8))
    before = a.read_bytes()
    code, _, err = run_cli(capsys, "fuse", str(a), str(b), "-o", str(tmp_path / "f.tif"),
                           "--features", str(features), "--device", "cpu")  # fmt: skip
    assert code == 2
    one_error_line(err, f"--features shared {a} is an input")
    assert a.read_bytes() == before and not (tmp_path / "f.tif").exists()


# -- batches: no two jobs write one file, nothing written into an input folder ---------


def test_stacks_that_would_write_one_output_are_refused_before_the_first(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stacks, out = tmp_path / "stacks", tmp_path / "out"
    (stacks / "x").mkdir(parents=True)
    tifffile.imwrite(stacks / "x.tif", _stack(0), photometric="minisblack")
    tifffile.imwrite(stacks / "x.tiff", _stack(1), photometric="minisblack")
    for i, plane in enumerate(_stack(2)):
        write_image(stacks / "x" / f"p{i}.png", plane, bit_depth=None)
    code, stdout, err = run_cli(capsys, "stack", "--stacks", str(stacks), "-o", str(out),
                                "--method", "focus")  # fmt: skip
    assert code == 2 and stdout == ""
    line = one_error_line(err, f"{out / 'x.tif'} is also the stack 'x/' -o output")
    assert line.startswith("napari-gifnet: error: stack 'x.tif' -o ")
    assert not out.exists()


def test_stack_maps_and_stack_images_never_share_a_name(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stacks, out = tmp_path / "stacks", tmp_path / "out"
    stacks.mkdir()
    for i, name in enumerate(("f", "f_confidence", "f_depth")):
        tifffile.imwrite(stacks / f"{name}.tif", _stack(i), photometric="minisblack")
    argv = ["stack", "--stacks", str(stacks), "-o", str(out), "--method", "focus"]
    code, _, err = run_cli(capsys, *argv, "--maps")
    assert code == 2
    line = one_error_line(err, "is also the stack 'f.tif' --maps")
    assert "f_confidence.tif" in line
    assert not out.exists()
    code, stdout, err = run_cli(capsys, *argv)  # without the maps, three names apart
    assert code == 0, err
    assert "fused 3 stack(s)" in stdout
    assert sorted(p.name for p in out.iterdir()) == ["f.tif", "f_confidence.tif", "f_depth.tif"]


@pytest.mark.parametrize("where", ["stacks/out", "stacks"])
def test_stack_outputs_never_go_into_the_stacks_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], where: str
) -> None:
    stacks = tmp_path / "stacks"
    (stacks / "planes").mkdir(parents=True)
    for i, plane in enumerate(_stack()):
        write_image(stacks / "planes" / f"p{i}.png", plane, bit_depth=None)
    before = _snapshot(stacks)
    code, _, err = run_cli(capsys, "stack", "--stacks", str(stacks), "-o", str(tmp_path / where),
                           "--method", "focus")  # fmt: skip
    assert code == 2
    one_error_line(err, f"stack 'planes/' -o {tmp_path / where / 'planes.tif'} is in the input "
                   f"folder {stacks}")  # fmt: skip
    assert _snapshot(stacks) == before and sorted(p.name for p in stacks.iterdir()) == ["planes"]


def test_stack_output_never_goes_into_a_folder_of_planes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    planes = tmp_path / "planes"
    planes.mkdir()
    for i, plane in enumerate(_stack()):
        write_image(planes / f"p{i}.png", plane, bit_depth=None)
    code, _, err = run_cli(capsys, "stack", str(planes), "-o", str(planes / "aif.tif"),
                           "--method", "focus")  # fmt: skip
    assert code == 2
    one_error_line(err, f"-o {planes / 'aif.tif'} is in the input folder {planes}")
    assert sorted(p.name for p in planes.iterdir()) == ["p0.png", "p1.png", "p2.png"]


def test_fuse_pairs_never_writes_into_first_or_second(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pairs = tmp_path / "pairs"
    for sub in ("first", "second"):
        (pairs / sub).mkdir(parents=True)
        write_image(pairs / sub / "p0.png", np.zeros((16, 16), np.uint8))
    before = _snapshot(pairs)
    link = tmp_path / "link"
    link.symlink_to(pairs / "first", target_is_directory=True)
    for outdir in (pairs / "first", link):  # a symbolic link leads there too
        code, _, err = run_cli(capsys, "fuse", "--pairs", str(pairs), "-o", str(outdir),
                               "--device", "cpu")  # fmt: skip
        assert code == 2
        one_error_line(err, f"pair 'p0' -o {outdir / 'p0.tif'} is in the input folder "
                       f"{pairs / 'first'}")  # fmt: skip
    assert _snapshot(pairs) == before


# -- "already written" means every requested file is there and complete ----------------


def test_a_re_run_redoes_stacks_whose_files_are_missing_or_empty(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stacks, out = tmp_path / "stacks", tmp_path / "out"
    stacks.mkdir()
    tifffile.imwrite(stacks / "a.tif", _stack(0), photometric="minisblack")
    tifffile.imwrite(stacks / "b.tif", _stack(1), photometric="minisblack")
    argv = ["stack", "--stacks", str(stacks), "-o", str(out), "--method", "focus"]
    code, stdout, err = run_cli(capsys, *argv)
    assert code == 0 and "fused 2 stack(s)" in stdout, err
    code, stdout, err = run_cli(capsys, *argv, "--maps")  # the maps were never written
    assert code == 0 and "fused 2 stack(s)" in stdout and "skipped 0" in stdout, err
    assert sorted(p.name for p in out.iterdir()) == [
        "a.tif", "a_confidence.tif", "a_depth.tif", "b.tif", "b_confidence.tif", "b_depth.tif"]
    (out / "b_depth.tif").write_bytes(b"")  # an empty file is not a finished output
    code, stdout, err = run_cli(capsys, *argv, "--maps")
    assert code == 0 and "fused 1 stack(s)" in stdout and "skipped 1" in stdout, err
    assert (out / "b_depth.tif").stat().st_size > 0


def test_a_folder_named_like_an_output_is_an_error_not_a_finished_output(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pairs, out = tmp_path / "pairs", tmp_path / "out"
    for sub in ("first", "second"):
        (pairs / sub).mkdir(parents=True)
        write_image(pairs / sub / "p1.png", np.zeros((16, 16), np.uint8))
    (out / "p1.tif").mkdir(parents=True)
    code, stdout, err = run_cli(capsys, "fuse", "--pairs", str(pairs), "-o", str(out),
                                "--device", "cpu")  # fmt: skip
    assert code == 1 and "already written" not in stdout
    one_error_line(err, f"cannot write pair 'p1' -o {out / 'p1.tif'}: it is an existing directory")


# -- one bad item of a batch, reported by name ------------------------------------------


def test_a_tiff_without_pages_fails_alone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stacks, out = tmp_path / "stacks", tmp_path / "out"
    stacks.mkdir()
    (stacks / "a_empty.tif").write_bytes(b"II*\x00\x00\x00\x00\x00")  # a header, no page
    tifffile.imwrite(stacks / "b.tif", _stack(), photometric="minisblack")
    code, stdout, err = run_cli(capsys, "stack", "--stacks", str(stacks), "-o", str(out),
                                "--method", "focus")  # fmt: skip
    assert code == 1 and "Traceback" not in err
    assert "fused 1 stack(s)" in stdout and "failed 1" in stdout
    assert f"failed: a_empty: cannot read {stacks / 'a_empty.tif'}" in err
    assert sorted(p.name for p in out.iterdir()) == ["b.tif"]


def test_a_two_channel_image_in_pairs_is_named_with_its_shape(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pairs, out = tmp_path / "pairs", tmp_path / "out"
    for sub in ("first", "second"):
        (pairs / sub).mkdir(parents=True)
    tifffile.imwrite(pairs / "first" / "p0.tif", np.zeros((16, 16, 2), np.uint8))
    write_image(pairs / "second" / "p0.png", np.zeros((16, 16), np.uint8))
    code, _, err = run_cli(capsys, "fuse", "--pairs", str(pairs), "-o", str(out), "--device", "cpu")
    assert code == 1 and "Traceback" not in err
    two = pairs / "first" / "p0.tif"
    assert f"failed: p0: {two} is a 2-channel image (shape (16, 16, 2))" in err
    assert "stack" not in err


# -- a read-only output folder is found before any work --------------------------------


def test_a_read_only_output_folder_is_refused_before_any_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], read_only_folder: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import napari_gifnet.cli.stack as stack_command

    def no_work(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("a stack was fused before the output folder was checked")

    monkeypatch.setattr(stack_command, "_fuse_one", no_work)
    stacks, pairs = tmp_path / "stacks", tmp_path / "pairs"
    stacks.mkdir()
    tifffile.imwrite(stacks / "z.tif", _stack(), photometric="minisblack")
    for sub in ("first", "second"):
        (pairs / sub).mkdir(parents=True)
        write_image(pairs / sub / "p0.png", np.zeros((16, 16), np.uint8))
    for argv in (["stack", "--stacks", str(stacks), "--method", "focus"],
                 ["stack", str(stacks / "z.tif"), "--method", "focus"],
                 ["fuse", "--pairs", str(pairs), "--device", "cpu"]):  # fmt: skip
        target = read_only_folder if "--stacks" in argv or "--pairs" in argv \
            else read_only_folder / "aif.tif"
        code, stdout, err = run_cli(capsys, *argv, "-o", str(target))
        assert code == 1 and stdout == "", argv
        one_error_line(err, f"{read_only_folder} is not writable (Read-only file system)")
