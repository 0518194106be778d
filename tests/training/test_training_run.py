"""Training runs: the loss falls, seeds repeat, resume is exact, checkpoints load."""

from __future__ import annotations

import csv
import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from napari_gifnet import fuse
from napari_gifnet.cli.main import main
from napari_gifnet.model.network import GIFNet
from napari_gifnet.model.weights import clear_model_cache, load_checkpoint, load_model
from napari_gifnet.training.runfiles import LOG_COLUMNS
from napari_gifnet.training.synthetic import write_synthetic_pairs
from training_config import train_config, train_quietly

pytestmark = pytest.mark.usefixtures("one_torch_thread", "no_timm_hub")


_config = train_config


_train = train_quietly


def _losses(rows: list[dict[str, float]]) -> list[list[float]]:
    return [[r[k] for k in LOG_COLUMNS if k != "seconds"] for r in rows]


def test_tiny_run_from_scratch_learns(tmp_path: Path) -> None:
    pairs = write_synthetic_pairs(tmp_path / "pairs", n=4, size=80, seed=0)
    out = tmp_path / "run" / "tiny.pth"
    result = _train(_config(pairs, out, crop=64, max_steps=24, checkpoint_every=12, plot=True))
    totals = [r["total"] for r in result.rows]
    assert result.steps == 24 and len(totals) == 24 and all(np.isfinite(totals))
    first, last = float(np.mean(totals[:5])), float(np.mean(totals[-5:]))
    assert last < 0.6 * first, (first, last)
    # Both steps' losses fall, not just one.
    for key in ("s1_total", "s2_total"):
        assert np.mean([r[key] for r in result.rows[-5:]]) < np.mean([r[key] for r in result.rows[:5]])
    # The log, the plot and the metadata.
    with result.log.open() as f:
        rows = list(csv.DictReader(f))
    assert [float(r["total"]) for r in rows] == totals and list(rows[0]) == list(LOG_COLUMNS)
    assert result.plot is not None and result.plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    meta = json.loads(result.metadata.read_text())
    assert meta["densenet"]["source"] == "fallback-random" and meta["densenet"]["pretrained"] is False
    assert meta["initial_weights"]["init"] == "scratch" and meta["steps_done"] == 24
    # The checkpoint has exactly the network's keys and loads like the published one.
    state = load_checkpoint(out)
    reference = GIFNet().state_dict()
    assert list(state) == list(reference)
    assert all(state[k].shape == reference[k].shape and state[k].is_contiguous() for k in state)
    clear_model_cache()
    model, info = load_model(out)
    assert info.source == "argument"
    assert torch.equal(model.cnnDecoder.decoder[10].weight.float().contiguous(), state["cnnDecoder.decoder.10.weight"])
    a, b = (np.random.default_rng(i).random((40, 36)).astype(np.float32) for i in (1, 2))
    fused = fuse(a, b, weights=out)
    assert fused.image.shape == (40, 36) and np.isfinite(fused.image).all()


def test_same_seed_same_curve_and_exact_resume(tmp_path: Path) -> None:
    pairs = write_synthetic_pairs(tmp_path / "pairs", n=3, size=48, seed=2)
    whole = _train(_config(pairs, tmp_path / "a" / "run.pth", batch_size=2, max_steps=3))
    # Stop after 2 steps, then resume to 3: the same losses and weights as in one go.
    _train(_config(pairs, tmp_path / "b" / "run.pth", batch_size=2, max_steps=2))
    resumed = _train(_config(pairs, tmp_path / "b" / "run.pth", batch_size=2, max_steps=3, resume=True))
    assert _losses(resumed.rows) == _losses(whole.rows)
    a, b = load_checkpoint(whole.checkpoint), load_checkpoint(resumed.checkpoint)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert json.loads(resumed.metadata.read_text())["initial_weights"]["resumed_from_step"] == 2
    # The resumed CSV log: integer steps and epochs throughout (rows carried over
    # included), and the very text of the uninterrupted run's log but the timings.
    logs = []
    for result in (whole, resumed):
        with result.log.open(newline="") as f:
            rows = list(csv.DictReader(f))
        assert [int(r["step"]) for r in rows] == [1, 2, 3]
        assert [int(r["epoch"]) for r in rows] == [0, 0, 1]
        logs.append([{k: v for k, v in r.items() if k != "seconds"} for r in rows])
    assert logs[0] == logs[1]
    assert [type(r["step"]) for r in resumed.rows] == [int] * 3
    # Another number of sample worker processes gives the very same run.
    used = json.loads(whole.metadata.read_text())["workers"]
    other = 0 if used else 2
    workers = _train(_config(pairs, tmp_path / "w" / "run.pth", batch_size=2, max_steps=3,
                             workers=other))  # fmt: skip
    assert json.loads(workers.metadata.read_text())["workers"] == other
    assert _losses(workers.rows) == _losses(whole.rows)
    w = load_checkpoint(workers.checkpoint)
    assert all(torch.equal(a[k], w[k]) for k in a)
    # Another seed gives another curve.
    other = _train(_config(pairs, tmp_path / "c" / "run.pth", batch_size=2, max_steps=1, seed=1))
    assert _losses(other.rows)[0] != _losses(whole.rows)[0]
    with pytest.raises(ValueError, match="cannot resume with a different crop"):
        _train(_config(pairs, tmp_path / "b" / "run.pth", batch_size=2, crop=40, max_steps=4, resume=True))
    with pytest.raises(FileNotFoundError, match="nothing to resume"):
        _train(_config(pairs, tmp_path / "d" / "run.pth", max_steps=1, resume=True))


def test_fine_tune_from_the_published_checkpoint(tmp_path: Path, reference_weights: Path) -> None:
    pairs = write_synthetic_pairs(tmp_path / "pairs", n=2, size=40, seed=3)
    result = _train(_config(pairs, tmp_path / "ft.pth", init=str(reference_weights), max_steps=1, lr=1e-4))
    published, tuned = load_checkpoint(reference_weights), load_checkpoint(result.checkpoint)
    assert set(tuned) == set(published)
    assert all(tuned[k].shape == published[k].shape for k in published)
    changed = [k for k in published if not torch.equal(published[k], tuned[k])]
    assert "cnnDecoder.decoder.10.weight" in changed and "decoder_rec.decoder.1.weight" in changed
    # Buffers and the never-trained gates stay as they were.
    unchanged = ("layer1.weights.1", "layer1.weights_mfif.1", "relative_positions")
    assert not [k for k in changed if k.endswith(unchanged) or unchanged[2] in k]
    meta = json.loads(result.metadata.read_text())
    assert meta["initial_weights"]["sha256"] == "bfc1dfef0d5b386b0c04f172daf8f6af52ba395f26dc3dd5757425fd32eb1038"


def test_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "--pairs", str(tmp_path / "none"), "--out", str(tmp_path / "x.pth")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("napari-gifnet: error: training folder not found") and "\n" not in err
    pairs = write_synthetic_pairs(tmp_path / "pairs", n=2, size=40, seed=4)
    out = tmp_path / "cli" / "run.pth"
    common = ["--pairs", str(pairs), "--out", str(out), "--init", "scratch", "--no-hub", "--no-progress"]
    assert main(["train", *common, "--crop", "64"]) == 1
    assert "smaller than the 64 x 64 crop" in capsys.readouterr().err
    assert main(["train", *common, "--lr", "-1"]) == 2
    assert "positive number" in capsys.readouterr().err
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        assert main(["train", *common, "--crop", "32", "--batch-size", "2", "--max-steps", "1"]) == 0
    assert "trained 1 steps" in capsys.readouterr().out
    for name in ("run.pth", "run.train.pt", "run.log.csv", "run.loss.png", "run.train.json"):
        assert (out.parent / name).is_file(), name
    assert main(["train", *common, "--crop", "36", "--batch-size", "2", "--max-steps", "2", "--resume"]) == 1
    assert "cannot resume with a different crop" in capsys.readouterr().err
