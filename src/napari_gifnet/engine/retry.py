"""Running out of memory: which tries follow, progress that never goes back, and
the caller's own exceptions kept apart from the engine's allocation failures."""

from __future__ import annotations

import torch

from ..util.progress import Progress
from .tiled.grid import smaller_tile, tile_shape
from .tiled.plan import TilePlan, plan_tiles
from .tiled.stores import ScratchError

#: The storage of the one retry after running out of memory, by the storage
#: of the first try: the first whose scratch files fit. The retry's tiles
#: hold at most a quarter of the pixels of the first try's.
RETRY_STORAGES = {
    "memory": ("disk", "recompute"),
    "disk": ("disk", "recompute"),
    "recompute": ("recompute",),
}


class CallbackRaised(BaseException):
    """Carries an exception raised by the caller's progress callback past the
    out-of-memory retries (only the engine's own allocations are retried)."""

    def __init__(self, error: BaseException) -> None:
        super().__init__(error)
        self.error = error


def guarded(progress: Progress | None) -> Progress | None:
    """``progress`` with whatever it raises wrapped in :class:`CallbackRaised`."""
    if progress is None:
        return None

    def call(done: int, total: int) -> None:
        try:
            progress(done, total)
        except BaseException as exc:  # noqa: BLE001 - unwrapped, unchanged, by fuse()
            raise CallbackRaised(exc) from None

    return call


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` says an allocation failed (torch, on any device, or NumPy)."""
    if isinstance(exc, (torch.OutOfMemoryError, MemoryError)):
        return True
    message = str(exc).lower()
    return isinstance(exc, RuntimeError) and ("allocate" in message or "out of memory" in message)


class MonotonicProgress:
    """Relays ``(done, total)`` from successive tries of one fusion so that
    neither ``done`` nor ``done / total`` ever goes down.

    The first try is relayed as it is. A retry (announced by :meth:`restart`)
    continues from what was shown: its ``(d, t)`` is shown as
    ``(offset + d, offset + t)``, ``offset`` being large enough that the bar
    starts no lower than it was (so the remaining part of the bar stands for
    the retry). Every tile is still relayed, so a callback that raises still
    stops a retry at once.
    """

    def __init__(self, progress: Progress | None) -> None:
        self.progress = progress
        self.done, self.total = 0, 0
        self.offset: int | None = 0

    def restart(self) -> None:
        """The next report starts a new try."""
        self.offset = None

    def __call__(self, done: int, total: int) -> None:
        if self.offset is None:  # first report of a retry: start where the bar is
            shown, of = self.done, self.total
            self.offset = shown if shown >= of else max(shown, -(-shown * total // (of - shown)))
        if self.total and self.done >= self.total:  # the bar was full: keep it full
            done, total = self.done, self.total
        else:
            done, total = self.offset + done, self.offset + total
        self.done, self.total = done, total
        if self.progress is not None:
            self.progress(done, total)


def next_try(
    failed: TilePlan, device: torch.device, options: list[str]
) -> tuple[TilePlan | None, list[str]]:
    """The plan of the retry after running out of memory with ``failed``
    (None when no retry is left), and why the storages passed over were
    skipped. ``options`` (the retry's storages) are consumed: the first that
    neither repeats the failed try nor needs scratch files that cannot fit
    (:func:`~napari_gifnet.engine.tiled.plan.plan_tiles` refuses them) is
    the retry, and none is left after it."""
    h, w = failed.size
    tile = failed.out
    edge = smaller_tile(tile, h, w)
    smaller = tile_shape(h, w, tile_size=edge)  # the retry's output tiles
    skipped = []
    while options:
        candidate = options.pop(0)
        if candidate == failed.storage and smaller.rows * smaller.cols >= tile.rows * tile.cols:
            skipped.append(f"{candidate!r} with tiles no smaller than {tile.describe()}")
            continue
        try:
            plan = plan_tiles(h, w, device, candidate, tile_size=edge)
        except ScratchError as exc:
            skipped.append(str(exc))
            continue
        options.clear()  # one retry
        return plan, skipped
    return None, skipped
