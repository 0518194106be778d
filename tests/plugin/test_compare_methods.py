"""Tests of :mod:`napari_gifnet.plugin.compare_methods` (no Qt, no viewer)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from napari_gifnet.methods.classical import BASELINES
from napari_gifnet.methods.presets import PRESETS
from napari_gifnet.metrics import fusion_metrics, mef_ssim
from napari_gifnet.plugin.compare_methods import (
    PAIR_METRICS,
    compare_pair,
    compare_pansharpen,
    compare_stack,
    comparison_layer_name,
    pair_methods,
    pansharpen_methods,
    stack_methods,
)
from napari_gifnet.util.progress import Cancelled
from napari_gifnet.workflows.tasks import fuse


def _pair(size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """A near / far focused pair: each input blurred on one half."""
    from scipy import ndimage

    rng = np.random.default_rng(3)
    sharp = ndimage.gaussian_filter(rng.random((size, size)), 1.0)
    sharp = (sharp - sharp.min()) / (sharp.max() - sharp.min())
    blur = ndimage.gaussian_filter(sharp, 2.5)
    a, b = sharp.copy(), sharp.copy()
    a[:, size // 2 :], b[:, : size // 2] = blur[:, size // 2 :], blur[:, : size // 2]
    return np.rint(a * 255).astype(np.uint8), np.rint(b * 255).astype(np.uint8)


@pytest.mark.parametrize("task", list(PRESETS))
def test_pair_methods_put_the_tasks_default_first_and_list_each_once(task):
    methods = pair_methods(task)
    assert methods[0] == PRESETS[task].method
    assert len(set(methods)) == len(methods)
    assert "gifnet" in methods and set(BASELINES) <= set(methods)
    assert ("focus_pyramid" in methods) == ("focus" in methods) == (task == "mfif")


def test_stack_and_pansharpen_method_lists():
    assert stack_methods("focus")[0] == "focus" and "gifnet" in stack_methods("focus")
    assert stack_methods("exposure")[0] == "laplacian" and "focus" not in stack_methods("exposure")
    assert pansharpen_methods()[0] == "mtf_glp_rr" and pansharpen_methods()[-1] == "gifnet"


def test_compare_pair_scores_each_method_and_ranks_by_mean_rank():
    a, b = _pair()
    a0, b0 = a.copy(), b.copy()
    methods = ("focus_pyramid", "mean", "max", "laplacian")
    comparison = compare_pair(a, b, task="mfif", methods=methods)
    np.testing.assert_array_equal(a, a0)  # inputs never modified
    np.testing.assert_array_equal(b, b0)
    assert [r.method for r in comparison.results] == list(methods)
    assert comparison.metric_names == PAIR_METRICS and not comparison.errors
    for r in comparison.results:  # each result is that method's own fusion, scored on its own
        expected = fuse(a, b, method=r.method, normalization="auto")
        np.testing.assert_array_equal(r.image, expected.image)
        truth = fusion_metrics(np.clip(expected.image, 0, 1), a, b, metrics=PAIR_METRICS)
        assert r.metrics == pytest.approx(truth, abs=1e-9)
    # the best: the smallest sum of ranks (1 = largest value) over the metrics, by hand
    table = {r.method: [r.metrics[m] for m in PAIR_METRICS] for r in comparison.results}
    ranks = dict.fromkeys(table, 0)
    for j in range(len(PAIR_METRICS)):
        for method in table:
            ranks[method] += sum(other[j] > table[method][j] for other in table.values())
    assert comparison.best == min(methods, key=lambda m: ranks[m])
    assert comparison.rows()[0][0] == "Focus-guided pyramid"


def test_exposure_pairs_are_ranked_by_mef_ssim():
    rng = np.random.default_rng(0)
    scene = rng.random((64, 64))
    over = np.clip(scene * 2.0, 0, 1).astype(np.float32)
    under = (scene * 0.4).astype(np.float32)
    comparison = compare_pair(over, under, task="meif", methods=("laplacian", "mean", "max"))
    assert comparison.metric_names[0] == "MEF-SSIM"
    scores = {r.method: r.metrics["MEF-SSIM"] for r in comparison.results}
    lap = comparison.result("laplacian").image
    assert scores["laplacian"] == pytest.approx(mef_ssim([over, under], np.clip(lap, 0, 1)))
    assert comparison.best == max(scores, key=scores.get)


def test_a_failing_method_is_reported_and_the_others_still_run():
    a, b = _pair()
    comparison = compare_pair(
        a, b, task="ivif", methods=("gifnet", "mean"), weights="/no/such/checkpoint.pth"
    )
    assert [r.method for r in comparison.results] == ["mean"]
    assert list(comparison.errors) == ["gifnet"] and comparison.errors["gifnet"].startswith("GIFNet:")
    assert comparison.best == "mean"


def test_cancel_stops_the_whole_comparison():
    a, b = _pair()
    calls: list[tuple[int, int]] = []

    def progress(done: int, total: int) -> None:
        calls.append((done, total))
        raise Cancelled("cancelled")

    with pytest.raises(Cancelled):
        compare_pair(a, b, task="mfif", methods=("focus", "mean"), progress=progress)
    assert calls


def test_unknown_method_is_refused_by_name():
    a, b = _pair()
    with pytest.raises(ValueError, match="'nonsense'"):
        compare_pair(a, b, methods=("mean", "nonsense"))


def test_compare_stack_and_pansharpen():
    a, b = _pair()
    stack = np.stack([a, b, a])
    comparison = compare_stack(stack, 0, task="focus", methods=("focus", "mean"))
    assert [r.label for r in comparison.results] == ["Focus selection", "Mean"]
    assert comparison.metric_names == ("EN", "SD", "SF", "AG")
    rng = np.random.default_rng(0)
    ms, pan = rng.random((16, 16, 3)), rng.random((64, 64))
    result = compare_pansharpen(ms, pan, band_axis=-1, methods=("gihs",))
    assert result.metric_names == ("QNR", "D_lambda", "D_s") and result.best == "gihs"
    assert 0.0 <= result.results[0].metrics["QNR"] <= 1.0
    # no integer ratio between the grids: no score, but the image
    odd = compare_pansharpen(ms, rng.random((60, 60)), band_axis=-1, methods=("gihs",))
    assert math.isnan(odd.results[0].metrics["QNR"]) and odd.results[0].image.shape[:2] == (60, 60)


def test_layer_names_carry_the_method():
    assert comparison_layer_name("A + B", "Laplacian") == "compare: A + B (Laplacian)"
