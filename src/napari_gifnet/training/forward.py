"""The training forward passes of GIFNet's two steps.

GIFNet trains with two optimiser steps per batch (see the project's
architecture description, section "Training"):

* the **multimodal step** (:func:`multimodal_step`, the published "tag 1"):
  the shared features of the modality pair ``(ir, vis)`` carry gradients, the
  ones of the focus pair ``(near, far)`` do not; the multimodal (MM) stream
  runs self-attention in both blocks, the photographic (DP) stream borrows
  the MM query in block 0 and its attention sub-module runs without
  gradients; ``MM += weights[0] * DP`` after block 0 and the branch output is
  the MM stream after block 1;
* the **photographic step** (:func:`photographic_step`, "tag 2"): the
  inference path of :meth:`napari_gifnet.model.network.TaskBranch.forward`, with
  the focus pair's shared features carrying gradients and the MM stream's
  attention sub-module run without gradients.

Both return the fused image of the global decoder and the reconstruction of
the reconstruction decoder (REC) applied to the features that carry
gradients. The passes run whole maps (no banding) and work for any batch
size; crops must be at least 8 x 8.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..model.network import BRANCH_MULTIPLE, GIFNet, TransformerBlock, pad_to_multiple
from ..model.windows import CHANNELS, block_axis, gather_tokens, merge_tokens, split_heads

Stats = tuple[torch.Tensor, torch.Tensor]


@dataclass
class StepOutput:
    """What one training pass produces.

    Attributes
    ----------
    fused : torch.Tensor
        (N, 1, H, W) output of the global decoder, in [0, 1].
    rec : torch.Tensor
        (N, 1, H, W) output of the reconstruction decoder (its tanh, in
        (-1, 1), used as it is), from the shared features with gradients.
    """

    fused: torch.Tensor
    rec: torch.Tensor


def attention(
    block: TransformerBlock,
    x: torch.Tensor,
    stream: str,
    stats: Stats,
    query: torch.Tensor | None = None,
    conv_input: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The attention sub-module of one stream of a block, on a whole map.

    RLN normalisation, the QK and V projections, windowed attention with the
    relative position bias, the depthwise convolution and the output
    projection: everything of section 3 up to (not including) the RLN
    rescale/rebias and the residual.

    Parameters
    ----------
    block : TransformerBlock
        The block (its ``shift`` sets the window grid).
    x : torch.Tensor
        (N, 98, H, W) block input, H and W multiples of 4.
    stream : {"mm", "dp"}
        Which stream's weights to use.
    stats : tuple of torch.Tensor
        The stream's RLN (mean, std) of ``x`` (:meth:`TransformerBlock.statistics`).
    query : torch.Tensor, optional
        Query tokens of the other stream (as returned by this function) for
        cross attention; default: this stream's own.
    conv_input : torch.Tensor, optional
        The V map the depthwise convolution reads; default this stream's V
        (the multimodal step passes the MM stream's V to the DP stream: the
        published code's quirk).

    Returns
    -------
    out : torch.Tensor
        (N, 98, H, W) projected attention output.
    query : torch.Tensor
        The query tokens used, (N * windows, 64, 98).
    v : torch.Tensor
        This stream's (N, 98, H, W) V map.
    """
    n, _, h, w = x.shape
    rows, cols = block_axis(0, h, h, block.shift), block_axis(0, w, w, block.shift)
    norm = block.stream_module("norm1", stream)
    mu, sigma = stats
    xn = (x - mu) / sigma * norm.weight + norm.bias
    v = block.stream_module("V", stream)(xn)
    qk = block.stream_module("QK", stream)(xn)
    q_map, k_map = qk.split(CHANNELS, dim=1)
    if query is None:
        query = gather_tokens(q_map, rows.windows, cols.windows)
    k = gather_tokens(k_map, rows.windows, cols.windows)
    v_tokens = gather_tokens(v, rows.windows, cols.windows)
    bias = block.attn.attn().to(x.dtype)[None]
    attn = F.scaled_dot_product_attention(
        split_heads(query), split_heads(k), split_heads(v_tokens), attn_mask=bias
    )
    conv = block.stream_module("conv", stream)
    mixed = conv(v if conv_input is None else conv_input) + merge_tokens(attn, n, rows, cols)
    return block.stream_module("proj", stream)(mixed), query, v


def finish(
    block: TransformerBlock, x: torch.Tensor, stream: str, stats: Stats, attn_out: torch.Tensor
) -> torch.Tensor:
    """The rest of a block: ``x + attn_out * rescale + rebias``, then the MLP residual."""
    norm = block.stream_module("norm1", stream)
    mu, sigma = stats
    out = x + attn_out * norm.meta1(sigma) + norm.meta2(mu)
    return out + block.stream_module("mlp", stream)(out)


def _stream(
    block: TransformerBlock,
    x: torch.Tensor,
    stream: str,
    *,
    grad: bool,
    query: torch.Tensor | None = None,
    conv_input: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One stream through a block; ``grad=False`` runs its attention without gradients."""
    stats = block.statistics(x, stream)
    with torch.set_grad_enabled(grad and torch.is_grad_enabled()):
        out, q, v = attention(block, x, stream, stats, query, conv_input)
    return finish(block, x, stream, stats, out), q, v


def _encode_pair(
    model: GIFNet, with_grad: tuple[torch.Tensor, torch.Tensor], without: tuple[torch.Tensor, torch.Tensor]
) -> tuple[torch.Tensor, torch.Tensor]:
    shared = model.getSharedFeatures(*with_grad)
    with torch.no_grad():
        other = model.getSharedFeatures(*without)
    return shared, other


def multimodal_step(
    model: GIFNet,
    ir: torch.Tensor,
    vis: torch.Tensor,
    near: torch.Tensor,
    far: torch.Tensor,
    *,
    published_quirk: bool = True,
) -> StepOutput:
    """Forward pass of the multimodal step ("tag 1").

    Parameters
    ----------
    model : GIFNet
        The network being trained.
    ir, vis, near, far : torch.Tensor
        (N, 1, H, W) images in [0, 1]: the modality input, the reference
        image and its near- and far-focus versions.
    published_quirk : bool, default True
        Apply the DP stream's depthwise convolution to the MM stream's V in
        block 0, as the published training code does. False applies it to the
        DP stream's own V (used by the tests to compare against a role-swapped
        inference pass).

    Returns
    -------
    StepOutput
        The fused image (target: information-weighted ``ir`` and ``vis``) and
        the reconstruction of ``vis`` from ``S = enc(ir, vis)``.
    """
    h, w = ir.shape[-2:]
    shared, shared_dp = _encode_pair(model, (ir, vis), (near, far))
    rec = model.decoder_rec(shared)
    branch = model.branch
    block0, block1 = branch.layer1.blocks
    mm = branch.patch_embed_ivif(pad_to_multiple(shared, BRANCH_MULTIPLE))
    dp = branch.patch_embed_mfif(pad_to_multiple(shared_dp, BRANCH_MULTIPLE))
    # Block 0: MM attends to itself; DP borrows MM's query, without gradients.
    mm, query, v_mm = _stream(block0, mm, "mm", grad=True)
    dp, _, _ = _stream(
        block0, dp, "dp", grad=False, query=query, conv_input=v_mm if published_quirk else None
    )
    mm = mm + branch.layer1.weights[0] * dp
    mm, _, _ = _stream(block1, mm, "mm", grad=True)
    t = branch.patch_unembed(mm)[:, :, :h, :w]
    return StepOutput(model.cnnDecoder(shared, t), rec)


def photographic_step(
    model: GIFNet, ir: torch.Tensor, vis: torch.Tensor, near: torch.Tensor, far: torch.Tensor
) -> StepOutput:
    """Forward pass of the photographic step ("tag 2", the inference path).

    Parameters are those of :func:`multimodal_step`.

    Returns
    -------
    StepOutput
        The fused image of ``(near, far)`` (target: ``vis``, the all-in-focus
        truth) and the reconstruction of ``vis`` from ``S = enc(near, far)``.
    """
    h, w = near.shape[-2:]
    shared, shared_mm = _encode_pair(model, (near, far), (ir, vis))
    rec = model.decoder_rec(shared)
    branch = model.branch
    block0, block1 = branch.layer1.blocks
    dp = branch.patch_embed_mfif(pad_to_multiple(shared, BRANCH_MULTIPLE))
    mm = branch.patch_embed_ivif(pad_to_multiple(shared_mm, BRANCH_MULTIPLE))
    # Block 0: DP attends to itself; MM borrows DP's query, without gradients.
    dp, query, _ = _stream(block0, dp, "dp", grad=True)
    mm, _, _ = _stream(block0, mm, "mm", grad=False, query=query)
    dp = dp + branch.layer1.weights_mfif[0] * mm
    dp, _, _ = _stream(block1, dp, "dp", grad=True)
    t = branch.patch_unembed(dp)[:, :, :h, :w]
    return StepOutput(model.cnnDecoder(shared, t), rec)
