"""Outputs are written where they were checked: a link at an output name is replaced.

A symbolic link that appears at the output name while a fusion runs (after
the output was checked against the inputs) must not lead the write to an
input; a link already there, with ``--overwrite``, is replaced as a link,
and a dangling one creates no file where it points.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cli_run import run_cli
from napari_gifnet.io import images as io

SRC = Path(__file__).resolve().parents[2] / "src"

#: The command line, its fusion paused until a line arrives on stdin.
_PAUSED_FUSE = """
import sys
import napari_gifnet.engine.fusion as engine
from napari_gifnet.cli.main import main

real = engine.fuse

def paused(*args, **kwargs):
    print("fusing", flush=True)
    sys.stdin.readline()
    return real(*args, **kwargs)

engine.fuse = paused
sys.exit(main(sys.argv[1:]))
"""


def _pair(folder: Path, name: str = "in", size: int = 48) -> tuple[Path, Path]:
    rng = np.random.default_rng(len(name))
    paths = (folder / f"{name}A.png", folder / f"{name}B.png")
    for p in paths:
        io.write_image(p, rng.random((size, size)).astype(np.float32))
    return paths


def _regular(path: Path) -> bool:
    return path.is_file() and not path.is_symlink()


def test_a_link_made_while_fuse_runs_does_not_redirect_the_output(
    tmp_path: Path, reference_weights: Path
) -> None:
    """``fuse inA.png inB.png -o out.png``; ``ln -s inA.png out.png`` during the fusion."""
    a, b = _pair(tmp_path)
    before = a.read_bytes()
    out = tmp_path / "out.png"
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [os.environ.get("PYTHONPATH"), str(SRC)]))}
    argv = ["fuse", str(a), str(b), "-o", str(out), "--device", "cpu",
            "--weights", str(reference_weights), "-q"]  # fmt: skip
    proc = subprocess.Popen([sys.executable, "-c", _PAUSED_FUSE, *argv], env=env, text=True,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert proc.stdout.readline().strip() == "fusing", proc.stderr.read()
        out.symlink_to(a.name)  # checked already: the output did not exist
        _, err = proc.communicate("go\n", timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert a.read_bytes() == before
    assert _regular(out) and io.read_image(out).shape == (48, 48)


def test_a_link_made_mid_batch_does_not_redirect_an_output(
    tmp_path: Path, reference_weights: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``fuse --pairs``: while the first pair fuses, the second's output becomes a link."""
    import napari_gifnet.engine.fusion as engine

    pairs, outdir = tmp_path / "pairs", tmp_path / "O"
    for side in ("first", "second"):
        (pairs / side).mkdir(parents=True)
    for name in ("p1", "p2"):
        a, b = _pair(tmp_path, name, size=32)
        a.rename(pairs / "first" / f"{name}.png")
        b.rename(pairs / "second" / f"{name}.png")
    victim = pairs / "first" / "p2.png"
    before = victim.read_bytes()
    real, calls = engine.fuse, []

    def racing(*args, **kwargs):
        if not calls:
            (outdir / "p2.png").symlink_to(victim)
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(engine, "fuse", racing)
    code, _, err = run_cli(capsys, "fuse", "--pairs", str(pairs), "-o", str(outdir),
                           "--format", "png", "--device", "cpu",
                           "--weights", str(reference_weights), "-q")  # fmt: skip
    assert code == 0, err
    assert len(calls) == 2 and victim.read_bytes() == before
    assert _regular(outdir / "p1.png") and _regular(outdir / "p2.png")


def test_overwrite_replaces_links_in_the_output_folder(
    tmp_path: Path, reference_weights: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--overwrite`` with ``O/p1.tif`` a link to an unrelated file, ``O/p2.tif`` dangling."""
    pairs, outdir, elsewhere = tmp_path / "pairs", tmp_path / "O", tmp_path / "elsewhere"
    for folder in (pairs / "first", pairs / "second", outdir, elsewhere):
        folder.mkdir(parents=True)
    for name in ("p1", "p2"):
        a, b = _pair(tmp_path, name, size=32)
        a.rename(pairs / "first" / f"{name}.png")
        b.rename(pairs / "second" / f"{name}.png")
    unrelated = elsewhere / "unrelated.tif"
    unrelated.write_bytes(b"an unrelated file")
    (outdir / "p1.tif").symlink_to(unrelated)
    (outdir / "p2.tif").symlink_to(elsewhere / "p2.tif")  # dangling
    code, _, err = run_cli(capsys, "fuse", "--pairs", str(pairs), "-o", str(outdir),
                           "--overwrite", "--device", "cpu",
                           "--weights", str(reference_weights), "-q")  # fmt: skip
    assert code == 0, err
    assert unrelated.read_bytes() == b"an unrelated file"
    assert sorted(p.name for p in elsewhere.iterdir()) == ["unrelated.tif"]
    assert _regular(outdir / "p1.tif") and _regular(outdir / "p2.tif")
