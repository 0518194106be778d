"""Score the focus-stack methods against ground truth and update docs/stacks.md.

Usage (from the repository root)::

    GIFNET_WEIGHTS=../shared/reference/weights/gifnet-official.pth \\
        PYTHONPATH=src python benchmarks/evaluate_stacks.py --device cpu

Stacks are rendered from an all-in-focus grey image and a depth map with
:func:`napari_gifnet.data.synthetic.defocus` (Gaussian blur of sigma ``max_sigma`` x
|nearness - focus|): three scenes from bundled scikit-image images (central
square, ``--size`` pixels) with a smooth random nearness (Gaussian-filtered
noise scaled to [0, 1]) and the motorcycle focus stack of
:func:`napari_gifnet.data.synthetic.focus_stack` (its stereo disparity as nearness).
Plane ``i`` focuses nearness ``focus_i`` (evenly spaced); the true depth
index of a pixel is the plane whose focus is nearest its nearness.

Per method: PSNR and SSIM of the fused luma against the truth (0-255 scale,
:mod:`napari_gifnet.metrics.fusion`), the depth map's mean absolute index error
(MAE, in planes) and the fraction of pixels with the exact index. The table
replaces the part of ``docs/stacks.md`` between the ``benchmark`` markers.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from napari_gifnet import __version__
from napari_gifnet.data import synthetic as samples
from napari_gifnet.metrics.fusion import psnr, ssim
from napari_gifnet.workflows.focus_stack import fuse_stack

#: (label, method, strategy, select)
CONFIGS = [
    ("focus selection", "focus", "tree", False),
    ("GIFNet, sequential", "gifnet", "sequential", False),
    ("GIFNet, tree", "gifnet", "tree", False),
    ("GIFNet, tree + select", "gifnet", "tree", True),
    ("Laplacian, sequential", "laplacian", "sequential", False),
    ("Laplacian, tree", "laplacian", "tree", False),
    ("Laplacian, tree + select", "laplacian", "tree", True),
    ("DWT, tree", "dwt", "tree", False),
    ("Guided, tree", "guided", "tree", False),
    ("Mertens, tree", "mertens", "tree", False),
    ("Mean, tree", "mean", "tree", False),
    ("Max, tree", "max", "tree", False),
]
SOURCES = ("camera", "astronaut", "chelsea")
START, END = "<!-- benchmark:start -->", "<!-- benchmark:end -->"


def render(grey: np.ndarray, nearness: np.ndarray, planes: int, max_sigma: float):
    """(stack uint8 (Z, H, W), truth uint8, true depth index) from an image and its nearness."""
    focus = np.linspace(float(nearness.min()), float(nearness.max()), planes)
    stack = np.stack(
        [samples._u8(samples.defocus(grey, nearness, float(f), max_sigma)) for f in focus]
    )
    depth = np.argmin(np.abs(nearness[None] - focus[:, None, None]), axis=0)
    return stack, samples._u8(grey), depth


def scenes(size: int, planes: int, max_sigma: float, seed: int = 0):
    from scipy import ndimage as ndi

    from napari_gifnet.metrics.evaluation import scene_grey

    rng = np.random.default_rng(seed)
    for source in SOURCES:
        grey = scene_grey(source, size)
        noise = ndi.gaussian_filter(rng.normal(size=grey.shape), size / 8, mode="reflect")
        nearness = (noise - noise.min()) / (noise.max() - noise.min())
        yield source, *render(grey, nearness, planes, max_sigma)
    moto = samples.focus_stack(size=size, planes=planes, max_sigma=max_sigma)
    grey = moto.data("all-in-focus truth")
    near, focus = moto.extras["nearness"], moto.extras["focus"]
    depth = np.argmin(np.abs(near[None] - focus[:, None, None]), axis=0)
    yield "motorcycle", moto.data("focus stack"), grey, depth


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--planes", type=int, default=6)
    parser.add_argument("--max-sigma", type=float, default=4.0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--doc", default=str(ROOT / "docs" / "stacks.md"))
    args = parser.parse_args()
    import torch

    t0 = time.perf_counter()
    rows: dict[str, list[tuple[float, float, float, float, float]]] = {c[0]: [] for c in CONFIGS}
    names = []
    for name, stack, truth, depth in scenes(args.size, args.planes, args.max_sigma):
        names.append(f"{name} ({stack.shape[1]} x {stack.shape[2]})")
        for label, method, strategy, select in CONFIGS:
            start = time.perf_counter()
            r = fuse_stack(stack, method=method, strategy=strategy, select=select,
                           device=args.device)
            seconds = time.perf_counter() - start
            err = np.abs(r.depth_map - depth)
            rows[label].append(
                (psnr(r.luma, truth), ssim(r.luma, truth), float(err.mean()),
                 float((err == 0).mean()), seconds)
            )
            print(f"{name:12s} {label:26s} PSNR {rows[label][-1][0]:.2f} "
                  f"depth MAE {rows[label][-1][2]:.3f} {seconds:.1f} s", file=sys.stderr)
    means = {k: np.mean(v, axis=0) for k, v in rows.items()}
    best_psnr = max(means, key=lambda k: means[k][0])
    lines = [
        START,
        "",
        f"Generated by `benchmarks/evaluate_stacks.py` (napari-gifnet {__version__}, device "
        f"{args.device}, torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"{platform.machine()}; whole run {time.perf_counter() - t0:.0f} s): "
        f"{len(names)} stacks of {args.planes} planes, max sigma {args.max_sigma} px: "
        + ", ".join(names) + ".",
        "",
        (
            "Mean over the stacks (PSNR in dB and SSIM of the fused luma against the "
            "all-in-focus truth; depth MAE in planes, exact = fraction of pixels with the true "
            "index; time per stack in s, not comparable across machines):"
        ),
        "",
        "| method | PSNR | SSIM | depth MAE | depth exact | time_s |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for label, m in means.items():
        cells = [f"{m[0]:.2f}", f"{m[1]:.4f}", f"{m[2]:.3f}", f"{m[3]:.3f}", f"{m[4]:.2f}"]
        if label == best_psnr:
            cells[0] = f"**{cells[0]}**"
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines += ["", "Per stack, PSNR (dB) / depth MAE:", ""]
    lines += ["| method | " + " | ".join(names) + " |", "| --- |" + " --- |" * len(names)]
    for label, values in rows.items():
        lines.append(f"| {label} | " + " | ".join(f"{v[0]:.2f} / {v[2]:.3f}" for v in values)
                     + " |")
    lines += ["", f"Best mean PSNR: **{best_psnr}**.", "", END]
    doc = Path(args.doc)
    text = doc.read_text(encoding="utf-8") if doc.exists() else f"# Focus stacks\n\n{START}\n{END}\n"
    if START not in text:
        text += f"\n{START}\n{END}\n"
    head, rest = text.split(START, 1)
    tail = rest.split(END, 1)[1]
    doc.write_text(head + "\n".join(lines) + tail, encoding="utf-8")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
