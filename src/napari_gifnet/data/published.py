"""The published GIFNet example pairs, downloaded on demand with pinned hashes.

Each :data:`PUBLISHED` entry lists files of the GIFNet repository; they are
downloaded on first use into ``<cache>/samples`` (see
:func:`napari_gifnet.util.downloads.cache_dir`), checked against pinned sha256
digests and opened as a :class:`~napari_gifnet.data.sample.Sample`.
``NAPARI_GIFNET_SAMPLES_URL`` replaces the base URL (a mirror holding the same
relative paths); the pins stay.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..util.downloads import cache_dir, fetch_pinned
from .sample import Sample, _layer

OFFICIAL_BASE_URL = "https://github.com/AWCXV/GIFNet/raw/main/"
#: Environment variable replacing :data:`OFFICIAL_BASE_URL` (mirrors, tests).
SAMPLES_URL_ENV = "NAPARI_GIFNET_SAMPLES_URL"
_TIMEOUT_S = 60

class SampleDownloadError(RuntimeError):
    """A published sample file is neither cached nor downloadable (or is corrupt)."""


@dataclass(frozen=True)
class PublishedFile:
    """One published example file: layer name, path below the base URL and pins."""

    name: str
    path: str
    sha256: str
    size: int
    role: str
    visible: bool = True


@dataclass(frozen=True)
class PublishedSample:
    """A published example pair (or set) from the GIFNet repository."""

    key: str
    task: str
    title: str
    files: tuple[PublishedFile, ...]


def _pub(key: str, task: str, title: str, *files: tuple[str, str, str, int]) -> PublishedSample:
    entries = tuple(
        PublishedFile(name, path, sha, size, "first input" if i < len(files) - 1 else
                      "second input", visible=i in (0, len(files) - 1))
        for i, (name, path, sha, size) in enumerate(files)
    )
    return PublishedSample(key, task, title, entries)


# Upstream layout (AWCXV/GIFNet, branch main, checked against the repository's
# tree): images/<task>/<modality>/1.<ext>, with IVIF ir|vis, MFIF ir|vis (near |
# far focus), MEIF ir|vis (over- | under-exposed), Medical pet|mri, NIR-VIS
# nir|vis, Remote MS_band1..4|PAN (the nf/ff/oe/ue folders the upstream README's
# commands name do not exist). Every pin below is the sha256 of the published
# file; a mirror (NAPARI_GIFNET_SAMPLES_URL) must hold these paths.
PUBLISHED: dict[str, PublishedSample] = {s.key: s for s in (
    _pub("published_ivif", "IVIF", "Infrared + visible (published example)",
         ("infrared", "images/IVIF/ir/1.jpg",
          "1493246378ffecef7be28842f9bfd03f220fd3094d7ce59079989f25a2416301", 79133),
         ("visible", "images/IVIF/vis/1.jpg",
          "d57604a1a217d84447d8c4128e4e927f4c2c9677b68f7e0943ca46374f438e44", 96136)),
    _pub("published_medical", "Medical", "PET + MRI (published example)",
         ("PET", "images/Medical/pet/1.png",
          "80e249b7f91426a78426a0ac5d9a02f2b70ed2d581d879076caf4c734361ea92", 7289),
         ("MRI", "images/Medical/mri/1.png",
          "a7bd2160767d6c66587e950a42e96168226e9e00033f3c287fc19d0e2b8f25a0", 27879)),
    _pub("published_mfif", "MFIF", "Near + far focus (published example)",
         ("near focus", "images/MFIF/ir/1.jpg",
          "2f9fb95461f2297388eeece514544714cf4f7f1377e4b0bb6fae2901d43dd795", 30387),
         ("far focus", "images/MFIF/vis/1.jpg",
          "d7329134ec2987840e1bd29de06383fc9dd796904d24d6d9e9d4d6dc63dfdac6", 33196)),
    _pub("published_meif", "MEIF", "Over + under exposed (published example)",
         ("over-exposed", "images/MEIF/ir/1.jpg",
          "e6d4fb578308f29bf75e13e3bd04ca231e80957fc062a0b6880f695b335246ee", 146401),
         ("under-exposed", "images/MEIF/vis/1.jpg",
          "732eb00668b6db3f5e9fcfbd7fc721b4463b7db1a8b8c07c4d77dd620021905e", 106085)),
    _pub("published_nir", "NIR-VIS", "Near-infrared + visible (published example)",
         ("near-infrared", "images/NIR-VIS/nir/1.jpg",
          "d606745b7b9e8f51234cfafa59ec15d5e2319ac70c6159e3ac696537bd67bb84", 94882),
         ("visible", "images/NIR-VIS/vis/1.jpg",
          "b59d53d1edc066554dc7c9ed8cc9713ee94b7b4c22ee297c3d43cda658eb9315", 111659)),
    _pub("published_remote", "Remote", "Multispectral bands + panchromatic (published example)",
         ("multispectral band 1", "images/Remote/MS_band1/1.tif",
          "58179a6f9358b3db2efe2672e91ad9cd877818019103185e9d642b44a2403c87", 136468),
         ("multispectral band 2", "images/Remote/MS_band2/1.tif",
          "ba02ce668412e86339314f17ec6d6b2424241fcf01451929561b92a18d0ebe91", 184998),
         ("multispectral band 3", "images/Remote/MS_band3/1.tif",
          "7386e4dca3ae70ed9a48e52788e95c09dd179c18fdc9561b48876c571d606c7f", 183910),
         ("multispectral band 4", "images/Remote/MS_band4/1.tif",
          "d3bfefc5846fa3b29c19f97c6ae9167be89e70b370b16707240d6eeecfca936c", 216048),
         ("panchromatic", "images/Remote/PAN/1.tif",
          "2c5e61cca7bbd057ea44828527596d3dab05d6f5c6c443f65c763c69a30b4daa", 237056)),
)}


def samples_base_url() -> str:
    """Return the base URL of the published files (``NAPARI_GIFNET_SAMPLES_URL`` or official)."""
    base = os.environ.get(SAMPLES_URL_ENV, "").strip() or OFFICIAL_BASE_URL
    return base if base.endswith("/") else base + "/"


def samples_cache_dir() -> Path:
    """Return ``<cache>/samples``, where published files are kept."""
    return cache_dir() / "samples"


def _cache_path(sample: PublishedSample, entry: PublishedFile) -> Path:
    parts = Path(entry.path).parts  # images/<task>/<modality>/<file>
    return samples_cache_dir() / sample.task / f"{parts[-2]}_{parts[-1]}"


def fetch_published_file(sample: PublishedSample, entry: PublishedFile) -> Path:
    """Return the cached file, downloading it (sha256 checked) if needed.

    As :func:`napari_gifnet.util.downloads.fetch_pinned` fetches: a cached file
    with another sha256 is moved aside, with a warning naming where it went.

    Raises
    ------
    SampleDownloadError
        Naming the file, its URL, its pin and where to put it by hand.
    """
    target = _cache_path(sample, entry)
    url = samples_base_url() + entry.path
    try:
        fetched = fetch_pinned(url, entry.sha256, target, timeout=_TIMEOUT_S)
    except (ValueError, OSError) as exc:  # hash mismatch; requests' errors are OSErrors
        if isinstance(exc, ValueError) and "hash" in str(exc).lower():
            reason = "the downloaded file does not have the pinned sha256 (discarded)"
        else:
            reason = f"the download failed ({type(exc).__name__}: {exc})"
        if target.is_file():
            reason += f"; {target} there has another sha256 and was left as it is"
        official = "" if url.startswith(OFFICIAL_BASE_URL) else (
            f" (official: {OFFICIAL_BASE_URL}{entry.path})")
        raise SampleDownloadError(
            f"Cannot load the {entry.name!r} image of sample {sample.key!r}: {reason}.\n"
            f"  from:    {url}{official}\n"
            f"  sha256:  {entry.sha256} ({entry.size:,} bytes)\n"
            f"  save as: {target}\n"
            f"Download it by hand and save it there, or set {SAMPLES_URL_ENV} to the base URL "
            f"of a mirror holding the same relative path ({entry.path})."
        ) from exc
    if fetched.moved_aside is not None:
        warnings.warn(f"{target} had another sha256 than the published file; it was moved to "
                      f"{fetched.moved_aside}", UserWarning, stacklevel=2)  # fmt: skip
    return fetched.path


def load_published(key: str) -> Sample:
    """Load a published example (downloading it on first use).

    RGB files whose three channels are identical (a grey image saved as RGB)
    open as grey layers; other RGB files as RGB layers (``rgb=True``).

    Parameters
    ----------
    key : str
        One of :data:`PUBLISHED`.

    Returns
    -------
    Sample
        One layer per file, inputs in GIFNet's order (first, then second).

    Raises
    ------
    KeyError
        Unknown key.
    SampleDownloadError
        A file is not cached and cannot be downloaded, or is corrupt.
    """
    from ..io.images import read_image

    if key not in PUBLISHED:
        raise KeyError(f"unknown published sample {key!r}; choose from {sorted(PUBLISHED)}")
    sample = PUBLISHED[key]
    base = samples_base_url()
    layers = []
    for entry in sample.files:
        data = read_image(fetch_published_file(sample, entry))
        recipe = "published example file of the GIFNet repository, pixel values unchanged"
        if data.ndim == 3 and data.shape[-1] == 3 and (data == data[..., :1]).all():
            data = np.ascontiguousarray(data[..., 0])
            recipe += " (a grey image stored as RGB: its three identical channels kept as one)"
        info = {"url": base + entry.path, "sha256": entry.sha256, "task": sample.task}
        layers.append(_layer(entry.name, data, key, entry.role, recipe, "AWCXV/GIFNet", info,
                             rgb=data.ndim == 3, visible=entry.visible))
    return Sample(key, sample.title, layers)
