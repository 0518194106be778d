"""Planes per second when fusing a stack of one size: a Z/T layer pair plane by plane.

Fuses two ``--planes`` x ``--size`` x ``--size`` uint16 stacks the way an nD
layer pair is fused in napari (:func:`napari_gifnet.plugin.layer_fusion.iter_fusion`,
one normalisation range per layer, the model loaded once), and prints the
planes per second, the time of the first plane against the others (what a
plane costs beyond the network: preparation, planning, the range pass), the
page faults and system time per later plane (the heap is kept across the
planes, so they should be near zero) and the peak resident memory.

    python benchmarks/bench_stack_throughput.py                  # 20 x 1024 x 1024
    python benchmarks/bench_stack_throughput.py --planes 20 --size 256

Shared machines are noisy: compare within one run.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import numpy as np

from napari_gifnet.plugin.fusion_plan import prepare_fusion
from napari_gifnet.plugin.layer_fusion import iter_fusion


def _stacks(planes: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    base = rng.random((size // 8 + 1, size // 8 + 1))
    scene = np.kron(base, np.ones((8, 8)))[:size, :size]
    fade = np.linspace(1.0, 0.4, planes)[:, None, None]
    a = (3000 * scene[None] * fade + 100).astype(np.uint16)
    b = (3000 * np.clip(1 - scene[None] + 0.05 * rng.standard_normal((planes, size, size)), 0, 1)
         * fade + 100).astype(np.uint16)  # fmt: skip
    return a, b


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--planes", type=int, default=20)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--weights", default=None)
    args = parser.parse_args()
    from napari.components import ViewerModel

    a, b = _stacks(args.planes, args.size)
    viewer = ViewerModel()
    viewer.add_image(a, name="a")
    viewer.add_image(b, name="b")
    plan = prepare_fusion(viewer.layers["a"], viewer.layers["b"])
    marks: list[float] = []
    usage: list[resource.struct_rusage] = []
    start = time.perf_counter()
    gen = iter_fusion(plan, weights=args.weights, device=args.device)
    try:
        while True:
            next(gen)
            marks.append(time.perf_counter())
            usage.append(resource.getrusage(resource.RUSAGE_SELF))
    except StopIteration as stop:
        output = stop.value
    total = time.perf_counter() - start
    per_plane = np.diff(marks)
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    print(f"{args.planes} planes of {args.size} x {args.size} on {output.device}: {total:.1f} s, "
          f"{args.planes / total:.3f} planes/s ({args.planes * args.size**2 / 1e6 / total:.3f} MP/s)")
    print(f"first plane (with the model load and the range pass) {marks[0] - start:.2f} s; "
          f"the others {per_plane.mean():.2f} s each (min {per_plane.min():.2f}, "
          f"max {per_plane.max():.2f}); scope {output.metadata['normalization_scope']}; "
          f"peak resident memory {peak_gb:.2f} GB")
    if len(usage) > 1:
        later = len(usage) - 1
        faults = (usage[-1].ru_minflt - usage[0].ru_minflt) / later
        system = (usage[-1].ru_stime - usage[0].ru_stime) / later
        print(f"after the first plane, per plane: {faults:.0f} page faults, "
              f"{system:.2f} s of system time")


if __name__ == "__main__":
    main()
