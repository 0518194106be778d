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
from torch.utils._python_dispatch import TorchDispatchMode

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


def _attention_flops(query, key, value, *args, out_shape=None, **kwargs) -> int:
    """FLOPs of an attention call: torch's counter knows the CUDA kernels only."""
    from torch.utils.flop_counter import sdpa_flop_count

    return sdpa_flop_count(query, key, value)


def _accumulating_product_flops(self, a, b, *args, out_shape=None, **kwargs) -> int:
    """FLOPs of ``self.addmm_(a, b)``: torch's counter knows only ``addmm``."""
    return 2 * a[0] * a[1] * b[1]


def counter_mapping() -> dict:
    """What torch's FlopCounterMode is told to count beyond its own formulas."""
    return {
        torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: _attention_flops,
        torch.ops.aten.addmm_: _accumulating_product_flops,
    }


class OperationClasses(TorchDispatchMode):
    """Counts the FLOPs of each kind of operation the network runs."""

    def __init__(self) -> None:
        super().__init__()
        self.flops: dict[str, float] = {}

    def _add(self, kind: str, flops: float) -> None:
        self.flops[kind] = self.flops.get(kind, 0.0) + flops

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        name = func.overloadpacket.__name__
        if name in ("conv2d", "convolution"):
            weight = args[1]
            groups = args[6] if len(args) > 6 else kwargs.get("groups", 1)
            if name == "convolution":
                groups = args[8]
            kind = ("depthwise 5x5" if groups > 1 else
                    "3x3 convolutions" if weight.shape[-1] == 3 else "1x1 products")
            self._add(kind, 2 * weight[0].numel() * out.numel())
        elif name in ("mm", "addmm", "addmm_", "linear", "matmul"):
            a, b = (args[1], args[2]) if name.startswith("addmm") else (args[0], args[1])
            inner = a.shape[-1]
            self._add("1x1 products", 2 * inner * out.numel())
        elif name.startswith("scaled_dot_product") or name.startswith("_scaled_dot_product"):
            q, k = args[:2]
            self._add("attention", 2 * 2 * q.numel() * k.shape[-2])
        return out


def flops_per_pixel(weights: str | None, side: int = 128) -> tuple[float, float, dict[str, float]]:
    """The network's FLOPs per pixel, counted on a ``side`` x ``side`` input.

    Returns (what this engine's path runs, the published path's: the same
    plus the multimodal stream of block 1, whose output feeds nothing, by
    operation kind for this engine's path).
    """
    from torch.utils.flop_counter import FlopCounterMode

    model, _ = load_model(weights, device="cpu")
    x = torch.rand(1, 1, side, side)
    mapping = counter_mapping()
    with torch.inference_mode(), FlopCounterMode(display=False, custom_mapping=mapping) as counter:
        model(x, x)
    ours = counter.get_total_flops() / side**2
    block1 = model.branch.layer1.blocks[1]
    maps = torch.rand(1, 98, side, side)
    with torch.inference_mode(), FlopCounterMode(display=False, custom_mapping=mapping) as extra:
        block1(maps, "mm")
    with torch.inference_mode(), OperationClasses() as kinds:
        model(x, x)
    return ours, ours + extra.get_total_flops() / side**2, {
        k: v / side**2 for k, v in kinds.flops.items()
    }


def _best(fn, repeats: int = 5) -> float:
    fn()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def attainable_rates(rows: int = 256, cols: int = 520) -> dict[str, float]:
    """GFLOP/s this machine reaches on each kind of operation, alone, at a tile's size."""
    import torch.nn.functional as F

    c, px = 98, rows * cols
    x = torch.randn(1, c, rows, cols).contiguous(memory_format=torch.channels_last)
    w3, wd = torch.randn(c, c, 3, 3), torch.randn(c, 1, 5, 5)
    flat, w1 = torch.randn(px, c), torch.randn(c, 2 * c)
    out = torch.empty(4096, 2 * c)

    def products() -> None:
        for s in range(0, px, 4096):
            torch.mm(flat[s : s + 4096], w1, out=out[: min(4096, px - s)])

    q = torch.randn(px // 64, 2, 64, 49)
    bias = torch.randn(1, 2, 64, 64)
    with torch.inference_mode():
        return {
            "3x3 convolutions": 2 * 9 * c * c * px / _best(lambda: F.conv2d(x, w3, padding=1)) / 1e9,
            "1x1 products": 2 * c * 2 * c * px / _best(products) / 1e9,
            "depthwise 5x5": 2 * 25 * c * px / _best(lambda: F.conv2d(x, wd, padding=2, groups=c)) / 1e9,
            "attention": 2 * 2 * px * 64 * c
            / _best(lambda: F.scaled_dot_product_attention(q, q, q, attn_mask=bias)) / 1e9,
        }


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
    per_pixel, published, kinds = flops_per_pixel(args.weights)
    total = per_pixel * h * w
    print(f"network: {per_pixel / 1e6:.3f} MFLOP per pixel (counted, attention included), "
          f"{total / 1e12:.3f} TFLOP; the published path (which also runs block 1's "
          f"multimodal stream) {published / 1e6:.3f} MFLOP per pixel")
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
    print(f"against the published path's work ({published * h * w / 1e12:.3f} TFLOP at the same "
          f"rate): {min(times) / (published * h * w / (best_rate * 1e9)):.2f}x")
    rates = attainable_rates()
    print("\n| operation kind | MFLOP per pixel | share | GFLOP/s alone (this machine) | "
          "seconds at that rate |\n| --- | --- | --- | --- | --- |")
    attainable = 0.0
    for kind, flops in sorted(kinds.items(), key=lambda kv: -kv[1]):
        seconds = flops * h * w / (rates[kind] * 1e9)
        attainable += seconds
        print(f"| {kind} | {flops / 1e6:.3f} | {flops / per_pixel:.0%} | {rates[kind]:.0f} | "
              f"{seconds:.2f} |")
    print(f"\nattainable floor (each kind at its own best rate): {attainable:.2f} s = "
          f"{attainable / floor:.2f}x the matmul floor; best fusion / attainable floor: "
          f"{min(times) / attainable:.2f}x")
    if args.profile:
        from torch.profiler import ProfilerActivity, profile

        with profile(activities=[ProfilerActivity.CPU]) as prof:
            fuse(a, b, weights=args.weights, device="cpu")
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=12))


if __name__ == "__main__":
    main()
