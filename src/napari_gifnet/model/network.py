"""The GIFNet network, written from the project's architecture description.

The module tree mirrors the published checkpoint's key names exactly
(``getSharedFeatures``, ``extractor_multask.SwinTransformerSpecific``,
``cnnDecoder``, ``decoder_rec``), so a published or fine-tuned checkpoint
loads with a plain, strict ``load_state_dict``.

Only the inference path lives in :meth:`GIFNet.forward`: the shared encoder,
the task branch (both streams in block 0, the photographic stream alone in
block 1) and the global decoder. The reconstruction decoder is built so that
checkpoints round-trip, but it is never run at inference.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ._rowwise import cache_friendly, complement_rows
from ._transformer import RLN, PositionBias, TransformerBlock, relative_positions
from .windows import CHANNELS, WINDOW, reflect_conv3x3

__all__ = [
    "BRANCH_MULTIPLE", "RLN", "SHIFT", "GIFNet", "GlobalDecoder", "PositionBias",
    "ReconstructionDecoder", "SharedEncoder", "TaskBranch", "TransformerBlock",
    "conv3x3_reflect", "pad_to_multiple", "parameter_count", "relative_positions",
]  # fmt: skip

#: The shift of the second block's window grid (windows are 8 x 8; streams
#: have 98 channels in 2 heads of 49: see :mod:`napari_gifnet.model.windows`).
SHIFT = WINDOW // 2
#: The task branch pads its input to a multiple of this (bottom and right).
BRANCH_MULTIPLE = 4


def conv3x3_reflect(c_in: int, c_out: int, bias: bool = True) -> nn.Conv2d:
    """A 3 x 3 convolution whose input is reflect-padded by one pixel."""
    return nn.Conv2d(c_in, c_out, 3, padding=1, padding_mode="reflect", bias=bias)


class _ConvHolder(nn.Module):
    """Wraps a convolution as ``.conv2d`` (the checkpoint's naming)."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv2d = conv3x3_reflect(c_in, c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return reflect_conv3x3(x, self.conv2d)


class SharedEncoder(nn.Module):
    """Dense three-layer encoder: (A, B) -> 98 shared feature channels."""

    def __init__(self) -> None:
        super().__init__()
        self.conv_1 = _ConvHolder(2, 32)
        self.conv_2 = _ConvHolder(34, 32)
        self.conv_3 = _ConvHolder(66, 32)

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        x0 = torch.cat((a, b), dim=1)
        x1 = F.relu_(self.conv_1(x0))
        x2 = F.relu_(self.conv_2(torch.cat((x0, x1), dim=1)))
        x3 = F.relu_(self.conv_3(torch.cat((x0, x1, x2), dim=1)))
        return torch.cat((x0, x1, x2, x3), dim=1)


def _conv_stack(c_in: int) -> nn.Sequential:
    """Pad-conv-activation stack ``c_in -> 64 -> 32 -> 16 -> 1`` ending in tanh.

    The layout (padding at 0, 3, 6, 9; convolutions at 1, 4, 7, 10) matches the
    checkpoint's ``decoder.{1,4,7,10}`` keys.
    """
    layers: list[nn.Module] = []
    widths = [c_in, 64, 32, 16, 1]
    for i in range(4):
        layers += [nn.ReflectionPad2d(1), nn.Conv2d(widths[i], widths[i + 1], 3)]
        layers.append(nn.Tanh() if i == 3 else nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


def _run_stack(stack: nn.Sequential, x: torch.Tensor) -> torch.Tensor:
    """Run a :func:`_conv_stack` (its reflect pads folded into the convolutions)."""
    for i in range(4):
        x = reflect_conv3x3(x, stack[3 * i + 1])
        x = torch.tanh(x) if i == 3 else F.relu_(x)
    return x


class ReconstructionDecoder(nn.Module):
    """Training-only decoder that reconstructs the reference image from S."""

    def __init__(self) -> None:
        super().__init__()
        self.decoder = _conv_stack(CHANNELS)

    def forward(self, shared: torch.Tensor) -> torch.Tensor:
        return _run_stack(self.decoder, shared)


class _ComplementMLP(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.mlp = nn.Sequential(
            nn.Conv2d(2 * CHANNELS, CHANNELS, 1, bias=False),
            nn.ReLU(inplace=True),
            nn.Conv2d(CHANNELS, 128, 1, bias=False),
        )


class GlobalDecoder(nn.Module):
    """Mixed decoder: (S, T) -> fused luma in [0, 1]."""

    def __init__(self) -> None:
        super().__init__()
        self.fuseComplementFeatures = _ComplementMLP()
        self.decoder = _conv_stack(128)

    def complement(self, shared: torch.Tensor, branch: torch.Tensor) -> torch.Tensor:
        """The 128-channel map the convolutions decode: the complement MLP on
        cat(S, T), without materialising the concatenation (band by band on
        the CPU, see :mod:`napari_gifnet.model._rowwise`)."""
        first, relu, second = self.fuseComplementFeatures.mlp
        if cache_friendly(shared):
            return complement_rows(shared, branch, first.weight.flatten(1), second.weight.flatten(1))
        w = first.weight
        z = F.conv2d(shared, w[:, :CHANNELS])
        z += F.conv2d(branch, w[:, CHANNELS:])
        return second(relu(z))

    def forward(self, shared: torch.Tensor, branch: torch.Tensor) -> torch.Tensor:
        return _run_stack(self.decoder, self.complement(shared, branch)) / 2 + 0.5


class _Embed(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.proj = conv3x3_reflect(CHANNELS, CHANNELS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return reflect_conv3x3(x, self.proj)


class _Unembed(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        # PixelShuffle(1) is the identity: kept for the checkpoint's key names.
        self.proj = nn.Sequential(conv3x3_reflect(CHANNELS, CHANNELS), nn.PixelShuffle(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return reflect_conv3x3(x, self.proj[0])


class _Layer(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.blocks = nn.ModuleList([TransformerBlock(0), TransformerBlock(SHIFT)])
        # Cross-fusion gates; at inference only ``weights_mfif[0]`` is used.
        self.weights = nn.ParameterList([nn.Parameter(torch.zeros(1)) for _ in range(2)])
        self.weights_mfif = nn.ParameterList([nn.Parameter(torch.zeros(1)) for _ in range(2)])


def pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Reflect-pad the bottom and right of ``x`` up to multiples of ``multiple``."""
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    return F.pad(x, (0, pw, 0, ph), mode="reflect") if (ph or pw) else x


class TaskBranch(nn.Module):
    """The two-stream task branch (multimodal and digital photography)."""

    def __init__(self) -> None:
        super().__init__()
        self.patch_embed_ivif = _Embed()
        self.patch_embed_mfif = _Embed()
        self.layer1 = _Layer()
        self.patch_unembed = _Unembed()

    def forward(
        self, shared: torch.Tensor, features: dict[str, torch.Tensor] | None = None
    ) -> torch.Tensor:
        """Inference path, whole maps at once: branch output T cropped to S's size.

        When ``features`` is a dict, the stream outputs are stored in it
        (cropped): ``"multimodal"`` (MM after block 0) and ``"photographic"``
        (DP after block 1). :func:`napari_gifnet.engine.tiled.run.fuse_tiled`
        computes the same band by band.
        """
        h, w = shared.shape[-2:]
        padded = pad_to_multiple(shared, BRANCH_MULTIPLE)
        mm = self.patch_embed_ivif(padded)
        dp = self.patch_embed_mfif(padded)
        block0, block1 = self.layer1.blocks
        # Block 0: the multimodal stream attends with the photographic query.
        dp, query = block0(dp, "dp")
        mm, _ = block0(mm, "mm", query)
        if features is not None:
            features["multimodal"] = mm[:, :, :h, :w]
        dp = torch.addcmul(dp, self.layer1.weights_mfif[0], mm)  # the cross-fusion gate
        # Block 1: the photographic stream alone feeds the output.
        dp, _ = block1(dp, "dp")
        if features is not None:
            features["photographic"] = dp[:, :, :h, :w]
        return self.patch_unembed(dp)[:, :, :h, :w]


class _BranchHolder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.SwinTransformerSpecific = TaskBranch()


class GIFNet(nn.Module):
    """GIFNet: shared encoder, task branch, global and reconstruction decoders."""

    def __init__(self) -> None:
        super().__init__()
        self.getSharedFeatures = SharedEncoder()
        self.decoder_rec = ReconstructionDecoder()
        self.extractor_multask = _BranchHolder()
        self.cnnDecoder = GlobalDecoder()

    @property
    def branch(self) -> TaskBranch:
        return self.extractor_multask.SwinTransformerSpecific

    def forward(
        self,
        a: torch.Tensor,
        b: torch.Tensor,
        features: dict[str, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """Fuse two (N, 1, H, W) images in [0, 1]; returns (N, 1, H, W) in [0, 1].

        ``H`` and ``W`` must be at least 8 (reflect paddings); the engine pads
        smaller images before calling this. Pass a dict as ``features`` to
        collect the intermediate maps ``shared``, ``multimodal``,
        ``photographic`` and ``branch``.
        """
        shared = self.getSharedFeatures(a, b)
        branch = self.branch(shared, features)
        if features is not None:
            features["shared"] = shared
            features["branch"] = branch
        return self.cnnDecoder(shared, branch)


def parameter_count(model: nn.Module) -> int:
    """Number of learnable parameters of ``model``."""
    return sum(math.prod(p.shape) for p in model.parameters())
