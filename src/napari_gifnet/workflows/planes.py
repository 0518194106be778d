"""Plane readers: :class:`Planes` for :func:`napari_gifnet.workflows.focus_stack.fuse_stack`, and
:class:`FileStack`, a stack of image files (``napari-gifnet stack``).

A focus stack is validated from its shape and dtype alone (nothing is read
for an array-like stack), then read one plane at a time, as stored, on the
input's scale or normalised, aligned or not (the methods of :class:`Planes`).
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..engine.preprocess import PERCENTILES
from .alignment import apply_transform, resample

__all__ = ["FileStack", "Planes", "focus_axis"]


def focus_axis(axis: Any) -> int:
    """``axis`` as an int; ValueError for a bool or a non-integer (e.g. 1.5)."""
    if isinstance(axis, (bool, np.bool_)):
        raise ValueError(f"axis must be an integer, got {axis!r}")
    try:
        return operator.index(axis)
    except TypeError:
        raise ValueError(f"axis must be an integer, got {axis!r}") from None


def _plane_layout(plane: Any, i: int) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype of one list entry, without computing a lazy (e.g. dask) plane."""
    if hasattr(plane, "shape") and hasattr(plane, "dtype"):
        return tuple(int(s) for s in plane.shape), np.dtype(plane.dtype)
    try:
        arr = np.asarray(plane)
    except ValueError as exc:  # ragged nested lists
        raise ValueError(f"plane {i} is not a rectangular array ({exc})") from None
    return arr.shape, arr.dtype


class Planes:
    """Reads plane ``i`` of a stack along ``axis``, validated and normalised.

    Parameters
    ----------
    stack : array_like
        A numpy, dask or other array-like with ``shape``, ``dtype`` and
        ``__getitem__``; a torch tensor; or a list / tuple of equally shaped
        planes (arrays or nested lists).
    axis : int
        The focus axis (integers only; numpy integers accepted).

    Attributes
    ----------
    n : int
        Number of planes.
    plane_shape : tuple of int
        (H, W) or (H, W, 3).
    dtype : numpy.dtype
        The stack's dtype (a list: ``numpy.result_type`` of its planes').
    lo, hi : float
        The normalisation range mapped to [0, 1] (:meth:`set_range`).
    rule : str
        How the range was chosen: dtype, unchanged, minmax, percentile, fixed.
    shifts, scales, rotations : numpy.ndarray
        The alignment applied by :meth:`unit` and :meth:`native` (rotations
        in degrees, see :func:`~napari_gifnet.workflows.alignment.estimate_similarity`).

    Raises
    ------
    ValueError
        A stack that is not 3-D / 4-D RGB, empty planes, fewer than 2 planes,
        a bad axis or an unsupported dtype.
    """

    def __init__(self, stack: Any, axis: Any) -> None:
        axis = focus_axis(axis)
        if isinstance(stack, (list, tuple)):
            if axis != 0:
                raise ValueError("a list of planes is stacked along axis 0 only")
            self.data, self.seq = list(stack), True
            layouts = [_plane_layout(p, i) for i, p in enumerate(self.data)]
            shapes = {shape for shape, _ in layouts}
            if len(shapes) > 1:
                raise ValueError(f"the planes differ in shape: {sorted(shapes)}")
            shape = (len(self.data), *shapes.pop()) if self.data else (0,)
            dtypes = [dtype for _, dtype in layouts]
            self.dtype = np.result_type(*dtypes) if dtypes else np.dtype(float)
        else:
            if type(stack).__module__.startswith("torch"):
                stack = stack.detach().cpu().numpy()
            if not hasattr(stack, "shape") or not hasattr(stack, "dtype"):
                stack = np.asarray(stack)
            self.data, self.seq = stack, False
            shape, self.dtype = tuple(int(s) for s in stack.shape), np.dtype(stack.dtype)
        ndim = len(shape)
        if ndim not in (3, 4):
            raise ValueError(
                f"a focus stack must be 3-D (Z, H, W) or 4-D (Z, H, W, 3), got shape {shape}"
            )
        if not -ndim <= axis < ndim or (ndim == 4 and axis % ndim == 3):
            raise ValueError(f"axis {axis} is not a focus axis of a stack of shape {shape}")
        self.axis = axis % ndim
        self.n = shape[self.axis]
        plane = shape[: self.axis] + shape[self.axis + 1 :]
        if len(plane) == 3 and plane[-1] != 3:
            raise ValueError(
                f"the planes have shape {plane}: 4-D stacks need RGB planes (H, W, 3) "
                "with the colour axis last"
            )
        if self.n < 2:
            raise ValueError(f"a focus stack needs at least 2 planes, got {self.n}")
        if 0 in plane:
            raise ValueError(f"the planes are empty: shape {plane} (stack shape {shape})")
        if self.dtype.kind not in "buif":
            raise ValueError(f"unsupported stack dtype {self.dtype}")
        self.plane_shape, self.rgb = plane, len(plane) == 3
        self.lo, self.hi, self.rule = 0.0, 1.0, "dtype"
        self.shifts, self.scales = np.zeros((self.n, 2)), np.ones(self.n)
        self.rotations = np.zeros(self.n)

    @property
    def aligned(self) -> bool:
        """Whether any plane is moved (a nonzero shift or rotation, or a scale other than 1)."""
        return bool(self.shifts.any() or (self.scales != 1.0).any() or self.rotations.any())

    def raw(self, i: int) -> np.ndarray:
        """Plane ``i`` as stored (its own dtype; never aligned)."""
        if self.seq:
            plane = np.asarray(self.data[i])
        else:
            index = (slice(None),) * self.axis + (i,)
            plane = np.asarray(self.data[index])
        if plane.shape != self.plane_shape:
            raise ValueError(f"plane {i} has shape {plane.shape}, expected {self.plane_shape}")
        return plane

    def moved(self, i: int) -> bool:
        """Whether plane ``i`` is moved by the alignment."""
        return bool(self.shifts[i].any() or self.scales[i] != 1.0 or self.rotations[i] != 0.0)

    def native(self, i: int, raw: np.ndarray | None = None) -> np.ndarray:
        """Plane ``i`` on the input's scale: ``raw`` itself, or float64 when aligned.

        ``raw`` is plane ``i`` already read with :meth:`raw` (saves a read).
        Moved planes are resampled cubically, clamped to the local range.
        """
        x = self.raw(i) if raw is None else raw
        if not self.moved(i):
            return x
        return resample(x.astype(np.float64), *self._transform(i))

    def unit(self, i: int, raw: np.ndarray | None = None, *, own_frame: bool = False) -> np.ndarray:
        """Plane ``i`` as float32 in [0, 1], shifted (rescaled, rotated) when aligned.

        ``raw`` is plane ``i`` already read with :meth:`raw` (saves a read).
        ``own_frame=True``: not moved (the plane as recorded). Moved planes
        are resampled cubically, clamped to the local range (so within [0, 1]).
        """
        x = self.raw(i) if raw is None else raw
        exact = self.rule == "dtype" and x.dtype.kind in "bu" and x.dtype.itemsize <= 2
        x = x.astype(np.float32)
        if exact:  # uint8 / uint16 / bool on their dtype's range: already within it
            x /= np.float32(self.hi - self.lo)  # as below (lo = 0), without the clip
        else:
            if not np.isfinite(x).all():
                raise ValueError(f"plane {i} holds NaN or infinite values")
            x = (np.clip((x - self.lo) / (self.hi - self.lo), 0.0, 1.0) if self.hi > self.lo
                 else x * 0)  # fmt: skip
        if own_frame or not self.moved(i):
            return x
        return resample(x, *self._transform(i)).astype(np.float32, copy=False)

    def move(self, i: int, values: np.ndarray) -> np.ndarray:
        """A map computed on plane ``i`` in its own frame, brought into the reference frame.

        Linear interpolation (a focus map is smooth; it stays non-negative).
        """
        if not self.moved(i):
            return values
        return apply_transform(values, *self._transform(i), order=1)

    def _transform(self, i: int) -> tuple[np.ndarray, float, float]:
        return self.shifts[i], self.scales[i], self.rotations[i]

    def needs_pass(self, normalization: Any) -> bool:
        """Whether the range comes from the data (a pass over the planes)."""
        if isinstance(normalization, (tuple, list)) or normalization == "dtype":
            return False
        return not (normalization == "auto" and (self.dtype.kind == "b" or self.dtype == np.uint8))

    def covers(self, values: np.ndarray) -> np.ndarray:
        """Boolean mask: where ``values`` (input scale) lie inside [lo, hi]."""
        return (values >= self.lo) & (values <= self.hi)

    def set_range(self, normalization: Any, step: Callable[[], None]) -> None:
        """Choose the one range mapped to [0, 1] for all planes (see ``fuse_stack``)."""
        self.lo, self.hi, self.rule = stack_range(self.raw, self.n, self.dtype, normalization,
                                                  step)  # fmt: skip


def _names(paths: list[Path], limit: int = 3) -> str:
    shown = ", ".join(p.name for p in paths[:limit])
    return shown + (f" and {len(paths) - limit} more" if len(paths) > limit else "")


class FileStack:
    """Planes read from image files on demand: ``stack[i]`` / ``stack[(i,)]`` reads file ``i``.

    Every file's shape and dtype are read from its header first
    (:func:`napari_gifnet.io.images.image_info`); files that differ in shape or
    dtype are refused before any pixel is decoded.

    Parameters
    ----------
    files : list of pathlib.Path
        One image file per plane, in plane order.

    Raises
    ------
    ValueError
        No files, a file that cannot be read, or files that differ in shape
        or dtype (the message names them).
    """

    def __init__(self, files: list[Path]) -> None:
        from ..io import images as io

        self.files = list(files)
        if not self.files:
            raise ValueError("a stack of files needs at least one file")
        infos = [io.image_info(p) for p in files]
        shape, dtype = infos[0]
        for path, (other, _) in zip(files, infos):
            if other != shape:
                raise ValueError(
                    f"{path} has shape {other}, the first file {files[0].name} {shape}: "
                    "the files of a stack must be equal in shape"
                )
        by_dtype: dict[str, list[Path]] = {}
        for path, (_, kind) in zip(files, infos):
            by_dtype.setdefault(str(kind), []).append(path)
        if len(by_dtype) > 1:
            listed = "; ".join(f"{k}: {_names(v)}" for k, v in by_dtype.items())
            raise ValueError(
                f"the stack files differ in dtype ({listed}); convert them to one dtype "
                "(e.g. all 16-bit TIFF)"
            )
        self.shape = (len(files), *shape)
        self.dtype = dtype

    def __getitem__(self, index: Any) -> np.ndarray:
        from ..io import images as io

        i = index[0] if isinstance(index, tuple) and len(index) == 1 else index
        if isinstance(i, bool) or not isinstance(i, (int, np.integer)):
            raise TypeError(f"a stack of files reads one file by integer index, got {index!r}")
        plane = io.read_image(self.files[int(i)])
        if plane.shape != self.shape[1:] or plane.dtype != self.dtype:
            raise ValueError(
                f"{self.files[i]} reads as {plane.shape} {plane.dtype}, its header said "
                f"{self.shape[1:]} {self.dtype}"
            )
        return plane


def stack_range(
    read: Callable[[int], np.ndarray], n: int, dtype: Any, normalization: Any,
    step: Callable[[], None] | None = None,
) -> tuple[float, float, str]:
    """The one range ``(lo, hi, rule)`` that maps every plane of a stack to [0, 1].

    The rule of :func:`napari_gifnet.fuse_stack` (and of nD layers fused in
    napari): a fixed ``(lo, hi)`` as given; ``"dtype"``, and ``"auto"`` for
    uint8 and bool, the dtype's range (no pass over the data); otherwise one
    pass over the planes, read one at a time by ``read(i)``: ``"auto"`` for
    floats already in [0, 1] keeps them (``"unchanged"``), ``"minmax"`` the
    extremes of every pixel, else the lowest 0.1th and the highest 99.9th
    percentile of the planes (each from at most about a million samples;
    ``"minmax"`` when those coincide). ``step()`` is called after each plane.

    Raises
    ------
    ValueError
        An unknown rule, a fixed range with lo >= hi, or a plane holding NaN
        or infinite values.
    """
    if isinstance(normalization, (tuple, list)):
        lo, hi = (float(v) for v in normalization)
        if not lo < hi:
            raise ValueError(f"normalization range must have lo < hi, got {normalization}")
        return lo, hi, "fixed"
    if normalization not in ("auto", "dtype", "minmax", "percentile"):
        raise ValueError(
            f"unknown normalization {normalization!r}; valid: auto, dtype, minmax, "
            "percentile or (lo, hi)"
        )
    dtype = np.dtype(dtype)
    kind = dtype.kind
    if normalization == "dtype" or (normalization == "auto" and (kind == "b" or dtype == np.uint8)):
        info = np.iinfo(dtype) if kind in "ui" else None
        return (float(info.min), float(info.max), "dtype") if info else (0.0, 1.0, "dtype")
    los, his, mins, maxs = [], [], [], []
    for i in range(n):  # one range for all planes, read one at a time
        x = np.asarray(read(i))
        if not np.isfinite(x).all():
            raise ValueError(f"plane {i} holds NaN or infinite values")
        x = x.astype(np.float64).ravel()
        mins.append(x.min()), maxs.append(x.max())  # of every pixel, not the sample
        x = x[:: max(1, x.size // 1_000_000)]
        lo, hi = np.percentile(x, PERCENTILES)
        los.append(lo), his.append(hi)
        if step is not None:
            step()
    mn, mx = float(min(mins)), float(max(maxs))
    if normalization == "auto" and kind == "f" and mn >= 0.0 and mx <= 1.0:
        return 0.0, 1.0, "unchanged"
    if normalization == "minmax":
        return mn, mx, "minmax"
    lo, hi = float(min(los)), float(max(his))
    return (lo, hi, "percentile") if lo < hi else (mn, mx, "minmax")
