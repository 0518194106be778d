"""Training options: the MS-SSIM of the common loss (--ssim), sample workers (--workers),
and the one-line note when DenseNet-121 falls back to random weights."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from napari_gifnet.cli.main import main
from napari_gifnet.training import dataset as ds
from napari_gifnet.training import losses
from napari_gifnet.training.msssim import ms_ssim, published_ms_ssim
from napari_gifnet.training.runfiles import LOG_COLUMNS
from napari_gifnet.training.synthetic import write_synthetic_pairs
from training_config import train_config, train_quietly

pytestmark = pytest.mark.usefixtures("one_torch_thread", "no_timm_hub")


def _losses(rows: list[dict[str, float]]) -> list[list[float]]:
    return [[r[k] for k in LOG_COLUMNS if k != "seconds"] for r in rows]


# --------------------------------------------------------------------------- --ssim
def test_common_loss_uses_the_published_ms_ssim_by_default() -> None:
    g = torch.Generator().manual_seed(0)
    vis = torch.rand(2, 1, 32, 32, generator=g)
    rec = torch.tanh(2 * (vis + 0.2 * torch.randn(2, 1, 32, 32, generator=g)) - 1)  # in [-1, 1]
    mse = float(torch.nn.functional.mse_loss(rec, vis))
    default, parts = losses.common_loss(rec, vis)
    published = float(published_ms_ssim(rec, vis))
    assert float(default) == pytest.approx(1 - published + mse, abs=1e-6)
    assert parts["ms_ssim"] == pytest.approx(published, abs=1e-7)
    standard, parts = losses.common_loss(rec, vis, "standard")
    assert float(standard) == pytest.approx(1 - float(ms_ssim(rec, vis, data_range=1.0)) + mse, abs=1e-6)
    assert abs(float(standard) - float(default)) > 1e-3  # the two variants differ
    with pytest.raises(ValueError, match="ssim must be one of published, standard"):
        losses.common_loss(rec, vis, "bogus")


@pytest.fixture
def ssim_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record which MS-SSIM the losses call."""
    calls: list[str] = []

    def spy(name, real):
        def wrapped(*args, **kwargs):
            calls.append(name)
            return real(*args, **kwargs)

        return wrapped

    monkeypatch.setattr(losses, "published_ms_ssim", spy("published", losses.published_ms_ssim))
    monkeypatch.setattr(losses, "ms_ssim", spy("standard", losses.ms_ssim))
    return calls


@pytest.mark.parametrize("variant", [None, "published", "standard"])
def test_train_ssim_option(
    variant: str | None, ssim_calls: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pairs = write_synthetic_pairs(tmp_path / "pairs", n=1, size=40, seed=0)
    out = tmp_path / "run.pth"
    args = ["train", "--pairs", str(pairs), "--out", str(out), "--init", "scratch", "--no-hub",
            "--no-progress", "--crop", "32", "--batch-size", "1", "--max-steps", "1", "--workers", "0"]  # fmt: skip
    if variant is not None:
        args += ["--ssim", variant]
    assert main(args) == 0, capsys.readouterr().err
    expected = variant or "published"
    assert ssim_calls == [expected, expected]  # the common loss of both steps
    meta = json.loads(out.with_suffix(".train.json").read_text())
    assert meta["config"]["ssim"] == expected and meta["ms_ssim"].startswith(expected + ":")


def test_resume_keeps_the_ssim_variant(tmp_path: Path) -> None:
    pairs = write_synthetic_pairs(tmp_path / "pairs", n=2, size=40, seed=1)
    out = tmp_path / "run.pth"
    train_quietly(train_config(pairs, out, max_steps=1, ssim="standard", workers=0))
    with pytest.raises(ValueError, match="cannot resume with a different ssim .*ssim=standard"):
        train_quietly(train_config(pairs, out, max_steps=2, resume=True, workers=0))
    # A state written before --ssim existed stands for the standard variant.
    state_path = out.with_suffix(".train.pt")
    state = torch.load(state_path, weights_only=True)
    del state["config"]["ssim"]
    torch.save(state, state_path)
    resumed = train_quietly(train_config(pairs, out, max_steps=2, resume=True, ssim="standard", workers=0))
    assert resumed.steps == 2
    with pytest.raises(ValueError, match="ssim must be one of"):
        train_quietly(train_config(pairs, tmp_path / "x.pth", ssim="ms-ssim"))


# --------------------------------------------------------------------------- --workers
def test_default_workers(monkeypatch: pytest.MonkeyPatch) -> None:
    for cpus, expected in ((1, 0), (2, 2), (16, 2), (None, 0)):
        monkeypatch.setattr(ds.os, "cpu_count", lambda cpus=cpus: cpus)
        assert ds.default_workers() == expected


def test_step_loader_gives_the_batches_of_the_dataset(tmp_path: Path) -> None:
    pairs = write_synthetic_pairs(tmp_path / "pairs", n=3, size=40, seed=2)
    dataset = ds.RGBJointDataset(pairs, 32, seed=5)
    dataset.check_images()
    per_epoch = dataset.batches_per_epoch(2)  # 2: a full batch and a single
    expected = [dataset.batch(*divmod(step, per_epoch), 2) for step in range(1, 6)]
    for workers in (0, 2):
        got = list(ds.step_loader(dataset, 2, start=1, total=6, workers=workers))
        assert [b.shape for b in got] == [b.shape for b in expected]
        assert all(torch.equal(a, b) for a, b in zip(got, expected))
    with pytest.raises(ValueError, match="non-negative integer"):
        ds.step_loader(dataset, 2, 0, 1, workers=-1)


def test_a_sample_failing_in_a_worker_is_its_own_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ds, "CACHE_LIMIT", 0)  # nothing cached: the workers read the files
    pairs = write_synthetic_pairs(tmp_path / "pairs", n=2, size=40, seed=3)
    dataset = ds.RGBJointDataset(pairs, 32)
    for path in (pairs / "first").iterdir():
        path.write_bytes(b"not an image")
    batch = next(iter(ds.step_loader(dataset, 2, 0, 1, workers=2)))
    assert isinstance(batch, Exception) and "cannot read" in str(batch) and "\n" not in str(batch)


def test_negative_workers_are_refused(tmp_path: Path) -> None:
    """(That workers change no value is tested with the seeded runs in test_training_run.py.)"""
    pairs = write_synthetic_pairs(tmp_path / "pairs", n=3, size=48, seed=4)
    with pytest.raises(ValueError, match="workers must be a non-negative integer"):
        train_quietly(train_config(pairs, tmp_path / "x.pth", workers=-1))


def test_workers_option(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "--pairs", str(tmp_path), "--out", str(tmp_path / "x.pth"), "--workers", "-1"]) == 2
    assert "--workers: invalid value '-1'" in capsys.readouterr().err


# --------------------------------------------------------------------------- DenseNet note
def test_densenet_fallback_is_one_note_line_and_recorded(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pairs = write_synthetic_pairs(tmp_path / "pairs", n=1, size=40, seed=5)
    common = ["train", "--pairs", str(pairs), "--init", "scratch", "--no-progress", "--crop", "32",
              "--batch-size", "1", "--max-steps", "1", "--workers", "0"]  # fmt: skip
    # Offline (HF_HUB_OFFLINE=1, no GIFNET_DENSENET_WEIGHTS, no --densenet-weights).
    out = tmp_path / "a" / "run.pth"
    assert main([*common, "--out", str(out)]) == 0
    err = capsys.readouterr().err
    notes = [line for line in err.splitlines() if "DenseNet" in line]
    assert len(notes) == 1 and err.splitlines()[0] == notes[0], err
    note = notes[0]
    assert note.startswith("napari-gifnet train: note: no ImageNet DenseNet-121 weights (offline")
    assert "randomly initialised" in note and "not the published ones" in note
    assert note.endswith("pass --densenet-weights FILE (or set GIFNET_DENSENET_WEIGHTS)")
    meta = json.loads(out.with_suffix(".train.json").read_text())["densenet"]
    assert meta["source"] == "fallback-random" and meta["pretrained"] is False
    assert meta["reason"].startswith("offline: HF_HUB_OFFLINE is set")
    # --no-hub says so.
    assert main([*common, "--out", str(tmp_path / "b" / "run.pth"), "--no-hub"]) == 0
    assert "(offline: timm's hub not tried (--no-hub))" in capsys.readouterr().err
    meta = json.loads((tmp_path / "b" / "run.train.json").read_text())["densenet"]
    assert meta["reason"] == "offline: timm's hub not tried (--no-hub)"
    # With a weights file: no note, the file recorded.
    import timm

    weights = tmp_path / "densenet121.pth"
    torch.save(timm.create_model("densenet121", features_only=True, pretrained=False).state_dict(), weights)
    out = tmp_path / "c" / "run.pth"
    assert main([*common, "--out", str(out), "--densenet-weights", str(weights)]) == 0
    assert "DenseNet" not in capsys.readouterr().err
    meta = json.loads(out.with_suffix(".train.json").read_text())["densenet"]
    assert meta["source"] == "file" and meta["pretrained"] is True and "reason" not in meta
    assert json.loads(out.with_suffix(".train.json").read_text())["steps_done"] == 1
