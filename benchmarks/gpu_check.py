"""One prepared run that proves the GPU path: parity, speed per precision, memory, retries.

Meant for a machine with an H100/H200 that receives only the checkout: it
runs from the source tree (``src/`` is put on ``sys.path``) and needs only
torch and numpy (the engine's own needs). Pure-Python wheels the engine
imports but such a machine may lack (lazy-loader) are taken from
``local/wheels/*.whl`` when present (wheels are importable as zip files):

    pip download --no-deps -d local/wheels lazy-loader        # once, here
    mkdir -p local/reference/weights local/reference/official
    cp ../shared/reference/weights/gifnet-official.pth local/reference/weights/
    cp ../shared/reference/official/*.npz local/reference/official/
    python benchmarks/gpu_check.py                          # there (carry: local)

It prints, as Markdown tables for docs/scaling.md:

1. parity on the reference cases in float32 with TF32 off (max |fused -
   published| per case; the promise is <= 1e-4);
2. megapixels per second at each size (default 1, 4, 16, 64 MP) for each
   precision (float32, tf32, bfloat16, float16), the peak GPU memory and the
   tile size the engine chose, and each precision's max |difference| from
   float32 on the reference cases;
3. a stack of ``--stack`` planes fused plane by plane and in batches sized
   from the free memory (:mod:`napari_gifnet.engine.batch`): planes per
   second, and the largest difference between the two;
4. a forced CUDA out-of-memory retry (``torch.cuda.set_per_process_memory_fraction``
   caps the process at ``--cap`` of the GPU with tiles too large for it):
   the retries and the storage that finally fit, and that the values did
   not change.

``--device cpu --sizes 0.02 --cases Medical --stack 4,64`` runs the same code on the CPU in
about a minute (how it is tested where no GPU is lent); the retry step needs CUDA.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for wheel in sorted((ROOT / "local" / "wheels").glob("*.whl")):
    sys.path.insert(0, str(wheel))
sys.path.insert(0, str(ROOT / "src"))

try:
    import lazy_loader  # noqa: F401 - the package's __init__ needs it
except ImportError:  # pragma: no cover - only on a bare machine
    sys.exit("gpu_check: lazy-loader is missing: run `pip download --no-deps -d local/wheels "
             "lazy-loader` in the checkout and carry local/")

import numpy as np
import torch

from napari_gifnet.engine.batch import batch_size, fuse_planes
from napari_gifnet.engine.fusion import fuse
from napari_gifnet.engine.precision import PRECISIONS

CASES = ["IVIF", "MEIF", "MFIF", "Medical", "NIR-VIS",
         "Remote-band1", "Remote-band2", "Remote-band3", "Remote-band4"]  # fmt: skip


def _reference(path: str | None) -> Path:
    for candidate in ([Path(path)] if path else []) + [ROOT / "local" / "reference",
                                                       ROOT.parent / "shared" / "reference"]:
        if (candidate / "official").is_dir():
            return candidate
    sys.exit("gpu_check: no reference folder (local/reference or ../shared/reference)")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def parity(ref: Path, weights: Path, device: torch.device, cases: list[str]) -> dict:
    """float32 (TF32 off) fusions of the reference cases, and each case's lumas."""
    rows, lumas = [], {}
    for case in cases:
        data = np.load(ref / "official" / f"{case}.npz")
        result = fuse(data["input_a"], data["input_b"], weights=weights, device=str(device))
        diff = float(np.abs(result.luma - data["fused_luma"]).max())
        rows.append((case, data["input_a"].shape, diff))
        lumas[case] = (data["input_a"], data["input_b"], result.luma)
    print("\n### Parity, float32 with TF32 off\n")
    print("| case | size | max abs diff to the published output |\n| --- | --- | --- |")
    for case, shape, diff in rows:
        print(f"| {case} | {shape[0]} x {shape[1]} | {diff:.2e} |")
    worst = max(d for *_, d in rows)
    print(f"\nworst {worst:.2e}: {'PASS' if worst <= 1e-4 else 'FAIL'} (bound 1e-4)")
    return lumas


def _pair(megapixels: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    side = max(16, int(round((megapixels * 1e6) ** 0.5)))
    rng = np.random.default_rng(seed)
    base = rng.random((side // 8 + 1, side // 8 + 1))
    smooth = np.kron(base, np.ones((8, 8)))[:side, :side]  # blocky, like a scene, not noise
    a = (255 * smooth).astype(np.uint8)
    b = (255 * np.clip(smooth + 0.1 * rng.standard_normal((side, side)), 0, 1)).astype(np.uint8)
    return a, b


def speed(weights: Path, device: torch.device, sizes: list[float], lumas: dict,
          precisions: list[str]) -> None:
    print("\n### Speed and memory by precision\n")
    print("| precision | size (MP) | MP/s | time (s) | peak GPU memory (GB) | tile | "
          "max abs diff to float32 (reference cases) |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for precision in precisions:
        diffs = [float(np.abs(fuse(a, b, weights=weights, device=str(device),
                                   precision=precision).luma - exact).max())
                 for a, b, exact in lumas.values()]  # fmt: skip
        diff = f"{max(diffs):.2e}" if diffs else "n/a"
        for mp in sizes:
            a, b = _pair(mp)
            fuse(a[:64, :64], b[:64, :64], weights=weights, device=str(device))  # warm up
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            _sync(device)
            start = time.perf_counter()
            result = fuse(a, b, weights=weights, device=str(device), precision=precision)
            _sync(device)
            elapsed = time.perf_counter() - start
            peak = torch.cuda.max_memory_allocated(device) / 1e9 if device.type == "cuda" else 0.0
            tile = "x".join(str(v) for v in result.metadata["tile_shape"])
            print(f"| {precision} | {a.size / 1e6:.3g} | {a.size / 1e6 / elapsed:.3g} | "
                  f"{elapsed:.2f} | {peak:.2f} | {tile} ({result.metadata['storage']}) | {diff} |")


def stack_batches(weights: Path, device: torch.device, planes: int, side: int) -> None:
    print("\n### A stack of planes of one size, batched\n")
    rng = np.random.default_rng(2)
    a, b = _pair(side * side / 1e6, seed=2)
    shifts = rng.integers(0, side, planes)
    sa = np.stack([np.roll(a, int(s), axis=1) for s in shifts])
    sb = np.stack([np.roll(b, int(s), axis=1) for s in shifts])
    size = batch_size(side, side, planes, device)
    rows = []
    for label, batch in (("plane by plane", 1), (f"batches of {size} (from free memory)", None)):
        fuse_planes(sa[:2], sb[:2], weights=weights, device=str(device), batch=batch)  # warm up
        _sync(device)
        start = time.perf_counter()
        results = fuse_planes(sa, sb, weights=weights, device=str(device), batch=batch)
        _sync(device)
        rows.append((label, time.perf_counter() - start, np.stack([r.luma for r in results])))
    print(f"| {planes} planes of {side} x {side} | time (s) | planes/s | MP/s |\n| --- | --- | --- | --- |")
    for label, elapsed, _ in rows:
        print(f"| {label} | {elapsed:.2f} | {planes / elapsed:.3g} | "
              f"{planes * side * side / 1e6 / elapsed:.3g} |")
    print(f"\nmax abs diff, batched vs plane by plane: {np.abs(rows[0][2] - rows[1][2]).max():.2e}")


def forced_retry(weights: Path, device: torch.device, cap: float) -> None:
    print("\n### Out-of-memory retry, forced\n")
    if device.type != "cuda":
        print("(needs CUDA: skipped)")
        return
    a, b = _pair(4.0, seed=1)
    exact = fuse(a, b, weights=weights, device=str(device)).luma
    torch.cuda.empty_cache()
    torch.cuda.set_per_process_memory_fraction(cap, device)
    try:
        result = fuse(a, b, weights=weights, device=str(device), tile_size=a.shape[0])
        meta = result.metadata
        print(f"cap {cap:.3f} of the GPU: {meta['out_of_memory_retries']} retries, finally "
              f"{meta['storage']!r} in {meta['tile_shape']} tiles; max abs diff to the "
              f"uncapped result {np.abs(result.luma - exact).max():.2e}")
    except MemoryError as exc:
        print(f"cap {cap:.3f}: no retry fitted: {exc}")
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0, device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--reference", default=None, help="folder with weights/ and official/")
    parser.add_argument("--sizes", default="1,4,16,64", help="megapixels (comma-separated)")
    parser.add_argument("--cases", default=",".join(CASES),
                        help="reference cases to use (comma-separated names; default all nine)")
    parser.add_argument("--precisions", default=",".join(PRECISIONS),
                        help="precisions to time (default all)")
    parser.add_argument("--cap", type=float, default=0.02, help="memory fraction for the retry")
    parser.add_argument("--stack", default="32,1024", help="planes,side of the batched stack")
    args = parser.parse_args()
    device = torch.device(args.device)
    ref = _reference(args.reference)
    weights = ref / "weights" / "gifnet-official.pth"
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"## GPU check: {name}, torch {torch.__version__}, reference {ref}")
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    lumas = parity(ref, weights, device, [c for c in args.cases.split(",") if c])
    speed(weights, device, [float(s) for s in args.sizes.split(",")], lumas,
          [p for p in args.precisions.split(",") if p])
    planes, side = (int(v) for v in args.stack.split(","))
    stack_batches(weights, device, planes, side)
    forced_retry(weights, device, args.cap)


if __name__ == "__main__":
    main()
