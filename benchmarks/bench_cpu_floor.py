"""How close the default CPU fusion is to its compute floor, measured in one run.

The floor is the network's floating-point work (counted, not assumed: torch's
FlopCounterMode on a crop, per pixel, times the image's pixels) at the best
float32 matrix-multiply rate this machine reaches in the same run (a
2048^3 matmul timed before, between and after the fusions, best of
``--matmuls`` each time). The default ``fuse()`` runs ``--runs`` times; the
script prints the best fusion time, the floor and their ratio, the peak
resident memory of the process and, with ``--profile``, the top operators.

    python benchmarks/bench_cpu_floor.py                 # IVIF 1024 x 1280
    python benchmarks/bench_cpu_floor.py --case MFIF --profile

Shared machines are noisy: compare ratios within one run, not across runs.
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
import torch

from napari_gifnet.engine.fusion import fuse
from napari_gifnet.model.weights import load_model

REFERENCE = ROOT.parent / "shared" / "reference" / "official"


def matmul_rate(repeats: int, n: int = 2048) -> float:
    """Best float32 GFLOP/s of an n^3 matrix product over ``repeats`` tries."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b  # warm up
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best / 1e9


def flops_per_pixel(weights: str | None, side: int = 128) -> float:
    """The network's FLOPs per pixel, counted on a ``side`` x ``side`` input."""
    from torch.utils.flop_counter import FlopCounterMode

    model, _ = load_model(weights, device="cpu")
    x = torch.rand(1, 1, side, side)
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        model(x, x)
    return counter.get_total_flops() / side**2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", default="IVIF", help="reference case (default IVIF)")
    parser.add_argument("--runs", type=int, default=2, help="fusions to time (default 2)")
    parser.add_argument("--matmuls", type=int, default=3, help="matmul tries per reading")
    parser.add_argument("--weights", default=None, help="checkpoint (default: the search)")
    parser.add_argument("--profile", action="store_true", help="also print the top operators")
    args = parser.parse_args()
    data = np.load(REFERENCE / f"{args.case}.npz")
    a, b = data["input_a"], data["input_b"]
    h, w = a.shape[:2]
    print(f"case {args.case}: {h} x {w} = {h * w / 1e6:.2f} MP, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads")
    per_pixel = flops_per_pixel(args.weights)
    total = per_pixel * h * w
    print(f"network: {per_pixel / 1e6:.3f} MFLOP per pixel (counted), {total / 1e12:.3f} TFLOP")
    rates = [matmul_rate(args.matmuls)]
    fuse(a[:64, :64], b[:64, :64], weights=args.weights, device="cpu")  # load, warm up
    times = []
    for _ in range(args.runs):
        start = time.perf_counter()
        fuse(a, b, weights=args.weights, device="cpu")
        times.append(time.perf_counter() - start)
        rates.append(matmul_rate(args.matmuls))
    best_rate = max(rates)
    floor = total / (best_rate * 1e9)
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    print(f"matmul readings (GFLOP/s): {', '.join(f'{r:.0f}' for r in rates)}")
    print(f"fusion times (s): {', '.join(f'{t:.2f}' for t in times)}")
    print(f"compute floor at {best_rate:.0f} GFLOP/s: {floor:.2f} s")
    print(f"best fusion / floor: {min(times) / floor:.2f}x; peak resident memory {peak_gb:.2f} GB")
    if args.profile:
        from torch.profiler import ProfilerActivity, profile

        with profile(activities=[ProfilerActivity.CPU]) as prof:
            fuse(a, b, weights=args.weights, device="cpu")
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=12))


if __name__ == "__main__":
    main()
