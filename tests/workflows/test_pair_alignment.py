"""Aligning the second image of a pair onto the first (workflows.pair_alignment)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile
from scipy import ndimage
from skimage import data

from cli_run import one_error_line, run_cli
from napari_gifnet.workflows.pair_alignment import align_pair


def _pair(shift=(3.5, -2.25), zoom=1.0, dtype=np.uint8):
    a = data.camera()[96:352, 96:352].astype(np.float64)
    b = ndimage.shift(a, shift, order=3, mode="nearest")
    if zoom != 1.0:
        centre = (np.asarray(a.shape) - 1) / 2
        b = ndimage.affine_transform(b, np.full(2, 1 / zoom), offset=centre - centre / zoom,
                                     order=3, mode="nearest")  # fmt: skip
    cast = lambda x: np.clip(np.rint(x), 0, 255).astype(dtype)  # noqa: E731
    return cast(a), cast(b)


def test_translation_is_found_and_undone_in_the_second_inputs_dtype() -> None:
    a, b = _pair()
    before = b.copy()
    moved, alignment = align_pair(a, b)
    assert np.array_equal(b, before)  # the input is never modified
    assert moved.dtype == np.uint8 and moved.shape == b.shape
    assert alignment.mode == "translation" and alignment.scale == 1.0
    assert np.allclose(alignment.shift, (-3.5, 2.25), atol=0.15)
    inner = (slice(12, -12), slice(12, -12))
    err_before = np.abs(b[inner].astype(float) - a[inner]).mean()
    err_after = np.abs(moved[inner].astype(float) - a[inner]).mean()
    assert err_after < 0.25 * err_before
    assert alignment.provenance() == {"mode": "translation", "moved": "second onto first",
                                      "shift": [round(v, 4) for v in alignment.shift],
                                      "scale": 1.0}  # fmt: skip
    assert alignment.describe().startswith("aligned second onto first: shift (")


def test_scale_mode_undoes_focus_breathing() -> None:
    a, b = _pair(shift=(1.0, 2.0), zoom=1.04)
    _, alignment = align_pair(a, b, "scale")
    assert alignment.mode == "scale"
    assert alignment.scale == pytest.approx(1.04, rel=0.01)


def test_bad_options_are_refused() -> None:
    a, b = _pair()
    with pytest.raises(ValueError, match="'rotate'"):
        align_pair(a, b, "rotate")
    with pytest.raises(ValueError, match="different sizes"):
        align_pair(a, b[:100])


@pytest.mark.parametrize("which", [0, 1])
def test_a_non_finite_pixel_is_counted_in_the_input_before_resampling(which: int) -> None:
    pair = [x.astype(np.float32) / 255 for x in _pair()]
    pair[which][40, 50] = np.nan
    name = "ab"[which]
    with pytest.raises(ValueError, match=rf"input '{name}' \(shape \(256, 256\), dtype float32\) "
                       r"contains 1 non-finite value"):  # fmt: skip
        align_pair(*pair)
    called = ("infrared", "visible")[which]
    with pytest.raises(ValueError, match=rf"input '{called}' .* contains 1 non-finite"):
        align_pair(*pair, names=("infrared", "visible"))


def test_fuse_align_reports_the_true_count_of_non_finite_values(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a, b = (x.astype(np.float32) / 255 for x in _pair())
    b[10, 10] = np.inf
    tifffile.imwrite(tmp_path / "a.tif", a)
    tifffile.imwrite(tmp_path / "b.tif", b)
    out = tmp_path / "out.tif"
    code, _, err = run_cli(capsys, "fuse", str(tmp_path / "a.tif"), str(tmp_path / "b.tif"),
                           "-o", str(out), "--align", "--device", "cpu")  # fmt: skip
    assert code != 0 and not out.exists()
    one_error_line(err, f"input '{tmp_path / 'b.tif'}' (shape (256, 256), dtype float32) "
                   "contains 1 non-finite value")
