"""Evaluate fusion methods on sets of image pairs: metrics tables, CSV and Markdown.

Every method's output is scored on its luma (``FusionResult.luma``), the
inputs as the methods saw them (``to_luma_unit``); ``convention="cddfuse"``
or ``"vifb"`` scores the fused image as it would be saved (colour kept)
against the inputs as given. ``docs/evaluation.md`` ("Conventions") gives the
rules in full, ground truth and ``time_s`` included.

:func:`score_folder` scores images already made (by any tool) against ground
truth files of the same names.
"""

from __future__ import annotations

import csv
import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from io import StringIO
from pathlib import Path
from typing import Any

import numpy as np

from ..data import sample
from ..data import synthetic as samples
from ..engine.preprocess import to_luma_unit
from ..io import images as io
from ..io.pairs import image_files, pair_folder
from ..util.safe_files import atomic_write_text
from .fusion import METRICS, REFERENCE_METRICS, _check_convention, fusion_metrics, reference_metrics

__all__ = [
    "COLUMNS", "DIRECTIONS", "MULTIFOCUS_SOURCES", "TRUTH_TASK_METRICS", "attach_truths",
    "evaluate_pairs", "generate_multifocus_set", "is_pair_folder", "load_pair_folder",
    "load_truth_folder", "read_csv", "score_folder", "summarise", "to_csv", "to_markdown",
]  # fmt: skip

#: Tasks with metrics of their own against a ground truth: task -> column ->
#: "higher" or "lower" (columns of :func:`score_folder`, all ending ``_truth``).
TRUTH_TASK_METRICS: dict[str, dict[str, str]] = {
    "remote": {
        "PSNR_bands_truth": "higher", "ERGAS_truth": "lower", "SAM_truth": "lower",
        "Q_truth": "higher", "Q2n_truth": "higher", "sCC_truth": "higher",
    },
}  # fmt: skip

#: Score column name -> "higher" or "lower" (better direction).
DIRECTIONS: dict[str, str] = {
    **{name: d for name, (d, _) in METRICS.items()},
    **{f"{name}_truth": d for name, (d, _) in REFERENCE_METRICS.items()},
    **{c: d for table in TRUTH_TASK_METRICS.values() for c, d in table.items()},
}
#: Columns of a row, in order (the two *_truth columns only with a truth).
COLUMNS: tuple[str, ...] = ("pair", "method", "height", "width", *DIRECTIONS, "time_s")
_TEXT, _INT = ("pair", "method"), ("height", "width")
_IMAGE_EXT = (".png", ".jpg", ".jpeg", ".tif", ".tiff")

#: Bundled scikit-image images used by :func:`generate_multifocus_set`, in order.
MULTIFOCUS_SOURCES: tuple[str, ...] = (
    "camera", "astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry", "moon",
    "hubble_deep_field",
)

Pair = tuple  # (name, a, b) or (name, a, b, truth)


# --------------------------------------------------------------------------- evaluation
def evaluate_pairs(
    pairs: Iterable[Pair],
    methods: Sequence[str],
    *,
    weights: Any = None,
    device: str = "auto",
    truths: Mapping[str, Any] | None = None,
    progress: Callable[[int, int, str], Any] | None = None,
    convention: str = "project",
) -> list[dict[str, Any]]:
    """Fuse every pair with every method and score the results.

    Parameters
    ----------
    pairs
        ``(name, a, b)`` or ``(name, a, b, truth)`` tuples of arrays (any input
        :func:`napari_gifnet.fuse` accepts; ``truth`` may be None).
    methods
        Names for :func:`napari_gifnet.methods.classical.fuse_with` (``"gifnet"``,
        ``"mean"``, ...); checked before any work is done.
    weights, device
        Passed to GIFNet only.
    truths
        Optional pair name -> ground truth, for pairs without a 4th element.
    progress
        Called as ``progress(done, total, "pair / method")`` before each fusion
        and once with ``done == total`` at the end.
    convention
        ``"project"`` (default), ``"cddfuse"`` or ``"vifb"``: whose metric
        conventions (``docs/evaluation.md``).

    Returns
    -------
    list of dict
        One row per (pair, method), keys :data:`COLUMNS` (the ``*_truth``
        keys only for pairs with a truth).

    Raises
    ------
    ValueError
        No pairs, no methods, an unknown method, or unusable images.
    """
    from ..methods.classical import fuse_with
    from ..methods.registry import method_keys

    _check_convention(convention)
    pairs = list(pairs)
    if not pairs:
        raise ValueError("no image pairs to evaluate")
    methods = method_keys(methods)
    if not methods:
        raise ValueError("no fusion methods given")
    truths = dict(truths or {})
    rows: list[dict[str, Any]] = []
    total, done = len(pairs) * len(methods), 0
    for pair in pairs:
        if len(pair) not in (3, 4):
            raise ValueError("each pair must be (name, a, b) or (name, a, b, truth)")
        name, a, b = str(pair[0]), pair[1], pair[2]
        truth = pair[3] if len(pair) == 4 and pair[3] is not None else truths.get(name)
        try:
            luma_a = to_luma_unit(a, name="a")[0]
            luma_b = to_luma_unit(b, name="b")[0]
        except ValueError as exc:
            raise ValueError(f"pair {name!r}: {exc}") from exc
        if luma_a.shape != luma_b.shape:
            raise ValueError(
                f"pair {name!r}: a is {_size(luma_a.shape)} but b is {_size(luma_b.shape)}; "
                "the two images of a pair must have the same height and width"
            )
        for method in methods:
            if progress is not None:
                progress(done, total, f"{name} / {method}")
            kw = {"weights": weights, "device": device} if method == "gifnet" else {}
            start = time.perf_counter()
            result = fuse_with(method, a, b, **kw)
            elapsed = time.perf_counter() - start
            luma = np.clip(np.asarray(result.luma, dtype=np.float64), 0.0, 1.0)
            row: dict[str, Any] = {
                "pair": name, "method": method,
                "height": int(luma.shape[0]), "width": int(luma.shape[1]),
                "time_s": float(elapsed),
            }
            if convention == "project":
                scored, inputs = luma, (luma_a, luma_b)
            else:  # as the paper's evaluator reads the saved image and the input files
                scored, inputs = np.clip(np.asarray(result.image), 0.0, 1.0), (a, b)
            row.update(fusion_metrics(scored, *inputs, convention=convention))
            if truth is not None:
                ref = reference_metrics(scored, truth, convention=convention)
                row.update({f"{k}_truth": v for k, v in ref.items()})
            rows.append(row)
            done += 1
    if progress is not None:
        progress(done, total, "done")
    return rows


# --------------------------------------------------------------------------- folders
def _size(shape: Sequence[int]) -> str:
    """``"H x W"`` of an image shape (grey or with channels)."""
    return f"{shape[0]} x {shape[1]}"


def _read_pair(name: str, fa: Path, fb: Path, ft: Path | None) -> Pair:
    """Read one pair's files; ValueError naming the pair and the files on a size mismatch."""
    a, b = io.read_image(fa), io.read_image(fb)
    t = io.read_image(ft) if ft is not None else None
    if a.shape[:2] != b.shape[:2]:
        raise ValueError(
            f"pair {name!r}: {fa} is {_size(a.shape)} but {fb} is {_size(b.shape)}; "
            "the two images of a pair must have the same height and width"
        )
    if t is not None and t.shape[:2] != a.shape[:2]:
        raise ValueError(
            f"pair {name!r}: the truth {ft} is {_size(t.shape)} but {fa} and {fb} are "
            f"{_size(a.shape)}; the truth must have the pair's height and width"
        )
    return (name, a, b, t)


def _images(folder: Path, prefix: str = "") -> list[Path]:
    return sorted(
        p for p in folder.iterdir()
        if p.is_file() and p.suffix.lower() in _IMAGE_EXT and p.name.startswith(prefix)
    )


def load_pair_folder(path: str | Path) -> list[Pair]:
    """Read image pairs from a folder.

    Two layouts are recognised:

    * ``DIR/first/``, ``DIR/second/`` (and optionally ``DIR/truth/``) holding
      files with matching names (matched by stem, any supported extension);
      each match is a pair named after the stem.
    * ``DIR/<name>/a_*.ext`` + ``b_*.ext`` (optionally ``truth_*.ext``), the
      layout of the published example pairs. One ``a`` and one ``b`` make the
      pair ``<name>``; several give every ``a`` x ``b`` combination, named
      ``<name>-<rest of the a stem>`` (and ``-<rest of the b stem>`` when
      there are several ``b``).

    Returns
    -------
    list of (name, a, b, truth)
        Arrays as :func:`napari_gifnet.io.images.read_image` reads them; truth None
        when absent. Sorted by name.

    Raises
    ------
    FileNotFoundError
        ``path`` is not a folder.
    ValueError
        No pair found, or the images of a pair (or its truth) differ in
        height and width (the message names the pair and its files).
    """
    root = Path(path)
    if not root.is_dir():
        raise FileNotFoundError(f"pairs folder not found: {root}")
    pairs: list[Pair] = []
    if (root / "first").is_dir() and (root / "second").is_dir():
        truth_dir = root / "truth"
        truth = image_files(truth_dir) if truth_dir.is_dir() else {}
        for name, first, second in pair_folder(root).pairs:
            pairs.append(_read_pair(name, first, second, truth.get(name)))
    else:
        for sub in sorted(d for d in root.iterdir() if d.is_dir()):
            a_files, b_files = _images(sub, "a_"), _images(sub, "b_")
            t_files = _images(sub, "truth_")
            ft = t_files[0] if t_files else None
            for fa in a_files:
                for fb in b_files:
                    name = sub.name
                    if len(a_files) > 1:
                        name += "-" + fa.stem[2:]
                    if len(b_files) > 1:
                        name += "-" + fb.stem[2:]
                    pairs.append(_read_pair(name, fa, fb, ft))
    if not pairs:
        raise ValueError(
            f"no image pairs found in {root}: expected first/ + second/ with matching file "
            "names, or <name>/a_*.<ext> + <name>/b_*.<ext> subfolders"
        )
    return sorted(pairs, key=lambda p: p[0])


# --------------------------------------------------------------------------- against truth
def load_truth_folder(path: str | Path) -> dict[str, Path]:
    """The ground-truth image files of a folder, by file stem.

    Raises
    ------
    FileNotFoundError
        ``path`` is not a folder.
    ValueError
        It holds no image, or two images with one stem.
    """
    root = Path(path)
    if not root.is_dir():
        raise FileNotFoundError(f"truth folder not found: {root}")
    found = image_files(root)
    if not found:
        raise ValueError(f"no images in the truth folder {root}")
    return found


def is_pair_folder(path: str | Path) -> bool:
    """Whether ``path`` holds pairs in a layout :func:`load_pair_folder` reads."""
    root = Path(path)
    if not root.is_dir():
        return False
    if (root / "first").is_dir() and (root / "second").is_dir():
        return True
    return any(d.is_dir() and _images(d, "a_") and _images(d, "b_") for d in root.iterdir())


def attach_truths(pairs: Iterable[Pair], truth: str | Path) -> list[Pair]:
    """Give each pair without a truth the file of its name in the folder ``truth``.

    Raises
    ------
    ValueError
        A truth whose height and width differ from its pair's (naming the file).
    """
    files = load_truth_folder(truth)
    out: list[Pair] = []
    for pair in pairs:
        name, a, b = pair[0], pair[1], pair[2]
        t = pair[3] if len(pair) == 4 else None
        if t is None and name in files:
            t = io.read_image(files[name])
            if t.shape[:2] != np.shape(a)[:2]:
                raise ValueError(
                    f"pair {name!r}: the truth {files[name]} is {_size(t.shape)} but the pair "
                    f"is {_size(np.shape(a))}; the truth must have the pair's height and width"
                )
        out.append((name, a, b, t))
    return out


def _result_sets(root: Path) -> dict[str, dict[str, Path]]:
    """method -> {stem: file}: the images of ``root`` itself (method: its name),
    or else of each of its subfolders (method: the subfolder's name)."""
    direct = image_files(root)
    if direct:
        return {root.name: direct}
    subs = {d.name: image_files(d) for d in sorted(root.iterdir()) if d.is_dir()}
    return {k: v for k, v in subs.items() if v}


def _task_scores(task: str | None, fused: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """The task's own metrics against the truth (pansharpening: every band)."""
    if task != "remote" or fused.ndim != 3 or truth.shape != fused.shape:
        return {}
    from .pansharpening import pansharpening_metrics

    top = float(np.iinfo(truth.dtype).max) if truth.dtype.kind in "ui" else 1.0
    values = pansharpening_metrics(fused.astype(np.float64), truth.astype(np.float64),
                                   data_range=top)  # fmt: skip
    names = {"PSNR": "PSNR_bands_truth"}
    return {names.get(k, f"{k}_truth"): float(v) for k, v in values.items()}


def score_folder(
    folder: str | Path,
    truth: str | Path,
    *,
    task: str | None = None,
    convention: str = "project",
) -> list[dict[str, Any]]:
    """Score images already made against ground-truth files of the same names.

    Parameters
    ----------
    folder
        A folder of result images (its name is the method), or a folder of
        such folders (one per method, e.g. ``results/gifnet/``,
        ``results/laplacian/``). Images are matched to the truth by file
        stem; those without a truth are left out.
    truth
        The folder of ground-truth images.
    task
        ``"remote"`` adds the pansharpening indices of every band
        (:data:`TRUTH_TASK_METRICS`; colour results and truths of the same
        bands); other tasks have PSNR and SSIM only.
    convention
        Passed to :func:`napari_gifnet.metrics.fusion.reference_metrics`
        (``"cddfuse"``: its SSIM).

    Returns
    -------
    list of dict
        One row per (image, method): ``pair`` (the stem), ``method``,
        ``height``, ``width``, ``PSNR_truth``, ``SSIM_truth`` and the task's
        columns.

    Raises
    ------
    FileNotFoundError
        A folder that does not exist.
    ValueError
        No image matches a truth (the message names both folders), or an
        image and its truth differ in height and width (naming both files).
    """
    root, truths = Path(folder), load_truth_folder(truth)
    if not root.is_dir():
        raise FileNotFoundError(f"results folder not found: {root}")
    rows: list[dict[str, Any]] = []
    for method, files in _result_sets(root).items():
        for stem, path in files.items():
            if stem not in truths:
                continue
            fused, ref = io.read_image(path), io.read_image(truths[stem])
            if fused.shape[:2] != ref.shape[:2]:
                raise ValueError(
                    f"{path} is {_size(fused.shape)} but its truth {truths[stem]} is "
                    f"{_size(ref.shape)}; a result must have its truth's height and width"
                )
            row: dict[str, Any] = {"pair": stem, "method": method,
                                   "height": int(fused.shape[0]), "width": int(fused.shape[1])}
            values = reference_metrics(fused, ref, convention=convention)
            row.update({f"{k}_truth": v for k, v in values.items()})
            row.update(_task_scores(task, fused, ref))
            rows.append(row)
    if not rows:
        raise ValueError(
            f"no image of {root} (or of its subfolders) has a truth of the same name in {truth}"
        )
    return rows


# --------------------------------------------------------------------------- multi-focus set
def scene_grey(source: str, size: int) -> np.ndarray:
    """The centred square of the scikit-image photo ``source`` (e.g.
    ``"camera"``), resized to ``size`` x ``size``, as grey float in [0, 1]."""
    from skimage import data

    image = getattr(data, source)() / 255.0
    h, w = image.shape[:2]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    image = sample.fit_within(image[top : top + side, left : left + side], size)
    return sample.rgb_luma(image) if image.ndim == 3 else image


def generate_multifocus_set(
    n_scenes: int = 4, size: int = 256, seed: int = 0, max_sigma: float = 4.0
) -> list[tuple[str, np.ndarray, np.ndarray, np.ndarray]]:
    """A multi-focus test set with ground truth, from bundled scikit-image images.

    Each scene is the central square of an image of :data:`MULTIFOCUS_SOURCES`
    (grey luma, resized to ``size``) with a smooth random nearness map
    (Gaussian-filtered noise through a steep logistic, so most pixels are
    clearly near or far). ``near`` focuses nearness 1 and ``far`` nearness 0,
    rendered with :func:`napari_gifnet.data.synthetic.defocus` (sigma = ``max_sigma``
    x |nearness - focus|). Offline and deterministic for a given seed.

    Returns
    -------
    list of (name, near, far, truth)
        uint8 (size, size) arrays; name ``"<source>"``.
    """
    from scipy import ndimage as ndi

    if int(n_scenes) != n_scenes or not 1 <= n_scenes <= len(MULTIFOCUS_SOURCES):
        raise ValueError(f"n_scenes must be an integer from 1 to {len(MULTIFOCUS_SOURCES)}")
    size = sample.check_size(size)
    rng = np.random.default_rng(seed)
    scenes = []
    for source in MULTIFOCUS_SOURCES[: int(n_scenes)]:
        grey = scene_grey(source, size)
        noise = ndi.gaussian_filter(rng.normal(size=(size, size)), size / 8, mode="reflect")
        z = (noise - noise.mean()) / (noise.std() + 1e-12)
        nearness = 1.0 / (1.0 + np.exp(-6.0 * z))
        near = sample.to_uint8(samples.defocus(grey, nearness, 1.0, max_sigma))
        far = sample.to_uint8(samples.defocus(grey, nearness, 0.0, max_sigma))
        scenes.append((source, near, far, sample.to_uint8(grey)))
    return scenes


# --------------------------------------------------------------------------- tables
def _columns(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    present = {k for r in rows for k in r}
    return [c for c in COLUMNS if c in present] + sorted(present - set(COLUMNS))


def summarise(rows: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, float]]:
    """Mean of every score (and ``time_s``) per method, ignoring NaN.

    Returns ``{method: {column: mean}}``, methods in first-seen order.
    """
    out: dict[str, dict[str, float]] = {}
    scores = [c for c in _columns(rows) if c not in _TEXT + _INT]
    for method in dict.fromkeys(r["method"] for r in rows):
        mine = [r for r in rows if r["method"] == method]
        out[method] = {}
        for c in scores:
            vals = np.array([float(r[c]) for r in mine if c in r], dtype=np.float64)
            vals = vals[~np.isnan(vals)]
            out[method][c] = float(vals.mean()) if vals.size else math.nan
        out[method]["pairs"] = float(len(mine))
    return out


def to_csv(rows: Sequence[Mapping[str, Any]], path: str | Path) -> Path:
    """Write the rows as CSV (columns of :data:`COLUMNS` present; blanks for missing).

    The file is written atomically (:func:`napari_gifnet.util.safe_files.atomic_write`):
    complete or not at all, an existing file at ``path`` stays as it was when
    anything fails.

    Raises
    ------
    OSError
        When the file cannot be written ("no space left on device" for a
        full disk), naming ``path``.
    """
    path = Path(path)
    cols = _columns(rows)
    text = StringIO()
    writer = csv.DictWriter(text, fieldnames=cols, restval="")
    writer.writeheader()
    for r in rows:
        writer.writerow({c: (repr(float(r[c])) if c in r and c not in _TEXT + _INT else r.get(c, ""))
                         for c in cols})
    atomic_write_text(path, text.getvalue())
    return path


def read_csv(path: str | Path) -> list[dict[str, Any]]:
    """Read rows written by :func:`to_csv` back (numbers as float/int; blanks dropped)."""
    rows = []
    with Path(path).open(newline="", encoding="utf-8") as fh:
        for raw in csv.DictReader(fh):
            row: dict[str, Any] = {}
            for k, v in raw.items():
                if v == "" or v is None:
                    continue
                row[k] = v if k in _TEXT else int(v) if k in _INT else float(v)
            rows.append(row)
    return rows


def _fmt(v: float) -> str:
    return "nan" if math.isnan(v) else "inf" if math.isinf(v) else f"{v:.3f}"


def _table(labels: list[str], values: list[dict[str, float]], cols: list[str], head: str) -> str:
    """Markdown table; the best displayed value of each scored column in bold (ties too)."""
    best = {}
    for c in cols:
        if c not in DIRECTIONS:
            continue
        shown = [float(_fmt(v[c])) for v in values if c in v and not math.isnan(v[c])]
        if shown:
            best[c] = max(shown) if DIRECTIONS[c] == "higher" else min(shown)
    lines = [f"| {head} | " + " | ".join(cols) + " |", "| --- |" + " --- |" * len(cols)]
    for label, v in zip(labels, values):
        cells = []
        for c in cols:
            if c not in v:
                cells.append("")
                continue
            text = _fmt(v[c])
            cells.append(f"**{text}**" if c in best and not math.isnan(v[c])
                         and float(text) == best[c] else text)
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def to_markdown(rows: Sequence[Mapping[str, Any]], *, per_pair: bool = True) -> str:
    """Markdown tables: the mean per method over all pairs, then one table per pair.

    The best value of each score column (direction from :data:`DIRECTIONS`:
    all "higher") is in bold within each table; ``time_s`` is not marked.
    """
    if not rows:
        return "(no results)\n"
    cols = [c for c in _columns(rows) if c not in _TEXT + _INT]
    summary = summarise(rows)
    n_pairs = len(dict.fromkeys(r["pair"] for r in rows))
    parts = [f"### Mean over {n_pairs} pair(s)\n",
             _table(list(summary), list(summary.values()), cols, "method")]
    if per_pair:
        for pair in dict.fromkeys(r["pair"] for r in rows):
            mine = [r for r in rows if r["pair"] == pair]
            h, w = mine[0]["height"], mine[0]["width"]
            parts += [f"\n### {pair} ({h} x {w})\n",
                      _table([r["method"] for r in mine], [dict(r) for r in mine], cols, "method")]
    return "\n".join(parts) + "\n"
