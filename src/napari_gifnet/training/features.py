"""DenseNet-121 features for the information-weighted loss.

The multimodal step weights its two targets by how much "information" each
source image carries, measured on ImageNet-pretrained DenseNet-121 features
(:func:`information`), timm's ``features_only`` model. :func:`resolve_densenet`
looks for its weights in the order docs/training.md ("DenseNet-121 weights")
gives: an explicit file, ``GIFNET_DENSENET_WEIGHTS``, timm's hub, else a
**fallback**, a randomly initialised DenseNet-121 with a fixed seed, announced
by a one-line :class:`DenseNetFallbackWarning` (:func:`fallback_message`) and
recorded, with its reason, in the training metadata. :func:`load_densenet`
reads a timm ``features_only`` or a whole DenseNet-121 state_dict (timm or
torchvision naming, classifier included) and checks its keys and shapes.
"""

from __future__ import annotations

import os
import re
import socket
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import torch
import torch.nn.functional as F
from torch import nn

from ..util.downloads import sha256_of

#: Environment variable naming a DenseNet-121 weights file.
DENSENET_ENV = "GIFNET_DENSENET_WEIGHTS"
#: Seed of the randomly initialised fallback.
FALLBACK_SEED = 121
#: timm's hub id of the ImageNet DenseNet-121.
HUB_ID = "timm/densenet121.ra_in1k"
#: Modules (of timm's features_only DenseNet-121) after which the five feature
#: maps are taken: the stem with its pooling, the first three dense block +
#: transition pairs, and the fourth dense block.
TAPS: tuple[str, ...] = (
    "features_pool0", "features_transition1", "features_transition2", "features_transition3",
    "features_denseblock4",
)


@dataclass(frozen=True)
class DenseNetInfo:
    """Where the DenseNet-121 weights came from.

    Attributes
    ----------
    source : {"file", "environment", "timm-hub", "fallback-random"}
        Which step of the search provided them.
    detail : str
        The file path, hub id, or the fallback's seed.
    sha256 : str
        Digest of the weights file ("" for the hub and the fallback).
    reason : str
        For the fallback: why no pretrained weights were found ("" otherwise).
    """

    source: str
    detail: str
    sha256: str = ""
    reason: str = ""

    @property
    def pretrained(self) -> bool:
        """True unless the random fallback is in use."""
        return self.source != "fallback-random"

    def as_dict(self) -> dict[str, str | bool]:
        """JSON-friendly form for logs and metadata (``reason`` only for the fallback)."""
        out: dict[str, str | bool] = {
            "source": self.source, "detail": self.detail, "sha256": self.sha256,
            "pretrained": self.pretrained,
        }  # fmt: skip
        if not self.pretrained:
            out["reason"] = self.reason
        return out


class DenseNetFallbackWarning(UserWarning):
    """No pretrained DenseNet-121 weights: the random fallback is in use."""


def fallback_message(reason: str) -> str:
    """The one-line notice of the random fallback (the warning's text)."""
    return (
        f"no ImageNet DenseNet-121 weights ({reason}); using a fixed, randomly initialised "
        f"DenseNet-121 (seed {FALLBACK_SEED}), so the information weights are not the published "
        f"ones; pass --densenet-weights FILE (or set {DENSENET_ENV})"
    )


class DenseNetFeatures(nn.Module):
    """Frozen DenseNet-121 returning the five feature maps of :data:`TAPS`."""

    def __init__(self, body: nn.Module, info: DenseNetInfo) -> None:
        super().__init__()
        self.body = body.eval().requires_grad_(False)
        self.info = info

    def train(self, mode: bool = True) -> DenseNetFeatures:  # always eval (batch norm)
        return super().train(False)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """(N, 3, H, W) -> the five feature maps (the stem pooling first)."""
        out = []
        for name, module in self.body.items():
            x = module(x)
            if name in TAPS:
                out.append(x)
            if len(out) == len(TAPS):
                break
        return out


def _timm_features(pretrained: bool) -> nn.Module:
    import timm

    return timm.create_model("densenet121", features_only=True, pretrained=pretrained)


_OLD_TORCHVISION_KEY = re.compile(
    r"^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|running_var))$"
)


def _features_state(state: Mapping[str, torch.Tensor], body: nn.Module) -> dict[str, torch.Tensor]:
    """Map a whole-model or features_only DenseNet state_dict onto ``body``'s keys.

    Whole-model keys (``features.conv0.weight``, timm or torchvision naming,
    including torchvision's old ``norm.1`` style) become the features_only
    ``features_conv0.weight``; the classifier is dropped.
    """
    expected = body.state_dict()
    if set(expected) <= set(state):
        return {k: state[k] for k in expected}
    mapped = {}
    for key, value in state.items():
        match = _OLD_TORCHVISION_KEY.match(key)
        if match:
            key = match.group(1) + match.group(2)
        if key.startswith("features."):
            mapped["features_" + key[len("features."):]] = value
    return mapped


def load_densenet(path: str | os.PathLike[str], source: str = "file") -> DenseNetFeatures:
    """Build the extractor from a local DenseNet-121 weights file.

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    ValueError
        If it is not a DenseNet-121 state_dict (names the first problem).
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"DenseNet-121 weights file not found: {p}")
    try:
        if p.suffix == ".safetensors":
            from safetensors.torch import load_file

            obj = load_file(str(p))
        else:
            obj = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file reads the same
        raise ValueError(f"{p} is not a readable PyTorch weights file ({type(exc).__name__})") from None
    if isinstance(obj, Mapping) and isinstance(obj.get("state_dict"), Mapping):
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping):
        raise ValueError(  # noqa: TRY004 - a bad file, reported as one line by the CLI
            f"{p} does not hold a state_dict (found {type(obj).__name__})"
        )
    body = _timm_features(pretrained=False)
    state = _features_state(obj, body)
    expected = body.state_dict()
    missing = [k for k in expected if k not in state]
    wrong = [k for k in expected if k in state and tuple(state[k].shape) != tuple(expected[k].shape)]
    if missing or wrong:
        first = f"missing key {missing[0]!r}" if missing else f"shape mismatch for {wrong[0]!r}"
        raise ValueError(
            f"{p} is not a DenseNet-121 state_dict: {first} "
            f"({len(missing)} missing, {len(wrong)} of the wrong shape)"
        )
    body.load_state_dict(state, strict=True)
    return DenseNetFeatures(body, DenseNetInfo(source, str(p.absolute()), sha256_of(p)))


def _hub_cached() -> Path | None:
    """The hub's DenseNet-121 file when the Hugging Face cache already holds it."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    for name in ("model.safetensors", "pytorch_model.bin"):
        found = try_to_load_from_cache(HUB_ID, name)
        if isinstance(found, str) and Path(found).is_file():
            return Path(found)
    return None


def _hub_reachable(timeout: float = 3.0) -> bool:
    """Quick check that the hub answers (a timm download retries for a minute)."""
    if _offline():
        return False
    host = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co")).hostname
    try:
        with socket.create_connection((host or "huggingface.co", 443), timeout=timeout):
            return True
    except OSError:
        return False


def fallback_densenet(seed: int = FALLBACK_SEED, reason: str = "") -> DenseNetFeatures:
    """A randomly initialised DenseNet-121, the same for a given seed."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        body = _timm_features(pretrained=False)
    return DenseNetFeatures(body, DenseNetInfo("fallback-random", f"seed={seed}", reason=reason))


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def resolve_densenet(
    weights: str | os.PathLike[str] | None = None, *, hub: bool = True, warn: bool = True
) -> DenseNetFeatures:
    """The DenseNet-121 feature extractor, by the search order of this module.

    Parameters
    ----------
    weights : path, optional
        A local weights file; overrides the environment variable.
    hub : bool, default True
        Try timm's hub (Hugging Face) when no file is given.
    warn : bool, default True
        Issue a :class:`DenseNetFallbackWarning` (a ``UserWarning``, one line)
        when falling back to random weights.

    Returns
    -------
    DenseNetFeatures
        The frozen extractor; ``.info`` says where its weights came from
        (and, for the fallback, why: ``.info.reason``).
    """
    if weights is not None and str(weights).strip():
        return load_densenet(weights, "file")
    env = os.environ.get(DENSENET_ENV, "").strip()
    if env:
        return load_densenet(env, "environment")
    reason = "offline: timm's hub not tried (--no-hub)"
    if hub:
        cached = _hub_cached()
        if cached is not None:
            return load_densenet(cached, "timm-hub")
        if _offline():
            reason = "offline: HF_HUB_OFFLINE is set and the Hugging Face cache lacks them"
        elif not _hub_reachable():
            reason = "offline: timm's hub (huggingface.co) is unreachable and they are not cached"
        else:
            try:
                body = _timm_features(pretrained=True)
                return DenseNetFeatures(body, DenseNetInfo("timm-hub", HUB_ID))
            except Exception as exc:  # noqa: BLE001 - proxy, missing package, ...
                reason = f"timm's hub failed: {type(exc).__name__}"
    extractor = fallback_densenet(reason=reason)
    if warn:
        warnings.warn(fallback_message(reason), DenseNetFallbackWarning, stacklevel=2)
    return extractor


def _high_pass(x: torch.Tensor) -> torch.Tensor:
    """3 x 3 high-pass (1/8 around, -1 centre), reflect padding, summed over channels."""
    k = torch.full((3, 3), 1.0 / 8, dtype=x.dtype, device=x.device)
    k[1, 1] = -1.0
    weight = k.expand(1, x.shape[1], 3, 3)
    mode = "reflect" if min(x.shape[-2:]) > 1 else "replicate"
    return F.conv2d(F.pad(x, (1, 1, 1, 1), mode=mode), weight)


@torch.no_grad()
def information(extractor: DenseNetFeatures, image: torch.Tensor) -> torch.Tensor:
    """The "information" ``g`` of a batch of grey images (one scalar).

    The image, repeated to 3 channels, goes through the extractor; each of
    the five feature maps is high-pass filtered (:func:`_high_pass`),
    squared and averaged; ``g`` is the mean of the five averages.
    """
    feats = extractor(image.expand(-1, 3, -1, -1))
    return torch.stack([_high_pass(f).square().mean() for f in feats]).mean()
