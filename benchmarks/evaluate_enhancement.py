"""Measure single-image enhancement (napari_gifnet.workflows.enhancement) and print a Markdown table.

Usage (from the repository root)::

    GIFNET_WEIGHTS=../shared/reference/weights/gifnet-official.pth \\
        PYTHONPATH=src python benchmarks/evaluate_enhancement.py --device cpu

Takes both grey inputs (``input_a``, ``input_b``: the images the network saw)
of six published reference cases in ``../shared/reference/official`` (IVIF,
MEIF, MFIF, Medical, NIR-VIS, Remote-band1), downscales any image whose
longest side exceeds ``--size`` (anti-aliased, back to uint8), and reports EN,
SD, AG and EI (:func:`napari_gifnet.metrics.fusion.fusion_metrics`, 0-255 scale) of
the image before and after :func:`napari_gifnet.workflows.enhancement.enhance` with each
variant. Only the metric values are printed; nothing is copied.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from napari_gifnet.metrics.fusion import fusion_metrics
from napari_gifnet.workflows.enhancement import VARIANTS, enhance

CASES = ("IVIF", "MEIF", "MFIF", "Medical", "NIR-VIS", "Remote-band1")
METRICS = ("EN", "SD", "AG", "EI")


def images(reference: Path, size: int):
    from skimage.transform import resize

    for case in CASES:
        with np.load(reference / "official" / f"{case}.npz") as data:
            for key in ("input_a", "input_b"):
                x = data[key]
                scale = size / max(x.shape)
                if scale < 1:
                    shape = (round(x.shape[0] * scale), round(x.shape[1] * scale))
                    x = np.rint(resize(x / 255.0, shape, anti_aliasing=True) * 255)
                    x = x.astype(np.uint8)
                yield f"{case} {key[-1]}", x


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reference", default=str(ROOT.parent / "shared" / "reference"))
    parser.add_argument("--size", type=int, default=384)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    t0 = time.perf_counter()
    columns = ["original", *VARIANTS]
    rows: list[tuple[str, dict[str, dict[str, float]]]] = []
    for name, x in images(Path(args.reference), args.size):
        scores = {"original": fusion_metrics(x, x, x, metrics=METRICS)}
        for variant in VARIANTS:
            out = enhance(x, variant=variant, device=args.device).luma
            scores[variant] = fusion_metrics(out, x, x, metrics=METRICS)
        rows.append((f"{name} ({x.shape[0]} x {x.shape[1]})", scores))
        print(name, {k: round(v["AG"], 2) for k, v in scores.items()}, file=sys.stderr)
    lines = [
        f"{len(rows)} images, whole run {time.perf_counter() - t0:.0f} s on {args.device}.",
        "",
        "Mean over the images:",
        "",
        "| image | " + " | ".join(f"{m} {c}" for m in METRICS for c in columns) + " |",
        "| --- |" + " --- |" * (len(METRICS) * len(columns)),
    ]
    mean = {c: {m: np.mean([s[c][m] for _, s in rows]) for m in METRICS} for c in columns}
    for label, scores in [("**mean**", mean), *rows]:
        lines.append(
            f"| {label} | "
            + " | ".join(f"{scores[c][m]:.2f}" for m in METRICS for c in columns)
            + " |"
        )
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
