"""Numerical precision of the network: exact float32 by default, faster modes on request.

``"float32"`` (the default) is exact float32 arithmetic (on CUDA with TF32
switched off for the call), the mode every parity test holds.
``"tf32"`` lets CUDA matrix products and convolutions use TensorFloat-32
(a 10-bit mantissa on the inputs of products); ``"bfloat16"`` and
``"float16"`` run the network under ``torch.autocast`` (products and
convolutions in that type, reductions in float32). The engine's statistics
stay float64 in every mode. The reduced modes are measured against float32
by ``benchmarks/gpu_check.py`` and never chosen by default
(:data:`DOCUMENTED_ERROR`). Maps the tiled evaluation keeps between passes
are stored as float32 in every mode and storage.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

#: The precisions :func:`~napari_gifnet.engine.fusion.fuse` accepts, the default first.
PRECISIONS = ("float32", "tf32", "bfloat16", "float16")

#: The documented error of each precision on the CPU: the largest |difference|
#: of the fused image ([0, 1]) from float32 measured on the Medical case
#: (docs/scaling.md), and for float32 (and tf32, float32 on the CPU) the
#: 1e-4 every tile size and storage promises. Every storage, tile plan and
#: out-of-memory retry agrees with memory storage in the same precision
#: within this.
DOCUMENTED_ERROR = {"float32": 1e-4, "tf32": 1e-4, "bfloat16": 9.6e-3, "float16": 1.5e-3}


def check_precision(precision: str) -> str:
    """The precision's name; ValueError naming the valid ones otherwise."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}: use one of {', '.join(PRECISIONS)}")
    return precision


@contextmanager
def precision_mode(precision: str, device: torch.device) -> Iterator[None]:
    """Run the block in ``precision`` on ``device``; global flags are restored after.

    ``"tf32"`` changes nothing off CUDA (the CPU has no TF32); ``"float16"``
    and ``"bfloat16"`` use autocast on every device that supports it.
    """
    check_precision(precision)
    matmul = torch.backends.cuda.matmul.allow_tf32
    cudnn = torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = precision == "tf32"
    try:
        if precision in ("bfloat16", "float16"):
            dtype = torch.bfloat16 if precision == "bfloat16" else torch.float16
            with torch.autocast(device_type=device.type, dtype=dtype):
                yield
        else:
            yield
    finally:
        torch.backends.cuda.matmul.allow_tf32 = matmul
        torch.backends.cudnn.allow_tf32 = cudnn
