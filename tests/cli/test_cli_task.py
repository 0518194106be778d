"""Tests of ``--task`` on ``napari-gifnet fuse`` and ``napari-gifnet stack``.

Tiny images and classical methods: no network is needed but for the one test
that checks ``--task ivif`` is GIFNet as without a task.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from cli_run import one_error_line, run_cli
from napari_gifnet.io.images import read_image, read_tiff_metadata, write_image
from napari_gifnet.methods.classical import fuse_mean
from napari_gifnet.workflows.focus_stack import fuse_stack
from napari_gifnet.workflows.tasks import fuse


@pytest.fixture
def pair(tmp_path: Path) -> tuple[str, str, np.ndarray, np.ndarray]:
    """Two uint8 PNG files (near, far), 40 x 48, each sharp on one half."""
    rng = np.random.default_rng(5)
    sharp = ndimage.gaussian_filter(rng.random((40, 48)), 0.8)
    sharp = np.rint((sharp - sharp.min()) / np.ptp(sharp) * 255).astype(np.uint8)
    blurred = np.rint(ndimage.gaussian_filter(sharp.astype(float), 2.5)).astype(np.uint8)
    near, far = blurred.copy(), blurred.copy()
    near[:, :24], far[:, 24:] = sharp[:, :24], sharp[:, 24:]
    paths = tmp_path / "near.png", tmp_path / "far.png"
    for path, image in zip(paths, (near, far)):
        write_image(path, image)
    return str(paths[0]), str(paths[1]), near, far


def test_fuse_task_mfif_runs_the_focus_pyramid(tmp_path, capsys, pair) -> None:
    a, b, near, far = pair
    out = tmp_path / "fused.tif"
    code, text, err = run_cli(capsys, "fuse", "--task", "mfif", a, b, "-o", str(out))
    assert code == 0, err
    np.testing.assert_array_equal(read_image(out), fuse(near, far, task="mfif").image)
    meta = read_tiff_metadata(out)
    assert meta["method"] == "focus_pyramid" and meta["task"] == "mfif"
    assert "focus selection" in meta["method_reason"]
    assert text.strip().endswith("s, method focus_pyramid")


def test_fuse_method_overrides_the_task(tmp_path, capsys, pair) -> None:
    a, b, near, far = pair
    out = tmp_path / "fused.tif"
    code, _, err = run_cli(capsys, "fuse", "--task", "meif", "--method", "mean", a, b,
                           "-o", str(out))  # fmt: skip
    assert code == 0, err
    np.testing.assert_array_equal(read_image(out), fuse_mean(near, far).image)
    meta = read_tiff_metadata(out)
    assert (meta["method"], meta["task"]) == ("mean", "meif")


def test_fuse_task_ivif_is_gifnet_as_without_a_task(tmp_path, capsys, pair,
                                                    reference_weights) -> None:  # fmt: skip
    a, b, *_ = pair
    plain, tasked = tmp_path / "plain.tif", tmp_path / "ivif.tif"
    common = ("--weights", str(reference_weights), "--device", "cpu")
    assert run_cli(capsys, "fuse", a, b, "-o", str(plain), *common)[0] == 0
    assert run_cli(capsys, "fuse", "--task", "ivif", a, b, "-o", str(tasked), *common)[0] == 0
    np.testing.assert_array_equal(read_image(tasked), read_image(plain))
    assert read_tiff_metadata(tasked)["method"] == "gifnet"
    assert "method_reason" not in read_tiff_metadata(plain)


def test_fuse_unknown_method_and_task_are_usage_errors(tmp_path, capsys, pair) -> None:
    a, b, *_ = pair
    out = str(tmp_path / "x.tif")
    code, _, err = run_cli(capsys, "fuse", "--method", "sharpest", a, b, "-o", out)
    assert code == 2
    one_error_line(err, "--method: unknown fusion method 'sharpest'; valid: gifnet, focus")
    code, _, err = run_cli(capsys, "fuse", "--task", "sonar", a, b, "-o", out)
    assert code == 2 and "invalid choice: 'sonar'" in err
    assert not Path(out).exists()


def test_fuse_features_need_gifnet(tmp_path, capsys, pair) -> None:
    a, b, *_ = pair
    code, _, err = run_cli(capsys, "fuse", "--task", "mfif", a, b, "-o",
                           str(tmp_path / "x.tif"), "--features", str(tmp_path / "f"))  # fmt: skip
    assert code == 2
    one_error_line(err, "--features: only GIFNet has feature maps; the method is 'focus_pyramid'")


def test_fuse_help_lists_the_tasks(capsys) -> None:
    code, text, _ = run_cli(capsys, "fuse", "--help")
    assert code == 0
    assert "--task {ivif,medical,nir,mfif,meif,remote,custom}" in text


@pytest.fixture
def exposures(tmp_path: Path) -> tuple[Path, np.ndarray]:
    """A 3-plane uint8 exposure bracket of a smooth scene, as a multi-page TIFF."""
    import tifffile

    rng = np.random.default_rng(2)
    radiance = ndimage.gaussian_filter(rng.random((32, 40)), 2.0)
    radiance = (radiance - radiance.min()) / np.ptp(radiance) * 4 + 0.05
    planes = [np.clip(radiance * t, 0, 1) ** (1 / 2.2) for t in (0.25, 1.0, 4.0)]
    stack = np.rint(np.stack(planes) * 255).astype(np.uint8)
    tifffile.imwrite(tmp_path / "bracket.tif", stack, photometric="minisblack")
    return tmp_path / "bracket.tif", stack


def _align_of(meta: dict) -> bool | str:
    """The ``align`` the command passed to fuse_stack, as its metadata records it."""
    requested = meta.get("alignment_requested", "none")
    return False if requested == "none" else requested


def test_stack_task_exposure_is_passed_to_fuse_stack(tmp_path, capsys, exposures) -> None:
    path, stack = exposures
    out = tmp_path / "fused.tif"
    code, text, err = run_cli(capsys, "stack", str(path), "--task", "exposure", "-o", str(out))
    assert code == 0, err
    meta = read_tiff_metadata(out)
    expected = fuse_stack(stack, task="exposure", align=_align_of(meta))
    np.testing.assert_array_equal(read_image(out), expected.image)
    assert meta["task"] == "exposure"
    assert "focus" not in meta["method"]  # an exposure stack is never fused by focus selection
    assert "3 planes" in text


def test_stack_method_overrides_the_task(tmp_path, capsys, exposures) -> None:
    path, stack = exposures
    out = tmp_path / "fused.tif"
    code, _, err = run_cli(capsys, "stack", str(path), "--task", "exposure", "--method",
                           "focus", "-o", str(out))  # fmt: skip
    assert code == 0, err
    expected = fuse_stack(stack, task="exposure", method="focus",
                          align=_align_of(read_tiff_metadata(out)))
    np.testing.assert_array_equal(read_image(out), expected.image)
