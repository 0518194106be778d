"""Fault injection for the promises about files (napari_gifnet.util.safe_files and every writer).

* An output that resolves to an input (``..``, a symbolic link, a hard link)
  is refused by every command before anything is read.
* Writes are atomic: an exception, Ctrl-C or SIGTERM during a write, or a
  full disk, leaves no partial file and an existing output as it was, and a
  full disk is one error line with exit status 1, never a success.
"""

from __future__ import annotations

import errno
import io as io_module
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import tifffile

from cli_run import one_error_line, run_cli
from napari_gifnet.io import images as io
from napari_gifnet.plugin.writer import write_fused_tiff
from napari_gifnet.util import safe_files
from napari_gifnet.util.safe_files import (
    OutputIsInputError,
    atomic_write,
    atomic_write_text,
    check_output_set,
)

SRC = Path(__file__).resolve().parents[2] / "src"
OLD = b"the researcher's earlier result"


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if safe_files.PARTIAL_MARK in p.name)


# -- the set of outputs -------------------------------------------------------------


def test_outputs_that_are_inputs_through_dotdot_links_or_hard_links_are_refused(
    tmp_path: Path,
) -> None:
    a = tmp_path / "a.png"
    a.write_bytes(b"x")
    (tmp_path / "sub").mkdir()
    (tmp_path / "link.png").symlink_to(a)
    os.link(a, tmp_path / "hard.png")
    for alias in (tmp_path / "sub" / ".." / "a.png", tmp_path / "link.png", tmp_path / "hard.png"):
        with pytest.raises(OutputIsInputError, match=r"-o .* is an input \(the same file as"):
            check_output_set({"-o": alias}, [a])
    (tmp_path / "copy.png").write_bytes(b"x")  # equal bytes, another file
    check_output_set({"-o": tmp_path / "copy.png", "--x": None}, [a])


def test_two_outputs_of_one_name_are_refused(tmp_path: Path) -> None:
    a = tmp_path / "a.png"
    a.write_bytes(b"x")
    with pytest.raises(OutputIsInputError, match="--depth-map .* is also the -o output"):
        check_output_set({"-o": tmp_path / "x.tif", "--depth-map": tmp_path / "x.tif"}, [a])


# -- atomic_write ---------------------------------------------------------------------


def test_atomic_write_keeps_the_old_file_when_the_writer_fails(tmp_path: Path) -> None:
    target = tmp_path / "out.tif"
    target.write_bytes(OLD)
    with pytest.raises(ZeroDivisionError):
        with atomic_write(target) as fh:
            fh.write(b"half a file")
            raise ZeroDivisionError
    assert target.read_bytes() == OLD
    assert _leftovers(tmp_path) == []
    with pytest.raises(KeyboardInterrupt):
        with atomic_write(target) as fh:
            fh.write(b"half a file")
            raise KeyboardInterrupt
    assert target.read_bytes() == OLD
    assert _leftovers(tmp_path) == []


def test_atomic_write_replaces_on_success_with_an_ordinary_file(tmp_path: Path) -> None:
    target = tmp_path / "out.txt"
    target.write_bytes(OLD)
    atomic_write_text(target, "new")
    assert target.read_text() == "new"
    mask = os.umask(0o022)
    os.umask(mask)
    fresh = atomic_write_text(tmp_path / "fresh.txt", "x")
    assert fresh.stat().st_mode & 0o777 == 0o666 & ~mask  # an ordinary file's mode
    assert _leftovers(tmp_path) == []


def test_a_link_at_the_output_name_is_replaced_not_written_through(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    unrelated = elsewhere / "unrelated.tif"
    unrelated.write_bytes(OLD)
    out = tmp_path / "out"
    out.mkdir()
    (out / "p1.tif").symlink_to(unrelated)
    io.write_image(out / "p1.tif", np.zeros((8, 8), np.float32))
    assert not (out / "p1.tif").is_symlink() and (out / "p1.tif").is_file()
    assert unrelated.read_bytes() == OLD
    assert io.read_image(out / "p1.tif").shape == (8, 8)
    assert _leftovers(out) == [] and _leftovers(elsewhere) == []


def test_a_dangling_link_creates_no_file_where_it_points(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    outside = tmp_path / "outside.png"
    (out / "p1.png").symlink_to(outside)
    atomic_write_text(out / "p1.png", "fused")
    assert not outside.exists() and not outside.is_symlink()
    assert (out / "p1.png").read_text() == "fused" and not (out / "p1.png").is_symlink()


def test_the_temporary_file_is_beside_the_name_not_the_link_target(tmp_path: Path) -> None:
    other = tmp_path / "other"
    other.mkdir()
    (other / "t.txt").write_bytes(OLD)
    (tmp_path / "t.txt").symlink_to(other / "t.txt")
    with atomic_write(tmp_path / "t.txt") as fh:
        fh.write(b"new")
        assert _leftovers(tmp_path) and not _leftovers(other)
    assert (other / "t.txt").read_bytes() == OLD


@pytest.mark.parametrize("stem", ["x" * 240, "x" * 251, "é" * 125 + "x"])
def test_temporary_names_keep_within_the_name_limit(tmp_path: Path, stem: str) -> None:
    """A 240-character name, and names of 255 bytes (ASCII, and two-byte UTF-8)."""
    target = tmp_path / f"{stem}.png"
    seen: list[str] = []
    with atomic_write(target) as fh:
        fh.write(b"data")
        seen = _leftovers(tmp_path)
    assert len(seen) == 1 and len(os.fsencode(seen[0])) <= 255
    assert seen[0].startswith(".xxx" if stem[0] == "x" else ".éé") and seen[0].endswith(".png")
    assert safe_files.PARTIAL_MARK in seen[0]
    assert target.read_bytes() == b"data" and _leftovers(tmp_path) == []


def test_temporary_names_follow_the_folders_own_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file system whose ``NAME_MAX`` is 40 bytes (``os.pathconf`` says so)."""
    monkeypatch.setattr(safe_files.os, "pathconf", lambda _path, _name: 40)
    assert len(safe_files._temporary_name(tmp_path / ("y" * 36 + ".tif"), "0" * 8)) == 40
    name = safe_files._temporary_name(tmp_path / ("y" * 30 + ".t" + "x" * 30), "0" * 8)
    assert len(name) <= 40 and name.startswith(".yyy")  # an extension too long is dropped


def test_a_pair_with_a_240_character_name_is_fused_and_written(
    tmp_path: Path, reference_weights: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    name = "n" * 240
    for side in ("first", "second"):
        (tmp_path / "pairs" / side).mkdir(parents=True)
        tifffile.imwrite(tmp_path / "pairs" / side / f"{name}.tif", np.eye(16, dtype=np.uint8))
    out = tmp_path / "O"
    code, _, err = run_cli(capsys, "fuse", "--pairs", str(tmp_path / "pairs"), "-o", str(out),
                           "--device", "cpu", "--weights", str(reference_weights),
                           "-q")  # fmt: skip
    assert code == 0, err
    assert [p.name for p in out.iterdir()] == [f"{name}.tif"]


def test_a_folder_that_is_a_file_is_named(tmp_path: Path) -> None:
    afile = tmp_path / "afile"
    afile.write_bytes(OLD)
    for make_folder in (False, True):
        for path in (afile / "x.png", afile / "sub" / "x.png"):
            with pytest.raises(OSError, match=f"cannot write {path}: {afile} is not a directory"):
                with atomic_write(path, make_folder=make_folder) as fh:
                    fh.write(b"x")
    with pytest.raises(OSError, match=f"cannot write .*: the folder {tmp_path / 'no'} does not"):
        atomic_write_text(tmp_path / "no" / "x.txt", "x")
    with atomic_write(tmp_path / "new" / "sub" / "x.txt", make_folder=True) as fh:
        fh.write(b"x")
    assert (tmp_path / "new" / "sub" / "x.txt").read_bytes() == b"x"
    assert afile.read_bytes() == OLD


def test_napari_writer_under_a_file_names_it(tmp_path: Path) -> None:
    afile = tmp_path / "afile"
    afile.write_bytes(OLD)
    with pytest.raises((OSError, ValueError),
                       match=f"{afile} is (not a directory|an existing file)"):  # fmt: skip
        write_fused_tiff(str(afile / "layer.tif"), np.ones((8, 8), np.float32), {"name": "f"})
    write_fused_tiff(str(tmp_path / "made" / "layer.tif"), np.ones((8, 8), np.float32), {})
    assert (tmp_path / "made" / "layer.tif").is_file()


def test_writers_get_no_descriptor_and_missing_bytes_are_an_error(tmp_path: Path) -> None:
    """Bytes that did not reach the disk (here cut behind the writer's back) fail the write."""
    target = tmp_path / "out.bin"
    target.write_bytes(OLD)
    with pytest.raises(OSError, match=r"cannot write .*out\.bin: 10 of 5000 bytes reached the"):
        with atomic_write(target) as fh:
            with pytest.raises(io_module.UnsupportedOperation):
                fh.fileno()
            fh.write(b"x" * 5000)
            fh.flush()
            os.truncate(tmp_path / _leftovers(tmp_path)[0], 10)
    assert target.read_bytes() == OLD and _leftovers(tmp_path) == []
    with atomic_write(target) as fh:  # seeks and truncation are followed
        fh.write(b"abcdef")
        fh.seek(2)
        fh.write(b"Z")
        fh.truncate(4)
        fh.seek(0, os.SEEK_END)
        assert fh.tell() == 4
    assert target.read_bytes() == b"abZd"


def test_a_tiff_is_written_in_pieces_without_a_copy_of_the_image(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Through write(), the pixels go a piece at a time; the file is tifffile's own."""
    import tracemalloc

    from napari_gifnet.io import imagej_tiff

    monkeypatch.setattr(imagej_tiff, "_PIECE_BYTES", 1 << 20)
    image = np.random.default_rng(0).random((1024, 2048), dtype=np.float32)  # 8 MiB
    tracemalloc.start()
    try:
        io.write_image(tmp_path / "big.tif", image, {"k": 1})
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 << 20, peak
    monkeypatch.setattr(imagej_tiff, "_PIECE_BYTES", 1 << 40)  # the same file in one piece
    io.write_image(tmp_path / "whole.tif", image, {"k": 1})
    assert (tmp_path / "big.tif").read_bytes() == (tmp_path / "whole.tif").read_bytes()


class _DiskFull:
    """A file object that takes ``room`` bytes, then fails like a full disk."""

    def __init__(self, real, room: int) -> None:
        self._real, self.room = real, room

    def write(self, data) -> int:
        size = len(memoryview(data).cast("B"))
        if size > self.room:
            raise OSError(errno.ENOSPC, "No space left on device")
        self.room -= size
        return self._real.write(data)

    def fileno(self) -> int:  # writers then go through write() (numpy's tofile too)
        raise io_module.UnsupportedOperation("fileno")

    def __getattr__(self, name):
        return getattr(self._real, name)


@pytest.fixture
def disk_full(monkeypatch: pytest.MonkeyPatch):
    """Every atomic write's file object runs out of space after ``room`` bytes."""
    real_open = safe_files._open_temporary

    def install(room: int = 1000) -> None:
        def fake(target):
            fh, tmp = real_open(target)
            return _DiskFull(fh, room), tmp

        monkeypatch.setattr(safe_files, "_open_temporary", fake)

    return install


@pytest.mark.parametrize("name", ["out.tif", "out.png", "out.jpg"])
def test_full_disk_is_an_error_and_keeps_the_old_file(tmp_path: Path, disk_full, name) -> None:
    target = tmp_path / name
    target.write_bytes(OLD)
    disk_full(room=1000)
    rng = np.random.default_rng(0)
    image = rng.random((256, 256, 3)).astype(np.float32)  # noise: no format packs it in 1 kB
    with pytest.raises(OSError, match=f"cannot write .*{name}: no space left on device"):
        io.write_image(target, image, {"k": 1})
    assert target.read_bytes() == OLD
    assert _leftovers(tmp_path) == []


def test_full_disk_while_writing_feature_stacks(tmp_path: Path, disk_full) -> None:
    folder = tmp_path / "features"
    folder.mkdir()
    (folder / "shared.tif").write_bytes(OLD)
    disk_full(room=10_000)
    feats = {"shared": np.ones((4, 64, 64), np.float32)}
    with pytest.raises(OSError, match="shared.tif: no space left on device"):
        io.write_features(folder, feats)
    assert (folder / "shared.tif").read_bytes() == OLD
    assert _leftovers(folder) == []


def test_full_disk_in_the_napari_writer(tmp_path: Path, disk_full) -> None:
    target = tmp_path / "layer.tif"
    target.write_bytes(OLD)
    disk_full(room=100)
    with pytest.raises(OSError, match="no space left on device"):
        write_fused_tiff(str(target), np.ones((64, 64), np.float32), {"name": "fused"})
    assert target.read_bytes() == OLD and _leftovers(tmp_path) == []


def test_full_disk_on_a_real_tiny_tmpfs(tmp_path: Path) -> None:
    """Where the superuser may mount one, a 64 kB tmpfs fills up for real."""
    mount = tmp_path / "tiny"
    mount.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs the superuser")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)],
                          capture_output=True)  # fmt: skip
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        target = mount / "out.tif"
        target.write_bytes(OLD)
        with pytest.raises(OSError, match="no space left on device"):
            io.write_image(target, np.ones((256, 256), np.float32))
        assert target.read_bytes() == OLD and _leftovers(mount) == []
    finally:
        subprocess.run(["umount", str(mount)], check=False)


def test_jpeg_on_a_full_disk_is_not_reported_as_success(
    tmp_path: Path, disk_full, capsys: pytest.CaptureFixture[str]
) -> None:
    """The CLI: one error line, exit status 1, old output intact (``stack``: no network)."""
    planes = [tmp_path / f"p{i}.png" for i in range(2)]
    rng = np.random.default_rng(1)
    for p in planes:
        io.write_image(p, rng.random((128, 128)).astype(np.float32))
    out = tmp_path / "aif.jpg"
    out.write_bytes(OLD)
    disk_full(room=500)
    code, stdout, err = run_cli(capsys, "stack", *map(str, planes), "-o", str(out),
                                "--method", "focus", "-q")  # fmt: skip
    assert code == 1
    one_error_line(err, "aif.jpg: no space left on device")
    assert "[Errno" not in err
    assert out.read_bytes() == OLD and _leftovers(tmp_path) == []


# -- interrupted writes (a real signal in a subprocess) -------------------------------

_SLOW_WRITE = """
import sys, time
sys.path.insert(0, {src!r})
import numpy as np
import tifffile
from napari_gifnet.cli.main import main

real = tifffile.imwrite

def slow(fh, data, **kw):  # a big write: the signal lands in the middle of it
    fh.write(b"II*\\x00" + b"\\x00" * 4096)
    fh.flush()
    print("writing", flush=True)
    time.sleep(60)
    real(fh, data, **kw)

tifffile.imwrite = slow
sys.exit(main({argv!r}))
"""


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_during_a_write_leaves_no_partial_file(tmp_path: Path, sig) -> None:
    planes = [tmp_path / f"p{i}.tif" for i in range(2)]
    for i, p in enumerate(planes):
        tifffile.imwrite(p, np.full((32, 32), i * 100, np.uint16))
    out = tmp_path / "aif.tif"
    out.write_bytes(OLD)
    argv = ["stack", *map(str, planes), "-o", str(out), "--method", "focus", "-q"]
    script = textwrap.dedent(_SLOW_WRITE).format(src=str(SRC), argv=argv)
    # a job a shell starts in the background ignores SIGINT (and Python then
    # installs no KeyboardInterrupt handler): the child gets it as a terminal's would
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # fmt: skip
    try:
        assert proc.stdout.readline().strip() == "writing"
        assert _leftovers(tmp_path), "the temporary file is being written"
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == (130 if sig == signal.SIGINT else 143), err
    assert "Traceback" not in err
    assert out.read_bytes() == OLD
    assert _leftovers(tmp_path) == []


# -- an output that is an input, in every command -------------------------------------


def _aliases(tmp_path: Path, source: Path) -> dict[str, Path]:
    (tmp_path / "sub").mkdir(exist_ok=True)
    link, hard = tmp_path / f"link{source.suffix}", tmp_path / f"hard{source.suffix}"
    link.symlink_to(source)
    os.link(source, hard)
    return {"dotdot": tmp_path / "sub" / ".." / source.name, "symlink": link, "hardlink": hard}


@pytest.fixture
def nothing_read(monkeypatch: pytest.MonkeyPatch) -> None:
    """Reading an image, or fusing, fails the test: refusals come first."""
    def fail(*_args, **_kwargs):
        raise AssertionError("an input was read before the output was checked")

    monkeypatch.setattr(io, "read_image", fail)
    import napari_gifnet.engine.fusion as engine

    monkeypatch.setattr(engine, "fuse", fail)


@pytest.mark.parametrize("alias", ["plain", "dotdot", "symlink", "hardlink"])
@pytest.mark.parametrize("command", ["fuse", "enhance", "pansharpen", "stack"])
def test_no_command_writes_over_an_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], nothing_read, command: str, alias: str
) -> None:
    inputs = [tmp_path / "a.tif", tmp_path / "b.tif"]
    for i, p in enumerate(inputs):
        p.write_bytes(OLD + bytes([i]))
    victim = inputs[-1] if command != "enhance" else inputs[0]
    out = victim if alias == "plain" else _aliases(tmp_path, victim)[alias]
    args = {"fuse": ["fuse", *map(str, inputs)], "enhance": ["enhance", str(inputs[0])],
            "pansharpen": ["pansharpen", *map(str, inputs)],
            "stack": ["stack", *map(str, inputs), "--method", "focus"]}[command]  # fmt: skip
    code, _, err = run_cli(capsys, *args, "-o", str(out))
    assert code == 2
    one_error_line(err, "is an input")
    assert [p.read_bytes() for p in inputs] == [OLD + b"\x00", OLD + b"\x01"]


def test_stack_folder_input_is_not_overwritten(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "planes"
    folder.mkdir()
    for i in range(3):
        tifffile.imwrite(folder / f"p{i}.tif", np.full((16, 16), i, np.uint16))
    before = (folder / "p1.tif").read_bytes()
    code, _, err = run_cli(capsys, "stack", str(folder), "-o",
                           str(folder / ".." / "planes" / "p1.tif"), "--method", "focus")  # fmt: skip
    assert code == 2
    one_error_line(err, "is an input")
    assert (folder / "p1.tif").read_bytes() == before


def test_train_out_equal_to_init_is_refused(tmp_path: Path, capsys) -> None:
    init = tmp_path / "mine.pth"
    init.write_bytes(OLD)
    (tmp_path / "pairs").mkdir()
    link = tmp_path / "alias.pth"
    link.symlink_to(init)
    code, _, err = run_cli(capsys, "train", "--pairs", str(tmp_path / "pairs"),
                           "--out", str(link), "--init", str(init))  # fmt: skip
    assert code == 1
    one_error_line(err, "is an input")
    assert init.read_bytes() == OLD


# -- output paths checked before any work ---------------------------------------------


def test_fuse_output_problems_fail_before_any_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], nothing_read
) -> None:
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    a.write_bytes(b"x")
    b.write_bytes(b"x")
    (tmp_path / "dir.png").mkdir()
    afile = tmp_path / "file"
    afile.write_bytes(b"x")
    cases = [
        (["-o", str(tmp_path / "dir.png")], "is an existing directory"),
        (["-o", str(tmp_path / "o.png"), "--features", str(afile)], "is an existing file"),
        (["-o", str(tmp_path / "o.png"), "--features", str(afile / "sub")], "is under the file"),
        (["-o", str(afile / "o.png")], "is not a directory"),
    ]
    for extra, match in cases:
        code, _, err = run_cli(capsys, "fuse", str(a), str(b), *extra)
        assert code in (1, 2), extra
        one_error_line(err, match)
    assert not (tmp_path / "o.png").exists()


def test_evaluate_out_that_is_a_file_fails_before_any_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from napari_gifnet.metrics import evaluation

    monkeypatch.setattr(evaluation, "generate_multifocus_set", lambda *a: 1 / 0)
    afile = tmp_path / "results"
    afile.write_bytes(OLD)
    code, _, err = run_cli(capsys, "evaluate", "--multifocus-set", "2", "--out", str(afile),
                           "--methods", "mean")  # fmt: skip
    assert code == 1
    one_error_line(err, "is an existing file")
    assert afile.read_bytes() == OLD


# -- messages -------------------------------------------------------------------------


def test_fuse_points_a_multipage_tiff_to_the_stack_command(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stack = tmp_path / "z.tif"
    tifffile.imwrite(stack, np.zeros((5, 32, 32), np.uint16))
    tifffile.imwrite(tmp_path / "b.tif", np.zeros((32, 32), np.uint16))
    code, _, err = run_cli(capsys, "fuse", str(stack), str(tmp_path / "b.tif"),
                           "-o", str(tmp_path / "o.tif"), "--device", "cpu")  # fmt: skip
    assert code == 1
    line = one_error_line(err, "holds a stack (shape (5, 32, 32))")
    assert f"napari-gifnet stack {stack} -o OUT" in line and "dask" not in line.lower()


def test_negative_normalization_range_is_accepted(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import napari_gifnet.engine.fusion as engine

    seen = {}

    def fake(a, b, **kwargs):
        seen.update(kwargs)
        raise ValueError("stop here")

    monkeypatch.setattr(engine, "fuse", fake)
    for p in ("a.tif", "b.tif"):
        tifffile.imwrite(tmp_path / p, np.zeros((32, 32), np.float32))
    for form in (["--normalization", "-1e9,1e9"], ["--normalization=-1e9,1e9"]):
        code, _, err = run_cli(capsys, "fuse", str(tmp_path / "a.tif"), str(tmp_path / "b.tif"),
                               "-o", str(tmp_path / "o.tif"), "--device", "cpu", *form)  # fmt: skip
        assert code == 1 and "stop here" in err, err
        assert seen["normalization"] == (-1e9, 1e9)


def test_tifffile_log_lines_do_not_precede_the_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = tmp_path / "good.tif"
    tifffile.imwrite(good, np.zeros((64, 64), np.uint8))
    data = bytearray(good.read_bytes())
    data[10:30] = b"\xff" * 20  # tags with invalid types: tifffile logs, then fails
    bad = tmp_path / "bad.tif"
    bad.write_bytes(bytes(data))
    code, _, err = run_cli(capsys, "enhance", str(bad), "-o", str(tmp_path / "o.tif"),
                           "--device", "cpu")  # fmt: skip
    assert code == 1
    one_error_line(err, f"cannot read {bad}: not a valid TIFF file")


def test_decompression_bomb_png_says_so(tmp_path: Path) -> None:
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)
        return struct.pack(">I", len(body)) + kind + body + crc

    side = 20000  # 400 MP: beyond twice Pillow's limit; the file itself is 0.4 MB
    packer = zlib.compressobj(9)
    row = b"\x00" * (side + 1)
    body = b"".join(packer.compress(row) for _ in range(side)) + packer.flush()
    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body)
                     + chunk(b"IEND", b""))  # fmt: skip
    for reader in (io.read_image, io.image_info):
        with pytest.raises(ValueError, match="possible decompression bomb"):
            reader(bomb)

