"""Fuse the published reference cases and print time and peak memory per case.

Each case runs in a fresh subprocess, so its peak resident memory is its own.
The published script's figures (``../shared/reference/official/timings.md``)
are printed alongside when that file is present.

    python benchmarks/bench_reference.py [--device cpu] [--cases IVIF MEIF ...]
                                         [--storage auto|memory|disk|recompute|whole]
                                         [--tile-size N]
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT.parent / "shared" / "reference"
CASES = ["IVIF", "MEIF", "NIR-VIS", "MFIF", "Remote-band1", "Medical"]

_CHILD = r"""
import json, resource, sys, time
import numpy as np
from napari_gifnet import fuse
case, device, weights, reference, storage, tile_size = sys.argv[1:7]
with np.load(f"{reference}/official/{case}.npz") as d:
    a, b, ref = d["input_a"], d["input_b"], d["fused_luma"]
fuse(a[:16, :16], b[:16, :16], weights=weights or None, device=device)  # load the model
t = time.perf_counter()
# "whole": one tile covering the image, the engine's whole-image inference
tile = {"whole": 1 << 30}.get(storage, int(tile_size) if tile_size else None)
r = fuse(a, b, weights=weights or None, device=device,
         storage="memory" if storage == "whole" else storage, tile_size=tile)
luma, dev = r.luma, r.device
if dev.startswith("cuda"):
    import torch; torch.cuda.synchronize()
dt = time.perf_counter() - t
peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
print(json.dumps({"time": dt, "peak_gb": peak_gb, "device": dev,
                  "h": int(a.shape[0]), "w": int(a.shape[1]),
                  "max_abs_diff": float(np.abs(luma - ref).max())}))
"""


def published_timings() -> dict[str, tuple[str, str]]:
    path = REFERENCE / "official" / "timings.md"
    if not path.is_file():
        return {}
    rows = {}
    for line in path.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 5 and re.match(r"[\d.]+ s", cells[3]):
            rows[cells[0]] = (cells[3], cells[4])
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--weights", default="", help="checkpoint (default: the usual search)")
    parser.add_argument("--cases", nargs="*", default=CASES)
    parser.add_argument(
        "--storage", default="auto", choices=["auto", "memory", "disk", "recompute", "whole"],
        help="fuse()'s storage option, or 'whole' for whole-image inference (one tile)",
    )
    parser.add_argument("--tile-size", default="", help="fuse()'s tile_size (default: auto)")
    args = parser.parse_args()
    published = published_timings()
    print(f"{'case':<14}{'size':>12}{'time':>9}{'peak RSS':>10}{'MP/s':>7}{'max |diff|':>12}"
          f"   published script (time, peak)")
    for case in args.cases:
        out = subprocess.run(
            [sys.executable, "-c", _CHILD, case, args.device, args.weights, str(REFERENCE),
             args.storage, args.tile_size],
            capture_output=True, text=True, check=False,
        )
        if out.returncode != 0:
            print(f"{case:<14} failed: {out.stderr.strip().splitlines()[-1:]}")
            continue
        r = json.loads(out.stdout.strip().splitlines()[-1])
        mp = r["h"] * r["w"] / 1e6
        pub = published.get(case, ("-", "-"))
        print(f"{case:<14}{r['h']:>5} x {r['w']:<5}{r['time']:>8.1f}s{r['peak_gb']:>8.2f}GB"
              f"{mp / r['time']:>7.3f}{r['max_abs_diff']:>12.1e}   {pub[0]}, {pub[1]}  [{r['device']}]")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
