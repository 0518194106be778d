"""The "RGB joint dataset": training samples from a folder of aligned pairs.

Folder layout::

    DIR/first/<name>.<ext>    the modality input (infrared, fluorescence, ...)
    DIR/second/<name>.<ext>   the aligned reference image (visible, ...)

with the same file names (extensions may differ) in both folders, PNG, JPEG
or TIFF of any bit depth, grey or RGB (RGB becomes BT.601 luma; values are
mapped to [0, 1] as the fusion engine does with ``normalization="auto"``).

Each sample is four aligned grey crops ``(ir, vis, near, far)``: a random
``crop x crop`` window of the pair and a near/far-focus pair made from the
reference crop, its all-in-focus truth (:func:`focus_pair`); then random
horizontal and vertical flips of all four.

Everything random is drawn from ``numpy.random.default_rng([seed, epoch,
index])``, so a sample depends only on (seed, epoch, index): runs repeat and
resume exactly, and :func:`step_loader` may build the samples in any number
of :class:`torch.utils.data.DataLoader` worker processes without changing a
value.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..io.pairs import pair_folder

#: Images are cached in memory while their total size stays below this (bytes).
CACHE_LIMIT = 1 << 30
#: Smallest crop side training can use: the DenseNet-121 of the information-weighted
#: loss must keep a whole pixel after its stem and three transitions, so
#: ``ceil(ceil(n / 2) / 2) >= 8`` (the reasoning is in docs/training.md).
MIN_CROP = 29


@dataclass(frozen=True)
class PairFiles:
    """One aligned pair: its name, the two files and its size (H, W)."""

    name: str
    first: Path
    second: Path
    shape: tuple[int, int]


def image_shape(path: Path) -> tuple[int, int]:
    """(H, W) of an image file, read from its header (:func:`napari_gifnet.io.images.image_info`).

    A header check only: one image, grey or with a channel axis (at most 4
    channels), not a stack. Whether the channels make a grey or RGB image
    (a grey + alpha PNG does not) shows when it is decoded
    (:meth:`RGBJointDataset.check_images`).
    """
    from ..io import images as io

    shape, _ = io.image_info(path)  # ValueError "cannot read PATH: ..." for a broken header
    if len(shape) == 2 or (len(shape) == 3 and shape[-1] <= 4):
        return int(shape[0]), int(shape[1])
    raise ValueError(f"cannot read {path}: shape {shape} is not a grey or RGB image")


def list_pairs(root: str | Path, crop: int | None = None) -> list[PairFiles]:
    """The aligned pairs of a training folder, checked.

    Parameters
    ----------
    root : path
        The folder holding ``first/`` and ``second/``.
    crop : int, optional
        Crop side the pairs must hold.

    Returns
    -------
    list of PairFiles
        Sorted by name.

    Raises
    ------
    FileNotFoundError
        If the folder, ``first/`` or ``second/`` is missing.
    ValueError
        For no images, file names without a partner, a pair whose images
        differ in size, or a pair smaller than the crop.
    """
    folder = pair_folder(root, "training folder")
    if folder.unmatched:
        raise ValueError(f"{folder.root}: {folder.describe_unmatched()}")
    pairs = []
    for name, first, second in folder.pairs:
        sa, sb = image_shape(first), image_shape(second)
        if sa != sb:
            raise ValueError(
                f"pair {name!r}: the images differ in size ({first.name} is "
                f"{sa[1]} x {sa[0]}, {second.name} is {sb[1]} x {sb[0]}); align them first"
            )
        if crop is not None and min(sa) < crop:
            raise ValueError(
                f"pair {name!r} is {sa[1]} x {sa[0]}, smaller than the {crop} x {crop} crop: "
                "use a smaller --crop or larger images"
            )
        pairs.append(PairFiles(name, first, second, sa))
    return pairs


#: Why crops below :data:`MIN_CROP` are refused (ends the messages of :func:`check_crop`
#: and of ``napari-gifnet train --crop``).
CROP_REASON = (
    f"DenseNet-121, which weighs the multimodal loss, needs crops of at least "
    f"{MIN_CROP} x {MIN_CROP} px"
)


def check_crop(crop: object) -> None:
    """Raise ValueError unless ``crop`` is an integer of at least :data:`MIN_CROP`."""
    try:
        ok = int(crop) == crop and int(crop) >= MIN_CROP  # type: ignore[call-overload]
    except (TypeError, ValueError, OverflowError):
        ok = False
    if not ok:
        raise ValueError(f"crop must be an integer of at least {MIN_CROP}, got {crop!r} "
                         f"({CROP_REASON})")  # fmt: skip


def load_grey(path: Path) -> np.ndarray:
    """A file as a float32 (H, W) luma in [0, 1] (the engine's "auto" rule)."""
    from ..engine.preprocess import to_luma_unit
    from ..io import images as io

    image = io.read_image(path)
    try:
        luma, _ = to_luma_unit(image, normalization="auto", name=str(path))
    except ValueError as exc:
        raise ValueError(f"cannot use {path} for training: {exc}") from None
    return luma


def focus_pair(
    reference: np.ndarray, rng: np.random.Generator, max_sigma: float = 4.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Near- and far-focus versions of a grey image, and the focus mask.

    The mask ``m`` (1 = near region) is Gaussian-filtered noise (random
    correlation length, 8 % to 25 % of the side), standardised, shifted by a
    random offset and passed through a logistic of random steepness. The
    near region of ``far`` is blurred with one random sigma and the far region
    of ``near`` with another (each uniform in [1, ``max_sigma``] pixels):
    ``near = m ref + (1 - m) blur_far(ref)``, ``far = m blur_near(ref) +
    (1 - m) ref``.

    Returns
    -------
    near, far, mask : numpy.ndarray
        float32 arrays shaped like ``reference``.
    """
    from scipy import ndimage as ndi

    h, w = reference.shape
    side = min(h, w)
    noise = ndi.gaussian_filter(rng.normal(size=(h, w)), side * rng.uniform(0.08, 0.25), mode="reflect")
    z = (noise - noise.mean()) / (noise.std() + 1e-12) + rng.uniform(-0.8, 0.8)
    mask = 1.0 / (1.0 + np.exp(-rng.uniform(2.0, 10.0) * z))
    ref = reference.astype(np.float64)
    s_near, s_far = rng.uniform(1.0, max_sigma, size=2)
    blur_near = ndi.gaussian_filter(ref, s_near, mode="reflect")
    blur_far = ndi.gaussian_filter(ref, s_far, mode="reflect")
    near = mask * ref + (1 - mask) * blur_far
    far = mask * blur_near + (1 - mask) * ref
    return near.astype(np.float32), far.astype(np.float32), mask.astype(np.float32)


class RGBJointDataset(torch.utils.data.Dataset):
    """Training samples ``(ir, vis, near, far)`` from a folder of aligned pairs.

    Parameters
    ----------
    root : path
        Folder with ``first/`` and ``second/`` (see the module docstring).
    crop : int, default 128
        Side of the square crops (at least :data:`MIN_CROP`).
    seed : int, default 0
        Seed of all random choices.
    max_sigma : float, default 4.0
        Largest blur sigma of the generated focus pairs.
    flips : bool, default True
        Random horizontal and vertical flips.

    ``dataset[i]`` is a float32 tensor (4, 1, crop, crop) for epoch
    :attr:`epoch` (set it, or use :meth:`sample`).
    """

    def __init__(
        self, root: str | Path, crop: int = 128, seed: int = 0, max_sigma: float = 4.0,
        flips: bool = True,
    ) -> None:  # fmt: skip
        check_crop(crop)
        self.pairs = list_pairs(root, int(crop))
        self.crop, self.seed, self.max_sigma, self.flips = int(crop), int(seed), max_sigma, flips
        self.epoch = 0
        total = sum(8 * p.shape[0] * p.shape[1] for p in self.pairs)
        self._cache: dict[int, tuple[np.ndarray, np.ndarray]] | None = (
            {} if total <= CACHE_LIMIT else None
        )

    def __len__(self) -> int:
        return len(self.pairs)

    def _images(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        if self._cache is not None and index in self._cache:
            return self._cache[index]
        pair = self.pairs[index]
        first, second = load_grey(pair.first), load_grey(pair.second)
        if first.shape != second.shape or first.shape != pair.shape:
            raise ValueError(f"pair {pair.name!r}: the decoded images differ in size "
                             f"({first.shape} and {second.shape})")
        if self._cache is not None:
            self._cache[index] = (first, second)
        return first, second

    def sample(self, index: int, epoch: int) -> torch.Tensor:
        """Sample ``index`` of ``epoch``: (4, 1, crop, crop) = ir, vis, near, far."""
        rng = np.random.default_rng([self.seed, int(epoch), int(index)])
        first, second = self._images(index)
        h, w = first.shape
        top, left = int(rng.integers(0, h - self.crop + 1)), int(rng.integers(0, w - self.crop + 1))
        window = (slice(top, top + self.crop), slice(left, left + self.crop))
        ir, vis = first[window], second[window]
        near, far, _ = focus_pair(vis, rng, self.max_sigma)
        stack = np.stack([ir, vis, near, far])
        if self.flips:
            if rng.random() < 0.5:
                stack = stack[:, :, ::-1]
            if rng.random() < 0.5:
                stack = stack[:, ::-1, :]
        return torch.from_numpy(np.ascontiguousarray(stack, dtype=np.float32))[:, None]

    def __getitem__(self, index: int) -> torch.Tensor:
        return self.sample(index, self.epoch)

    def check_images(self, progress: bool = False) -> None:
        """Decode every pair once, so unusable images fail before training.

        The headers (:func:`list_pairs`) cannot tell, e.g., a grey + alpha
        PNG from a usable image; decoding can. The images are kept in the
        cache when it holds them (decoded folder up to :data:`CACHE_LIMIT`),
        so checking costs no extra reading then; past it, this is one extra
        pass over the folder, which training decodes again as it draws
        samples.

        Raises
        ------
        ValueError
            Naming the first file that cannot be used.
        """
        indices: Any = range(len(self))
        if progress:
            from tqdm.auto import tqdm

            indices = tqdm(indices, unit="pair", desc="checking images", dynamic_ncols=True)
        for index in indices:
            self._images(index)

    def order(self, epoch: int) -> np.ndarray:
        """The shuffled sample order of an epoch."""
        return np.random.default_rng([self.seed, int(epoch)]).permutation(len(self))

    def batches_per_epoch(self, batch_size: int) -> int:
        """Number of batches in an epoch (the last one may be smaller)."""
        return math.ceil(len(self) / batch_size)

    def batch(self, epoch: int, position: int, batch_size: int) -> torch.Tensor:
        """Batch ``position`` of ``epoch``: (4, N, 1, crop, crop) = ir, vis, near, far."""
        indices = self.order(epoch)[position * batch_size : (position + 1) * batch_size]
        return torch.stack([self.sample(int(i), epoch) for i in indices], dim=1)


# --------------------------------------------------------------------------- loading
def default_workers() -> int:
    """Sample-building worker processes by default: ``min(2, os.cpu_count())``, 0 on one core."""
    n = min(2, os.cpu_count() or 1)
    return 0 if n == 1 else n


class _StepBatches(torch.utils.data.Sampler):
    """The (epoch, index) keys of the batches of steps ``start`` .. ``total - 1``, in order."""

    def __init__(self, dataset: RGBJointDataset, batch_size: int, start: int, total: int) -> None:
        self.dataset, self.batch_size, self.start, self.total = dataset, batch_size, start, total

    def __len__(self) -> int:
        return max(self.total - self.start, 0)

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        per_epoch = self.dataset.batches_per_epoch(self.batch_size)
        for step in range(self.start, self.total):
            epoch, position = divmod(step, per_epoch)
            order = self.dataset.order(epoch)
            chosen = order[position * self.batch_size : (position + 1) * self.batch_size]
            yield [(epoch, int(i)) for i in chosen]


class _KeyedSamples(torch.utils.data.Dataset):
    """``samples[(epoch, index)]`` is ``dataset.sample(index, epoch)``.

    A sample that fails is returned as its exception, which :func:`_collate`
    passes on and :func:`step_loader`'s caller raises: the one-line message of
    the original error, not a worker's traceback.
    """

    def __init__(self, dataset: RGBJointDataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, int]) -> torch.Tensor | Exception:
        epoch, index = key
        try:
            return self.dataset.sample(index, epoch)
        except Exception as exc:  # noqa: BLE001 - raised again in the main process
            return exc


def _collate(samples: Sequence[torch.Tensor | Exception]) -> torch.Tensor | Exception:
    failed = [item for item in samples if isinstance(item, Exception)]
    return failed[0] if failed else torch.stack(list(samples), dim=1)  # type: ignore[arg-type]


def step_loader(
    dataset: RGBJointDataset, batch_size: int, start: int, total: int, workers: int = 0
) -> torch.utils.data.DataLoader:
    """The batches of steps ``start`` .. ``total - 1``, built by ``workers`` processes.

    Batch ``k`` is exactly ``dataset.batch(epoch, position, batch_size)``
    with ``epoch, position = divmod(start + k, batches_per_epoch)``, whatever
    the number of workers (0: in this process). An item is a (4, N, 1, crop,
    crop) tensor, or the exception a sample raised (raise it).
    """
    if int(workers) != workers or workers < 0:
        raise ValueError(f"workers must be a non-negative integer, got {workers!r}")
    return torch.utils.data.DataLoader(
        _KeyedSamples(dataset), batch_sampler=_StepBatches(dataset, batch_size, start, total),
        num_workers=int(workers), collate_fn=_collate,
    )  # fmt: skip
