"""Colour for GIFNet results: BT.601 YCbCr and chroma transfer.

GIFNet fuses grey (luma) images only. A colour result is made as in the
published runs: the fused luma becomes the Y channel, and the chroma (Cb, Cr)
comes from the colour input(s) (:func:`plan_colour`, :func:`apply_colour`).
The conversion is standard BT.601 full-range YCbCr with zero-centred chroma
(Cb, Cr in [-0.5, 0.5] for RGB in [0, 1]; the 8-bit form without its +128 offset).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: BT.601 luma weights for R, G and B.
KR, KG, KB = 0.299, 0.587, 0.114
#: The same weights as one (R, G, B) tuple.
LUMA_WEIGHTS = (KR, KG, KB)
#: Chroma scale factors: Cb = (B - Y) / CB_SCALE, Cr = (R - Y) / CR_SCALE.
CB_SCALE = 2.0 * (1.0 - KB)  # 1.772
CR_SCALE = 2.0 * (1.0 - KR)  # 1.402


def _rgb_array(rgb: np.ndarray, what: str = "rgb") -> np.ndarray:
    arr = np.asarray(rgb)
    if arr.ndim != 3 or arr.shape[2] != 3 or arr.dtype.kind not in "uif":
        raise ValueError(
            f"{what} must be a real (H, W, 3) array, got shape {arr.shape} and dtype {arr.dtype}"
        )
    return arr


def rgb_to_ycbcr(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Split RGB in [0, 1] into BT.601 full-range luma and zero-centred chroma.

    ``Y = 0.299 R + 0.587 G + 0.114 B``, ``Cb = (B - Y) / 1.772``,
    ``Cr = (R - Y) / 1.402``. For RGB in [0, 1], Y is in [0, 1] and Cb, Cr
    are in [-0.5, 0.5]; neutral grey has Cb = Cr = 0. Pure red gives
    (0.299, -0.168736, 0.5).

    Parameters
    ----------
    rgb : numpy.ndarray
        Array of shape (H, W, 3), values expected in [0, 1] (not checked).

    Returns
    -------
    y, cb, cr : numpy.ndarray
        float32 arrays of shape (H, W). Computed in float64.
    """
    arr = _rgb_array(rgb)
    r, g, b = (arr[..., i].astype(np.float64) for i in range(3))
    y = KR * r + KG * g + KB * b
    cb = (b - y) / CB_SCALE
    cr = (r - y) / CR_SCALE
    return y.astype(np.float32), cb.astype(np.float32), cr.astype(np.float32)


def ycbcr_to_rgb(y: np.ndarray, cb: np.ndarray, cr: np.ndarray) -> np.ndarray:
    """Inverse of :func:`rgb_to_ycbcr`: RGB float32 clipped to [0, 1].

    ``R = Y + 1.402 Cr``, ``B = Y + 1.772 Cb``,
    ``G = (Y - 0.299 R - 0.114 B) / 0.587``.

    Parameters
    ----------
    y, cb, cr : numpy.ndarray
        Arrays of shape (H, W) (or broadcastable to a common shape), with
        zero-centred chroma.

    Returns
    -------
    numpy.ndarray
        float32 array of shape (H, W, 3) with values in [0, 1].
    """
    y64, cb64, cr64 = np.broadcast_arrays(
        *(np.asarray(c, dtype=np.float64) for c in (y, cb, cr))
    )
    r = y64 + CR_SCALE * cr64
    b = y64 + CB_SCALE * cb64
    g = (y64 - KR * r - KB * b) / KG
    out = np.stack([r, g, b], axis=-1)
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def _combine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    wa, wb = np.abs(a), np.abs(b)
    den = wa + wb
    num = wa * a + wb * b
    out = np.zeros(np.broadcast(a, b).shape, dtype=np.float64)
    np.divide(num, den, out=out, where=den > 0)
    return out.astype(np.float32)


def combine_chroma(
    cb_a: np.ndarray, cr_a: np.ndarray, cb_b: np.ndarray, cr_b: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Combine the zero-centred chroma of two colour sources, pixel by pixel.

    For each pixel and each chroma channel separately, each source is
    weighted by its distance from neutral (the magnitude of its chroma)::

        c = (|c_a| c_a + |c_b| c_b) / (|c_a| + |c_b|)

    and ``c = 0`` (neutral) where both are 0. So a neutral source leaves the
    other's chroma unchanged, and the more saturated source dominates.

    This is the published GIFNet idea with the offset done right: the
    published script computed Cb/Cr without the +128 offset yet weighted
    each by ``|c - 128|``, which makes nearly neutral chroma count as
    strongly coloured and biases the combined colours.

    Parameters
    ----------
    cb_a, cr_a, cb_b, cr_b : numpy.ndarray
        Zero-centred chroma of the two sources (same or broadcastable shapes).

    Returns
    -------
    cb, cr : numpy.ndarray
        float32 arrays.
    """
    return _combine(cb_a, cb_b), _combine(cr_a, cr_b)


@dataclass(eq=False)
class ColourPlan:
    """The chroma to give a fused luma, decided before fusing.

    Attributes
    ----------
    cb, cr : numpy.ndarray
        float32 (H, W) zero-centred chroma.
    source : str
        ``"a"`` or ``"b"`` (the one colour input's chroma is kept) or
        ``"both"`` (combined with :func:`combine_chroma`).
    """

    cb: np.ndarray
    cr: np.ndarray
    source: str

    @property
    def shape(self) -> tuple[int, int]:
        """(H, W) of the image this plan applies to."""
        return (int(self.cb.shape[0]), int(self.cb.shape[1]))


def plan_colour(rgb_a: np.ndarray | None, rgb_b: np.ndarray | None) -> ColourPlan | None:
    """Decide the colour of the fused result from the two inputs.

    Parameters
    ----------
    rgb_a, rgb_b : numpy.ndarray or None
        float32 (H, W, 3) RGB in [0, 1] (see
        :func:`napari_gifnet.engine.preprocess.to_rgb_unit`), or ``None`` for a grey
        input.

    Returns
    -------
    ColourPlan or None
        One RGB input: its chroma. Two: their chroma combined with
        :func:`combine_chroma`. None: ``None`` (the result stays grey).
    """
    if rgb_a is None and rgb_b is None:
        return None
    if rgb_b is None:
        _, cb, cr = rgb_to_ycbcr(_rgb_array(rgb_a, "rgb_a"))
        return ColourPlan(cb, cr, "a")
    if rgb_a is None:
        _, cb, cr = rgb_to_ycbcr(_rgb_array(rgb_b, "rgb_b"))
        return ColourPlan(cb, cr, "b")
    a, b = _rgb_array(rgb_a, "rgb_a"), _rgb_array(rgb_b, "rgb_b")
    if a.shape != b.shape:
        raise ValueError(f"rgb_a and rgb_b differ in shape: {a.shape} vs {b.shape}")
    _, cb_a, cr_a = rgb_to_ycbcr(a)
    _, cb_b, cr_b = rgb_to_ycbcr(b)
    cb, cr = combine_chroma(cb_a, cr_a, cb_b, cr_b)
    return ColourPlan(cb, cr, "both")


def apply_colour(fused_luma: np.ndarray, plan: ColourPlan) -> np.ndarray:
    """Give a fused luma the chroma of a :class:`ColourPlan`.

    Parameters
    ----------
    fused_luma : numpy.ndarray
        (H, W) fused luma in [0, 1] (the network output).
    plan : ColourPlan
        From :func:`plan_colour`, for images of the same (H, W).

    Returns
    -------
    numpy.ndarray
        float32 (H, W, 3) RGB, clipped to [0, 1].
    """
    if not isinstance(plan, ColourPlan):
        raise TypeError(f"plan must be a ColourPlan, got {type(plan).__name__}")
    y = np.asarray(fused_luma)
    if y.shape != plan.shape:
        raise ValueError(f"fused luma has shape {y.shape}, the colour plan {plan.shape}")
    return ycbcr_to_rgb(y, plan.cb, plan.cr)
