"""The files of a training run, next to its checkpoint (:func:`output_paths`):
paths, up-front checks, checkpoints, resume state, log.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import torch

from ..util.safe_files import atomic_write, atomic_write_text, check_output_set

#: Columns of the CSV log, in order.
LOG_COLUMNS: tuple[str, ...] = (
    "step", "epoch", "total",
    "s1_total", "s1_fusion", "s1_common", "s1_ms_ssim", "s1_rec_mse", "w_ir", "w_vis", "g_ir", "g_vis",
    "s2_total", "s2_fusion", "s2_common", "s2_ms_ssim", "s2_rec_mse", "seconds",
)  # fmt: skip
#: Log columns holding integers (the rest are floats).
INT_COLUMNS: frozenset[str] = frozenset({"step", "epoch"})
#: Settings a resumed run must share with the run it continues.
RESUME_FIXED: tuple[str, ...] = ("crop", "batch_size", "seed", "lr")
#: Settings a resumed run must also share, with the value a state written before
#: they were recorded stands for (runs before ``--ssim`` used the standard MS-SSIM).
RESUME_DEFAULTS: dict[str, Any] = {"ssim": "standard"}


def output_paths(out: str | os.PathLike[str]) -> dict[str, Path]:
    """The files of a run, derived from the checkpoint path."""
    p = Path(out)
    stem = p.with_suffix("") if p.suffix else p
    return {
        "checkpoint": p, "state": Path(f"{stem}.train.pt"), "log": Path(f"{stem}.log.csv"),
        "plot": Path(f"{stem}.loss.png"), "metadata": Path(f"{stem}.train.json"),
    }  # fmt: skip


def check_outputs(
    paths: Mapping[str, Path], inputs: Iterable[str | os.PathLike[str]] = (),
    folders: Iterable[str | os.PathLike[str]] = (),
) -> None:
    """Check, before any work, that a run's files can be written.

    The one rule of :func:`napari_gifnet.util.safe_files.check_output_set`,
    with ``inputs`` the training images, the ``--init`` checkpoint and the
    DenseNet-121 weights, and ``folders`` the training folder's ``first/`` and
    ``second/``; the checkpoint's folder, if missing, is created with the
    first checkpoint.

    Raises
    ------
    ValueError
        Naming the path and the problem.
    """
    checkpoint = paths["checkpoint"]
    if checkpoint.is_dir():
        raise ValueError(f"cannot write the checkpoint {checkpoint}: it is an existing "
                         "directory (name a file, e.g. DIR/run.pth)")  # fmt: skip
    labels = {key: "the checkpoint" if key == "checkpoint" else f"the run's {key} file"
              for key in paths}  # fmt: skip
    check_output_set({labels[key]: path for key, path in paths.items()}, inputs, folders)


def _save_atomically(obj: Any, path: Path) -> None:
    with atomic_write(path) as fh:
        torch.save(obj, fh)


def save_checkpoint(model: torch.nn.Module, path: Path) -> None:
    """Write the weights as a plain, contiguous CPU ``state_dict`` (atomically)."""
    state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    _save_atomically(state, path)


def save_state(path: Path, optimizer: torch.optim.Optimizer, step: int,
               config: Mapping[str, Any]) -> None:  # fmt: skip
    """Write the resume state: optimiser state, step, the settings of :data:`RESUME_FIXED`
    and :data:`RESUME_DEFAULTS`."""
    kept = (*RESUME_FIXED, *RESUME_DEFAULTS)
    _save_atomically({"optimizer": optimizer.state_dict(), "step": int(step),
                      "config": {k: config[k] for k in kept}}, path)  # fmt: skip


def load_state(path: Path) -> dict[str, Any]:
    """Read and check a resume state written by :func:`save_state`.

    Returns
    -------
    dict
        ``optimizer`` (an optimiser ``state_dict``), ``step`` (int) and
        ``config`` (the settings of :data:`RESUME_FIXED` and :data:`RESUME_DEFAULTS`,
        the latter's defaults where an older state lacks them).

    Raises
    ------
    ValueError
        If it cannot be read (missing, corrupt or truncated) or is not a
        training state (e.g. a copy of the weights); the message names the
        file. :func:`~napari_gifnet.training.loop.train` checks first that
        the state and the checkpoint exist (FileNotFoundError).
    """
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle, zip, EOF and weights_only errors alike
        raise ValueError(
            f"cannot resume: {path} is not a readable training state (corrupt, truncated or "
            f"another kind of file; {_load_error(exc)})"
        ) from None
    problem = _state_problem(obj)
    if problem:
        raise ValueError(f"cannot resume: {path} is not a training state written by "
                         f"napari-gifnet train ({problem})")  # fmt: skip
    config = {**RESUME_DEFAULTS, **obj["config"]}
    return {"optimizer": obj["optimizer"], "step": int(obj["step"]), "config": config}


def _load_error(exc: Exception) -> str:
    """The gist of a ``torch.load`` error (without torch's advice on ``weights_only``)."""
    text = str(exc)
    marker = "WeightsUnpickler error:"
    if marker in text:  # the reason follows torch's generic advice
        text = text.split(marker, 1)[1]
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    first = lines[0].split(". ")[0][:160] if lines else ""
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


def _state_problem(obj: object) -> str:
    """What is wrong with a loaded resume state ("" if nothing)."""
    if not isinstance(obj, Mapping):
        return f"it holds a {type(obj).__name__}, not a dictionary"
    if obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        return "it holds network weights, like the .pth checkpoint, not the optimiser state"
    missing = [k for k in ("optimizer", "step", "config") if k not in obj]
    if missing:
        return f"no {', '.join(repr(k) for k in missing)} entry"
    opt, step, config = obj["optimizer"], obj["step"], obj["config"]
    if not (isinstance(opt, Mapping) and "state" in opt and "param_groups" in opt):
        return "its 'optimizer' entry is not an optimiser state"
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        return f"its step {step!r} is not a non-negative integer"
    if not isinstance(config, Mapping) or any(k not in config for k in RESUME_FIXED):
        return f"its 'config' entry lacks some of {', '.join(RESUME_FIXED)}"
    return ""


def read_log(path: Path, upto: int) -> list[dict[str, float]]:
    """The rows of a CSV log up to step ``upto`` (``step``/``epoch`` as ints).

    Raises
    ------
    ValueError
        If the file is not a training log (names the file and the problem).
    """
    if not path.is_file():
        return []
    rows: list[dict[str, float]] = []
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        missing = [k for k in LOG_COLUMNS if k not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"cannot resume: the log {path} lacks the column(s) {', '.join(missing)}")
        for line, row in enumerate(reader, start=2):
            try:
                parsed = {k: int(row[k]) if k in INT_COLUMNS else float(row[k]) for k in LOG_COLUMNS}
            except (TypeError, ValueError):
                raise ValueError(f"cannot resume: line {line} of the log {path} is not a row "
                                 "of numbers") from None  # fmt: skip
            if parsed["step"] <= upto:
                rows.append(parsed)
    return rows


def write_log(path: Path, rows: list[dict[str, float]]) -> None:
    """Write a CSV log: ``step``/``epoch`` as integers, floats in full precision (atomically)."""
    text = io.StringIO(newline="")
    writer = csv.DictWriter(text, fieldnames=LOG_COLUMNS)
    writer.writeheader()
    for r in rows:
        writer.writerow({k: int(r[k]) if k in INT_COLUMNS else repr(float(r[k]))
                         for k in LOG_COLUMNS})  # fmt: skip
    atomic_write_text(path, text.getvalue())


def plot_log(rows: list[dict[str, float]], path: Path) -> Path:
    """Plot the loss curves of a log to a PNG file.

    Uses a bare :class:`matplotlib.figure.Figure` (no pyplot): safe in a worker
    thread, and it leaves the backend and the figures of the process (napari's,
    a notebook's) alone.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    steps = [r["step"] for r in rows]
    fig = Figure(figsize=(8, 4.5), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for key, label in (("total", "total (both steps)"), ("s1_fusion", "step 1: weighted MSE"),
                       ("s1_common", "step 1: common (1 - MS-SSIM + MSE)"),
                       ("s2_fusion", "step 2: MSE to the reference"),
                       ("s2_common", "step 2: common")):  # fmt: skip
        ax.plot(steps, [r[key] for r in rows], label=label, lw=1.2)
    ax.set_yscale("log")
    ax.set_xlabel("step (batch; two optimiser steps each)")
    ax.set_ylabel("loss")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_write(path) as fh:
        fig.savefig(fh, format="png")
    return path
