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

#: Channels of the shared features and of each task-branch stream.
CHANNELS = 98
#: Attention heads per stream, and channels per head.
HEADS = 2
HEAD_DIM = CHANNELS // HEADS
#: Edge of the square attention windows, and the shift of the second block.
WINDOW = 8
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
        return self.conv2d(x)


class SharedEncoder(nn.Module):
    """Dense three-layer encoder: (A, B) -> 98 shared feature channels."""

    def __init__(self) -> None:
        super().__init__()
        self.conv_1 = _ConvHolder(2, 32)
        self.conv_2 = _ConvHolder(34, 32)
        self.conv_3 = _ConvHolder(66, 32)

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        x0 = torch.cat((a, b), dim=1)
        x1 = F.relu(self.conv_1(x0))
        x2 = F.relu(self.conv_2(torch.cat((x0, x1), dim=1)))
        x3 = F.relu(self.conv_3(torch.cat((x0, x1, x2), dim=1)))
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
        layers.append(nn.Tanh() if i == 3 else nn.ReLU())
    return nn.Sequential(*layers)


class ReconstructionDecoder(nn.Module):
    """Training-only decoder that reconstructs the reference image from S."""

    def __init__(self) -> None:
        super().__init__()
        self.decoder = _conv_stack(CHANNELS)

    def forward(self, shared: torch.Tensor) -> torch.Tensor:
        return self.decoder(shared)


class _ComplementMLP(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.mlp = nn.Sequential(
            nn.Conv2d(2 * CHANNELS, CHANNELS, 1, bias=False),
            nn.ReLU(),
            nn.Conv2d(CHANNELS, 128, 1, bias=False),
        )


class GlobalDecoder(nn.Module):
    """Mixed decoder: (S, T) -> fused luma in [0, 1]."""

    def __init__(self) -> None:
        super().__init__()
        self.fuseComplementFeatures = _ComplementMLP()
        self.decoder = _conv_stack(128)

    def forward(self, shared: torch.Tensor, branch: torch.Tensor) -> torch.Tensor:
        z = self.fuseComplementFeatures.mlp(torch.cat((shared, branch), dim=1))
        return self.decoder(z) / 2 + 0.5


class RLN(nn.Module):
    """Revised layer norm: whole-sample statistics plus learned rescale/rebias."""

    def __init__(self, channels: int = CHANNELS, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(1, channels, 1, 1))
        self.bias = nn.Parameter(torch.zeros(1, channels, 1, 1))
        self.meta1 = nn.Conv2d(1, channels, 1)
        self.meta2 = nn.Conv2d(1, channels, 1)

    def statistics(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-sample mean and standard deviation over C, H and W."""
        mu = x.mean(dim=(1, 2, 3), keepdim=True)
        sigma = torch.sqrt((x - mu).pow(2).mean(dim=(1, 2, 3), keepdim=True) + self.eps)
        return mu, sigma

    def apply(  # type: ignore[override]
        self, x: torch.Tensor, mu: torch.Tensor, sigma: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Normalise ``x`` with given statistics; return (xn, rescale, rebias)."""
        xn = (x - mu) / sigma * self.weight + self.bias
        return xn, self.meta1(sigma), self.meta2(mu)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        mu, sigma = self.statistics(x)
        return self.apply(x, mu, sigma)


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


def window_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bias: torch.Tensor, shift: int
) -> torch.Tensor:
    """Windowed multi-head attention on (N, 98, H, W) maps, H and W multiples of 4.

    The maps are reflect-padded (top/left by ``shift``, bottom/right up to the
    window grid), cut into 8 x 8 windows, attended within each window, merged
    back and cropped to the input's extent.
    """
    n, c, h, w = q.shape
    ph = (WINDOW - h % WINDOW) % WINDOW
    pw = (WINDOW - w % WINDOW) % WINDOW
    if shift:
        pad = (shift, (WINDOW - shift + pw) % WINDOW, shift, (WINDOW - shift + ph) % WINDOW)
    else:
        pad = (0, pw, 0, ph)
    hq, wq = h + pad[2] + pad[3], w + pad[0] + pad[1]
    nh, nw = hq // WINDOW, wq // WINDOW

    def to_windows(t: torch.Tensor) -> torch.Tensor:
        if any(pad):
            t = F.pad(t, pad, mode="reflect")
        t = t.reshape(n, HEADS, HEAD_DIM, nh, WINDOW, nw, WINDOW)
        t = t.permute(0, 3, 5, 1, 4, 6, 2)  # n, nh, nw, heads, wy, wx, dim
        return t.reshape(n * nh * nw, HEADS, WINDOW * WINDOW, HEAD_DIM)

    out = F.scaled_dot_product_attention(
        to_windows(q), to_windows(k), to_windows(v), attn_mask=bias.to(q.dtype)
    )
    out = out.reshape(n, nh, nw, HEADS, WINDOW, WINDOW, HEAD_DIM)
    out = out.permute(0, 3, 6, 1, 4, 2, 5).reshape(n, c, hq, wq)
    return out[:, :, pad[2] : pad[2] + h, pad[0] : pad[0] + w]


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

    def prepare(
        self, x: torch.Tensor, stream: str
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Normalise a stream and project it: (q, k, v, rescale, rebias)."""
        xn, rescale, rebias = self._part("norm1", stream)(x)
        qk = self._part("QK", stream)(xn)
        v = self._part("V", stream)(xn)
        return qk[:, :CHANNELS], qk[:, CHANNELS:], v, rescale, rebias

    def finish(
        self,
        x: torch.Tensor,
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        rescale: torch.Tensor,
        rebias: torch.Tensor,
        stream: str,
    ) -> torch.Tensor:
        """Attention, projection, gated residual and MLP residual of a stream."""
        attn_out = window_attention(q, k, v, self.attn.attn(), self.shift)
        out = self._part("proj", stream)(self._part("conv", stream)(v) + attn_out)
        x = x + out * rescale + rebias
        return x + self._part("mlp", stream)(x)


class _Embed(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.proj = conv3x3_reflect(CHANNELS, CHANNELS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x)


class _Unembed(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Sequential(conv3x3_reflect(CHANNELS, CHANNELS), nn.PixelShuffle(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x)


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
        """Inference path: branch output T, cropped to the input's size.

        When ``features`` is a dict, the stream outputs are stored in it
        (cropped): ``"multimodal"`` (MM after block 0) and ``"photographic"``
        (DP after block 1).
        """
        h, w = shared.shape[-2:]
        padded = pad_to_multiple(shared, BRANCH_MULTIPLE)
        mm = self.patch_embed_ivif(padded)
        dp = self.patch_embed_mfif(padded)
        block0, block1 = self.layer1.blocks
        q_dp, k_dp, v_dp, resc_dp, reb_dp = block0.prepare(dp, "dp")
        _, k_mm, v_mm, resc_mm, reb_mm = block0.prepare(mm, "mm")
        # Block 0: the multimodal stream attends with the photographic query.
        mm = block0.finish(mm, q_dp, k_mm, v_mm, resc_mm, reb_mm, "mm")
        dp = block0.finish(dp, q_dp, k_dp, v_dp, resc_dp, reb_dp, "dp")
        dp = dp + self.layer1.weights_mfif[0] * mm
        if features is not None:
            features["multimodal"] = mm[:, :, :h, :w]
        del mm, q_dp, k_dp, v_dp, k_mm, v_mm
        # Block 1: the photographic stream alone feeds the output.
        dp = block1.finish(dp, *block1.prepare(dp, "dp"), "dp")
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
        self, a: torch.Tensor, b: torch.Tensor, features: dict[str, torch.Tensor] | None = None
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
