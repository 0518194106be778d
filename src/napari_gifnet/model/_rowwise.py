"""A transformer block on the CPU: the pixel-wise chains run band by band in cache.

On a CPU, the block's 1x1 convolutions (98 and 196 channels) are held back
by memory traffic rather than arithmetic: as whole-map convolutions, each
reads and writes a full map, and the residual additions read it again. Here
they are matrix products over channels-last rows, a few thousand pixels at a
time. The chain after the attention (merging the attention output back into
the image, the output projection, its residual, the MLP and its residual)
runs one band of window rows at a time while the band is in the core's
cache. V is projected once, in image layout: the depthwise convolution reads
it there and the attention gathers its tokens from it.

Each output pixel gets the same products and sums as the whole-map
convolutions give it, so results agree with them to float32 rounding (the
tests compare both paths).
"""

from __future__ import annotations

import torch

from .windows import CHANNELS, HEAD_DIM, HEADS, WINDOW, BlockAxis

#: About how many pixels one matrix product of a chunk covers: a chunk and
#: its products stay within a core's cache.
CHUNK_PIXELS = 4096


def cache_friendly(x: torch.Tensor) -> bool:
    """Whether the band-by-band CPU arrangement serves ``x``: one float32
    sample on the CPU, no gradients, no autocast."""
    return (
        x.shape[0] == 1
        and x.device.type == "cpu"
        and x.dtype == torch.float32
        and not torch.is_grad_enabled()
        and not torch.is_autocast_enabled("cpu")
    )


def linear_rows(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """``x @ weight.T + bias`` for a (M, K) matrix, ``CHUNK_PIXELS`` rows at a time.

    The bias is added to each chunk of the product while it is in cache
    (``addmm`` would first broadcast it into the whole output).
    """
    out = x.new_empty(x.shape[0], weight.shape[0])
    wt = weight.t()
    for start in range(0, x.shape[0], CHUNK_PIXELS):
        stop = start + CHUNK_PIXELS
        torch.mm(x[start:stop], wt, out=out[start:stop]).add_(bias)
    return out


def _banded_output(x: torch.Tensor, channels: int) -> tuple[torch.Tensor, torch.Tensor, int]:
    """For a pixel-wise map of a (1, C, h, w) ``x``: the empty (1, channels,
    h, w) channels-last output, its (1, h, w, channels) view, and how many
    rows a band of about :data:`CHUNK_PIXELS` pixels holds."""
    _, _, h, w = x.shape
    out = torch.empty(
        (1, channels, h, w), dtype=x.dtype, device=x.device, memory_format=torch.channels_last
    )
    return out, out.permute(0, 2, 3, 1), max(1, CHUNK_PIXELS // max(w, 1))


def project_map(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """A 1x1 convolution of a (1, C, h, w) map; the result is channels-last.

    ``x`` may be any view of a channels-last map (a crop of a stored one):
    rows are read a band at a time, copied to a matrix only where the view's
    rows are not contiguous.
    """
    out, out_rows, step = _banded_output(x, weight.shape[0])
    in_rows, wt = x.permute(0, 2, 3, 1), weight.t()
    for r in range(0, x.shape[2], step):
        src = in_rows[:, r : r + step].reshape(-1, x.shape[1])
        torch.mm(src, wt, out=out_rows[:, r : r + step].view(-1, weight.shape[0])).add_(bias)
    return out


def complement_rows(
    shared: torch.Tensor, branch: torch.Tensor, first: torch.Tensor, second: torch.Tensor
) -> torch.Tensor:
    """The decoder's 1x1 pair ``second(relu(first(cat(shared, branch))))``, band by band.

    ``shared`` and ``branch`` are (1, 98, h, w) views of channels-last maps;
    ``first`` is (hidden, 196) and ``second`` (out, hidden), without bias.
    Each band's hidden values stay in cache between the two products; the
    concatenation is never built. Returns (1, out, h, w), channels-last.
    """
    out, o_rows, step = _banded_output(shared, second.shape[0])
    s_rows, t_rows = shared.permute(0, 2, 3, 1), branch.permute(0, 2, 3, 1)
    w_s, w_t, w_2 = first[:, :CHANNELS].t(), first[:, CHANNELS:].t(), second.t()
    hidden_buf = shared.new_empty(step * shared.shape[3], first.shape[0])
    for r in range(0, shared.shape[2], step):
        s = s_rows[:, r : r + step].reshape(-1, CHANNELS)
        hidden = hidden_buf[: s.shape[0]]
        torch.mm(s, w_s, out=hidden)
        hidden.addmm_(t_rows[:, r : r + step].reshape(-1, CHANNELS), w_t)
        hidden.relu_()
        torch.mm(hidden, w_2, out=o_rows[:, r : r + step].view(-1, second.shape[0]))
    return out


def block_tail(
    mixed: torch.Tensor,
    attn: torch.Tensor,
    rows: BlockAxis,
    cols: BlockAxis,
    residual: torch.Tensor,
    proj: tuple[torch.Tensor, torch.Tensor],
    mlp: tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor],
) -> torch.Tensor:
    """The block's output from the depthwise map and the attention output.

    ``mixed`` is the depthwise convolution of V over the output region
    (1, 98, rows.size, cols.size), channels-last, and is used as scratch;
    ``attn`` the attention output (windows, heads, 64, 49) over the window
    grid; ``residual`` the block input over the output region; ``proj`` the
    output projection (weight, bias) with the RLN gates folded in; ``mlp``
    the MLP's (weight, bias, weight, bias). Returns
    ``y = out + mlp(out)`` with ``out = proj(mixed + merged attn) + residual``,
    channels-last.
    """
    size_r, size_c = rows.size, cols.size
    nh, nw = rows.windows.numel() // WINDOW, cols.windows.numel() // WINDOW
    grid = attn.view(nh, nw, HEADS, WINDOW, WINDOW, HEAD_DIM)
    y = torch.empty_like(mixed, memory_format=torch.channels_last)
    m_rows, y_rows = mixed.permute(0, 2, 3, 1), y.permute(0, 2, 3, 1)
    res_rows = residual.permute(0, 2, 3, 1)
    (pw, pb), (w1, b1, w2, b2) = proj, mlp
    pwt, w1t, w2t = pw.t(), w1.t(), w2.t()
    band = max(1, CHUNK_PIXELS // max(nw * WINDOW * WINDOW, 1))  # window rows per band
    width = band * WINDOW * size_c
    out_buf = mixed.new_empty(width, CHANNELS)
    hidden_buf = mixed.new_empty(width, w1.shape[0])
    for j in range(0, nh, band):
        # grid rows [8j, 8(j+band)) hold output rows [8j - crop, ...), clipped
        r0 = max(j * WINDOW - rows.crop, 0)
        r1 = min((j + band) * WINDOW - rows.crop, size_r)
        if r1 <= r0:
            continue
        # (k, nw, heads, 8, 8, 49) -> (k, 8, nw, 8, heads, 49): rows, columns, channels
        part = grid[j : j + band].permute(0, 3, 1, 4, 2, 5).reshape(-1, nw * WINDOW, CHANNELS)
        g0 = r0 + rows.crop - j * WINDOW
        m = m_rows[0, r0:r1]
        m += part[g0 : g0 + r1 - r0, cols.crop : cols.crop + size_c]
        count = (r1 - r0) * size_c
        out, hidden = out_buf[:count], hidden_buf[:count]
        torch.mm(m.view(-1, CHANNELS), pwt, out=out)
        out.view(r1 - r0, size_c, CHANNELS).add_(res_rows[0, r0:r1])
        out += pb
        torch.mm(out, w1t, out=hidden)
        hidden.add_(b1).relu_()
        y2 = y_rows[0, r0:r1].view(-1, CHANNELS)
        torch.mm(hidden, w2t, out=y2)
        y2 += out
        y2 += b2
    return y
