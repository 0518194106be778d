"""Finding, downloading, checking and loading the GIFNet weights.

The weights are looked for, in order, in:

1. the ``weights`` argument (a path),
2. the ``GIFNET_WEIGHTS`` environment variable (a path),
3. the cache directory (``pooch.os_cache("napari-gifnet")``, or
   ``NAPARI_GIFNET_CACHE``), which must hold ``gifnet-official.pth`` with the
   published sha256,
4. a download of the published checkpoint into that directory, sha256 pinned
   (``NAPARI_GIFNET_WEIGHTS_URL`` may name a mirror; the pin stays).

A ``gifnet-official.pth`` in the cache with another sha256 is never used nor
deleted (:mod:`napari_gifnet.util.downloads`; a warning names where it went).

Files named explicitly (1, 2) are not pinned, so fine-tuned checkpoints load
too; every checkpoint is checked key by key and shape by shape against
:class:`~napari_gifnet.model.network.GIFNet` before use.
"""

from __future__ import annotations

import os
import pickle
import re
import threading
import warnings
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Union

import torch

from ..util.downloads import CACHE_ENV, aside_name, cache_dir, fetch_pinned, sha256_of
from .network import GIFNet

#: Public URL of the published checkpoint (Cheng et al., CVPR 2025).
OFFICIAL_URL = "https://github.com/AWCXV/GIFNet/raw/main/model/Final.model"
#: sha256 of the published checkpoint; every download is checked against it.
OFFICIAL_SHA256 = "bfc1dfef0d5b386b0c04f172daf8f6af52ba395f26dc3dd5757425fd32eb1038"
#: Size of the published checkpoint in bytes.
OFFICIAL_SIZE = 3_408_450
#: Name of the checkpoint inside the cache directory.
CACHE_FILENAME = "gifnet-official.pth"
#: Environment variable naming a checkpoint file to use.
WEIGHTS_ENV = "GIFNET_WEIGHTS"
#: Environment variable overriding the download URL (the sha256 pin stays).
URL_ENV = "NAPARI_GIFNET_WEIGHTS_URL"

PathLike = Union[str, "os.PathLike[str]"]
Source = Literal["argument", "environment", "cache", "download"]

#: What a checkpoint is, for the messages about files that are not one.
CHECKPOINT_HINT = (
    "A GIFNet checkpoint is a PyTorch state_dict of tensors (the published Final.model, "
    "or a file written by napari-gifnet train)."
)

_MODEL_CACHE_SIZE = 3
_DOWNLOAD_TIMEOUT_S = 60
_digest_cache: dict[tuple[str, int, int], str] = {}
_model_cache: OrderedDict[tuple[str, int, int, str], GIFNet] = OrderedDict()
_lock = threading.RLock()


class WeightsUnavailableError(RuntimeError):
    """The weights are neither on disk nor downloadable (offline, bad mirror)."""


class CheckpointError(ValueError):
    """A file is not a usable GIFNet checkpoint."""


@dataclass(frozen=True)
class WeightsInfo:
    """Where the weights in use came from.

    Attributes
    ----------
    path : Path
        Absolute path of the checkpoint file.
    source : {"argument", "environment", "cache", "download"}
        Which step of the search found it.
    sha256 : str
        Hex sha256 digest of the file.
    """

    path: Path
    source: Source
    sha256: str


def weights_url() -> str:
    """Return the download URL (``NAPARI_GIFNET_WEIGHTS_URL`` or the official one)."""
    return os.environ.get(URL_ENV, "").strip() or OFFICIAL_URL


def file_sha256(path: PathLike) -> str:
    """Return the hex sha256 of a file (streamed; cached by path, mtime and size)."""
    p = Path(path).absolute()
    st = p.stat()
    key = (str(p), st.st_mtime_ns, st.st_size)
    digest = _digest_cache.get(key)
    if digest is None:
        digest = sha256_of(p)
        if len(_digest_cache) >= 32:
            _digest_cache.clear()
        _digest_cache[key] = digest
    return digest


def _explicit_file(value: PathLike, where: str, source: Source) -> WeightsInfo:
    p = Path(value).expanduser().absolute()
    if not p.exists():
        raise FileNotFoundError(f"GIFNet weights file not found: {p} (given by {where})")
    if not p.is_file():
        raise FileNotFoundError(f"GIFNet weights path is not a file: {p} (given by {where})")
    return WeightsInfo(p, source, file_sha256(p))


def _foreign_note(target: Path, sha256: str) -> str:
    """What to do about a cached file that is not the published checkpoint."""
    return (
        f"the cache holds {target}, a file with another sha256 ({sha256}), kept untouched: "
        f"if it is yours (e.g. fine-tuned), pass it with weights= or {WEIGHTS_ENV}; "
        f"otherwise move it away"
    )


def _unavailable(
    reason: str, target: Path, url: str, foreign: str | None = None
) -> WeightsUnavailableError:
    official = f" (official: {OFFICIAL_URL})" if url != OFFICIAL_URL else ""
    note = f"Note: {_foreign_note(target, foreign)}.\n" if foreign else ""
    return WeightsUnavailableError(
        f"The GIFNet weights are not available: {reason}\n"
        f"{note}"
        f"Download the published checkpoint by hand:\n"
        f"  from:    {url}{official}\n"
        f"  sha256:  {OFFICIAL_SHA256} ({OFFICIAL_SIZE:,} bytes)\n"
        f"  save as: {target}\n"
        f"or set {WEIGHTS_ENV} to the path of a checkpoint file "
        f"(or pass it as the `weights` argument)."
    )


def resolve_weights(weights: PathLike | None = None, *, download: bool = True) -> WeightsInfo:
    """Find the checkpoint file, downloading it into the cache if needed.

    Parameters
    ----------
    weights : str or os.PathLike, optional
        Path of a checkpoint file; beats every other source.
    download : bool, default True
        Whether to download when no file is found.

    Returns
    -------
    WeightsInfo
        The file, where it came from and its sha256.

    Raises
    ------
    FileNotFoundError
        If ``weights`` or ``GIFNET_WEIGHTS`` names a missing file.
    WeightsUnavailableError
        If no file is found and downloading fails or is off.
    """
    if weights is not None and str(weights) != "":
        return _explicit_file(weights, "the `weights` argument", "argument")
    env = os.environ.get(WEIGHTS_ENV, "").strip()
    if env:
        return _explicit_file(env, f"the {WEIGHTS_ENV} environment variable", "environment")

    directory = cache_dir()
    target = directory / CACHE_FILENAME
    foreign: str | None = None  # sha256 of a cached file that is not the published one
    if target.is_file():
        foreign = file_sha256(target)
        if foreign == OFFICIAL_SHA256:
            return WeightsInfo(target, "cache", OFFICIAL_SHA256)
    url = weights_url()
    if not download:
        raise _unavailable("not in the cache and downloading is off.", target, url, foreign)
    try:  # nothing unverified kept, a foreign file untouched (util.downloads)
        fetched = fetch_pinned(url, OFFICIAL_SHA256, target, timeout=_DOWNLOAD_TIMEOUT_S)
    except (ValueError, OSError) as exc:  # hash mismatch (temp file deleted), bad URL,
        # and (OSError subclasses) requests' connection, timeout and HTTP errors
        if isinstance(exc, ValueError) and "hash" in str(exc).lower():
            reason = f"the file from {url} does not have the expected sha256 ({exc})."
        else:
            reason = f"downloading failed ({type(exc).__name__}: {exc})."
        raise _unavailable(reason, target, url, foreign) from exc
    if fetched.moved_aside is not None:
        warnings.warn(
            f"{target} had another sha256 ({foreign}) than the published GIFNet checkpoint; "
            f"it was moved to {fetched.moved_aside} and the verified download put in its place",
            UserWarning,
            stacklevel=2,
        )
    p = fetched.path.absolute()
    return WeightsInfo(p, "download", file_sha256(p))


def load_checkpoint(path: PathLike) -> dict[str, torch.Tensor]:
    """Read a checkpoint file as a flat ``state_dict``.

    Uses ``torch.load(..., weights_only=True)`` (no code from the file runs),
    unwraps ``{"state_dict": ...}`` / ``{"model": ...}`` and strips a
    ``module.`` prefix (left by ``DataParallel``).

    Parameters
    ----------
    path : str or os.PathLike
        The checkpoint file.

    Returns
    -------
    dict of str to torch.Tensor
        The tensors by key, on the CPU.

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    CheckpointError
        If the file is not a PyTorch checkpoint of tensors.
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"Checkpoint file not found: {p}")
    try:
        obj = torch.load(p, map_location="cpu", weights_only=True)
    except (FileNotFoundError, PermissionError):
        raise
    except Exception as exc:  # pickle, zip, EOF and weights_only errors alike
        raise CheckpointError(
            f"{p} is not a GIFNet checkpoint: {_load_failure(exc)}. {CHECKPOINT_HINT}"
        ) from None
    for _ in range(2):
        if isinstance(obj, Mapping):
            inner = next((obj[k] for k in ("state_dict", "model") if k in obj), None)
            obj = inner if isinstance(inner, Mapping) else obj
    if not isinstance(obj, Mapping) or not obj:
        raise CheckpointError(
            f"{p} does not hold a state_dict (found {type(obj).__name__}); "
            f"it is not a GIFNet checkpoint."
        )
    state: dict[str, torch.Tensor] = {}
    for key, value in obj.items():
        if not isinstance(value, torch.Tensor):
            raise CheckpointError(
                f"{p}: entry {key!r} is a {type(value).__name__}, not a tensor; "
                f"it is not a GIFNet checkpoint."
            )
        name = str(key)
        state[name[len("module.") :] if name.startswith("module.") else name] = value
    return state


def _load_failure(exc: Exception) -> str:
    """Why ``torch.load`` failed, in short, without torch's advice on ``weights_only``
    (loading a file with ``weights_only=False`` runs any code it holds)."""
    text = str(exc)
    if isinstance(exc, pickle.UnpicklingError) and "weights only load failed" in text.lower():
        found = re.search(r"GLOBAL ([\w.]+)", text)
        what = f" ({found.group(1)})" if found else ""
        return f"it holds Python objects other than tensors{what}, which are never loaded"
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    safe = [line for line in lines if "weights_only" not in line.replace(" ", "_").lower()]
    kind = type(exc).__name__ + (f": {safe[0][:160]}" if safe else "")
    return f"it cannot be read (truncated, corrupt or another kind of file; {kind})"


def _non_finite(state: Mapping[str, torch.Tensor]) -> tuple[str, int] | None:
    """The first floating tensor of ``state`` holding NaN or inf, and how many."""
    for key, value in state.items():
        if value.is_floating_point() or value.is_complex():
            bad = int(value.numel() - torch.isfinite(value).sum().item())
            if bad:
                return key, bad
    return None


def validate_state_dict(
    state: Mapping[str, torch.Tensor], model: torch.nn.Module, name: str = "the checkpoint"
) -> None:
    """Check the keys and shapes of ``state`` exactly against ``model.state_dict()``,
    and that every floating tensor is finite.

    Parameters
    ----------
    state : mapping of str to torch.Tensor
        The loaded tensors.
    model : torch.nn.Module
        The model they are meant for (a :class:`GIFNet`).
    name : str, optional
        What to call the file in the message (e.g. its path).

    Raises
    ------
    CheckpointError
        Naming the first missing key, shape mismatch (with both shapes) or
        unexpected key, and counting the other differences; or naming the
        first tensor with NaN or infinite values and counting them.
    """
    expected = model.state_dict()
    problems: list[str] = []
    for key, ref in expected.items():
        if key not in state:
            problems.append(f"missing key {key!r}")
        elif tuple(state[key].shape) != tuple(ref.shape):
            problems.append(
                f"shape mismatch for {key!r}: checkpoint has {tuple(state[key].shape)}, "
                f"GIFNet expects {tuple(ref.shape)}"
            )
    problems.extend(f"unexpected key {key!r}" for key in state if key not in expected)
    if problems:
        more = f" (and {len(problems) - 1} more differences)" if len(problems) > 1 else ""
        raise CheckpointError(f"{name} is not a GIFNet checkpoint: {problems[0]}{more}.")
    bad = _non_finite(state)
    if bad is not None:
        raise CheckpointError(
            f"{name} is not a usable GIFNet checkpoint: {bad[0]!r} holds {bad[1]:,} non-finite "
            f"value(s) (NaN or inf); the file is damaged or the training diverged."
        )


def clear_model_cache() -> None:
    """Forget the models kept in memory by :func:`load_model`."""
    with _lock:
        _model_cache.clear()


def load_model(
    weights: PathLike | None = None, device: str | torch.device = "cpu"
) -> tuple[GIFNet, WeightsInfo]:
    """Build an eval-mode :class:`GIFNet` holding the resolved weights.

    Models are kept in memory keyed by (file, mtime, size, device): a second
    call returns the same object, which must not be modified. Parameters do
    not require gradients; on the CPU the model is ``channels_last``.

    Parameters
    ----------
    weights : str or os.PathLike, optional
        Checkpoint path; see :func:`resolve_weights` for the search order.
    device : str or torch.device, default "cpu"
        Where to put the model.

    Returns
    -------
    model : GIFNet
        The ready model.
    info : WeightsInfo
        Where its weights came from.
    """
    dev = torch.device(device)
    with _lock:
        info = resolve_weights(weights)
        st = info.path.stat()
        key = (str(info.path), st.st_mtime_ns, st.st_size, str(dev))
        model = _model_cache.get(key)
        if model is not None:
            _model_cache.move_to_end(key)
            return model, info
        state = load_checkpoint(info.path)
        model = GIFNet()
        validate_state_dict(state, model, str(info.path))
        model.load_state_dict(state, strict=True)
        model = model.eval().requires_grad_(False).to(dev)
        if dev.type == "cpu":  # about 2x faster convolutions on the CPU
            model = model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        _model_cache[key] = model
        while len(_model_cache) > _MODEL_CACHE_SIZE:
            _model_cache.popitem(last=False)
        return model, info


def describe_weights_search(weights: PathLike | None = None) -> str:
    """Explain, step by step, where the weights are looked for and what is found.

    Nothing is downloaded; a cached file is hashed to tell whether it would
    be used, and a file named by ``weights`` or ``GIFNET_WEIGHTS`` is read and
    checked against :class:`GIFNet` (``Found: ERROR: ...`` when it is not a
    usable checkpoint).

    Parameters
    ----------
    weights : str or os.PathLike, optional
        A ``weights`` argument to include in the search.

    Returns
    -------
    str
        Several lines of text, one step of the search after another.
    """
    found: str | None = None
    lines = ["GIFNet weights search (the first match is used):"]
    explicit = [
        ("1. weights argument", "" if weights is None else str(weights), "argument", "n/a"),
        (f"2. {WEIGHTS_ENV}", os.environ.get(WEIGHTS_ENV, "").strip(), "environment", "not set"),
    ]
    for label, value, source, unset in explicit:
        if not value:
            lines.append(f"  {label}: {unset}")
            continue
        p = Path(value).expanduser().absolute()
        state = f"{p.stat().st_size:,} bytes" if p.is_file() else "MISSING or not a file"
        lines.append(f"  {label}: {p} ({state})")
        if found is None:
            found = f"{p} ({source})" if p.is_file() else f"ERROR: {p} is not a file"
            if p.is_file():
                try:  # cheap: 3.4 MB of tensors
                    validate_state_dict(load_checkpoint(p), GIFNet(), str(p))
                except (CheckpointError, OSError) as exc:
                    found = f"ERROR: {exc}"
    directory = cache_dir()
    target = directory / CACHE_FILENAME
    origin = f"from {CACHE_ENV}" if os.environ.get(CACHE_ENV, "").strip() else "default"
    lines.append(f"  3. cache directory ({origin}): {directory}")
    if target.is_file():
        digest = file_sha256(target)
        ok = digest == OFFICIAL_SHA256
        verdict = "sha256 OK" if ok else "sha256 WRONG, not used"
        lines.append(f"     {CACHE_FILENAME}: present, {target.stat().st_size:,} bytes, {verdict}")
        if not ok:
            lines.append(f"     note: {_foreign_note(target, digest)}")
            lines.append(
                f"     (a verified download first moves it aside to "
                f"{aside_name(target, digest).name})"
            )
        if found is None and ok:
            found = f"{target} (cache)"
    else:
        lines.append(f"     {CACHE_FILENAME}: not present")
    url = weights_url()
    origin = f" (from {URL_ENV})" if url != OFFICIAL_URL else ""
    lines.append(f"  4. download{origin}: {url}")
    lines.append(f"     sha256 {OFFICIAL_SHA256}, {OFFICIAL_SIZE:,} bytes, into {target}")
    lines.append(f"Found: {found if found is not None else 'nothing yet; will download (step 4)'}")
    return "\n".join(lines)
