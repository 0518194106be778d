"""Folders of pairs (io.pairs): the one reading of DIR/first + DIR/second."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from napari_gifnet.io import write_image
from napari_gifnet.io.pairs import pair_folder, pair_inputs


def _img(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_image(path, np.zeros((8, 8), np.uint8))


def test_pairs_match_by_stem_and_unmatched_are_named(tmp_path: Path) -> None:
    for name in ("first/a.png", "second/a.tif", "first/b.jpg", "second/b.png", "first/x.png",
                 "second/y.png", "first/notes.txt"):  # fmt: skip
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        if name.endswith(".txt"):
            (tmp_path / name).write_text("not an image")
        else:
            _img(tmp_path / name)
    folder = pair_folder(tmp_path)
    assert [(n, a.name, b.name) for n, a, b in folder.pairs] == [
        ("a", "a.png", "a.tif"), ("b", "b.jpg", "b.png")]
    assert folder.unmatched == [("x", "second"), ("y", "first")]
    assert folder.describe_unmatched() == (
        "2 image(s) without a partner: 'x' (missing in second/), 'y' (missing in first/)")


def test_layout_errors_name_the_folder(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="pairs folder not found"):
        pair_folder(tmp_path / "nope")
    (tmp_path / "first").mkdir()
    with pytest.raises(FileNotFoundError, match="has no 'second' folder"):
        pair_folder(tmp_path)
    (tmp_path / "second").mkdir()
    with pytest.raises(ValueError, match="first holds no images"):
        pair_folder(tmp_path)
    _img(tmp_path / "first" / "a.png")
    _img(tmp_path / "first" / "a.tif")
    _img(tmp_path / "second" / "a.png")
    with pytest.raises(ValueError, match="two images named 'a'"):
        pair_folder(tmp_path)


def test_pair_inputs_are_every_image_partnered_or_not(tmp_path: Path) -> None:
    assert pair_inputs(tmp_path / "nope") == ([], [])  # nothing refused: the outputs come first
    for name in ("first/a.png", "first/x.png", "second/a.tif", "second/run.loss.png"):
        _img(tmp_path / name)
    (tmp_path / "first" / "notes.txt").write_text("not an image")
    files, folders = pair_inputs(tmp_path)
    assert [str(p.relative_to(tmp_path)) for p in files] == [
        "first/a.png", "first/x.png", "second/a.tif", "second/run.loss.png"]
    assert folders == [tmp_path / "first", tmp_path / "second"]
