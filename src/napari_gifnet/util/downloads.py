"""Pinned downloads into the cache: nothing unverified is kept, nothing foreign deleted.

One rule for every file the project downloads (the checkpoint, the
published sample images):

* the file is fetched with pooch, which streams it to a temporary file in
  the destination folder, checks its sha256 against the pin and only then
  moves it into place (a mismatch deletes the temporary file);
* a file already at the destination whose sha256 differs from the pin was
  not written by the project in that state (a user's own file, a copy made
  by hand): it is never deleted or overwritten. The download goes to
  another name; once verified, the foreign file is moved aside to
  ``<name>.foreign-<first 12 hex digits of its sha256>`` (never over an
  earlier one) and the verified file takes its place.

No torch import happens here.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Union

PathLike = Union[str, "os.PathLike[str]"]

#: Environment variable overriding the cache directory.
CACHE_ENV = "NAPARI_GIFNET_CACHE"


def cache_dir() -> Path:
    """Return the cache directory (``NAPARI_GIFNET_CACHE`` or the OS cache).

    The checkpoint lives there, the published samples under ``samples/``.
    """
    override = os.environ.get(CACHE_ENV, "").strip()
    if override:
        return Path(override).expanduser().absolute()
    import pooch

    return Path(pooch.os_cache("napari-gifnet")).absolute()


def sha256_of(path: PathLike) -> str:
    """The hex sha256 of a file, read in 1 MB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def aside_name(target: Path, sha256: str) -> Path:
    """A free name beside ``target`` for a foreign file: ``<name>.foreign-<12 hex>[-N]``."""
    aside = target.with_name(f"{target.name}.foreign-{sha256[:12]}")
    n = 1
    while aside.exists():
        n += 1
        aside = target.with_name(f"{target.name}.foreign-{sha256[:12]}-{n}")
    return aside


@dataclass(frozen=True)
class Fetched:
    """The outcome of :func:`fetch_pinned`.

    Attributes
    ----------
    path
        The verified file (``target``).
    moved_aside
        Where a foreign file that was at ``target`` went, or None.
    """

    path: Path
    moved_aside: Path | None = None


def fetch_pinned(url: str, sha256: str, target: PathLike, *, timeout: float = 60) -> Fetched:
    """Return ``target`` verified against ``sha256``, downloading it from ``url`` if needed.

    Parameters
    ----------
    url
        Where to download from.
    sha256
        The pin (hex digest).
    target
        The cached file; its folder is created if needed.
    timeout
        Seconds to wait for the server.

    Returns
    -------
    Fetched
        The file, and whether a foreign file was moved aside.

    Raises
    ------
    ValueError
        The download does not have the pinned sha256 (nothing is kept).
    OSError
        The download failed (requests' errors are OSErrors); a foreign file
        at ``target`` is then left where it was.
    """
    import pooch

    path = Path(target)
    foreign = None
    if path.is_file():
        foreign = sha256_of(path)
        if foreign == sha256:
            return Fetched(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    name = path.name if foreign is None else f"{path.name}.download"
    fetched = Path(pooch.retrieve(
        url, known_hash=f"sha256:{sha256}", fname=name, path=path.parent,
        downloader=pooch.HTTPDownloader(progressbar=False, timeout=timeout),
    ))  # fmt: skip
    if foreign is None:
        return Fetched(fetched)
    aside = aside_name(path, foreign)
    os.rename(path, aside)
    os.replace(fetched, path)
    return Fetched(path, moved_aside=aside)
