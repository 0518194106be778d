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

from ._regions import (
    CHANNELS,
    HEADS,
    WINDOW,
    BlockAxis,
    block_axis,
    gather_image,
    gather_tokens,
    merge_tokens,
    reflect_conv3x3,
    split_heads,
)

#: The shift of the second block's window grid (windows are 8 x 8; streams
#: have 98 channels in 2 heads of 49: see ``_regions``).
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

    def forward(self, shared: torch.Tensor, branch: torch.Tensor) -> torch.Tensor:
        first, relu, second = self.fuseComplementFeatures.mlp
        # The first 1x1 convolution of cat(S, T), without materialising the cat.
        w = first.weight
        z = F.conv2d(shared, w[:, :CHANNELS])
        z += F.conv2d(branch, w[:, CHANNELS:])
        z = second(relu(z))
        return _run_stack(self.decoder, z) / 2 + 0.5


class RLN(nn.Module):
    """Revised layer norm: whole-sample statistics plus learned rescale/rebias.

    Holds the parameters; the transformer blocks fold the normalisation into
    their projections (``TransformerBlock._projection``) and take the gates
    from ``meta1(std)`` and ``meta2(mean)``.
    """

    def __init__(self, channels: int = CHANNELS, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(1, channels, 1, 1))
        self.bias = nn.Parameter(torch.zeros(1, channels, 1, 1))
        self.meta1 = nn.Conv2d(1, channels, 1)
        self.meta2 = nn.Conv2d(1, channels, 1)

    def statistics(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-sample mean and standard deviation over C, H and W."""
        var, mu = torch.var_mean(x, dim=(1, 2, 3), correction=0, keepdim=True)
        return mu, torch.sqrt(var + self.eps)


def relative_positions(window: int = WINDOW) -> torch.Tensor:
    """The (window^2, window^2, 2) log-spaced relative offsets between tokens."""
    coords = torch.stack(
        torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij")
    ).flatten(1)
    rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0).float()
    return torch.sign(rel) * torch.log1p(rel.abs())


class PositionBias(nn.Module):
    """Relative position bias: a small MLP over the stored log offsets."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("relative_positions", relative_positions())
        self.meta = nn.Sequential(nn.Linear(2, 256, bias=True), nn.ReLU(), nn.Linear(256, HEADS))

    def forward(self) -> torch.Tensor:
        """Bias of shape (HEADS, window^2, window^2)."""
        return self.meta(self.relative_positions).permute(2, 0, 1).contiguous()


class _Attention(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        for suffix in ("", "_mfif"):
            setattr(self, "QK" + suffix, nn.Conv2d(CHANNELS, 2 * CHANNELS, 1))
            setattr(self, "V" + suffix, nn.Conv2d(CHANNELS, CHANNELS, 1))
            setattr(
                self,
                "conv" + suffix,
                nn.Conv2d(CHANNELS, CHANNELS, 5, padding=2, groups=CHANNELS, padding_mode="reflect"),
            )
            setattr(self, "proj" + suffix, nn.Conv2d(CHANNELS, CHANNELS, 1))
        self.attn = PositionBias()


class _MLP(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.mlp = nn.Sequential(
            nn.Conv2d(CHANNELS, 2 * CHANNELS, 1), nn.ReLU(), nn.Conv2d(2 * CHANNELS, CHANNELS, 1)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mlp(x)


class TransformerBlock(nn.Module):
    """One block of the task branch, holding the weights of both streams.

    Stream ``"mm"`` (multimodal) uses the unsuffixed weights, stream ``"dp"``
    (digital photography) the ``_mfif`` twins. The position bias is shared.
    """

    def __init__(self, shift: int) -> None:
        super().__init__()
        self.shift = shift
        self.norm1 = RLN()
        self.norm1_mfif = RLN()
        self.attn = _Attention()
        self.mlp = _MLP()
        self.mlp_mfif = _MLP()

    def _part(self, name: str, stream: str) -> nn.Module:
        owner = self.attn if name not in ("norm1", "mlp") else self
        return getattr(owner, name + ("_mfif" if stream == "dp" else ""))

    def stream_module(self, name: str, stream: str) -> nn.Module:
        """The sub-module ``name`` of a stream (``"mm"`` or ``"dp"``).

        ``name`` is one of ``"norm1"``, ``"mlp"``, ``"QK"``, ``"V"``,
        ``"conv"`` or ``"proj"``; the photographic stream gets the ``_mfif``
        twin. Used by the training passes (:mod:`napari_gifnet.training`).
        """
        return self._part(name, stream)

    def statistics(self, x: torch.Tensor, stream: str) -> tuple[torch.Tensor, torch.Tensor]:
        """The stream's RLN statistics (mean, std) of a whole block input."""
        return self._part("norm1", stream).statistics(x)

    def _projection(
        self, stream: str, stats: tuple[torch.Tensor, torch.Tensor], rows: slice
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
        """Rows ``rows`` of the stacked [QK; V] 1x1 projection with RLN applied.

        For a single sample the RLN affine map is folded into the weights
        (returned as (weight, None, bias)); for a batch the weights are
        returned unfolded with the per-sample (scale, shift) to apply first.
        """
        norm = self._part("norm1", stream)
        qk, v = self._part("QK", stream), self._part("V", stream)
        weight = torch.cat((qk.weight, v.weight)).flatten(1)[rows]
        bias = torch.cat((qk.bias, v.bias))[rows]
        mu, sigma = stats
        scale = norm.weight / sigma  # (N, 98, 1, 1)
        shift = norm.bias - mu * scale
        if scale.shape[0] == 1:
            return weight * scale.flatten(), None, bias + weight @ shift.flatten()
        return weight, torch.stack((scale, shift)), bias

    def _project(self, x: torch.Tensor, projection: tuple) -> torch.Tensor:
        weight, affine, bias = projection
        if affine is not None:
            x = x * affine[0] + affine[1]
        return F.conv2d(x, weight[:, :, None, None], bias)

    @staticmethod
    def _project_tokens(tokens: torch.Tensor, n: int, projection: tuple) -> torch.Tensor:
        weight, affine, bias = projection
        if affine is not None:
            per_sample = tokens.view(n, -1, CHANNELS)
            scale, shift = (a.view(n, 1, CHANNELS) for a in affine)
            tokens = (per_sample * scale + shift).view_as(tokens)
        return F.linear(tokens, weight, bias)

    def region(
        self,
        x: torch.Tensor,
        stream: str,
        stats: tuple[torch.Tensor, torch.Tensor],
        rows: BlockAxis,
        cols: BlockAxis,
        query: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The block's output for one stream over a planned region.

        ``x`` is the block input over ``rows.src_start:src_stop`` and
        ``cols.src_start:src_stop``; ``stats`` the stream's whole-map RLN
        statistics. ``query``, for cross attention, is the other stream's
        query tokens over the same region (as this method returns them): they
        replace this stream's. Returns the output (N, 98, rows.size,
        cols.size) and the query tokens used.
        """
        n = x.shape[0]
        tokens = gather_tokens(x, rows.windows, cols.windows)
        if query is None:
            qkv = self._project_tokens(tokens, n, self._projection(stream, stats, slice(None)))
            q, k, v = qkv.split(CHANNELS, dim=-1)
        else:
            q = query
            kv = self._project_tokens(
                tokens, n, self._projection(stream, stats, slice(CHANNELS, None))
            )
            k, v = kv.split(CHANNELS, dim=-1)
        attn = F.scaled_dot_product_attention(
            split_heads(q), split_heads(k), split_heads(v), attn_mask=self.attn.attn().to(x.dtype)[None]
        )
        del tokens, k, v
        # The depthwise convolution reads V in image layout.
        v_img = self._project(x, self._projection(stream, stats, slice(2 * CHANNELS, None)))
        v_img = gather_image(v_img, rows.depthwise, cols.depthwise)
        dw = self._part("conv", stream)
        mixed = F.conv2d(v_img, dw.weight, dw.bias, groups=CHANNELS)
        mixed += merge_tokens(attn, n, rows, cols)
        del attn, v_img
        norm, proj = self._part("norm1", stream), self._part("proj", stream)
        mu, sigma = stats
        rescale, rebias = norm.meta1(sigma), norm.meta2(mu)
        residual = x[:, :, rows.out : rows.out + rows.size, cols.out : cols.out + cols.size]
        if x.shape[0] == 1:
            out = F.conv2d(
                mixed,
                proj.weight * rescale.view(-1, 1, 1, 1),
                proj.bias * rescale.flatten() + rebias.flatten(),
            )
        else:
            out = proj(mixed) * rescale + rebias
        out += residual
        mlp = self._part("mlp", stream).mlp
        y = mlp[2](F.relu_(mlp[0](out)))
        y += out
        return y, q

    def forward(
        self, x: torch.Tensor, stream: str, query: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Apply the block to a whole (N, 98, H, W) map (H, W multiples of 4).

        ``query``: the other stream's query tokens, for cross attention.
        Returns the output map and the query tokens used.
        """
        h, w = x.shape[-2:]
        rows, cols = block_axis(0, h, h, self.shift), block_axis(0, w, w, self.shift)
        return self.region(x, stream, self.statistics(x, stream), rows, cols, query)


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
        (DP after block 1). :func:`napari_gifnet.streaming.fuse_streamed`
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
