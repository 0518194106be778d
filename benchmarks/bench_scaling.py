"""Time and peak memory of a fusion against image size, per storage mode.

Each run is a fresh subprocess fusing a generated pair (a scikit-image photo
resized to the size, and a blurred, contrast-changed copy) on the CPU:

    python benchmarks/bench_scaling.py --sizes 0.25 1 4 --storage memory disk

Prints a Markdown table (megapixels, side, storage, time, peak resident
memory, megapixels per second).
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys

_CHILD = r"""
import json, resource, sys, time
import numpy as np
from skimage import data, filters, transform
from napari_gifnet import fuse
side, storage, weights = int(sys.argv[1]), sys.argv[2], sys.argv[3]
base = transform.resize(data.camera() / 255.0, (side, side), order=1).astype(np.float32)
a = base
b = np.clip(filters.gaussian(base, 2.0) * 0.7 + 0.2, 0, 1).astype(np.float32)
fuse(a[:16, :16], b[:16, :16], weights=weights or None, device="cpu")
t = time.perf_counter()
fuse(a, b, weights=weights or None, device="cpu", storage=storage)
dt = time.perf_counter() - t
print(json.dumps({"time": dt, "peak_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2}))
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="*", type=float, default=[0.25, 1, 4, 16, 64],
                        help="megapixels (square images)")
    parser.add_argument("--storage", nargs="*", default=["memory", "disk"])
    parser.add_argument("--weights", default="")
    args = parser.parse_args()
    print("| MP | side | storage | time (s) | peak RSS (GB) | MP/s |")
    print("| --- | --- | --- | --- | --- | --- |")
    for mp in args.sizes:
        side = int(round(math.sqrt(mp * 1e6)))
        for storage in args.storage:
            out = subprocess.run([sys.executable, "-c", _CHILD, str(side), storage, args.weights],
                                 capture_output=True, text=True, check=False)
            if out.returncode != 0:
                print(f"| {mp:g} | {side} | {storage} | failed: "
                      f"{(out.stderr.strip().splitlines() or ['?'])[-1]} | | |")
                continue
            r = json.loads(out.stdout.strip().splitlines()[-1])
            print(f"| {mp:g} | {side} | {storage} | {r['time']:.1f} | {r['peak_gb']:.2f} | "
                  f"{side * side / 1e6 / r['time']:.3f} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
