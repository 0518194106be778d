"""Multi-focus pairs on ground truth: which method should ``fuse(a, b, task="mfif")`` run?

Usage (from the repository root)::

    GIFNET_WEIGHTS=../shared/reference/weights/gifnet-official.pth \\
        OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/bench_multifocus_pairs.py

Scenes: seven bundled scikit-image photographs, each scaled so its short side
is ``--size`` pixels and cropped to a central ``--size`` square. Each gets a
synthetic depth map of two layers: a background plane (a smooth ramp in a
random direction, depth 0.6 to 1.0) and a foreground of smooth blobs
(thresholded Gaussian-filtered noise, with its own gentle ramp, depth 0 to
0.25). The near-focused input focuses the foreground's mean depth, the
far-focused one the background's; a pixel at depth ``d`` is blurred with a
Gaussian of sigma ``--blur`` x |d - focus| pixels. The blur is rendered in
layers (the depth cut into 16 slices), composited back to front with each
slice's blurred coverage as its alpha (a blurred near object spreads over
the far one, as a real lens does) and divided by the accumulated coverage.
The all-in-focus truth is the photograph itself. Inputs and truth are uint8.

The defaults were chosen on the **tune** scenes (astronaut, camera, coins)
and are judged on the **report** scenes (coffee, chelsea, rocket,
immunohistochemistry), which played no part in choosing.

Methods: GIFNet (``fuse``, no task: today's ``fuse``), focus selection
(``"focus"``: the pair as a 2-plane ``fuse_stack``), the focus-guided
pyramid (``"focus_pyramid"``: that selection guiding a Laplacian pyramid
blend, :mod:`napari_gifnet.workflows.focus_pair`), the task's default as
``fuse(a, b, task="mfif")`` gives it, each classical pair method
(``fuse(a, b, method=...)``),
and the peers a user would pick instead, each in its own virtual
environment, called in a subprocess: openfocus (its command line's
``run_cli`` in-process in its environment, every fusion algorithm it offers,
on the CPU) and focusweave (its Python API ``run(FocusStackConfig(...))``
with ``no_align=True``, since the pairs are registered). A peer's python is
``$NAPARI_GIFNET_PEER_OPENFOCUS`` / ``$NAPARI_GIFNET_PEER_FOCUSWEAVE``, else
``/work/peers/<name>/bin/python``; an absent peer is skipped with a note.

Scores: PSNR (dB) and SSIM of the fused luma against the truth's luma
(BT.601 of the float RGB, on the 0-255 scale; SSIM with the project's
Gaussian window, :func:`napari_gifnet.metrics.fusion.reference_metrics`),
whole image. Time: each method's total fusion time over the pairs as a
ratio to the task default's in the same run (peers: timed inside their
process around the fusion call, interpreter start-up and imports excluded;
openfocus's includes reading and writing two small PNG files).
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from peers import peer_python, run_driver  # noqa: E402

from napari_gifnet import __version__, fuse  # noqa: E402
from napari_gifnet.methods.classical import BASELINES  # noqa: E402
from napari_gifnet.methods.presets import get_preset  # noqa: E402
from napari_gifnet.metrics.fusion import reference_metrics  # noqa: E402

TUNE = ("astronaut", "camera", "coins")
REPORT = ("coffee", "chelsea", "rocket", "immunohistochemistry")
_LUMA = np.array([0.299, 0.587, 0.114])
_SLICES = 16
OPENFOCUS_METHODS = ("stackmffv3", "stackmffv2", "stackmff", "openfocus_a", "openfocus_b",
                     "openfocus_c", "guided_filter", "gfgfgf", "dct", "dtcwt")  # fmt: skip


# --------------------------------------------------------------------------- scenes
def photograph(name: str, size: int) -> np.ndarray:
    """A bundled scikit-image photograph as float [0, 1], short side ``size``, central square."""
    from skimage import data
    from skimage.transform import resize

    img = getattr(data, name)().astype(np.float64) / 255.0
    h, w = img.shape[:2]
    scale = size / min(h, w)
    img = resize(img, (round(h * scale), round(w * scale)), anti_aliasing=True, order=3)
    h, w = img.shape[:2]
    top, left = (h - size) // 2, (w - size) // 2
    return np.clip(img[top:top + size, left:left + size], 0.0, 1.0)


def depth_map(size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(depth in [0, 1], foreground mask): a background ramp and smooth foreground blobs."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / (size - 1)
    angle = rng.uniform(0, 2 * np.pi)
    ramp = np.cos(angle) * xx + np.sin(angle) * yy
    ramp = (ramp - ramp.min()) / np.ptp(ramp)
    blobs = ndi.gaussian_filter(rng.standard_normal((size, size)), size / 10, mode="wrap")
    fore = blobs > np.quantile(blobs, 0.62)
    depth = np.where(fore, 0.25 * (1 - ramp), 0.6 + 0.4 * ramp)
    return depth, fore


def _blur(x: np.ndarray, sigma: float) -> np.ndarray:
    if sigma < 0.05:
        return x.copy()
    sig = (sigma, sigma, 0) if x.ndim == 3 else sigma
    return ndi.gaussian_filter(x, sig, mode="reflect", truncate=3.0)


def render(image: np.ndarray, depth: np.ndarray, focus: float, blur: float) -> np.ndarray:
    """Defocus ``image`` focused at ``focus``: layered blur, back to front, with occlusion."""
    index = np.minimum((depth * _SLICES).astype(int), _SLICES - 1)
    colour = image if image.ndim == 3 else image[..., None]
    out = np.zeros_like(colour)
    cover = np.zeros(depth.shape)
    for k in range(_SLICES - 1, -1, -1):  # far to near
        mask = (index == k).astype(np.float64)
        if not mask.any():
            continue
        centre = float(depth[index == k].mean())
        sigma = blur * abs(centre - focus)
        alpha = _blur(mask, sigma)
        premult = _blur(colour * mask[..., None], sigma)
        out = out * (1 - alpha)[..., None] + premult
        cover = cover * (1 - alpha) + alpha
    out = out / np.maximum(cover, 1e-6)[..., None]
    return out if image.ndim == 3 else out[..., 0]


def _u8(x: np.ndarray) -> np.ndarray:
    return np.rint(np.clip(x, 0, 1) * 255).astype(np.uint8)


def make_pair(name: str, seed: int, size: int, blur: float):
    """(near uint8, far uint8, truth uint8) of one scene."""
    image = photograph(name, size)
    depth, fore = depth_map(size, seed)
    near = render(image, depth, float(depth[fore].mean()), blur)
    far = render(image, depth, float(depth[~fore].mean()), blur)
    return _u8(near), _u8(far), _u8(image)


# --------------------------------------------------------------------------- scoring
def luma255(image: np.ndarray) -> np.ndarray:
    """BT.601 luma on the 0-255 scale of a uint8 or float [0, 1] grey or RGB image."""
    x = np.asarray(image, dtype=np.float64)
    if image.dtype == np.uint8:
        x = x / 255.0
    if x.ndim == 3:
        x = x[..., :3] @ _LUMA
    return x * 255.0


def score(fused: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    return reference_metrics(luma255(fused), luma255(truth), scaled=True)


# --------------------------------------------------------------------------- peers
_OPENFOCUS_DRIVER = r"""
import contextlib, io, json, sys, time
from core.cli import run_cli
jobs = json.loads(sys.argv[1])
times = {}
for job in jobs:
    t0 = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        code = run_cli(["--input", job["a"], job["b"], "--output", job["out"],
                        "--method", job["method"], "--cpu", "--sort", "off"])
    times[job["out"]] = time.perf_counter() - t0 if code == 0 else None
print(json.dumps(times))
"""

_FOCUSWEAVE_DRIVER = r"""
import json, sys, time
import numpy as np
from focusweave import FocusStackConfig, run
jobs = json.loads(sys.argv[1])
times = {}
for job in jobs:
    a, b = np.load(job["a"]), np.load(job["b"])
    t0 = time.perf_counter()
    result = run(FocusStackConfig(images=[a, b], no_align=True))
    times[job["out"]] = time.perf_counter() - t0
    np.save(job["out"], result.image)
print(json.dumps(times))
"""


def _rgb(x: np.ndarray) -> np.ndarray:
    return x if x.ndim == 3 else np.repeat(x[..., None], 3, axis=-1)


def run_openfocus(pairs, work: Path) -> dict[str, list]:
    """{"openfocus <method>": [(image, seconds) per pair]}; {} when absent."""
    from napari_gifnet.io.images import read_image, write_image

    python = peer_python("openfocus")
    if python is None:
        print("note: openfocus not installed (/work/peers/openfocus); skipped", file=sys.stderr)
        return {}
    files = []
    for i, (near, far, _) in enumerate(pairs):
        a, b = work / f"of_{i}_near.png", work / f"of_{i}_far.png"
        write_image(a, _rgb(near))
        write_image(b, _rgb(far))
        files.append((str(a), str(b)))
    out: dict[str, list] = {}
    for method in OPENFOCUS_METHODS:
        jobs = [{"a": a, "b": b, "method": method, "out": str(work / f"of_{method}_{i}.png")}
                for i, (a, b) in enumerate(files)]  # fmt: skip
        times = run_driver(python, _OPENFOCUS_DRIVER, jobs, work, f"openfocus {method}")
        if times is None:
            continue
        if any(times[j["out"]] is None for j in jobs):
            print(f"note: openfocus {method} failed on a pair; skipped", file=sys.stderr)
            continue
        out[f"openfocus {method}"] = [(read_image(j["out"]), times[j["out"]]) for j in jobs]
    return out


def run_focusweave(pairs, work: Path) -> dict[str, list]:
    python = peer_python("focusweave")
    if python is None:
        print("note: focusweave not installed (/work/peers/focusweave); skipped", file=sys.stderr)
        return {}
    jobs = []
    for i, (near, far, _) in enumerate(pairs):
        a, b = work / f"fw_{i}_near.npy", work / f"fw_{i}_far.npy"
        np.save(a, _rgb(near))
        np.save(b, _rgb(far))
        jobs.append({"a": str(a), "b": str(b), "out": str(work / f"fw_{i}.npy")})
    times = run_driver(python, _FOCUSWEAVE_DRIVER, jobs, work, "focusweave")
    if times is None:
        return {}
    return {"focusweave": [(np.load(j["out"]), times[j["out"]]) for j in jobs]}


# --------------------------------------------------------------------------- project
def run_project(pairs, gifnet: bool, device: str) -> dict[str, list]:
    """{label: [(image, seconds) per pair]} for the project's methods; the mfif
    default's label ends in ``(mfif default)``."""
    default = get_preset("mfif").method
    calls = {"focus_pyramid": dict(method="focus_pyramid"), "focus": dict(method="focus")}
    if gifnet:
        calls["GIFNet (fuse, no task)"] = dict(device=device)
    calls.update({m: dict(method=m) for m in BASELINES})
    calls[default] = dict(task="mfif")  # the default as a user gets it
    out: dict[str, list] = {}
    for label, kw in calls.items():
        rows = []
        for near, far, _ in pairs:
            t0 = time.perf_counter()
            res = fuse(near, far, **kw)
            rows.append((np.asarray(res.image), time.perf_counter() - t0))
        out[f"{label} (mfif default)" if label == default else label] = rows
    return out


def table(results: dict[str, list], pairs, idx, default: str, title: str) -> list[str]:
    base = sum(results[default][i][1] for i in idx)
    rows = []
    for label, runs in results.items():
        scores = [score(runs[i][0], pairs[i][2]) for i in idx]
        p = float(np.mean([s["PSNR"] for s in scores]))
        s = float(np.mean([s["SSIM"] for s in scores]))
        t = sum(runs[i][1] for i in idx) / base
        rows.append((p, s, t, label))
    rows.sort(key=lambda r: -r[0])
    lines = [f"**{title}**", "", "| method | luma PSNR (dB) | SSIM | time / default |",
             "| --- | ---: | ---: | ---: |"]  # fmt: skip
    lines += [f"| {lab} | {p:.2f} | {s:.4f} | {t:.2f} |" for p, s, t, lab in rows]
    return lines


def per_pair(results, pairs, names, idx) -> list[str]:
    head = "| method | " + " | ".join(names[i] for i in idx) + " |"
    lines = ["**Report scenes, luma PSNR (dB) per pair**", "", head,
             "| --- |" + " ---: |" * len(idx)]  # fmt: skip
    for label, runs in results.items():
        cells = " | ".join(f"{score(runs[i][0], pairs[i][2])['PSNR']:.2f}" for i in idx)
        lines.append(f"| {label} | {cells} |")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256, help="scene side in pixels")
    parser.add_argument("--blur", type=float, default=6.0,
                        help="blur sigma (px) per unit of depth from the focus")
    parser.add_argument("--device", default="cpu", help="GIFNet's device (default cpu)")
    parser.add_argument("--no-gifnet", action="store_true", help="leave GIFNet out")
    parser.add_argument("--no-peers", action="store_true", help="leave the peers out")
    args = parser.parse_args()

    names = [*TUNE, *REPORT]
    pairs = [make_pair(n, seed, args.size, args.blur) for seed, n in enumerate(names)]
    results = run_project(pairs, not args.no_gifnet, args.device)
    if not args.no_peers:
        with tempfile.TemporaryDirectory() as tmp:
            results.update(run_openfocus(pairs, Path(tmp)))
            results.update(run_focusweave(pairs, Path(tmp)))
    default = f"{get_preset('mfif').method} (mfif default)"
    tune = [i for i, n in enumerate(names) if n in TUNE]
    report = [i for i, n in enumerate(names) if n in REPORT]
    lines = [
        f"napari-gifnet {__version__}, {platform.machine()} CPU, {args.size} x {args.size}, "
        f"blur {args.blur} px per unit depth; mfif default: {get_preset('mfif').method!r}",
        "",
        *table(results, pairs, tune, default, f"Tune scenes ({', '.join(TUNE)})"),
        "",
        *table(results, pairs, report, default, f"Report scenes ({', '.join(REPORT)})"),
        "",
        *per_pair(results, pairs, names, report),
    ]
    rep = {lab: float(np.mean([score(r[i][0], pairs[i][2])["PSNR"] for i in report]))
           for lab, r in results.items()}  # fmt: skip
    rivals = {lab: v for lab, v in rep.items()
              if lab.startswith("openfocus") or lab.split(" ")[0] == "focus"}  # fmt: skip
    best = max(rivals, key=rivals.get)
    gap = rep[default] - rivals[best]
    lines += ["", f"Goal (report scenes): the mfif default within 0.2 dB of the best of openfocus "
              f"and focus selection ({best}, {rivals[best]:.2f} dB): {gap:+.2f} dB, "
              f"{'met' if gap >= -0.2 else 'NOT met'}."]  # fmt: skip
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
