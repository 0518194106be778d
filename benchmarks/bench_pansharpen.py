"""Pansharpening under Wald's protocol: the project's methods, GIFNet and pysharpen.

Usage (from the repository root)::

    GIFNET_WEIGHTS=../shared/reference/weights/gifnet-official.pth \\
        PYTHONPATH=src python benchmarks/bench_pansharpen.py --device cpu

(``--no-gifnet`` leaves out the two rows that run the network: under a minute.)

Scenes: the central ``--size`` square of scikit-image's colour photographs
(tuning: astronaut, coffee; reported: chelsea, rocket). The truth is a
4-band image: R, G, B and a NIR-like band (0.6 R + 0.3 G + 0.1 B, Gaussian
sigma 1), uint8. The panchromatic image is 0.25 R + 0.35 G + 0.1 B + 0.3 NIR
plus Gaussian noise of sigma 1 (uint8, at full resolution). With
``--bands 3`` the truth is R, G, B and the panchromatic image 0.3 R + 0.45 G
+ 0.25 B plus the same noise. Wald's protocol,
ratio 4: each band is degraded by an MTF-like Gaussian (gain 0.3 at the
multispectral Nyquist frequency) and decimated by 4
(:func:`napari_gifnet.methods.pansharpening.reduce`, uint8), then fused with
the panchromatic image and compared with the truth: PSNR (0-255, all bands),
ERGAS (ratio 4), SAM (degrees), Q (32 x 32), Q2n (Q4, 32 x 32 blocks) and
sCC (:mod:`napari_gifnet.metrics.pansharpening`).

Methods: ``exp`` (the plain cubic upsampling :func:`pansharpen` does first),
every method of :func:`napari_gifnet.workflows.pansharpening.pansharpen`,
GIFNet per band (``method="gifnet"``) and GSA with GIFNet's details
(``"gsa_gifnet"``), and pysharpen 0.2.8's GIHS and Brovey, run in their own
virtual environment (``NAPARI_GIFNET_PEER_PYSHARPEN`` or
/work/peers/pysharpen/bin/python; skipped with a note when absent) on the
same cubic-upsampled bands (as pysharpen expects) through .npy files. Time is
the ratio to the default method in the same run (pysharpen's includes the
upsampling). QNR (block 32, p = q = alpha = beta = 1) is computed at full
resolution for each method on one reported scene, the degraded pair taken as
the data (no truth).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from scipy import ndimage

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from peers import peer_python  # noqa: E402

from napari_gifnet.methods.pansharpening import PANSHARPENING_METHODS, reduce  # noqa: E402
from napari_gifnet.metrics.pansharpening import pansharpening_metrics, qnr  # noqa: E402
from napari_gifnet.workflows.pan_grid import resample_band  # noqa: E402
from napari_gifnet.workflows.pansharpening import DEFAULT_METHOD, pansharpen  # noqa: E402

TUNING = ("astronaut", "coffee")
REPORTED = ("chelsea", "rocket")
#: Panchromatic weights of (R, G, B, NIR) for 4 bands, of (R, G, B) for 3 (``--bands 3``).
PAN_WEIGHTS = {4: np.array([0.25, 0.35, 0.1, 0.3]), 3: np.array([0.3, 0.45, 0.25])}
RATIO = 4

# runs in pysharpen's own environment: arrays in and out through .npy files
PEER_SCRIPT = r"""
import sys, time, types
import numpy as np
try:
    import aeronet.dataset as _ds
    if not hasattr(_ds, "BandCollectionSample"):  # pysharpen imports it only for a type
        _ds.BandCollectionSample = object
except ImportError:
    sys.modules["aeronet"] = types.ModuleType("aeronet")
    sys.modules["aeronet.dataset"] = _ds = types.ModuleType("aeronet.dataset")
    _ds.BandCollectionSample = object
from pysharpen.methods import BroveyPansharpening, GIHSPansharpening
folder = sys.argv[1]
ms, pan = np.load(folder + "/ms.npy"), np.load(folder + "/pan.npy")
for name, method in (("GIHS", GIHSPansharpening()), ("Brovey", BroveyPansharpening())):
    start = time.perf_counter()
    _, out = method.process(pan, ms)
    elapsed = time.perf_counter() - start
    np.save(f"{folder}/{name}.npy", out)
    np.save(f"{folder}/{name}-time.npy", np.array(elapsed))
"""


def scene(name: str, size: int, bands: int = 4) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(truth (size, size, bands), pan (size, size), degraded ms (size / 4, size / 4, bands)), uint8."""
    from skimage import data

    image = getattr(data, name)()
    h, w = image.shape[:2]
    y, x = (h - size) // 2, (w - size) // 2
    rgb = image[y : y + size, x : x + size, :3].astype(np.float64)
    nir = ndimage.gaussian_filter(rgb @ np.array([0.6, 0.3, 0.1]), 1.0)
    truth = np.clip(np.rint(np.dstack([rgb, nir][: 1 if bands == 3 else 2])), 0, 255)
    rng = np.random.default_rng(sum(map(ord, name)))
    pan = np.clip(np.rint(truth @ PAN_WEIGHTS[bands] + rng.normal(0, 1, (size, size))), 0, 255)
    low = (size // RATIO, size // RATIO)
    ms = np.stack([np.clip(np.rint(reduce(truth[..., k], low)), 0, 255) for k in range(bands)], -1)
    return truth.astype(np.uint8), pan.astype(np.uint8), ms.astype(np.uint8)


def upsample(ms: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """``exp``: each band by the cubic upsampling of :func:`pansharpen` (uint8, (H, W, bands))."""
    return np.stack([resample_band(ms[..., k], shape) for k in range(ms.shape[-1])], -1)


def run_peer(python: Path, up: np.ndarray, pan: np.ndarray) -> dict[str, tuple[np.ndarray, float]]:
    """pysharpen's GIHS and Brovey on the upsampled bands: {name: ((H, W, bands), seconds)}."""
    with tempfile.TemporaryDirectory() as folder:
        np.save(f"{folder}/ms.npy", np.ascontiguousarray(np.moveaxis(up, -1, 0)))
        np.save(f"{folder}/pan.npy", pan)
        done = subprocess.run([str(python), "-c", PEER_SCRIPT, folder], capture_output=True,
                              text=True, timeout=300)  # fmt: skip
        if done.returncode != 0:
            print(f"> pysharpen failed: {done.stderr.strip().splitlines()[-1:]}")
            return {}
        return {
            f"pysharpen {name}": (np.moveaxis(np.load(f"{folder}/{name}.npy"), 0, -1),
                                  float(np.load(f"{folder}/{name}-time.npy")))
            for name in ("GIHS", "Brovey")
        }  # fmt: skip


def methods_of(args: argparse.Namespace) -> list[str]:
    keys = [k for k in PANSHARPENING_METHODS if k != "gsa_gifnet"]
    if args.gifnet:
        keys += ["gsa_gifnet", "gifnet"]
    return keys


def fuse_scene(args: argparse.Namespace, name: str, peer: Path | None) -> dict[str, dict]:
    """Every method on one scene: {method: {"image", "time"}}, plus the inputs under "_"."""
    truth, pan, ms = scene(name, args.size, args.bands)
    start = time.perf_counter()
    up = upsample(ms, pan.shape)
    rows: dict[str, dict] = {"exp": {"image": up, "time": time.perf_counter() - start}}
    for key in methods_of(args):
        opts = {"device": args.device} if key in ("gifnet", "gsa_gifnet") else {}
        result = pansharpen(ms, pan, method=key, **opts)
        rows[key] = {"image": result.image, "time": result.elapsed}
    if peer is not None:
        for label, (image, seconds) in run_peer(peer, up, pan).items():
            rows[label] = {"image": image, "time": seconds + rows["exp"]["time"]}
    rows["_"] = {"truth": truth, "pan": pan, "ms": ms}
    return rows


def table(runs: dict[str, dict[str, dict]], scenes: tuple[str, ...]) -> str:
    """Markdown table of the metrics averaged over ``scenes``, best PSNR first."""
    names = [k for k in runs[scenes[0]] if k != "_"]
    rows = []
    for key in names:
        scores = [pansharpening_metrics(runs[s][key]["image"], runs[s]["_"]["truth"], RATIO)
                  for s in scenes]  # fmt: skip
        mean = {m: float(np.mean([sc[m] for sc in scores])) for m in scores[0]}
        ratio = np.mean([runs[s][key]["time"] / runs[s][DEFAULT_METHOD]["time"] for s in scenes])
        rows.append((key, mean, ratio))
    rows.sort(key=lambda r: -r[1]["PSNR"])
    out = ["| method | PSNR (dB) | ERGAS | SAM (deg) | Q | Q2n | sCC | time / default |",
           "| --- | --- | --- | --- | --- | --- | --- | --- |"]  # fmt: skip
    for key, m, ratio in rows:
        label = f"**{key}** (default)" if key == DEFAULT_METHOD else key
        out.append(f"| {label} | {m['PSNR']:.2f} | {m['ERGAS']:.3f} | {m['SAM']:.3f} | "
                   f"{m['Q']:.4f} | {m['Q2n']:.4f} | {m['sCC']:.4f} | {ratio:.2f} |")  # fmt: skip
    return "\n".join(out)


def qnr_table(rows: dict[str, dict]) -> str:
    inputs = rows["_"]
    out = ["| method | QNR | D_lambda | D_s |", "| --- | --- | --- | --- |"]
    scored = []
    for key, row in rows.items():
        if key == "_":
            continue
        q = qnr(row["image"], inputs["ms"], inputs["pan"], RATIO)
        scored.append((key, q))
    for key, q in sorted(scored, key=lambda r: -r[1]["QNR"]):
        out.append(f"| {key} | {q['QNR']:.4f} | {q['D_lambda']:.4f} | {q['D_s']:.4f} |")
    return "\n".join(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256, help="scene side (multiple of 32)")
    parser.add_argument("--bands", type=int, choices=(3, 4), default=4,
                        help="4: R, G, B + NIR-like (default); 3: R, G, B")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--no-gifnet", dest="gifnet", action="store_false")
    parser.add_argument("--out", type=Path, help="also write the tables to this file")
    args = parser.parse_args()
    if args.size % 32:
        parser.error("--size must be a multiple of 32")
    found = peer_python("pysharpen")
    notes = [] if found else ["> pysharpen not found (/work/peers/pysharpen): its rows are skipped"]
    peer = Path(found) if found else None
    runs = {name: fuse_scene(args, name, peer) for name in (*TUNING, *REPORTED)}
    text = "\n".join([
        *notes,
        f"### Reported scenes ({', '.join(REPORTED)}; {args.size} x {args.size}, ratio {RATIO}, "
        f"{args.bands} bands), mean",
        "",
        table(runs, REPORTED),
        "",
        f"### Tuning scenes ({', '.join(TUNING)}), mean",
        "",
        table(runs, TUNING),
        "",
        f"### QNR at full resolution ({REPORTED[0]}: the {args.size // RATIO} px bands and the "
        f"{args.size} px pan, no truth)",
        "",
        qnr_table(runs[REPORTED[0]]),
    ])  # fmt: skip
    print(text)
    if args.out is not None:
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
