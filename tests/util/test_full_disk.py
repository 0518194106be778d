"""Every writer on a real, full file system: an error naming the file, nothing left behind.

A 64 kB tmpfs is mounted for each test (tests run as the superuser where CI
runs them; elsewhere they are skipped). The data written cannot fit, so the
kernel cuts the write short or refuses it, as a full disk does: each writer
must raise ``OSError`` "cannot write PATH: no space left on device" and
leave neither the file nor its temporary file.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from cli_run import one_error_line, run_cli
from napari_gifnet.io import images as io
from napari_gifnet.util import safe_files
from tmpfs import mounted_tmpfs

#: The size of the small file system.
SIZE = 64 * 1024


@pytest.fixture
def tiny(tmp_path: Path) -> Iterator[Path]:
    """An empty tmpfs of :data:`SIZE` bytes, unmounted afterwards."""
    with mounted_tmpfs(tmp_path / "tiny", SIZE) as mount:
        yield mount


def _fill(folder: Path, leave: int) -> None:
    """Take all but ``leave`` bytes of the file system with one file."""
    (folder / "filler.bin").write_bytes(b"\0" * (SIZE - leave))


def _nothing_left(folder: Path, name: str) -> None:
    names = [p.name for p in folder.rglob("*")]
    assert name not in names, names
    assert not [n for n in names if safe_files.PARTIAL_MARK in n], names


def _noise(*shape: int) -> np.ndarray:
    return np.random.default_rng(0).random(shape).astype(np.float32)


def _log_rows(count: int) -> list[dict[str, float]]:
    from napari_gifnet.training.runfiles import LOG_COLUMNS

    return [{k: float(i) + 1 / 3 for k in LOG_COLUMNS} for i in range(1, count + 1)]


def _image(name: str) -> Callable[[Path], object]:
    return lambda folder: io.write_image(folder / name, _noise(256, 256, 3), {"k": 1})


def _features(folder: Path) -> object:
    return io.write_features(folder / "features", {"f": _noise(8, 64, 64)})


def _napari(folder: Path) -> object:
    from napari_gifnet.plugin.writer import write_fused_tiff

    return write_fused_tiff(str(folder / "layer.tif"), _noise(128, 128), {"name": "fused"})


def _checkpoint(folder: Path) -> object:
    import torch

    from napari_gifnet.training.runfiles import save_checkpoint

    return save_checkpoint(torch.nn.Linear(128, 128), folder / "run.pth")


def _log(folder: Path) -> object:
    from napari_gifnet.training.runfiles import write_log

    return write_log(folder / "run.log.csv", _log_rows(300))


def _plot(folder: Path) -> object:
    from napari_gifnet.training.runfiles import plot_log

    return plot_log(_log_rows(50), folder / "run.loss.png")


def _run_json(folder: Path) -> object:
    from napari_gifnet.training.loop import _write_json

    return _write_json(folder / "run.train.json", {"notes": ["x" * 100] * 800})


def _evaluation(folder: Path) -> object:
    from napari_gifnet.metrics.evaluation import to_csv

    rows = [{"method": "mean", "pair": f"p{i}", "time_s": i / 7} for i in range(2000)]
    return to_csv(rows, folder / "scores.csv")


#: writer name -> (the file it writes, relative to the folder; the call).
WRITERS: dict[str, tuple[str, Callable[[Path], object]]] = {
    "png": ("full.png", _image("full.png")),
    "jpg": ("full.jpg", _image("full.jpg")),
    "jpeg": ("full.jpeg", _image("full.jpeg")),
    "tif": ("full.tif", _image("full.tif")),
    "tiff": ("full.tiff", _image("full.tiff")),
    "write_tiff": ("bands.tif", lambda f: io.write_tiff(f / "bands.tif", _noise(3, 64, 64))),
    "write_features": ("features/f.tif", _features),
    "napari_writer": ("layer.tif", _napari),
    "checkpoint": ("run.pth", _checkpoint),
    "training_log": ("run.log.csv", _log),
    "loss_plot": ("run.loss.png", _plot),
    "run_json": ("run.train.json", _run_json),
    "evaluation_csv": ("scores.csv", _evaluation),
    "text": ("notes.md", lambda f: safe_files.atomic_write_text(f / "notes.md", "é" * 20_000)),
    "bytes": ("data.bin", lambda f: safe_files.atomic_write_bytes(f / "data.bin", b"x" * 20_000)),
}


@pytest.mark.parametrize("writer", list(WRITERS))
def test_every_writer_reports_a_full_disk(tiny: Path, writer: str) -> None:
    name, write = WRITERS[writer]
    (tiny / "features").mkdir()
    _fill(tiny, leave=16 * 1024)  # 16 kB left: none of the files fits
    path = tiny / name
    with pytest.raises(OSError, match=f"cannot write {re.escape(str(path))}: no space left"):
        write(tiny)
    _nothing_left(tiny, Path(name).name)


def test_a_jpeg_bigger_than_an_empty_file_system(tiny: Path) -> None:
    """A 256 x 256 noise JPEG (about 70 kB) on an empty 64 kB file system."""
    path = tiny / "full.jpg"
    with pytest.raises(OSError, match="full.jpg: no space left on device"):
        io.write_image(path, _noise(256, 256, 3))
    _nothing_left(tiny, "full.jpg")
    small = io.write_image(tiny / "small.jpg", _noise(32, 32, 3))  # what fits is written
    assert io.read_image(small).shape == (32, 32, 3)


def test_fuse_to_a_full_disk_exits_with_an_error(
    tiny: Path, tmp_path: Path, reference_weights: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``napari-gifnet fuse a.png b.png -o tiny/full.jpg``: one error line, status 1."""
    pair = [tmp_path / "a.png", tmp_path / "b.png"]
    for i, p in enumerate(pair):
        io.write_image(p, np.random.default_rng(i).random((128, 128, 3)).astype(np.float32))
    _fill(tiny, leave=8 * 1024)  # the fused JPEG takes about 20 kB
    code, out, err = run_cli(capsys, "fuse", *map(str, pair), "-o", str(tiny / "full.jpg"),
                             "--device", "cpu", "--weights", str(reference_weights))  # fmt: skip
    assert code == 1, (out, err)
    one_error_line(err, f"cannot write {tiny / 'full.jpg'}: no space left on device")
    assert "fused" not in out
    _nothing_left(tiny, "full.jpg")
