"""The window-attention transformer block of GIFNet's task branch.

:class:`TransformerBlock` holds the weights of both streams (multimodal and
digital photography) and evaluates one block over whole maps or planned
regions; :class:`RLN` (the revised layer norm), :class:`PositionBias` and
:func:`relative_positions` are its parts. Attribute names follow the published
checkpoint's keys. Re-exported by :mod:`napari_gifnet.model.network`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ._rowwise import block_tail, cache_friendly, linear_rows, project_map
from .windows import (
    CHANNELS,
    HEADS,
    WINDOW,
    BlockAxis,
    block_axis,
    gather_image,
    gather_tokens,
    merge_tokens,
    moments,
    split_heads,
)


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
        """Per-sample mean and standard deviation over C, H and W.

        Differentiable (``torch.var_mean``) when ``x`` needs a gradient, else
        the faster :func:`~napari_gifnet.model.windows.moments` (the same
        values to float32 rounding).
        """
        if x.requires_grad and torch.is_grad_enabled():
            var, mu = torch.var_mean(x, dim=(1, 2, 3), correction=0, keepdim=True)
            return mu, torch.sqrt(var + self.eps)
        n, mean, m2 = moments(x)
        shape = (-1, 1, 1, 1)
        return mean.to(x.dtype).view(shape), torch.sqrt(m2 / n + self.eps).to(x.dtype).view(shape)


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
                nn.Conv2d(
                    CHANNELS, CHANNELS, 5, padding=2, groups=CHANNELS, padding_mode="reflect"
                ),
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
        if cache_friendly(x):
            return self._region_cpu(x, stream, stats, rows, cols, query)
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
            split_heads(q),
            split_heads(k),
            split_heads(v),
            attn_mask=self.attn.attn().to(x.dtype)[None],
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

    def _region_cpu(
        self,
        x: torch.Tensor,
        stream: str,
        stats: tuple[torch.Tensor, torch.Tensor],
        rows: BlockAxis,
        cols: BlockAxis,
        query: torch.Tensor | None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`region` for one sample on the CPU, without gradients.

        The same arithmetic, arranged for the cache (see
        :mod:`napari_gifnet.model._rowwise`): V is projected once in image
        layout, and everything after the attention runs band by band.
        """
        weight, _, bias = self._projection(stream, stats, slice(None))
        v_img = project_map(x, weight[2 * CHANNELS :], bias[2 * CHANNELS :])
        v = gather_tokens(v_img, rows.windows, cols.windows)
        tokens = gather_tokens(x, rows.windows, cols.windows)
        if query is None:
            q, k = linear_rows(
                tokens.flatten(0, 1), weight[: 2 * CHANNELS], bias[: 2 * CHANNELS]
            ).split(CHANNELS, dim=-1)
            q, k = q.view_as(tokens), k.view_as(tokens)
        else:
            q = query
            k = linear_rows(
                tokens.flatten(0, 1), weight[CHANNELS : 2 * CHANNELS], bias[CHANNELS : 2 * CHANNELS]
            ).view_as(tokens)
        del tokens
        attn = F.scaled_dot_product_attention(
            split_heads(q),
            split_heads(k),
            split_heads(v),
            attn_mask=self.attn.attn().to(x.dtype)[None],
        )
        del k, v
        v_img = gather_image(v_img, rows.depthwise, cols.depthwise)
        dw = self._part("conv", stream)
        mixed = F.conv2d(v_img, dw.weight, dw.bias, groups=CHANNELS)
        del v_img
        norm, proj = self._part("norm1", stream), self._part("proj", stream)
        mu, sigma = stats
        rescale, rebias = norm.meta1(sigma).flatten(), norm.meta2(mu).flatten()
        residual = x[:, :, rows.out : rows.out + rows.size, cols.out : cols.out + cols.size]
        proj_folded = (proj.weight.flatten(1) * rescale[:, None], proj.bias * rescale + rebias)
        mlp = self._part("mlp", stream).mlp
        mlp_weights = (mlp[0].weight.flatten(1), mlp[0].bias, mlp[2].weight.flatten(1), mlp[2].bias)
        y = block_tail(mixed, attn, rows, cols, residual, proj_folded, mlp_weights)
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
