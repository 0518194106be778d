"""Registration on known transforms: how far from the truth each method puts the pixels.

Usage (from the repository root)::

    python benchmarks/bench_registration.py [--quick] [--out TABLE.md] [--overlays DIR]

Cases, each with a KNOWN transform (a (ndim+1) x (ndim+1) matrix in world
coordinates that maps a point of the fixed image to the point of the moving
image showing it, the convention of :class:`napari_gifnet.workflows.registration.Transform`):

2-D
    One image of three published pairs (read from ``../shared/reference``
    at run time: the infrared image of IVIF, the MRI of Medical, the visible
    image of NIR-VIS) and two scikit-image photographs (camera, astronaut).
    The published pairs themselves are not registered (1 to 7 px of
    parallax), so the second modality is made from the same image
    (:func:`other_modality`): its grey levels equalised (each pixel's rank
    in the image, 0 to 1) and put through a non-monotonic mapping
    (:func:`second_modality`: the darkest and the brightest turn mid-grey,
    the darker mid-tones bright; a third of the pixels keep their order of
    brightness, two thirds have it inverted), resampled through the known
    transform (cubic), blurred (Gaussian, sigma 1 px) and noisy (Gaussian,
    sigma 0.02; the fixed image 0.01). Each image is scaled so its short
    side is 1.5 x ``--size`` (the MRI, whose head fills its frame, is scaled
    to ``--size`` and padded with black); the fixed image is the central
    ``--size`` square, the moving image (same size and spacing) sees the
    scene through the transform, so the margin holds what it sees beyond
    the fixed image's edges.
3-D
    A smooth head-like phantom (:func:`phantom`: skull, brain, ventricles and
    lesions as soft-edged ellipsoids, a faint texture), evaluated
    analytically in a field of 64 mm: the fixed volume ``--volume`` voxels a
    side (1 mm at 64), the moving volume at a coarser spacing (2 x, or 3 x in
    z and 1.5 x in y and x), each of its voxels the mean of 8 samples (the
    partial volume), with the non-monotonic mapping (the contrast inverted,
    mid-tones bright) and noise.

Transforms (about the centre of the fixed field): rotations up to 10 degrees
(3-D: about a random axis), scales 0.9 to 1.1 (similarity: one; affine: one
per axis, and a shear up to 0.05), shifts up to 10 % of the size per axis;
``--draws`` random draws per image and kind, seed ``--seed``.

Methods
    ``phase (today)``: the project's phase correlation as it stands before
    registration: :func:`napari_gifnet.workflows.alignment.estimate_similarity`
    in 2-D (shift, magnification, rotation; :func:`phase_matrix` turns them
    into the fixed -> moving matrix), in 3-D a translation by
    :func:`skimage.registration.phase_cross_correlation` of the fixed volume
    and the moving one resampled onto the fixed grid. ``mattes KIND``:
    :func:`napari_gifnet.workflows.registration.register` (mutual
    information) with the case's kind, and ``mattes affine`` on every case.
    ``landmarks KIND``: :func:`napari_gifnet.workflows.landmarks.register_landmarks`
    from 5 (2-D) or 6 (3-D) true point pairs spread over the central 80 %,
    the moving points with Gaussian noise of 0.5 px per coordinate. A call
    that raises is a failed row with its message (no error figure).

Error: the distance between the true and the recovered moving position of
every pixel (voxel) of the fixed grid, in pixels (voxels) of the fixed grid;
mean and max. Goal: mean under 0.5 px in 2-D, under 1 voxel in 3-D. Time:
the call alone (estimation, ``resample=False``).
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT.parent / "shared" / "reference"
sys.path.insert(0, str(ROOT / "src"))

from napari_gifnet import __version__  # noqa: E402

KINDS = ("rigid", "similarity", "affine")
GOAL = {2: 0.5, 3: 1.0}  # mean error under this (px / voxels of the fixed grid)
#: (label, published case, which input) of the published pairs; None: a scikit-image photograph
SOURCES = (
    ("IVIF infrared", "IVIF", "input_a"),
    ("Medical MRI", "Medical", "input_b"),
    ("NIR-VIS visible", "NIR-VIS", "input_b"),
    ("camera", None, "camera"),
    ("astronaut", None, "astronaut"),
)  # fmt: skip
PADDED = ("Medical",)  # scaled to the fixed size and padded with black (the head fills its frame)
FIELD_MM = 64.0  # the 3-D phantom's field (mm a side)
MOVING_SPACINGS = ((2.0, 2.0, 2.0), (3.0, 1.5, 1.5))  # x the fixed spacing, cycled over draws


@dataclass(frozen=True)
class Case:
    """One registration problem with its true transform."""

    name: str
    kind: str
    fixed: np.ndarray
    moving: np.ndarray
    fixed_spacing: tuple[float, ...]
    moving_spacing: tuple[float, ...]
    truth: np.ndarray  # fixed world -> moving world, homogeneous
    fixed_points: np.ndarray  # (N, ndim) world
    moving_points: np.ndarray  # (N, ndim) world, noisy

    @property
    def ndim(self) -> int:
        return self.fixed.ndim


@dataclass(frozen=True)
class Row:
    """One method on one case."""

    case: str
    kind: str
    ndim: int
    method: str
    mean: float | None  # None: the method failed
    max: float | None
    seconds: float
    note: str = ""
    matrix: np.ndarray | None = None


# --------------------------------------------------------------------------- transforms
def rotation(ndim: int, degrees: float, rng: np.random.Generator) -> np.ndarray:
    """A rotation by ``degrees`` (3-D: about a random axis), in array-axis coordinates."""
    t = np.deg2rad(degrees)
    if ndim == 2:
        return np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])
    from scipy.spatial.transform import Rotation

    axis = rng.standard_normal(3)
    return Rotation.from_rotvec(t * axis / np.linalg.norm(axis)).as_matrix()


def random_transform(kind: str, extent: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A fixed -> moving world matrix of ``kind`` about the centre of a field of ``extent``.

    Rotation up to 10 degrees, scale 0.9 to 1.1 (affine: per axis, shear up to
    0.05), shift up to 10 % of ``extent`` per axis.
    """
    ndim = len(extent)
    linear = rotation(ndim, rng.uniform(-10.0, 10.0), rng)
    if kind == "similarity":
        linear = linear * rng.uniform(0.9, 1.1)
    elif kind == "affine":
        shear = np.eye(ndim)
        shear[np.triu_indices(ndim, 1)] = rng.uniform(-0.05, 0.05, ndim * (ndim - 1) // 2)
        linear = linear @ np.diag(rng.uniform(0.9, 1.1, ndim)) @ shear
    centre = np.asarray(extent, np.float64) / 2.0
    shift = rng.uniform(-0.1, 0.1, ndim) * extent
    matrix = np.eye(ndim + 1)
    matrix[:ndim, :ndim] = linear
    matrix[:ndim, ndim] = centre + shift - linear @ centre
    return matrix


def phase_matrix(
    shift: np.ndarray, scale: float, rotation_deg: float, shape: tuple[int, ...]
) -> np.ndarray:
    """The fixed -> moving matrix (pixels) of :func:`~napari_gifnet.workflows.alignment.
    apply_transform`'s ``(shift, scale, rotation)`` on planes of ``shape``.

    ``apply_transform(moving, shift, scale, rotation)`` samples the moving
    plane at ``m (p - c - shift) + c`` for output pixel ``p``, with ``c`` the
    plane's centre and ``m`` the scaled rotation.
    """
    t = np.deg2rad(rotation_deg)
    m = scale * np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])
    c = (np.asarray(shape[:2], np.float64) - 1.0) / 2.0
    matrix = np.eye(3)
    matrix[:2, :2] = m
    matrix[:2, 2] = c - m @ (c + np.asarray(shift, np.float64))
    return matrix


def warp_to_fixed(
    moving: np.ndarray, matrix: np.ndarray, fixed_shape: tuple[int, ...],
    fixed_spacing: tuple[float, ...], moving_spacing: tuple[float, ...], order: int = 1,
) -> np.ndarray:  # fmt: skip
    """The moving image resampled onto the fixed grid through a fixed -> moving world matrix."""
    n = moving.ndim
    fs, ms = np.asarray(fixed_spacing, np.float64), np.asarray(moving_spacing, np.float64)
    linear = matrix[:n, :n] * fs[None, :] / ms[:, None]
    return ndi.affine_transform(moving, linear, offset=matrix[:n, n] / ms,
                                output_shape=fixed_shape, order=order, mode="constant", cval=0.0)  # fmt: skip


def grid_error(
    truth: np.ndarray, estimate: np.ndarray, shape: tuple[int, ...], spacing: tuple[float, ...]
) -> tuple[float, float]:
    """(mean, max) distance between the true and the estimated moving positions of every
    pixel of a fixed grid of ``shape`` and ``spacing``, in pixels of that grid."""
    n = len(shape)
    sp = np.asarray(spacing, np.float64)
    diff = (np.asarray(truth, np.float64) - np.asarray(estimate, np.float64))[:n]
    axes = [np.arange(s, dtype=np.float64) * d for s, d in zip(shape, sp, strict=True)]
    # diff is affine: accumulate its columns over the grid without materialising coordinates
    total = np.broadcast_to(diff[:, n].reshape((n,) + (1,) * n), (n, *shape)).copy()
    for k, a in enumerate(axes):
        view = [1] * n
        view[k] = len(a)
        total += diff[:, k].reshape((n,) + (1,) * n) * a.reshape(view)[None]
    dist = np.sqrt((((total / sp.reshape((n,) + (1,) * n)) ** 2).sum(axis=0)))
    return float(dist.mean()), float(dist.max())


# --------------------------------------------------------------------------- images
def second_modality(v: np.ndarray) -> np.ndarray:
    """A non-monotonic intensity mapping of [0, 1]: black -> 0.72, mid-dark (0.36) -> 1,
    white -> 0.19 (dark and bright both mid-grey; contrast inverted above 0.36)."""
    return 0.5 + 0.5 * np.sin(3.5 * np.asarray(v, np.float64) + 0.3)


def other_modality(image: np.ndarray) -> np.ndarray:
    """The second modality of a 2-D scene: :func:`second_modality` of its equalised grey
    levels (each pixel's rank in the image, 0 to 1)."""
    q = np.linspace(0.0, 1.0, 257)
    levels = np.quantile(image, q) + q * 1e-9  # strictly increasing through ties
    return second_modality(np.interp(image, levels, q))


def _grey(label: str, case: str | None, key: str, reference: Path) -> np.ndarray:
    if case is None:
        from skimage import data
        from skimage.color import rgb2gray

        img = getattr(data, key)()
        img = rgb2gray(img) if img.ndim == 3 else img.astype(np.float64) / 255.0
        return np.asarray(img, np.float64)
    path = reference / "official" / f"{case}.npz"
    if not path.is_file():
        raise FileNotFoundError(f"{label}: {path} is missing (the reference pairs)")
    with np.load(path) as d:
        return d[key].astype(np.float64) / 255.0


def scene(label: str, case: str | None, key: str, size: int, reference: Path) -> np.ndarray:
    """The image, scaled so its short side is 1.5 x ``size`` (padded: scaled to ``size``
    and padded with black), central 1.5 x ``size`` square."""
    from skimage.transform import resize

    img = _grey(label, case, key, reference)
    big = round(1.5 * size)
    side = size if case in PADDED else big
    f = side / min(img.shape)
    img = resize(img, (round(img.shape[0] * f), round(img.shape[1] * f)), anti_aliasing=f < 1,
                 order=3)  # fmt: skip
    if case in PADDED:
        pad = [((big - s) // 2, big - s - (big - s) // 2) for s in img.shape]
        img = np.pad(img, [(max(a, 0), max(b, 0)) for a, b in pad])
    top, left = (img.shape[0] - big) // 2, (img.shape[1] - big) // 2
    return np.clip(img[top : top + big, left : left + big], 0.0, 1.0)


def landmarks(
    truth: np.ndarray, extent: np.ndarray, n: int, noise: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` fixed points in the central 80 % of ``extent`` and their true moving
    positions plus Gaussian noise of ``noise`` (world units) per coordinate."""
    ndim = len(extent)
    fixed = rng.uniform(0.1, 0.9, (n, ndim)) * extent
    moving = fixed @ truth[:ndim, :ndim].T + truth[:ndim, ndim]
    return fixed, moving + rng.normal(0.0, noise, moving.shape)


def case_2d(label: str, image: np.ndarray, size: int, kind: str, draw: int,
            rng: np.random.Generator) -> Case:  # fmt: skip
    """A fixed crop of ``image`` and a warped second modality of it (see the module)."""
    margin = (image.shape[0] - size) / 2.0
    fixed = image[round(margin) : round(margin) + size, round(margin) : round(margin) + size]
    extent = np.array([size, size], np.float64)
    # world = pixel index; the matrix about the field's centre (size - 1) / 2
    truth = random_transform(kind, extent - 1.0, rng)
    inverse = np.linalg.inv(truth)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    seen = inverse[:2, :2] @ np.stack([yy.ravel(), xx.ravel()]) + inverse[:2, 2:3]
    other = other_modality(image)
    moving = ndi.map_coordinates(other, seen + round(margin), order=3, mode="reflect")
    moving = ndi.gaussian_filter(moving.reshape(size, size), 1.0)
    moving = moving + rng.normal(0.0, 0.02, moving.shape)
    fixed = fixed + rng.normal(0.0, 0.01, fixed.shape)
    points = landmarks(truth, extent - 1.0, 5, 0.5, rng)
    return Case(f"{label} #{draw + 1}", kind, fixed.astype(np.float32), moving.astype(np.float32),
                (1.0, 1.0), (1.0, 1.0), truth, *points)  # fmt: skip


# (value, centre (z, y, x) mm from the field's centre, semi-axes mm, turn about z (deg));
# later ellipsoids replace earlier ones where they cover them
_ELLIPSOIDS = (
    (0.85, (0, 0, 0), (24, 27, 21), 0),       # skull
    (0.45, (0, 0, 0), (21.5, 24.5, 18.5), 0),  # brain
    (0.25, (2, -3, -4), (8, 10, 3), 12),       # ventricles
    (0.25, (2, -2, 4), (7, 9, 3), -10),
    (0.65, (-8, 9, -9), (4, 5, 4), 0),        # lesions: asymmetric, no mirror twin
    (0.75, (9, -12, 7), (3, 3, 5), 30),
    (0.10, (-12, 2, 8), (4, 6, 3), -20),
    (0.95, (12, 15, 0), (3, 4, 6), 45),        # a bright blob near the top
)  # fmt: skip


def phantom(points: np.ndarray) -> np.ndarray:
    """The head-like phantom at world points (..., 3) in mm (field 0..64 mm)."""
    p = np.asarray(points, np.float64) - FIELD_MM / 2.0
    value = np.zeros(p.shape[:-1])
    for v, centre, axes, turn in _ELLIPSOIDS:
        t = np.deg2rad(turn)
        q = p - np.asarray(centre, np.float64)
        y = np.cos(t) * q[..., 1] - np.sin(t) * q[..., 2]
        x = np.sin(t) * q[..., 1] + np.cos(t) * q[..., 2]
        r = np.sqrt((q[..., 0] / axes[0]) ** 2 + (y / axes[1]) ** 2 + (x / axes[2]) ** 2)
        edge = 1.0 / (1.0 + np.exp(-(1.0 - r) * min(axes) / 0.6))  # soft edge, ~0.6 mm
        value = value * (1.0 - edge) + v * edge
    texture = 0.04 * (np.sin(p[..., 0] / 3.1) * np.cos(p[..., 1] / 2.3)
                      + np.sin(p[..., 2] / 2.7 + p[..., 0] / 5.0))  # fmt: skip
    inside = value > 0.3
    return value + np.where(inside, texture, 0.0)


def _grid(shape: tuple[int, ...], spacing: np.ndarray) -> np.ndarray:
    axes = [np.arange(s) * d for s, d in zip(shape, spacing, strict=True)]
    return np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1)


def case_3d(side: int, kind: str, draw: int, rng: np.random.Generator) -> Case:
    """The phantom on a fixed grid and its second modality through the transform on a coarser
    grid (see the module)."""
    fs = np.full(3, FIELD_MM / side)
    ms = fs * np.asarray(MOVING_SPACINGS[draw % len(MOVING_SPACINGS)])
    mshape = tuple(int(round(FIELD_MM / d)) for d in ms)
    truth = random_transform(kind, np.full(3, FIELD_MM), rng)
    inverse = np.linalg.inv(truth)
    fixed = phantom(_grid((side,) * 3, fs)) + rng.normal(0.0, 0.01, (side,) * 3)
    grid = _grid(mshape, ms)
    moving = np.zeros(mshape)
    for offset in np.stack(np.meshgrid(*[[-0.25, 0.25]] * 3, indexing="ij"), -1).reshape(-1, 3):
        world = grid + offset * ms
        moving += phantom(world @ inverse[:3, :3].T + inverse[:3, 3]) / 8.0
    moving = second_modality(moving) + rng.normal(0.0, 0.02, mshape)
    points = landmarks(truth, np.full(3, FIELD_MM), 6, 0.5 * fs[0], rng)
    spacing = "x".join(f"{d:.3g}" for d in ms)
    return Case(f"phantom {side}^3, moving {spacing} mm #{draw + 1}", kind,
                fixed.astype(np.float32), moving.astype(np.float32), tuple(fs.tolist()),
                tuple(ms.tolist()), truth, *points)  # fmt: skip


# --------------------------------------------------------------------------- methods
def phase_today(case: Case) -> np.ndarray:
    """The fixed -> moving matrix the project's phase correlation finds (see the module)."""
    if case.ndim == 2:
        from napari_gifnet.workflows.alignment import estimate_similarity

        shift, scale, angle = estimate_similarity(case.fixed, case.moving)
        return phase_matrix(shift, scale, angle, case.fixed.shape)
    from skimage.registration import phase_cross_correlation

    identity = np.eye(4)
    up = warp_to_fixed(case.moving, identity, case.fixed.shape, case.fixed_spacing,
                       case.moving_spacing)  # fmt: skip
    shift = phase_cross_correlation(case.fixed, up, upsample_factor=10)[0]
    matrix = np.eye(4)
    matrix[:3, 3] = -np.asarray(shift) * np.asarray(case.fixed_spacing)
    return matrix


def mattes(kind: str) -> Callable[[Case], np.ndarray]:
    def run(case: Case) -> np.ndarray:
        from napari_gifnet.workflows.registration import register

        done = register(case.fixed, case.moving, kind, fixed_spacing=case.fixed_spacing,
                        moving_spacing=case.moving_spacing, resample=False)  # fmt: skip
        return np.asarray(done.transform.matrix, np.float64)

    return run


def by_landmarks(kind: str) -> Callable[[Case], np.ndarray]:
    def run(case: Case) -> np.ndarray:
        from napari_gifnet.workflows.landmarks import register_landmarks

        done = register_landmarks(case.fixed_points, case.moving_points, kind,
                                  fixed_spacing=case.fixed_spacing,
                                  moving_spacing=case.moving_spacing, resample=False)  # fmt: skip
        return np.asarray(done.transform.matrix, np.float64)

    return run


def methods_for(case: Case) -> list[tuple[str, Callable[[Case], np.ndarray]]]:
    """phase (today), mattes of the case's kind, mattes affine, landmarks of the case's kind."""
    chosen = [("phase (today)", phase_today), (f"mattes {case.kind}", mattes(case.kind))]
    if case.kind != "affine":
        chosen.append(("mattes affine", mattes("affine")))
    chosen.append((f"landmarks {case.kind}", by_landmarks(case.kind)))
    return chosen


def run_method(case: Case, method: str, call: Callable[[Case], np.ndarray]) -> Row:
    """One method on one case; an exception is a failed row carrying its message."""
    start = time.perf_counter()
    try:
        matrix = call(case)
    except Exception as exc:  # noqa: BLE001 - a failure is a result here
        seconds = time.perf_counter() - start
        note = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        return Row(case.name, case.kind, case.ndim, method, None, None, seconds, note[:160])
    seconds = time.perf_counter() - start
    mean, worst = grid_error(case.truth, matrix, case.fixed.shape, case.fixed_spacing)
    return Row(case.name, case.kind, case.ndim, method, mean, worst, seconds, matrix=matrix)


# --------------------------------------------------------------------------- tables
#: the summary's groups: (label, which rows)
GROUPS: tuple[tuple[str, Callable[[Row], bool]], ...] = (
    ("phase (today)", lambda r: r.method == "phase (today)"),
    ("mattes, the case's kind", lambda r: r.method == f"mattes {r.kind}"),
    ("mattes rigid (rigid cases)", lambda r: r.method == "mattes rigid"),
    ("mattes similarity (similarity cases)", lambda r: r.method == "mattes similarity"),
    ("mattes affine (every case)", lambda r: r.method == "mattes affine"),
    ("landmarks, the case's kind", lambda r: r.method.startswith("landmarks")),
)  # fmt: skip


def table(rows: list[Row]) -> str:
    """The markdown table of every row (a mean error over the goal is marked ✗)."""
    lines = ["| case | kind | method | mean error | max error | time (s) | note |",
             "| --- | --- | --- | ---: | ---: | ---: | --- |"]  # fmt: skip
    for r in rows:
        unit = "px" if r.ndim == 2 else "vx"
        if r.mean is None or r.max is None:
            err = ("failed ✗", "-")
        else:
            mark = "" if r.mean < GOAL[r.ndim] else " ✗"
            err = (f"{r.mean:.3f} {unit}{mark}", f"{r.max:.2f} {unit}")
        note = r.note.replace("|", "/")
        lines.append(f"| {r.case} | {r.kind} | {r.method} | {err[0]} | {err[1]} | "
                     f"{r.seconds:.2f} | {note} |")  # fmt: skip
    return "\n".join(lines)


def summary(rows: list[Row]) -> str:
    """Per group and dimension: cases under the goal, median and worst mean error, mean
    time."""
    lines = ["| method | cases | under the goal | median error | worst error | mean time (s) |",
             "| --- | --- | ---: | ---: | ---: | ---: |"]  # fmt: skip
    for ndim in (2, 3):
        unit = "px" if ndim == 2 else "vx"
        for label, member in GROUPS:
            mine = [r for r in rows if r.ndim == ndim and member(r)]
            if not mine:
                continue
            errors = [r.mean for r in mine if r.mean is not None]
            good = sum(e < GOAL[ndim] for e in errors)
            failed = len(mine) - len(errors)
            med = f"{np.median(errors):.3f} {unit}" if errors else "-"
            worst = f"{max(errors):.3f} {unit}" if errors else "-"
            worst += f" ({failed} failed)" if failed else ""
            seconds = float(np.mean([r.seconds for r in mine]))
            lines.append(f"| {label} | {ndim}-D | {good} / {len(mine)} (< {GOAL[ndim]:g} {unit}) "
                         f"| {med} | {worst} | {seconds:.2f} |")  # fmt: skip
    return "\n".join(lines)


def per_image(rows: list[Row]) -> str:
    """Per image (or volume) and kind: the worst mean error over the draws of each method
    family (phase, mattes of the case's kind, mattes affine, landmarks)."""
    columns = (("phase (today)", lambda r: r.method == "phase (today)"),
               ("mattes, its kind", lambda r: r.method == f"mattes {r.kind}"),
               ("mattes affine", lambda r: r.method == "mattes affine"),
               ("landmarks, its kind", lambda r: r.method.startswith("landmarks")))  # fmt: skip
    lines = ["| image | kind | " + " | ".join(c for c, _ in columns) + " |",
             "| --- | --- |" + " ---: |" * len(columns)]  # fmt: skip
    keys: list[tuple[str, str]] = []
    for r in rows:
        key = (r.case.rsplit(" #", 1)[0], r.kind)
        if key not in keys:
            keys.append(key)
    for image, kind in keys:
        mine = [r for r in rows if r.case.rsplit(" #", 1)[0] == image and r.kind == kind]
        cells = []
        for _, member in columns:
            chosen = [r for r in mine if member(r)]
            errors = [r.mean for r in chosen if r.mean is not None]
            unit = "px" if chosen and chosen[0].ndim == 2 else "vx"
            cell = f"{max(errors):.2f} {unit}" if errors else "-"
            if len(errors) < len(chosen):
                cell += f" ({len(chosen) - len(errors)} failed)"
            cells.append(cell)
        lines.append(f"| {image} | {kind} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def save_overlay(folder: Path, case: Case, row: Row) -> None:
    """A red (fixed) / green (moving resampled by the recovered transform) PNG; 3-D: the
    middle plane."""
    from napari_gifnet.io import write_image

    if row.matrix is None:
        return
    moved = warp_to_fixed(case.moving, row.matrix, case.fixed.shape, case.fixed_spacing,
                          case.moving_spacing)  # fmt: skip
    fixed = case.fixed
    if case.ndim == 3:
        mid = case.fixed.shape[0] // 2
        fixed, moved = fixed[mid], moved[mid]

    def unit(x: np.ndarray) -> np.ndarray:
        lo, hi = np.percentile(x, (1, 99))
        return np.clip((x - lo) / max(hi - lo, 1e-9), 0, 1)

    rgb = np.stack([unit(fixed), unit(moved), np.zeros_like(fixed)], axis=-1)
    name = (
        f"{case.name}_{case.kind}_{row.method}".replace(" ", "_").replace("#", "").replace("^", "")
    )
    name = "".join(c for c in name if c.isalnum() or c in "_-.")
    write_image(folder / f"{name}.png", (rgb * 255).round().astype(np.uint8))


def build_cases(args: argparse.Namespace) -> list[Case]:
    """Every case of the run, in a fixed order, from one seeded generator per case."""
    cases = []
    sources = SOURCES[1:3] if args.quick else SOURCES
    kinds = ("rigid", "affine") if args.quick else KINDS
    for i, (label, case, key) in enumerate(sources):
        image = scene(label, case, key, args.size, args.reference)
        for kind in kinds:
            for draw in range(args.draws):
                rng = np.random.default_rng([args.seed, i, KINDS.index(kind), draw])
                cases.append(case_2d(label, image, args.size, kind, draw, rng))
    for kind in ("similarity",) if args.quick else KINDS:
        for draw in range(args.draws):
            rng = np.random.default_rng([args.seed, 99, KINDS.index(kind), draw])
            cases.append(case_3d(args.volume, kind, draw, rng))
    return cases


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="a smoke test: 2 images, 2 kinds, 1 draw, 128 px, 32^3")  # fmt: skip
    parser.add_argument("--size", type=int, help="2-D fixed image side (default 256; quick 128)")
    parser.add_argument("--volume", type=int, help="3-D fixed side (default 64; quick 32)")
    parser.add_argument("--draws", type=int, help="random draws per image and kind (default 3)")
    parser.add_argument("--seed", type=int, default=25)
    parser.add_argument("--reference", type=Path, default=REFERENCE,
                        help="the reference material (its official/*.npz)")  # fmt: skip
    parser.add_argument("--out", type=Path, help="also write the tables to this markdown file")
    parser.add_argument("--overlays", type=Path, help="write red/green PNG overlays here")
    args = parser.parse_args(argv)
    args.size = args.size or (128 if args.quick else 256)
    args.volume = args.volume or (32 if args.quick else 64)
    args.draws = args.draws or (1 if args.quick else 3)
    if args.overlays is not None:
        args.overlays.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    cases = build_cases(args)
    rows = []
    for case in cases:
        for method, call in methods_for(case):
            row = run_method(case, method, call)
            rows.append(row)
            if args.overlays is not None:
                save_overlay(args.overlays, case, row)
            print(f"  {case.name} {case.kind}: {method} "
                  f"{'failed' if row.mean is None else f'{row.mean:.3f}'} "
                  f"({row.seconds:.1f} s)", file=sys.stderr, flush=True)  # fmt: skip
    text = "\n".join([
        f"### Registration on known transforms (napari-gifnet {__version__}, "
        f"{platform.machine()}, {len(cases)} cases, {args.size} px, {args.volume}^3, "
        f"seed {args.seed}; {time.perf_counter() - start:.0f} s in all)",
        "",
        summary(rows),
        "",
        "Worst mean error over the draws, per image and kind:",
        "",
        per_image(rows),
        "",
        table(rows),
    ])  # fmt: skip
    print(text)
    if args.out is not None:
        from napari_gifnet.util.safe_files import atomic_write_text

        atomic_write_text(args.out, text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
