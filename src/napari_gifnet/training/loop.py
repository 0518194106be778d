"""The training loop: two optimiser steps per batch, checkpoints, resume, logs.

:func:`train` runs the published scheme (Adam; per batch a multimodal step
and a photographic step, see :mod:`napari_gifnet.training.forward`) on an
:class:`~napari_gifnet.training.dataset.RGBJointDataset` and writes, next to
the checkpoint ``OUT`` (say ``run.pth``):

* ``run.pth``: the network's weights, a plain ``state_dict`` with exactly the
  published checkpoint's keys (loads with :func:`napari_gifnet.model.weights.load_model`,
  ``fuse(..., weights=...)`` and the plugin's weights field);
* ``run.train.pt``: the optimiser state and step counter, for ``resume``;
* ``run.log.csv``: one row per step with every loss term;
* ``run.loss.png``: the loss curves (at the end);
* ``run.train.json``: the configuration and provenance (initial weights,
  DenseNet-121 weights source and, for the random fallback, why; the
  MS-SSIM variant of the common loss; versions, steps done).

Before any work, :func:`train` checks the settings, the outputs, the run to
resume and the DenseNet-121 weights, and decodes every image once. Nothing is
written before the first checkpoint: the weights, state, log and metadata are
written together every ``checkpoint_every`` steps, at the end and on Ctrl-C
(or :class:`~napari_gifnet.util.progress.Cancelled`).

A "step" is one batch, i.e. two optimiser steps. Runs are deterministic for a
given seed, device and thread count, whatever the number of workers, and a
resumed run continues with the very losses of an uninterrupted one.
"""

from __future__ import annotations

import json
import math
import os
import platform
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..model.network import GIFNet
from ..util.progress import Cancelled, Progress
from ..util.safe_files import atomic_write_text
from .dataset import RGBJointDataset, check_crop, default_workers, step_loader
from .features import resolve_densenet
from .forward import multimodal_step, photographic_step
from .losses import check_ssim, information_weights, multimodal_loss, photographic_loss
from .runfiles import (
    RESUME_DEFAULTS,
    RESUME_FIXED,
    check_outputs,
    load_state,
    output_paths,
    plot_log,
    read_log,
    save_checkpoint,
    save_state,
    write_log,
)

__all__ = ["TrainConfig", "TrainResult", "initial_model", "train", "train_step"]


@dataclass
class TrainConfig:
    """Settings of a training run (see :func:`train`).

    ``init`` is ``"published"`` (the published checkpoint, found as the
    fusion engine finds it), ``"scratch"`` (random, from ``seed``) or a
    checkpoint path. Without ``epochs`` and ``max_steps`` the run lasts 2
    epochs (the published schedule); with ``max_steps`` alone it stops after
    that many steps; with both, at whichever comes first.

    ``ssim`` is the MS-SSIM of the common loss, ``"published"`` or
    ``"standard"`` (:func:`~napari_gifnet.training.losses.common_loss`).
    ``workers`` is the number of DataLoader processes building the
    samples (None: :func:`~napari_gifnet.training.dataset.default_workers`;
    0: in the training process); it changes no value.
    """

    pairs: str
    out: str
    init: str = "published"
    epochs: int | None = None
    max_steps: int | None = None
    batch_size: int = 8
    crop: int = 128
    lr: float = 1e-3
    seed: int = 0
    device: str = "auto"
    checkpoint_every: int = 200
    resume: bool = False
    densenet_weights: str | None = None
    densenet_hub: bool = True
    ssim: str = "published"
    workers: int | None = None
    progress: bool = True
    plot: bool = True


@dataclass
class TrainResult:
    """What :func:`train` produced."""

    checkpoint: Path
    log: Path
    plot: Path | None
    metadata: Path
    steps: int
    rows: list[dict[str, float]] = field(default_factory=list)


#: What ``run.train.json`` says of each MS-SSIM variant (its ``ms_ssim`` entry).
SSIM_DESCRIPTIONS: dict[str, str] = {
    "published": "published: the published training code's msssim(rec, vis, normalize=True) "
    "(5 levels, data range from rec, (x + 1) / 2, last SSIM in each factor)",
    "standard": "standard: Wang et al. 2003 MS-SSIM, data range 1, fewer scales for small crops "
    "(weights renormalised), clamped",
}


def _check(config: TrainConfig) -> None:
    for name in ("batch_size", "checkpoint_every", "epochs", "max_steps"):
        value = getattr(config, name)
        if value is None and name in ("epochs", "max_steps"):  # optional
            continue
        if int(value) != value or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value}")
    if not (math.isfinite(config.lr) and config.lr > 0):
        raise ValueError(f"the learning rate must be a positive number, got {config.lr}")
    if config.workers is not None and (int(config.workers) != config.workers or config.workers < 0):
        raise ValueError(f"workers must be a non-negative integer, got {config.workers}")
    check_ssim(config.ssim)
    check_crop(config.crop)


def initial_model(init: str, seed: int) -> tuple[GIFNet, dict[str, Any]]:
    """The network to start from, and where its weights came from."""
    if init == "scratch":
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return GIFNet(), {"init": "scratch", "seed": seed}
    from ..model.weights import load_checkpoint, resolve_weights, validate_state_dict

    info = resolve_weights(None if init == "published" else init)
    state = load_checkpoint(info.path)
    model = GIFNet()
    validate_state_dict(state, model, str(info.path))
    model.load_state_dict(state, strict=True)
    return model, {"init": init, "path": str(info.path), "source": info.source, "sha256": info.sha256}


def _batch_tensors(batch: torch.Tensor, device: torch.device) -> list[torch.Tensor]:
    fmt = torch.channels_last if device.type == "cpu" else torch.contiguous_format
    return [t.to(device).contiguous(memory_format=fmt) for t in batch]


def train_step(
    model: GIFNet, optimizer: torch.optim.Optimizer, extractor: torch.nn.Module, batch: torch.Tensor,
    device: torch.device, ssim: str = "published",
) -> dict[str, float]:  # fmt: skip
    """Both optimiser steps on one batch (4, N, 1, H, W); returns the logged terms.

    ``ssim``: the MS-SSIM variant of the common loss
    (:data:`~napari_gifnet.training.losses.SSIM_VARIANTS`).
    """
    ir, vis, near, far = _batch_tensors(batch, device)
    optimizer.zero_grad(set_to_none=True)
    w_ir, w_vis, weights = information_weights(extractor, ir, vis)
    loss1 = multimodal_loss(multimodal_step(model, ir, vis, near, far), ir, vis, w_ir, w_vis, ssim)
    loss1.total.backward()
    optimizer.step()
    # set_to_none: parameters a step does not train get no update from it.
    optimizer.zero_grad(set_to_none=True)
    loss2 = photographic_loss(photographic_step(model, ir, vis, near, far), vis, ssim)
    loss2.total.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return {**{f"s1_{k}": v for k, v in loss1.terms.items()}, **weights,
            **{f"s2_{k}": v for k, v in loss2.terms.items()},
            "total": loss1.terms["total"] + loss2.terms["total"]}  # fmt: skip


def _init_files(config: TrainConfig) -> list[str]:
    """The checkpoint files a new run reads (``--init FILE``, or ``GIFNET_WEIGHTS``)."""
    if config.resume or config.init == "scratch":
        return []
    if config.init == "published":
        from ..model.weights import WEIGHTS_ENV

        env = os.environ.get(WEIGHTS_ENV, "").strip()
        return [env] if env else []
    return [config.init]


def _read_files(config: TrainConfig) -> tuple[list[str], list[str]]:
    """Every file a run reads besides its own files (the training images, the
    checkpoint it starts from, the DenseNet-121 weights file), and the folders
    whose images it reads; what :func:`check_outputs` checks the run's files against."""
    from ..io.pairs import pair_inputs
    from .features import DENSENET_ENV

    images, folders = pair_inputs(config.pairs)
    densenet = str(config.densenet_weights or "").strip() or os.environ.get(DENSENET_ENV, "")
    densenet = densenet.strip()
    files = [*map(str, images), *_init_files(config), *([densenet] if densenet else [])]
    return files, [str(f) for f in folders]


def train(
    config: TrainConfig, *, progress: Progress | None = None,
    on_step: Callable[[dict[str, float]], Any] | None = None,
) -> TrainResult:  # fmt: skip
    """Train or fine-tune GIFNet on a folder of aligned pairs.

    Parameters
    ----------
    config : TrainConfig
        The settings; ``config.out`` names the checkpoint (see the module
        docstring for the files written next to it).
    progress : callable, optional
        ``progress(done, total)``, in steps: once before the first step and
        after every step. Raising :class:`~napari_gifnet.util.progress.Cancelled`
        there stops the run as Ctrl-C does: the checkpoint, state, log and
        metadata of the steps done are written (if any step was done in
        this call), then the exception propagates. Any other exception
        propagates at once.
    on_step : callable, optional
        ``on_step(row)`` after every step, before ``progress``, with a copy of
        the step's log row (``step``, ``epoch``, ``total``, every loss term,
        ...): e.g. for a live loss plot.

    Returns
    -------
    TrainResult
        The paths written and the logged rows (of the whole run, resumed or
        not).

    Raises
    ------
    FileNotFoundError, ValueError
        For a bad training folder, image or setting, an output path that
        cannot be written, or a missing, unreadable or incompatible run to
        resume (each with a one-line message naming the file).
    Cancelled
        Raised by ``progress`` (after the steps done were saved).
    """
    from ..engine.devices import resolve_device

    _check(config)
    paths = output_paths(config.out)
    # before any work: a bad --out fails now, not at the first checkpoint; a run never
    # writes over a file it reads or into its training folders (a resume continues its own)
    check_outputs(paths, *_read_files(config))
    saved = _resumed(config, paths)
    dataset = RGBJointDataset(config.pairs, config.crop, config.seed)
    # before decoding the images: a bad weights file fails, the fallback is told, at the start
    extractor = resolve_densenet(config.densenet_weights, hub=config.densenet_hub)
    dataset.check_images(progress=config.progress)  # unreadable images fail before training
    device = resolve_device(config.device)
    model, optimizer, init_info = _start(config, paths, saved, device)
    start = 0 if saved is None else saved["step"]
    extractor = extractor.to(device)
    workers = default_workers() if config.workers is None else int(config.workers)
    per_epoch = dataset.batches_per_epoch(config.batch_size)
    epochs = config.epochs if config.epochs is not None else (None if config.max_steps else 2)
    total = min(x for x in (config.max_steps, epochs * per_epoch if epochs else None) if x)
    rows = read_log(paths["log"], start) if config.resume else []
    metadata = {
        "config": asdict(config), "initial_weights": init_info, "densenet": extractor.info.as_dict(),
        "pairs": len(dataset), "batches_per_epoch": per_epoch, "total_steps": total,
        "ms_ssim": SSIM_DESCRIPTIONS[config.ssim], "workers": workers,
        "device": str(device), "torch": torch.__version__, "python": platform.python_version(),
        "threads": torch.get_num_threads(), "steps_done": start,
    }  # fmt: skip
    bar = _progress(config.progress, total, start)
    step = start
    # (no worker processes for a finished run resumed: nothing to build)
    loader = step_loader(dataset, config.batch_size, start, total, workers if total > start else 0)
    batches = iter(loader)
    try:
        if progress is not None:
            progress(step, total)
        while step < total:
            epoch = step // per_epoch
            t0 = time.perf_counter()
            batch = next(batches)
            if isinstance(batch, Exception):  # a sample failed (in a worker or not)
                raise batch
            row = train_step(model, optimizer, extractor, batch, device, config.ssim)
            step += 1
            row.update(step=step, epoch=epoch, seconds=time.perf_counter() - t0)
            rows.append(row)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{row['total']:.4f}", w_ir=f"{row['w_ir']:.2f}")
            if on_step is not None:
                on_step(dict(row))
            if progress is not None:
                progress(step, total)  # a Cancelled here ends the run after this step
            if step % config.checkpoint_every == 0 or step == total:
                _checkpoint(model, optimizer, step, config, paths, rows, metadata)
    except (KeyboardInterrupt, Cancelled):
        if rows and step > start:
            _checkpoint(model, optimizer, step, config, paths, rows, metadata)
        raise
    finally:
        del batches  # stops the worker processes now, not when the traceback goes
        if bar is not None:
            bar.close()
    if step == start:  # nothing left to do (a finished run resumed)
        _write_json(paths["metadata"], metadata)
        write_log(paths["log"], rows)
    plot = plot_log(rows, paths["plot"]) if config.plot and rows else None
    return TrainResult(paths["checkpoint"], paths["log"], plot, paths["metadata"], step, rows)


def _resumed(config: TrainConfig, paths: dict[str, Path]) -> dict[str, Any] | None:
    """The saved state of the run to resume, checked against ``config``; None for a new run."""
    if not config.resume:
        return None
    # the one existence check of both files (load_state has none)
    if not paths["state"].is_file() or not paths["checkpoint"].is_file():
        raise FileNotFoundError(
            f"nothing to resume: {paths['state']} or {paths['checkpoint']} is missing"
        )
    saved = load_state(paths["state"])
    fixed = (*RESUME_FIXED, *RESUME_DEFAULTS)
    changed = [k for k in fixed if saved["config"][k] != getattr(config, k)]
    if changed:
        used = ", ".join(f"{k}={saved['config'][k]}" for k in changed)
        raise ValueError(
            f"cannot resume with a different {', '.join(changed)} (the run used {used})"
        )
    return saved


def _start(
    config: TrainConfig, paths: dict[str, Path], saved: dict[str, Any] | None, device: torch.device
) -> tuple[GIFNet, torch.optim.Optimizer, dict[str, Any]]:
    """The network on ``device`` and its optimiser, new or as the run to resume left them, and
    where the weights came from (with ``resumed_from_step`` for a resumed run)."""
    if saved is None:
        model, init_info = initial_model(config.init, config.seed)
    else:
        model, init_info = initial_model(str(paths["checkpoint"]), config.seed)
        init_info["resumed_from_step"] = saved["step"]
    model = model.to(device).train()
    if device.type == "cpu":  # about 2.5x faster convolutions, forward and backward
        model = model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    if saved is not None:
        try:
            optimizer.load_state_dict(saved["optimizer"])
        except (KeyError, TypeError, ValueError, RuntimeError) as exc:
            raise ValueError(f"cannot resume: the optimiser state in {paths['state']} does not fit "
                             f"the network ({type(exc).__name__}: {exc})") from None  # fmt: skip
    return model, optimizer, init_info


def _write_json(path: Path, data: dict[str, Any]) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, default=str))


def _checkpoint(model: GIFNet, optimizer: torch.optim.Optimizer, step: int, config: TrainConfig,
                paths: dict[str, Path], rows: list[dict[str, float]],
                metadata: dict[str, Any]) -> None:  # fmt: skip
    """Write the checkpoint, the resume state, the log and the metadata (all of them)."""
    paths["checkpoint"].parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(model, paths["checkpoint"])
    save_state(paths["state"], optimizer, step, asdict(config))
    write_log(paths["log"], rows)
    metadata["steps_done"] = step
    _write_json(paths["metadata"], metadata)


def _progress(enabled: bool, total: int, start: int) -> Any:
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=start, unit="step", desc="training", dynamic_ncols=True)
