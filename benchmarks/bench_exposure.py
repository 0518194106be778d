"""Exposure fusion on brackets rendered from a radiance model, scored with MEF-SSIM.

Usage (from the repository root)::

    GIFNET_WEIGHTS=../shared/reference/weights/gifnet-official.pth OMP_NUM_THREADS=1 \\
        PYTHONPATH=src python benchmarks/bench_exposure.py [--size 256] [--no-gifnet]

Scenes: bundled scikit-image colour photographs (no downloads), resized to
``--size`` pixels on the long side. Each is linearised (inverse sRGB),
multiplied by a smooth illumination field spanning ``STOPS`` = 6 stops (a
diagonal ramp plus a blurred random field, fixed seed per scene) and scaled
so that the median radiance luminance is 0.18. A camera renders an exposure
``ev`` as ``round(255 * srgb(clip(radiance * 2^ev, 0, 1)))``: exposure time,
clipping, sRGB gamma, 8-bit quantisation. Pairs are EV -2 / +2 on six scenes,
stacks EV -2.5 / 0 / +2.5 on the first five. Nothing was tuned on these
scenes: every method runs with its defaults, and all scenes are reported.

Methods: the project's baselines (``fuse_with``) and GIFNet (``fuse``, the
published order: over-exposed first); ``fuse(..., task="meif")`` when the
task presets exist. Stacks (ordered over-exposed to under-exposed): the
project's ``fuse_stack(method=..., align=False)`` pair folds, the N-way
:func:`~napari_gifnet.methods.classical.mertens_fusion` and
:func:`~napari_gifnet.methods.classical.laplacian_fusion` of all planes
(``laplacian_fusion`` of the pair too), and
``fuse_stack``'s ``task="exposure"`` and plain defaults. OpenCV's
``MergeMertens`` (the peer, in its own virtual environment:
``NAPARI_GIFNET_PEER_OPENCV`` or ``/work/peers/opencv/bin/python``) gets the
same uint8 RGB images (RGB order, so its ``COLOR_RGB2GRAY`` grey is the
BT.601 luma), with its default exponents (contrast 1, saturation 1, exposure
**0**) and with the paper's (1, 1, 1).

Score: MEF-SSIM (:func:`napari_gifnet.metrics.mef_ssim`, Ma et al. 2015: 3
scales, and the single-scale score) of each result (clipped to [0, 1]) against
its exposures. Time: seconds per image, and as a ratio to the project method
with the best mean MEF-SSIM in the same run (OpenCV: its ``process`` call only).

Faithfulness: the project's ``mertens_fusion`` against OpenCV on the same
brackets with the same exponents, on 8-bit output ``round(255 * clip(x))``:
the largest difference in grey levels, the share of values more than one level
apart, and the largest float difference; plus the largest float difference to
OpenCV's own steps recomputed in float64 with OpenCV's ``Laplacian``,
``pyrDown`` and ``pyrUp`` (in the peer), which isolates float32 rounding as the
cause of what remains.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from peers import peer_python  # noqa: E402

from napari_gifnet import fuse, fuse_stack  # noqa: E402
from napari_gifnet.methods.classical import fuse_with, laplacian_fusion, mertens_fusion  # noqa: E402
from napari_gifnet.metrics import mef_ssim  # noqa: E402

PAIR_SCENES = (
    "astronaut",
    "coffee",
    "chelsea",
    "rocket",
    "immunohistochemistry",
    "hubble_deep_field",
)
STACK_SCENES = PAIR_SCENES[:5]
PAIR_EV = (2.0, -2.0)  # over-exposed first
STACK_EV = (2.5, 0.0, -2.5)
STOPS = 6.0
BASELINES = ("mertens", "laplacian", "guided", "mean", "dwt")
OPENCV_DEFAULT, OPENCV_PAPER = "OpenCV MergeMertens (default 1,1,0)", "OpenCV MergeMertens (1,1,1)"

PEER_SCRIPT = r"""
import json, sys, time
import numpy as np, cv2
cases = np.load(sys.argv[1])
out, times = {}, {}
def steps(images, dt, wexp):
    # MergeMertens's steps with OpenCV's own filters, in float32 (its rounding) or float64
    imgs = [x.astype(dt) * dt(1 / 255) for x in images]
    weights = []
    for f in imgs:
        grey = cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) if dt is np.float32 else f @ [0.299, 0.587, 0.114]
        w = np.abs(cv2.Laplacian(grey, cv2.CV_32F if dt is np.float32 else cv2.CV_64F))
        mean = ((f[..., 0] + f[..., 1]) + f[..., 2]) * dt(1 / 3)
        dev = [(f[..., c] - mean) ** 2 for c in range(3)]
        w = w * np.sqrt((dev[0] + dev[1]) + dev[2])
        w = w * np.prod(np.exp(-((f - dt(0.5)) ** 2) / dt(0.08)), axis=2) ** wexp
        weights.append((w + dt(1e-12)).astype(dt))
    total = sum(weights)
    levels = int(np.log2(min(imgs[0].shape[:2])))
    size = lambda a: (a.shape[1], a.shape[0])
    res = None
    for f, w in zip(imgs, weights):
        gi, gw = [f], [w / total]
        for _ in range(levels):
            gi.append(cv2.pyrDown(gi[-1]))
            gw.append(cv2.pyrDown(gw[-1]))
        lap = [gi[i] - cv2.pyrUp(gi[i + 1], dstsize=size(gi[i])) for i in range(levels)] + [gi[-1]]
        terms = [a * b[..., None] for a, b in zip(lap, gw)]
        res = terms if res is None else [a + b for a, b in zip(res, terms)]
    for i in range(levels, 0, -1):
        res[i - 1] = res[i - 1] + cv2.pyrUp(res[i], dstsize=size(res[i - 1]))
    return res[0]
for key in cases.files:
    images = [np.ascontiguousarray(x) for x in cases[key]]
    for name, ex in (("default", None), ("paper", (1.0, 1.0, 1.0))):
        merge = cv2.createMergeMertens() if ex is None else cv2.createMergeMertens(*ex)
        start = time.perf_counter()
        out[f"{key}/{name}"] = merge.process(images)
        times[f"{key}/{name}"] = time.perf_counter() - start
        wexp = merge.getExposureWeight()
        out[f"{key}/{name}/steps64"] = steps(images, np.float64, wexp)
        out[f"{key}/{name}/steps32"] = steps(images, np.float32, wexp)
np.savez(sys.argv[2], **out)
json.dump({"times": times, "version": cv2.__version__}, open(sys.argv[3], "w"))
"""


# --------------------------------------------------------------------------- scenes
def srgb_to_linear(v: np.ndarray) -> np.ndarray:
    return np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)


def linear_to_srgb(v: np.ndarray) -> np.ndarray:
    return np.where(v <= 0.0031308, 12.92 * v, 1.055 * np.power(v, 1 / 2.4) - 0.055)


def radiance(name: str, size: int, seed: int) -> np.ndarray:
    """A scene's linear radiance (H, W, 3) under a smooth illumination of STOPS stops."""
    from skimage import data
    from skimage.transform import resize

    img = getattr(data, name)()[..., :3].astype(np.float64) / 255.0
    scale = size / max(img.shape[:2])
    shape = (round(img.shape[0] * scale), round(img.shape[1] * scale))
    img = np.clip(resize(img, shape, anti_aliasing=True, order=1), 0, 1)
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    blob = ndimage.gaussian_filter(np.random.default_rng(seed).standard_normal(shape), size / 6)
    blob = (blob - blob.min()) / (np.ptp(blob) + 1e-12)
    field = 0.6 * (xx + (1 - yy)) / 2 + 0.4 * blob
    field = (field - field.min()) / (np.ptp(field) + 1e-12)
    rad = srgb_to_linear(img) * (2.0 ** (STOPS * (field - 0.5)))[..., None]
    luminance = rad @ np.array([0.2126, 0.7152, 0.0722])
    return rad * (0.18 / np.median(luminance))


def expose(rad: np.ndarray, ev: float) -> np.ndarray:
    """The camera: exposure time 2^ev, clipping, sRGB gamma, 8 bits."""
    return np.round(255 * linear_to_srgb(np.clip(rad * 2.0**ev, 0, 1))).astype(np.uint8)


# --------------------------------------------------------------------------- peers
def run_opencv(cases: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], dict[str, Any]] | None:
    python = peer_python("opencv")
    if python is None:
        print("note: OpenCV peer not found (/work/peers/opencv); its rows are left out",
              file=sys.stderr)
        return None
    with tempfile.TemporaryDirectory() as tmp:
        src, dst, meta = (Path(tmp) / n for n in ("in.npz", "out.npz", "meta.json"))
        np.savez(src, **cases)
        script = Path(tmp) / "peer.py"
        script.write_text(PEER_SCRIPT)
        subprocess.run([python, str(script), str(src), str(dst), str(meta)], check=True)
        with np.load(dst) as out:
            results = {k: out[k].astype(np.float64) for k in out.files}
        return results, json.loads(meta.read_text())


# --------------------------------------------------------------------------- scoring
def unit(x: np.ndarray) -> np.ndarray:
    return np.clip(np.asarray(x, dtype=np.float64), 0.0, 1.0)


def score(bracket: list[np.ndarray], fused: np.ndarray) -> tuple[float, float]:
    sources = [b / 255.0 for b in bracket]
    f = unit(fused)
    return mef_ssim(sources, f), mef_ssim(sources, f, scales=1)


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def eight_bit(x: np.ndarray) -> np.ndarray:
    return np.rint(unit(x) * 255.0)


def table(title: str, rows: dict[str, dict[str, Any]], scenes, project: set[str]) -> str:
    best = max((m for m in rows if m in project), key=lambda m: np.mean(rows[m]["ms"]))
    base_t = np.mean(rows[best]["t"])
    head = f"| method | MEF-SSIM | 1-scale Q | time (s) | time / {best} | " + " | ".join(scenes)
    lines = [f"### {title}", "", head + " |", "|" + " --- |" * (5 + len(scenes))]
    for m, r in sorted(rows.items(), key=lambda kv: -np.mean(kv[1]["ms"])):
        per = " | ".join(f"{v:.4f}" for v in r["ms"])
        lines.append(
            f"| {m} | **{np.mean(r['ms']):.4f}** | {np.mean(r['q1']):.4f} | {np.mean(r['t']):.3f} "
            f"| {np.mean(r['t']) / base_t:.2f} | {per} |"
        )
    lines.append("")
    lines.append(f"Best project method: **{best}** (MEF-SSIM {np.mean(rows[best]['ms']):.4f}).")
    return "\n".join(lines)


def add(rows, name, ms_q1, seconds):
    r = rows.setdefault(name, {"ms": [], "q1": [], "t": []})
    r["ms"].append(ms_q1[0])
    r["q1"].append(ms_q1[1])
    r["t"].append(seconds)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", type=int, default=256, help="long side of the scenes (pixels)")
    ap.add_argument("--no-gifnet", action="store_true", help="leave GIFNet out")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    gifnet = not args.no_gifnet
    kw = {"device": args.device}

    pairs = {
        s: [expose(radiance(s, args.size, i), ev) for ev in PAIR_EV]
        for i, s in enumerate(PAIR_SCENES)
    }
    stacks = {
        s: [expose(radiance(s, args.size, i), ev) for ev in STACK_EV]
        for i, s in enumerate(STACK_SCENES)
    }
    cases = {f"pair/{s}": np.stack(b) for s, b in pairs.items()}
    cases.update({f"stack/{s}": np.stack(b) for s, b in stacks.items()})
    peer = run_opencv(cases)

    pair_rows: dict[str, dict[str, Any]] = {}
    stack_rows: dict[str, dict[str, Any]] = {}
    project_pair, project_stack = set(), set()
    for s, (over, under) in pairs.items():
        for m in BASELINES:
            res, t = timed(lambda m=m: fuse_with(m, over, under).image)
            add(pair_rows, m, score([over, under], res), t)
            project_pair.add(m)
        res, t = timed(lambda: laplacian_fusion([over / 255.0, under / 255.0]))
        add(pair_rows, "laplacian_fusion", score([over, under], res), t)
        project_pair.add("laplacian_fusion")
        if gifnet:
            res, t = timed(lambda: fuse(over, under, **kw).image)
            add(pair_rows, "gifnet", score([over, under], res), t)
            project_pair.add("gifnet")
            try:
                res, t = timed(lambda: fuse(over, under, task="meif", **kw).image)
                add(pair_rows, 'fuse(task="meif")', score([over, under], res), t)
            except (TypeError, ValueError) as exc:  # task presets not there
                print(f"note: fuse(task='meif') skipped: {exc}", file=sys.stderr)
        if peer:
            for name, key in ((OPENCV_DEFAULT, "default"), (OPENCV_PAPER, "paper")):
                add(pair_rows, name, score([over, under], peer[0][f"pair/{s}/{key}"]),
                    peer[1]["times"][f"pair/{s}/{key}"])  # fmt: skip
        print(f"pair {s} done", file=sys.stderr)

    for s, planes in stacks.items():
        stack = np.stack(planes)
        methods = list(BASELINES) + (["gifnet"] if gifnet else [])
        for m in methods:
            res, t = timed(lambda m=m: fuse_stack(stack, method=m, align=False, **kw).image)
            add(stack_rows, f"fuse_stack {m}", score(planes, res), t)
            project_stack.add(f"fuse_stack {m}")
        for name, fn in (
            ("mertens_fusion", mertens_fusion),
            ("laplacian_fusion", laplacian_fusion),
        ):
            res, t = timed(lambda fn=fn: fn([p / 255.0 for p in planes]))
            add(stack_rows, f"{name} (N-way)", score(planes, res), t)
            project_stack.add(f"{name} (N-way)")
        for label, call in (
            ('fuse_stack(task="exposure")', lambda: fuse_stack(stack, task="exposure", **kw).image),
            ("fuse_stack default", lambda: fuse_stack(stack, **kw).image),
        ):
            try:
                res, t = timed(call)
                add(stack_rows, label, score(planes, res), t)
            except (TypeError, ValueError) as exc:
                print(f"note: {label} skipped: {exc}", file=sys.stderr)
        if peer:
            for name, key in ((OPENCV_DEFAULT, "default"), (OPENCV_PAPER, "paper")):
                add(stack_rows, name, score(planes, peer[0][f"stack/{s}/{key}"]),
                    peer[1]["times"][f"stack/{s}/{key}"])  # fmt: skip
        print(f"stack {s} done", file=sys.stderr)

    out = [
        f"## Exposure fusion benchmark ({args.size} px long side, MEF-SSIM of Ma et al. 2015)",
        "",
        table(f"Exposure pairs (EV {PAIR_EV[1]:+g} / {PAIR_EV[0]:+g}, {len(pairs)} scenes)",
              pair_rows, PAIR_SCENES, project_pair),
        "",
        table(f"Exposure stacks (EV {STACK_EV[2]:+g} / 0 / {STACK_EV[0]:+g}, {len(stacks)} scenes)",
              stack_rows, STACK_SCENES, project_stack),
    ]  # fmt: skip
    if peer:
        results, meta = peer
        lines = [
            "",
            f"### Project `mertens_fusion` vs OpenCV {meta['version']} `MergeMertens` (same uint8 RGB input)",
            "",
            "8-bit output: `round(255 * clip(x, 0, 1))`. *steps64*: OpenCV's steps recomputed in "
            "float64 with its own `Laplacian`, `pyrDown`, `pyrUp`; *steps32*: the same in float32 "
            "(the saturation's channel mean as OpenCV rounds it).",
            "",
            "| exponents | brackets | max diff (levels) | values > 1 level apart | max float diff "
            "| ours vs steps64 (float) | steps32 vs MergeMertens (levels) |",
            "| --- | --- | --- | --- | --- | --- | --- |",
        ]
        for label, key, ex in (
            ("1, 1, 1 (paper)", "paper", 1.0),
            ("1, 1, 0 (OpenCV default)", "default", 0.0),
        ):
            for kind in ("pair", "stack"):
                d8, far, dfl, d64, d32, n = 0.0, 0, 0.0, 0.0, 0.0, 0
                for k in (c for c in cases if c.startswith(kind)):
                    ours = mertens_fusion([x / 255.0 for x in cases[k]], exposure=ex)
                    theirs = results[f"{k}/{key}"]
                    diff8 = np.abs(eight_bit(ours) - eight_bit(theirs))
                    d8, far, n = max(d8, diff8.max()), far + int((diff8 > 1).sum()), n + diff8.size
                    dfl = max(dfl, float(np.abs(ours - theirs).max()))
                    d64 = max(d64, float(np.abs(ours - results[f"{k}/{key}/steps64"]).max()))
                    d32 = max(
                        d32,
                        np.abs(eight_bit(results[f"{k}/{key}/steps32"]) - eight_bit(theirs)).max(),
                    )
                lines.append(f"| {label} | {kind}s | {d8:.0f} | {far} of {n} ({100 * far / n:.3f} %) "
                             f"| {dfl:.4f} | {d64:.1e} | {d32:.0f} |")  # fmt: skip
        out += lines
    text = "\n".join(out)
    print(text)


if __name__ == "__main__":
    main()
