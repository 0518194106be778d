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
from scipy import ndimage
from skimage import data
from napari_gifnet import fuse
side, storage, weights = int(sys.argv[1]), sys.argv[2], sys.argv[3]
# uint8 inputs made without full-size float temporaries: the camera photo
# enlarged (nearest) and a blurred, darker copy of it
cam = data.camera()
idx = np.arange(side) * cam.shape[0] // side
a = cam[np.ix_(idx, idx)]
a = ndimage.uniform_filter(a, 3, output=np.uint8)
b = ndimage.uniform_filter(a, 9, output=np.uint8)
b //= 2
b += 40
fuse(a[:16, :16], b[:16, :16], weights=weights or None, device="cpu")
t = time.perf_counter()
result = fuse(a, b, weights=weights or None, device="cpu", storage=storage)
dt = time.perf_counter() - t
print(json.dumps({"time": dt, "peak_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2,
                  "storage": result.metadata["storage"]}))
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="*", type=float, default=[0.25, 1, 4, 16, 64],
                        help="megapixels (square images)")
    parser.add_argument("--sides", nargs="*", type=int, default=[],
                        help="square sides in pixels, measured after --sizes (e.g. 8192)")
    parser.add_argument("--storage", nargs="*", default=["memory", "disk"],
                        help="memory, disk, recompute or auto (auto prints what it chose)")
    parser.add_argument("--weights", default="")
    args = parser.parse_args()
    print("| MP | side | storage | time (s) | peak RSS (GB) | MP/s |")
    print("| --- | --- | --- | --- | --- | --- |")
    sides = [round(math.sqrt(mp * 1e6)) for mp in args.sizes] + args.sides
    for side in sides:
        mp = side * side / 1e6
        for storage in args.storage:
            out = subprocess.run([sys.executable, "-c", _CHILD, str(side), storage, args.weights],
                                 capture_output=True, text=True, check=False)
            if out.returncode != 0:
                print(f"| {mp:.3g} | {side} | {storage} | failed: "
                      f"{(out.stderr.strip().splitlines() or ['?'])[-1]} | | |")
                continue
            r = json.loads(out.stdout.strip().splitlines()[-1])
            if storage == "auto":
                storage = f"auto ({r['storage']})"
            print(f"| {mp:.3g} | {side} | {storage} | {r['time']:.1f} | {r['peak_gb']:.2f} | "
                  f"{side * side / 1e6 / r['time']:.3f} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
