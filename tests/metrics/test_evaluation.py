"""Tests for napari_gifnet.metrics.evaluation and the ``evaluate`` subcommand."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage as ndi

from napari_gifnet.cli.main import main
from napari_gifnet.io.images import write_image
from napari_gifnet.metrics import evaluation as ev
from napari_gifnet.metrics.fusion import METRICS

FAST = ["mean", "max", "laplacian"]


@pytest.fixture(scope="module")
def scenes():
    return ev.generate_multifocus_set(2, 64, seed=3)


@pytest.fixture(scope="module")
def medical(reference_dir: Path):
    with np.load(reference_dir / "official" / "Medical.npz") as data:
        return data["input_a"][:64, :64].copy(), data["input_b"][:64, :64].copy()


def test_rows_have_every_metric(medical, reference_weights, scenes):
    a, b = medical
    calls = []
    rows = ev.evaluate_pairs(
        [("medical", a, b), scenes[0]], [*FAST, "gifnet"], weights=reference_weights,
        device="cpu", progress=lambda d, t, label: calls.append((d, t)),
    )
    assert [(r["pair"], r["method"]) for r in rows] == [
        (p, m) for p in ("medical", scenes[0][0]) for m in [*FAST, "gifnet"]
    ]
    for r in rows:
        assert set(METRICS) <= set(r) and r["time_s"] >= 0
        assert (r["height"], r["width"]) == (64, 64)
        assert all(np.isfinite(r[m]) for m in METRICS)
        assert ("PSNR_truth" in r) == (r["pair"] != "medical")
    assert calls[-1] == (8, 8) and calls[0] == (0, 8)
    truthful = [r for r in rows if "SSIM_truth" in r]
    assert all(0 < r["SSIM_truth"] <= 1 for r in truthful)


def test_truths_mapping_and_errors(scenes):
    name, near, far, truth = scenes[0]
    rows = ev.evaluate_pairs([(name, near, far)], ["mean"], truths={name: truth})
    assert "PSNR_truth" in rows[0]
    with pytest.raises(ValueError, match="unknown fusion method"):
        ev.evaluate_pairs([(name, near, far)], ["mean", "nope"])
    with pytest.raises(ValueError, match="no image pairs"):
        ev.evaluate_pairs([], ["mean"])


def _even(x):
    """Even grey levels, so that the mean of two of them is a whole grey level too."""
    return (x & 0xFE).astype(np.uint8)


def test_each_row_scores_the_fused_image_against_both_inputs(scenes, reference_weights):
    """A row is fusion_metrics(fused, a, b), with a and b the pair's own two images.

    The expected values are computed here from the definitions of the methods
    (mean and max of the grey levels) and from the engine's output, not with
    the evaluation code: a row scored against (a, a) or (b, b) fails.
    """
    from napari_gifnet.engine.fusion import fuse
    from napari_gifnet.metrics.fusion import fusion_metrics

    pairs = [(name, _even(near), _even(far)) for name, near, far, _ in scenes]
    rows = ev.evaluate_pairs(pairs, ["mean", "max", "gifnet"], weights=reference_weights,
                             device="cpu")
    assert [(r["pair"], r["method"]) for r in rows] == [
        (p[0], m) for p in pairs for m in ("mean", "max", "gifnet")
    ]
    for (name, a, b), by_method in zip(pairs, (rows[i : i + 3] for i in range(0, 9, 3))):
        wide_a, wide_b = a.astype(np.int64), b.astype(np.int64)
        fused = {
            "mean": ((wide_a + wide_b) // 2).astype(np.uint8),
            "max": np.maximum(a, b),
            "gifnet": fuse(a, b, weights=reference_weights, device="cpu").luma,
        }
        for row in by_method:
            expected = fusion_metrics(fused[row["method"]], a, b)
            got = {m: row[m] for m in expected}
            assert got == pytest.approx(expected, rel=1e-9, abs=1e-12, nan_ok=True), (
                name, row["method"]
            )
            # which tells the two inputs apart: scored against one input twice, it differs
            for twice in ((a, a), (b, b)):
                same = fusion_metrics(fused[row["method"]], *twice)
                assert got != pytest.approx(same, rel=1e-6, nan_ok=True), (name, row["method"])


def test_a_pair_of_two_sizes_is_refused_with_its_name(scenes):
    name, near, far, _ = scenes[0]
    with pytest.raises(ValueError) as info:
        ev.evaluate_pairs([(name, near, far[:40])], ["mean"])
    assert str(info.value) == (
        f"pair {name!r}: a is 64 x 64 but b is 40 x 64; the two images of a pair must have "
        "the same height and width"
    )


@pytest.mark.parametrize("layout", ["first-second", "subfolders"])
def test_a_folder_pair_of_two_sizes_names_the_pair_and_both_files(tmp_path, layout):
    if layout == "first-second":
        fa, fb = tmp_path / "first" / "s1.png", tmp_path / "second" / "s1.png"
        name = "s1"
    else:
        fa, fb = tmp_path / "scene" / "a_ir.png", tmp_path / "scene" / "b_vis.png"
        name = "scene"
    for f, image in ((fa, _small(1)), (fb, _small(2)[:32])):
        f.parent.mkdir(exist_ok=True)
        write_image(f, image)
    with pytest.raises(ValueError) as info:
        ev.load_pair_folder(tmp_path)
    assert str(info.value) == (
        f"pair {name!r}: {fa} is 40 x 48 but {fb} is 32 x 48; the two images of a pair must "
        "have the same height and width"
    )


def test_a_truth_of_another_size_names_its_file(tmp_path):
    for sub, image in (("first", _small(1)), ("second", _small(2)), ("truth", _small(3)[:, :40])):
        (tmp_path / sub).mkdir()
        write_image(tmp_path / sub / "s.png", image)
    with pytest.raises(ValueError, match=r"pair 's': the truth .*truth/s\.png is 40 x 40 but"):
        ev.load_pair_folder(tmp_path)


def test_cli_evaluate_names_the_files_of_a_pair_of_two_sizes(tmp_path, capsys):
    pairs = tmp_path / "pairs"
    for sub, image in (("first", _small(1)), ("second", _small(2)[:32])):
        (pairs / sub).mkdir(parents=True)
        write_image(pairs / sub / "p.png", image)
    assert main(["evaluate", str(pairs), "--methods", "mean", "--out", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err
    assert err.strip() == (
        f"napari-gifnet: error: pair 'p': {pairs / 'first' / 'p.png'} is 40 x 48 but "
        f"{pairs / 'second' / 'p.png'} is 32 x 48; the two images of a pair must have the "
        "same height and width"
    )


def test_csv_is_written_completely_or_not_at_all(tmp_path, monkeypatch):
    import errno
    import os

    path = tmp_path / "m.csv"
    path.write_text("the previous table\n", encoding="utf-8")
    bad = [_row("p", "x"), {**_row("q", "x"), "EN": "not a number"}]
    with pytest.raises(ValueError):
        ev.to_csv(bad, path)
    assert path.read_text(encoding="utf-8") == "the previous table\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.csv"]

    def full_disk(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full_disk)
    with pytest.raises(OSError, match="no space left on device") as info:
        ev.to_csv([_row("p", "x")], path)
    assert str(path) in str(info.value)
    assert path.read_text(encoding="utf-8") == "the previous table\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.csv"]
    monkeypatch.undo()
    assert ev.read_csv(ev.to_csv([_row("p", "x")], path)) == [_row("p", "x")]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.csv"]


def _row(pair, method, **scores):
    base = {m: 0.0 for m in METRICS}
    return {"pair": pair, "method": method, "height": 8, "width": 8, **base, **scores,
            "time_s": 0.1}


def test_markdown_marks_best_per_column():
    rows = [
        _row("p1", "x", EN=7.0, SD=50.0, Qabf=0.5),
        _row("p1", "y", EN=6.0, SD=60.0, Qabf=0.5),
        _row("p2", "x", EN=5.0, SD=10.0, Qabf=0.7),
        _row("p2", "y", EN=6.0, SD=float("nan"), Qabf=0.1),
    ]
    text = ev.to_markdown(rows)
    tables = [t for t in text.split("###") if t.strip()]
    assert len(tables) == 3  # mean, p1, p2

    def cells(table, method):
        lines = [ln for ln in table.splitlines() if ln.startswith("| ")]
        header = [c.strip() for c in lines[0].strip("|").split("|")]
        line = next(ln for ln in lines if ln.startswith(f"| {method} |"))
        return dict(zip(header, [c.strip() for c in line.strip("|").split("|")]))

    mean, p1, p2 = tables
    # means: EN x 6.0, y 6.0 (tie: both bold); SD x 30, y 60 (NaN ignored); Qabf x 0.6, y 0.3
    assert cells(mean, "x")["EN"] == "**6.000**" and cells(mean, "y")["EN"] == "**6.000**"
    assert cells(mean, "y")["SD"] == "**60.000**" and cells(mean, "x")["SD"] == "30.000"
    assert cells(mean, "x")["Qabf"] == "**0.600**" and cells(mean, "y")["Qabf"] == "0.300"
    assert cells(p1, "x")["EN"] == "**7.000**" and cells(p1, "y")["EN"] == "6.000"
    assert cells(p1, "x")["Qabf"] == "**0.500**" == cells(p1, "y")["Qabf"]
    assert cells(p2, "y")["SD"] == "nan" and cells(p2, "x")["SD"] == "**10.000**"
    assert "**" not in cells(p1, "x")["time_s"]
    summary = ev.summarise(rows)
    assert summary["y"]["SD"] == 60.0 and summary["x"]["EN"] == 6.0


def test_csv_round_trip(tmp_path, scenes):
    rows = ev.evaluate_pairs(scenes, FAST)
    path = ev.to_csv(rows, tmp_path / "m.csv")
    back = ev.read_csv(path)
    assert back == rows
    mixed = [_row("p", "x"), {**_row("q", "x"), "PSNR_truth": 30.5, "SSIM_truth": 0.9}]
    assert ev.read_csv(ev.to_csv(mixed, tmp_path / "mixed.csv")) == mixed


def _small(seed, rgb=False):
    rng = np.random.default_rng(seed)
    shape = (40, 48, 3) if rgb else (40, 48)
    return rng.integers(0, 256, shape, dtype=np.uint8)


def test_load_named_subfolders(tmp_path):
    for name in ("one", "two"):
        (tmp_path / name).mkdir()
        write_image(tmp_path / name / "a_first.png", _small(1, rgb=True))
        write_image(tmp_path / name / "b_second.png", _small(2))
    write_image(tmp_path / "two" / "truth_x.png", _small(3))
    write_image(tmp_path / "two" / "a_extra.png", _small(4))  # two a's: two pairs
    pairs = ev.load_pair_folder(tmp_path)
    assert [p[0] for p in pairs] == ["one", "two-extra", "two-first"]
    assert pairs[0][1].shape == (40, 48, 3) and pairs[0][3] is None
    np.testing.assert_array_equal(pairs[1][1], _small(4))
    np.testing.assert_array_equal(pairs[1][3], _small(3))


def test_load_first_second_truth(tmp_path):
    for sub in ("first", "second", "truth"):
        (tmp_path / sub).mkdir()
    write_image(tmp_path / "first" / "s1.png", _small(1))
    write_image(tmp_path / "second" / "s1.png", _small(2))
    write_image(tmp_path / "first" / "s2.png", _small(3))
    write_image(tmp_path / "second" / "s2.png", _small(4))
    write_image(tmp_path / "first" / "lonely.png", _small(5))  # no partner: skipped
    write_image(tmp_path / "truth" / "s2.png", _small(6))
    pairs = ev.load_pair_folder(tmp_path)
    assert [p[0] for p in pairs] == ["s1", "s2"]
    np.testing.assert_array_equal(pairs[0][2], _small(2))
    assert pairs[0][3] is None
    np.testing.assert_array_equal(pairs[1][3], _small(6))


def test_load_errors(tmp_path):
    with pytest.raises(ValueError, match="no image pairs found"):
        ev.load_pair_folder(tmp_path)
    with pytest.raises(FileNotFoundError):
        ev.load_pair_folder(tmp_path / "missing")


def test_load_reference_layout(reference_dir):
    names = [p[0] for p in ev.load_pair_folder(reference_dir / "pairs")]
    assert {"IVIF", "MEIF", "MFIF", "Medical", "NIR-VIS", "Remote-ms_band1"} <= set(names)


def _sharpness(x, mask):
    g = ndi.laplace(x.astype(np.float64))
    return float(np.mean(g[mask] ** 2))


def test_multifocus_set_truth_sharper_and_deterministic(scenes):
    again = ev.generate_multifocus_set(2, 64, seed=3)
    for s, t in zip(scenes, again):
        assert s[0] == t[0]
        for x, y in zip(s[1:], t[1:]):
            np.testing.assert_array_equal(x, y)
    assert not np.array_equal(ev.generate_multifocus_set(1, 64, seed=4)[0][1], scenes[0][1])
    for name, near, far, truth in ev.generate_multifocus_set(3, 96, seed=0):
        assert near.shape == far.shape == truth.shape == (96, 96) and truth.dtype == np.uint8
        diff_near = np.abs(near.astype(float) - truth)
        diff_far = np.abs(far.astype(float) - truth)
        # where the near view differs most, the far view is in focus, and vice versa
        near_blurred = ndi.uniform_filter(diff_near - diff_far, 9) > 2
        far_blurred = ndi.uniform_filter(diff_far - diff_near, 9) > 2
        assert near_blurred.sum() > 200 and far_blurred.sum() > 200, name
        assert _sharpness(truth, near_blurred) > 1.3 * _sharpness(near, near_blurred), name
        assert _sharpness(truth, far_blurred) > 1.3 * _sharpness(far, far_blurred), name
    with pytest.raises(ValueError):
        ev.generate_multifocus_set(0)


def test_cli_evaluate_folder(tmp_path, capsys):
    pairs = tmp_path / "pairs"
    for sub in ("first", "second"):
        (pairs / sub).mkdir(parents=True)
    write_image(pairs / "first" / "p.png", _small(1))
    write_image(pairs / "second" / "p.png", _small(2))
    out = tmp_path / "out"
    code = main(["evaluate", str(pairs), "--methods", "mean,max,laplacian", "--out", str(out)])
    assert code == 0
    assert (out / "metrics.csv").is_file() and (out / "metrics.md").is_file()
    printed = capsys.readouterr().out
    assert "| method |" in printed and "laplacian" in printed
    assert len(ev.read_csv(out / "metrics.csv")) == 3


def test_cli_evaluate_multifocus(tmp_path, capsys):
    out = tmp_path / "mf"
    code = main(["evaluate", "--multifocus-set", "1", "--size", "48", "--methods", "mean",
                 "--out", str(out), "-q"])
    assert code == 0 and capsys.readouterr().out == ""
    assert "PSNR_truth" in (out / "metrics.md").read_text()


@pytest.mark.parametrize(
    ("argv", "code", "needle"),
    [
        (["{empty}"], 1, "no image pairs found"),
        (["{empty}/missing"], 1, "not found"),
        (["{empty}", "--methods", "mean,bogus"], 2, "unknown fusion method 'bogus'"),
        ([], 2, "either PAIRS_DIR or --multifocus-set"),
        (["{empty}", "--multifocus-set", "2"], 2, "either PAIRS_DIR or --multifocus-set"),
        (["--multifocus-set", "99"], 2, "--multifocus-set"),
    ],
)
def test_cli_evaluate_errors(tmp_path, capsys, argv, code, needle):
    empty = tmp_path / "empty"
    empty.mkdir()
    argv = [a.replace("{empty}", str(empty)) for a in argv]
    assert main(["evaluate", *argv, "--out", str(tmp_path / "o")]) == code
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("napari-gifnet: error:") and needle in err
    assert "Traceback" not in err


# --------------------------------------------------------------------------- --truth
def _psnr_by_hand(x: np.ndarray, t: np.ndarray) -> float:
    mse = np.mean((x.astype(float) - t.astype(float)) ** 2)
    return float(10 * np.log10(255.0**2 / mse))


def _tiny_results(tmp_path: Path) -> tuple[Path, Path, dict[str, np.ndarray]]:
    """results/<method>/<name>.png and truth/<name>.png: 24 x 20 colour images."""
    rng = np.random.default_rng(21)
    truth, results = tmp_path / "truth", tmp_path / "results"
    truth.mkdir()
    made = {}
    for name in ("s1", "s2"):
        t = rng.integers(30, 220, (24, 20, 3), dtype=np.uint8)
        write_image(truth / f"{name}.png", t)
        made[name] = t
        for method, noise in (("good", 2), ("bad", 20)):
            (results / method).mkdir(parents=True, exist_ok=True)
            x = np.clip(t + rng.normal(0, noise, t.shape), 0, 255).round().astype(np.uint8)
            write_image(results / method / f"{name}.png", x)
            made[f"{method}/{name}"] = x
    write_image(results / "good" / "no_truth.png", made["s1"])  # left out: no truth
    return results, truth, made


def test_score_folder_against_truth(tmp_path):
    from napari_gifnet.engine.preprocess import published_luma_uint8

    results, truth, made = _tiny_results(tmp_path)
    rows = ev.score_folder(results, truth)
    assert [(r["method"], r["pair"]) for r in rows] == [
        ("bad", "s1"), ("bad", "s2"), ("good", "s1"), ("good", "s2")]
    for r in rows:
        x, t = made[f"{r['method']}/{r['pair']}"], made[r["pair"]]
        want = _psnr_by_hand(published_luma_uint8(x), published_luma_uint8(t))
        assert r["PSNR_truth"] == pytest.approx(want, rel=1e-12)
        assert 0 < r["SSIM_truth"] < 1
    summary = ev.summarise(rows)
    assert summary["good"]["PSNR_truth"] > summary["bad"]["PSNR_truth"] + 10


def test_score_folder_with_the_remote_task_adds_the_band_indices(tmp_path):
    results, truth, made = _tiny_results(tmp_path)
    rows = ev.score_folder(results / "good", truth, task="remote")
    assert {r["method"] for r in rows} == {"good"} and len(rows) == 2
    for r in rows:
        x, t = (made[f"good/{r['pair']}"].astype(float), made[r["pair"]].astype(float))
        rmse = np.sqrt(np.mean((x - t) ** 2, axis=(0, 1)))
        ergas = 100 / 4 * np.sqrt(np.mean((rmse / t.mean(axis=(0, 1))) ** 2))
        assert r["ERGAS_truth"] == pytest.approx(ergas, rel=1e-9)
        assert set(ev.TRUTH_TASK_METRICS["remote"]) <= set(r)
    assert ev.DIRECTIONS["ERGAS_truth"] == "lower" == ev.DIRECTIONS["SAM_truth"]


def test_score_folder_errors(tmp_path):
    results, truth, _ = _tiny_results(tmp_path)
    other = tmp_path / "other"
    other.mkdir()
    write_image(other / "elsewhere.png", np.zeros((24, 20), np.uint8))
    with pytest.raises(ValueError, match="no image of .* has a truth of the same name"):
        ev.score_folder(results, other)
    write_image(results / "bad" / "s1.png", np.zeros((5, 5), np.uint8))
    with pytest.raises(ValueError, match="s1.png is 5 x 5 but its truth"):
        ev.score_folder(results / "bad", truth)
    with pytest.raises(FileNotFoundError, match="truth folder"):
        ev.score_folder(results, tmp_path / "nowhere")


def test_cli_evaluate_a_results_folder_against_truth(tmp_path, capsys):
    results, truth, _ = _tiny_results(tmp_path)
    out = tmp_path / "out"
    assert main(["evaluate", str(results), "--truth", str(truth), "--task", "remote",
                 "--out", str(out)]) == 0  # fmt: skip
    rows = ev.read_csv(out / "metrics.csv")
    assert len(rows) == 4 and all("ERGAS_truth" in r and "PSNR_truth" in r for r in rows)
    printed = capsys.readouterr().out
    assert "| good |" in printed and "ERGAS_truth" in printed


def test_cli_evaluate_pairs_with_a_truth_folder_and_a_convention(tmp_path):
    pairs, truth = tmp_path / "pairs", tmp_path / "truth"
    for sub in ("first", "second"):
        (pairs / sub).mkdir(parents=True)
    truth.mkdir()
    write_image(pairs / "first" / "p.png", _small(1))
    write_image(pairs / "second" / "p.png", _small(2))
    write_image(truth / "p.png", _small(3))
    out = tmp_path / "out"
    assert main(["evaluate", str(pairs), "--truth", str(truth), "--methods", "mean",
                 "--convention", "cddfuse", "--out", str(out), "-q"]) == 0  # fmt: skip
    (row,) = ev.read_csv(out / "metrics.csv")
    mean = ((_small(1).astype(float) + _small(2)) / 2).round()
    assert row["PSNR_truth"] == pytest.approx(_psnr_by_hand(mean, _small(3)), abs=0.05)
    from napari_gifnet.metrics.fusion import fusion_metrics

    fused = np.clip(mean / 255, 0, 1)
    assert row["SSIM"] == pytest.approx(
        fusion_metrics(fused, _small(1), _small(2), convention="cddfuse")["SSIM"], abs=1e-3)


def test_cli_evaluate_task_needs_truth(tmp_path, capsys):
    assert main(["evaluate", str(tmp_path), "--task", "remote", "--out", str(tmp_path / "o")]) == 2
    assert "--truth" in capsys.readouterr().err
