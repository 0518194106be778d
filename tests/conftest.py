"""Shared pytest fixtures.

The reference material (published checkpoint, example pairs, official
outputs) lives outside the repository, in ``../shared/reference`` relative to
the repository root; it is read from there and never copied into the repo.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

REFERENCE_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "reference"

# napari's canvas needs OpenGL, which Qt's "offscreen" platform lacks: widget
# tests run on a virtual X server (pytest-xvfb starts Xvfb when it is
# installed). Without one, Qt-only code can still run offscreen.
if not os.environ.get("DISPLAY") and not shutil.which("Xvfb"):
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

# Mesa's software OpenGL (llvmpipe, what napari's canvas gets under Xvfb) and
# triton (imported by torch._dynamo, which torchvision and so timm import in
# the training tests) each bring an LLVM; loading triton after Mesa's LLVM
# crashes the process (segmentation fault), loading it first does not.
try:
    import triton  # noqa: F401
except ImportError:  # CPU-only torch builds come without triton
    pass


def _missing(what: str) -> None:
    message = f"reference material missing: {what}"
    if os.environ.get("GIFNET_REQUIRE_REFERENCE") == "1":
        pytest.fail(message + " (GIFNET_REQUIRE_REFERENCE=1)")
    pytest.skip(message)


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    """Path of ``../shared/reference`` (skip, or fail if required, when absent)."""
    if not REFERENCE_DIR.is_dir():
        _missing(str(REFERENCE_DIR))
    return REFERENCE_DIR


@pytest.fixture(scope="session")
def reference_weights() -> Path:
    """Path of the published checkpoint: ``GIFNET_WEIGHTS``, else the reference copy.

    Skips when it is unavailable, or fails when ``GIFNET_REQUIRE_REFERENCE=1``
    (as CI sets it), so parity can never pass by skipping.
    """
    env = os.environ.get("GIFNET_WEIGHTS")
    # absolute, so tests that change the working folder still find it
    path = (Path(env) if env else REFERENCE_DIR / "weights" / "gifnet-official.pth").resolve()
    if not path.is_file():
        _missing(f"checkpoint {path}")
    return path


@pytest.fixture(scope="session")
def gifnet_plugin() -> str:
    """Register this package's npe2 manifest (when not installed) and return its name."""
    import npe2

    import napari_gifnet

    manager = npe2.PluginManager.instance()
    manager.discover()  # an installed copy, if any, is found first
    if "napari-gifnet" not in manager:
        manifest = Path(napari_gifnet.__file__).with_name("napari.yaml")
        manager.register(npe2.PluginManifest.from_file(manifest))
    return "napari-gifnet"


@pytest.fixture(scope="module")
def one_torch_thread():
    """One torch intra-op thread for a module (``pytestmark = pytest.mark.usefixtures(
    "one_torch_thread")``): on a shared 2-core machine two spinning threads can run
    50x slower. The thread count is restored afterwards."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def tiff_page_reads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Make whole-file TIFF reads fail; the list records the pages read one by one."""
    import tifffile

    pages_read: list[int] = []
    real = tifffile.TiffPage.asarray

    def page_asarray(self, *args, **kwargs):
        pages_read.append(self.index)
        return real(self, *args, **kwargs)

    def whole(*_args, **_kwargs):
        raise AssertionError("the whole file was read")

    monkeypatch.setattr(tifffile.TiffPage, "asarray", page_asarray)
    monkeypatch.setattr(tifffile.TiffFile, "asarray", whole)
    monkeypatch.setattr(tifffile, "imread", whole)
    return pages_read


@pytest.fixture
def no_timm_hub(monkeypatch: pytest.MonkeyPatch) -> None:
    """Never wait for timm's hub; no DenseNet weights from the environment."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("GIFNET_DENSENET_WEIGHTS", raising=False)


class _HeapCalls(list):
    """The C library calls :func:`napari_gifnet.engine._memory.reuse_heap` makes."""

    def mallopt(self, param: int, value: int) -> int:
        self.append(("mallopt", param, value))
        return 1

    def malloc_trim(self, pad: int) -> int:
        self.append(("malloc_trim", pad))
        return 1

    @property
    def trims(self) -> int:
        """How many times the heap was handed back (once per outermost use)."""
        return sum(call[0] == "malloc_trim" for call in self)


@pytest.fixture
def heap_calls(monkeypatch: pytest.MonkeyPatch) -> _HeapCalls:
    """Record, instead of making, the heap tuning calls (``.trims`` counts the
    times the heap was handed back)."""
    from napari_gifnet.engine import _memory

    calls = _HeapCalls()
    monkeypatch.setattr(_memory, "_LIBC", calls)
    monkeypatch.setattr(_memory, "_depth", 0)
    return calls


@pytest.fixture
def store_runs(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Record each time a run starts keeping its maps (``keep_stores`` entered)."""
    from napari_gifnet.engine.tiled import stores

    runs: list[int] = []
    real = stores.keep_stores

    def counting():
        runs.append(1)
        return real()

    monkeypatch.setattr(stores, "keep_stores", counting)
    return runs
