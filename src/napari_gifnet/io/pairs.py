"""Folders of image pairs: ``DIR/first/`` + ``DIR/second/`` with matching file names.

The one reading of that layout, shared by ``napari-gifnet fuse --pairs``
(batches), ``napari-gifnet evaluate`` and ``napari-gifnet train``: files are
matched by stem (any supported extension), so ``first/a.png`` pairs with
``second/a.tif``. Nothing is decoded here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .formats import READ_EXTENSIONS, PathLike

__all__ = ["PairFolder", "image_files", "pair_folder", "pair_inputs"]


def image_files(folder: Path) -> dict[str, Path]:
    """The images of ``folder`` by stem, sorted.

    Raises
    ------
    ValueError
        Two images with one stem (``a.png`` and ``a.tif``), which could not be
        told apart.
    """
    found: dict[str, Path] = {}
    for p in sorted(folder.iterdir()):
        if p.is_file() and p.suffix.lower() in READ_EXTENSIONS:
            if p.stem in found:
                raise ValueError(f"{folder} holds two images named {p.stem!r}: "
                                 f"{found[p.stem].name} and {p.name}")  # fmt: skip
            found[p.stem] = p
    return found


@dataclass(frozen=True)
class PairFolder:
    """The pairs of a ``first/`` + ``second/`` folder.

    Attributes
    ----------
    root
        The folder.
    pairs
        ``(name, first file, second file)``, sorted by name.
    unmatched
        ``(name, the sub-folder missing it)`` for images without a partner.
    """

    root: Path
    pairs: list[tuple[str, Path, Path]] = field(default_factory=list)
    unmatched: list[tuple[str, str]] = field(default_factory=list)

    def describe_unmatched(self, most: int = 3) -> str:
        """``"2 image(s) without a partner: 'x' (missing in second/), ..."``."""
        listed = ", ".join(f"{n!r} (missing in {w}/)" for n, w in self.unmatched[:most])
        more = f" and {len(self.unmatched) - most} more" if len(self.unmatched) > most else ""
        return f"{len(self.unmatched)} image(s) without a partner: {listed}{more}"


def pair_folder(root: PathLike, what: str = "pairs folder") -> PairFolder:
    """Read the layout of a folder of pairs (names only).

    Parameters
    ----------
    root
        The folder holding ``first/`` and ``second/``.
    what
        What to call the folder in messages (``"training folder"``, ...).

    Raises
    ------
    FileNotFoundError
        The folder, ``first/`` or ``second/`` is missing.
    ValueError
        ``first/`` or ``second/`` holds no images, or two images with one stem.
    """
    base = Path(root)
    if not base.is_dir():
        raise FileNotFoundError(f"{what} not found: {base}")
    for sub in ("first", "second"):
        if not (base / sub).is_dir():
            raise FileNotFoundError(
                f"{base} has no '{sub}' folder: expected {base}/first/ (first inputs) and "
                f"{base}/second/ (second inputs) holding images with matching file names"
            )
    found = {}
    for sub in ("first", "second"):
        found[sub] = image_files(base / sub)
        if not found[sub]:
            raise ValueError(f"{base / sub} holds no images ({', '.join(READ_EXTENSIONS)})")
    first, second = found["first"], found["second"]
    pairs = [(name, first[name], second[name]) for name in sorted(first) if name in second]
    unmatched = sorted([(n, "second") for n in first if n not in second]
                       + [(n, "first") for n in second if n not in first])  # fmt: skip
    return PairFolder(base, pairs, unmatched)


def pair_inputs(root: PathLike) -> tuple[list[Path], list[Path]]:
    """What a folder of pairs gives to read: every image file of ``first/`` and
    ``second/``, partnered or not, and those two folders (the ones that exist).

    Unlike :func:`pair_folder` nothing is refused here: this is the list the
    outputs of a command are checked against before the folder itself is.
    """
    base = Path(root)
    folders = [base / sub for sub in ("first", "second") if (base / sub).is_dir()]
    files = [p for folder in folders for p in sorted(folder.iterdir())
             if p.is_file() and p.suffix.lower() in READ_EXTENSIONS]  # fmt: skip
    return files, folders
