"""Fine-tune the published GIFNet on generated multi-focus data; PSNR before/after.

1. Held-out test pairs: :func:`napari_gifnet.metrics.evaluation.generate_multifocus_set`
   (camera, astronaut, coffee, chelsea; depth-layered Gaussian defocus, with
   the sharp image as ground truth).
2. Training folder (in a temporary directory): other bundled scikit-image
   photographs (none of the test scenes), grey, as ``second/``; ``first/``
   holds the same images (``--first reference``: a multi-focus set has no
   second modality, so the multimodal step reconstructs the reference) or
   their contrast-inverted, smoothed copies (``--first inverted``, a stand-in
   for a thermal channel).
3. PSNR and SSIM of the fused luma against the truth on the test pairs with
   the published checkpoint, then ``napari_gifnet.training.train`` from the
   published checkpoint, then the same scores with the fine-tuned weights.

Run (prints a Markdown table; a few minutes on 2 CPU cores with the defaults)::

    GIFNET_WEIGHTS=../shared/reference/weights/gifnet-official.pth \\
        python benchmarks/finetune_multifocus.py --threads 1
"""

from __future__ import annotations

import argparse
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

TRAIN_SOURCES = ("rocket", "immunohistochemistry", "moon", "hubble_deep_field", "brick", "grass",
                 "gravel", "coins", "page", "cell", "retina", "text")  # fmt: skip


def _write_training_folder(root: Path, size: int, first: str) -> Path:
    import imageio.v3 as iio
    from scipy import ndimage as ndi
    from skimage import data, transform

    from napari_gifnet.metrics.evaluation import MULTIFOCUS_SOURCES

    held_out = set(MULTIFOCUS_SOURCES[:4])
    for sub in ("first", "second"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for name in TRAIN_SOURCES:
        assert name not in held_out
        image = getattr(data, name)() / 255.0
        if image.ndim == 3:
            image = image[..., :3] @ np.array([0.299, 0.587, 0.114])
        scale = size / min(image.shape)
        image = transform.rescale(image, scale, order=1, anti_aliasing=True)
        vis = np.clip(image, 0, 1)
        ir = vis if first == "reference" else 1 - ndi.gaussian_filter(vis, 2.0)
        iio.imwrite(root / "second" / f"{name}.png", np.round(vis * 255).astype(np.uint8))
        iio.imwrite(root / "first" / f"{name}.png", np.round(ir * 255).astype(np.uint8))
    return root


def _scores(weights: str, scenes: list, device: str) -> list[tuple[str, float, float]]:
    from skimage.metrics import structural_similarity

    from napari_gifnet import fuse

    rows = []
    for name, near, far, truth in scenes:
        fused = fuse(near, far, weights=weights, device=device).luma.astype(np.float64)
        t = truth / 255.0
        psnr = 10 * np.log10(1.0 / np.mean((fused - t) ** 2))
        ssim = structural_similarity(fused, t, data_range=1.0, gaussian_weights=True, sigma=1.5,
                                     use_sample_covariance=False)  # fmt: skip
        rows.append((name, float(psnr), float(ssim)))
    return rows


def main() -> None:
    import torch

    from napari_gifnet.metrics.evaluation import generate_multifocus_set
    from napari_gifnet.model.weights import resolve_weights
    from napari_gifnet.training.loop import TrainConfig, train

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--crop", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--size", type=int, default=256, help="side of train and test images")
    parser.add_argument("--first", choices=("reference", "inverted"), default="reference")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    parser.add_argument("--out", default="", help="keep the run's files in this folder")
    parser.add_argument("--ssim", choices=("published", "standard"), default="published",
                        help="MS-SSIM of the common loss (default published, as train's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    published = str(resolve_weights().path)
    scenes = generate_multifocus_set(n_scenes=4, size=args.size, seed=0)
    t0 = time.perf_counter()
    before = _scores(published, scenes, args.device)
    t_eval = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as tmp:
        folder = _write_training_folder(Path(tmp) / "pairs", args.size, args.first)
        out_dir = Path(args.out) if args.out else Path(tmp) / "run"
        out_dir.mkdir(parents=True, exist_ok=True)
        config = TrainConfig(str(folder), str(out_dir / "finetuned.pth"), init=published,
                             max_steps=args.steps, batch_size=args.batch_size, crop=args.crop,
                             lr=args.lr, seed=0, device=args.device, progress=False,
                             densenet_hub=False, checkpoint_every=max(args.steps, 1),
                             ssim=args.ssim)  # fmt: skip
        t0 = time.perf_counter()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = train(config)
        t_train = time.perf_counter() - t0
        after = _scores(str(result.checkpoint), scenes, args.device)
    rows = result.rows
    first5, last5 = np.mean([r["total"] for r in rows[:5]]), np.mean([r["total"] for r in rows[-5:]])
    densenet = "random fallback" if any("randomly initialised" in str(w.message) for w in caught) else "pretrained"
    print(f"device {args.device}, torch threads {torch.get_num_threads()}, {len(TRAIN_SOURCES)} training "
          f"images ({args.size} px, first = {args.first}), {args.steps} steps of batch "
          f"{args.batch_size}, {args.crop} x {args.crop} crops, Adam lr {args.lr}, DenseNet-121: "
          f"{densenet}, MS-SSIM {args.ssim}")
    print(f"training {t_train:.0f} s ({t_train / max(len(rows), 1):.2f} s/step); one evaluation "
          f"pass {t_eval:.0f} s; total loss, mean of first 5 steps {first5:.4f}, last 5 {last5:.4f}\n")
    print("| held-out scene | PSNR published (dB) | PSNR fine-tuned (dB) | SSIM published | SSIM fine-tuned |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for (name, p0, s0), (_, p1, s1) in zip(before, after):
        print(f"| {name} | {p0:.2f} | {p1:.2f} | {s0:.4f} | {s1:.4f} |")
    mean = [float(np.mean([r[i] for r in rows_])) for rows_ in (before, after) for i in (1, 2)]
    print(f"| **mean** | **{mean[0]:.2f}** | **{mean[2]:.2f}** | **{mean[1]:.4f}** | **{mean[3]:.4f}** |")


if __name__ == "__main__":
    main()
