"""Focus stacks that are noisy or hand-held: the default against the peers, on ground truth.

Usage (from the repository root; about 3 minutes on 2 CPU cores)::

    PYTHONPATH=src python benchmarks/bench_focus_stacks.py

Stacks: 6 planes of 256 x 256 px rendered like ``benchmarks/evaluate_stacks.py``
renders its smooth stacks (a scikit-image photograph, grey, with a smooth random
nearness; plane ``i`` focused at nearness ``i / 5``, Gaussian defocus of up to
4 px; :func:`evaluate_stacks.render`), in three conditions:

* **static**: as rendered (uint8);
* **noisy**: Gaussian noise of sigma 5 / 255 added to every plane (then uint8);
* **hand-held**: every plane but the middle one moved by 1 to 2 px in a random
  direction and turned by 3 degrees (either way) about its centre (cubic
  splines), then uint8.

Scenes: ``camera`` and ``astronaut`` are the ones the noisy-stack path and the
``align="auto"`` thresholds were tuned on; ``chelsea``, ``coffee`` and
``rocket`` were not (the report scenes).

Methods: the default (``fuse_stack(stack)``: focus selection, noise-aware, with
``align="auto"``); the previous default (``align=False``, selection by the
two-scale focus measure whatever the noise: :func:`previous_default`); the
project's guided fold (``method="guided"``, static and noisy stacks); and the
peers a user would pick instead, each in its own virtual environment, called in
a subprocess: focusweave (its Python API; ``no_align=True`` on registered
stacks, its own alignment on hand-held ones) and openfocus (its command line's
``run_cli`` in-process: ``stackmffv3``, its default network, and
``openfocus_c``, its Laplacian pyramid; ``--align openfocus`` on hand-held
stacks). A peer's python is ``$NAPARI_GIFNET_PEER_FOCUSWEAVE`` /
``$NAPARI_GIFNET_PEER_OPENFOCUS``, else ``/work/peers/<name>/bin/python``; an
absent peer is skipped with a note.

Scores: PSNR (dB) of the fused luma against the all-in-focus truth (0-255
scale), leaving out a 12 px border (the turned planes' corners hold no data
there; an output a peer's alignment cropped is placed at the integer offset
where it scores best and scored over the pixels it covers; a peer that aligns
to another reference plane than the middle one is scored in the middle
plane's frame all the same, as a user comparing with the scene would); the depth map's Spearman rank correlation with the true plane index
(the project's methods; the peers give none); time per stack as a ratio to the
default's in the same run (peers: timed in their process around the fusion,
imports excluded; openfocus's includes reading the plane files).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from evaluate_stacks import render  # noqa: E402
from peers import peer_python, run_driver  # noqa: E402

from napari_gifnet import __version__  # noqa: E402
from napari_gifnet.metrics.evaluation import scene_grey  # noqa: E402
from napari_gifnet.workflows.focus import (  # noqa: E402
    BestPlane,
    edge_focus,
    guarded_median,
)
from napari_gifnet.workflows.focus_stack import fuse_stack  # noqa: E402

TUNE, REPORT = ("camera", "astronaut"), ("chelsea", "coffee", "rocket")
CONDITIONS = ("static", "noisy", "hand-held")
NOISE = 5 / 255
BORDER = 12
CROP = 48  # a peer's aligned output may be this many pixels smaller (its crop)
DEFAULT, PREVIOUS, GUIDED = "default", "previous default", "guided fold"
FOCUSWEAVE, STACKMFF, OPENFOCUS_C = "focusweave", "openfocus stackmffv3", "openfocus openfocus_c"


# --------------------------------------------------------------------------- stacks
def scene(source: str, size: int, planes: int, seed: int = 0):
    """(uint8 stack, float truth in [0, 1], true plane index) of one smooth scene."""
    rng = np.random.default_rng(seed)
    grey = scene_grey(source, size)
    noise = ndi.gaussian_filter(rng.normal(size=grey.shape), size / 8, mode="reflect")
    nearness = (noise - noise.min()) / (noise.max() - noise.min())
    stack, truth, depth = render(grey, nearness, planes, 4.0)
    return stack, truth / 255.0, depth


def noisy(stack: np.ndarray, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(np.rint(stack + rng.normal(0.0, NOISE * 255, stack.shape)), 0, 255).astype(
        np.uint8
    )


def hand_held(stack: np.ndarray, seed: int, degrees: float = 3.0) -> np.ndarray:
    """Every plane but the middle one moved by 1-2 px and turned by +-``degrees``."""
    rng = np.random.default_rng(seed)
    out = []
    for i, plane in enumerate(stack.astype(np.float64)):
        if i != len(stack) // 2:
            angle, length = rng.uniform(0, 2 * np.pi), rng.uniform(1.0, 2.0)
            turn = np.deg2rad(rng.choice([-1.0, 1.0]) * degrees)
            rot = np.array([[np.cos(turn), -np.sin(turn)], [np.sin(turn), np.cos(turn)]])
            c = (np.array(plane.shape) - 1) / 2
            d = length * np.array([np.sin(angle), np.cos(angle)])
            plane = ndi.affine_transform(plane, rot, offset=c - rot @ (c + d), order=3,
                                         mode="reflect")  # fmt: skip
        out.append(plane)
    return np.clip(np.rint(np.stack(out)), 0, 255).astype(np.uint8)


def stacks(size: int, planes: int):
    """(scene, condition, uint8 stack, truth, depth) for every scene and condition."""
    for k, source in enumerate(TUNE + REPORT):
        stack, truth, depth = scene(source, size, planes)
        yield source, "static", stack, truth, depth
        yield source, "noisy", noisy(stack, 100 + k), truth, depth
        yield source, "hand-held", hand_held(stack, 200 + k), truth, depth


# --------------------------------------------------------------------------- methods
def previous_default(stack: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The default before issue 22 (no alignment; every stack selected by the two-scale
    focus measure, noisy or not): (fused luma, depth map)."""
    planes = stack.astype(np.float32) / 255.0
    best = BestPlane(planes.shape[1:])
    for i, plane in enumerate(planes):
        best.update(i, edge_focus(plane))
    depth = guarded_median(best.index, best.confidence(), planes=len(planes))
    return np.take_along_axis(planes, depth[None], axis=0)[0], depth


_FOCUSWEAVE_DRIVER = r"""
import json, sys, time
import numpy as np
from focusweave import FocusStackConfig, run
jobs = json.loads(sys.argv[1])
times = {}
for job in jobs:
    planes = [np.repeat(p[..., None], 3, axis=-1) for p in np.load(job["stack"])]
    t0 = time.perf_counter()
    result = run(FocusStackConfig(images=planes, no_align=not job["align"], keep_size=True))
    times[job["out"]] = time.perf_counter() - t0
    np.save(job["out"], result.image)
print(json.dumps(times))
"""

_OPENFOCUS_DRIVER = r"""
import contextlib, io, json, sys, time
from core.cli import run_cli
jobs = json.loads(sys.argv[1])
times = {}
for job in jobs:
    t0 = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        code = run_cli(["--input", *job["planes"], "--output", job["out"], "--method",
                        job["method"], "--align", job["align"], "--cpu", "--sort", "off"])
    times[job["out"]] = time.perf_counter() - t0 if code == 0 else None
print(json.dumps(times))
"""


def _luma(image: np.ndarray) -> np.ndarray:
    """Float luma in [0, 1] of a uint8/uint16 grey or RGB image."""
    x = np.asarray(image, dtype=np.float64) / (65535.0 if image.dtype == np.uint16 else 255.0)
    return x[..., :3] @ np.array([0.299, 0.587, 0.114]) if x.ndim == 3 else x


def run_focusweave(cases, work: Path) -> dict[int, tuple[np.ndarray, float]]:
    """{case index: (luma, seconds)}; {} when focusweave is absent or fails."""
    python = peer_python("focusweave")
    if python is None:
        print("note: focusweave not installed (/work/peers/focusweave); skipped", file=sys.stderr)
        return {}
    jobs = []
    for k, (_, condition, stack, *_rest) in enumerate(cases):
        np.save(work / f"fw_{k}.npy", stack)
        jobs.append({"stack": str(work / f"fw_{k}.npy"), "out": str(work / f"fw_{k}_out.npy"),
                     "align": condition == "hand-held"})  # fmt: skip
    times = run_driver(python, _FOCUSWEAVE_DRIVER, jobs, work, "focusweave")
    if times is None:
        return {}
    return {k: (_luma(np.load(j["out"])), times[j["out"]]) for k, j in enumerate(jobs)}


def run_openfocus(cases, work: Path, method: str) -> dict[int, tuple[np.ndarray, float]]:
    """{case index: (luma, seconds)} for one openfocus method; {} when absent."""
    from napari_gifnet.io.images import read_image, write_image

    python = peer_python("openfocus")
    if python is None:
        print("note: openfocus not installed (/work/peers/openfocus); skipped", file=sys.stderr)
        return {}
    jobs = []
    for k, (_, condition, stack, *_rest) in enumerate(cases):
        files = []
        for i, plane in enumerate(stack):
            path = work / f"of_{k}_{i}.png"
            if not path.exists():
                write_image(path, np.repeat(plane[..., None], 3, axis=-1))
            files.append(str(path))
        jobs.append({"planes": files, "out": str(work / f"of_{method}_{k}.png"), "method": method,
                     "align": "openfocus" if condition == "hand-held" else "none"})  # fmt: skip
    times = run_driver(python, _OPENFOCUS_DRIVER, jobs, work, f"openfocus {method}")
    if times is None:
        return {}
    return {k: (_luma(read_image(j["out"])), times[j["out"]])
            for k, j in enumerate(jobs) if times[j["out"]] is not None}  # fmt: skip


# --------------------------------------------------------------------------- scores
def psnr(luma: np.ndarray, truth: np.ndarray) -> float:
    """PSNR over the truth's pixels inside the border. An output cropped by a peer's
    alignment (smaller by up to ``CROP`` px) is placed at the integer offset where it
    scores best and scored over the pixels it covers there."""
    h, w = truth.shape
    dh, dw = h - luma.shape[0], w - luma.shape[1]
    if not (0 <= dh <= CROP and 0 <= dw <= CROP):
        return float("nan")
    x = np.asarray(luma, np.float64)
    best = -np.inf
    for y0 in range(dh + 1):
        for x0 in range(dw + 1):
            ty = slice(max(BORDER, y0), min(h - BORDER, y0 + x.shape[0]))
            tx = slice(max(BORDER, x0), min(w - BORDER, x0 + x.shape[1]))
            err = x[ty.start - y0 : ty.stop - y0, tx.start - x0 : tx.stop - x0] - truth[ty, tx]
            best = max(best, float(10 * np.log10(1.0 / max(np.mean(err**2), 1e-12))))
    return best


def spearman(depth_map: np.ndarray | None, depth: np.ndarray) -> float:
    from scipy.stats import spearmanr

    if depth_map is None:
        return float("nan")
    inner = np.s_[BORDER:-BORDER, BORDER:-BORDER]
    d, t = depth_map[inner].ravel(), depth[inner].ravel()
    return float(spearmanr(d, t).statistic) if d.std() > 0 else 0.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--planes", type=int, default=6)
    parser.add_argument("--no-peers", action="store_true")
    args = parser.parse_args()
    t_all = time.perf_counter()
    cases = list(stacks(args.size, args.planes))
    fuse_stack(cases[0][2][:, :64, :64])  # warm up (imports, caches) before timing
    # results[method][case index] = (psnr, rho, seconds)
    results: dict[str, dict[int, tuple[float, float, float]]] = {}
    decisions: dict[int, str] = {}
    for k, (source, condition, stack, truth, depth) in enumerate(cases):
        t0 = time.perf_counter()
        r = fuse_stack(stack)
        seconds = time.perf_counter() - t0
        results.setdefault(DEFAULT, {})[k] = (psnr(r.luma, truth), spearman(r.depth_map, depth),
                                              seconds)  # fmt: skip
        decisions[k] = r.metadata["alignment"] + (
            ", noise-aware" if "noisy" in (r.metadata.get("focus_rule") or "") else "")
        t0 = time.perf_counter()
        luma, depth_map = previous_default(stack)
        results.setdefault(PREVIOUS, {})[k] = (psnr(luma, truth), spearman(depth_map, depth),
                                               time.perf_counter() - t0)  # fmt: skip
        if condition != "hand-held":
            t0 = time.perf_counter()
            g = fuse_stack(stack, method="guided", align=False)
            results.setdefault(GUIDED, {})[k] = (psnr(g.luma, truth),
                                                 spearman(g.depth_map, depth),
                                                 time.perf_counter() - t0)  # fmt: skip
        print(f"{source:10s} {condition:9s} default {results[DEFAULT][k][0]:.2f} dB "
              f"({decisions[k]}, {seconds:.2f} s), previous {results[PREVIOUS][k][0]:.2f}",
              file=sys.stderr)  # fmt: skip
    if not args.no_peers:
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            peers = {FOCUSWEAVE: run_focusweave(cases, work),
                     STACKMFF: run_openfocus(cases, work, "stackmffv3"),
                     OPENFOCUS_C: run_openfocus(cases, work, "openfocus_c")}  # fmt: skip
        for name, out in peers.items():
            if out:
                results[name] = {k: (psnr(luma, cases[k][3]), float("nan"), s)
                                 for k, (luma, s) in out.items()}  # fmt: skip
    lines = [
        f"Generated by `benchmarks/bench_focus_stacks.py` (napari-gifnet {__version__}, "
        f"{platform.machine()} CPU, {os.cpu_count()} cores shared; whole run "
        f"{time.perf_counter() - t_all:.0f} s): {args.planes} planes of {args.size} x "
        f"{args.size} px, defocus up to 4 px; noise sigma 5 / 255; hand-held: 1-2 px shifts "
        "and 3 degree turns. PSNR (dB) of the luma against the truth (12 px border left "
        "out) / depth Spearman rho (- where a method gives no depth map); time per stack "
        "as a ratio to the default's in the same run.",
        "",
    ]
    for title, scenes in (("Report scenes (not tuned on): " + ", ".join(REPORT), REPORT),
                          ("Tune scenes: " + ", ".join(TUNE), TUNE)):  # fmt: skip
        lines += [f"**{title}** (mean over the scenes; time: per condition, as a ratio to "
                  "the default's)", "",
                  "| method | " + " | ".join(CONDITIONS) + " | "
                  + " | ".join(f"time, {c}" for c in CONDITIONS) + " |",
                  "| --- |" + " ---: |" * (2 * len(CONDITIONS))]  # fmt: skip
        chosen = [k for k, c in enumerate(cases) if c[0] in scenes]
        best = {}
        for condition in CONDITIONS:
            ks = [k for k in chosen if cases[k][1] == condition]
            best[condition] = max(
                (np.mean([results[m][k][0] for k in ks]) for m in results
                 if all(k in results[m] for k in ks)), default=np.nan)  # fmt: skip
        for method, per_case in results.items():
            cells = []
            for condition in CONDITIONS:
                ks = [k for k in chosen if cases[k][1] == condition]
                if not all(k in per_case for k in ks):
                    cells.append("-")
                    continue
                p = float(np.mean([per_case[k][0] for k in ks]))
                rho = float(np.mean([per_case[k][1] for k in ks]))
                cell = f"{p:.2f}" if np.isfinite(p) else "-"
                cell = f"**{cell}**" if np.isfinite(p) and p == best[condition] else cell
                cells.append(cell + (f" / {rho:.3f}" if np.isfinite(rho) else ""))
            for condition in CONDITIONS:
                ks = [k for k in chosen if cases[k][1] == condition and k in per_case]
                ratio = sum(per_case[k][2] for k in ks) / max(
                    sum(results[DEFAULT][k][2] for k in ks), 1e-9) if ks else np.nan
                cells.append("-" if np.isnan(ratio) else f"{ratio:.2f}")
            lines.append(f"| {method} | " + " | ".join(cells) + " |")
        seconds = {c: np.mean([results[DEFAULT][k][2] for k in chosen if cases[k][1] == c])
                   for c in CONDITIONS}  # fmt: skip
        lines += ["", "Default's decisions: " + "; ".join(
            f"{cases[k][0]} {cases[k][1]}: {decisions[k]}" for k in chosen) + ".",
            "Default's time per stack: " + ", ".join(
                f"{c} {v:.2f} s" for c, v in seconds.items()) + ".", ""]  # fmt: skip
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
