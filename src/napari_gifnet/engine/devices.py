"""Choosing the torch device a fusion runs on."""

from __future__ import annotations

import torch


def available_devices() -> list[str]:
    """Names of the devices this machine can run on, best first (``"cpu"`` last)."""
    names = [f"cuda:{i}" for i in range(torch.cuda.device_count())] if torch.cuda.is_available() else []
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        names.append("mps")
    return names + ["cpu"]


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """Turn a device request into an available :class:`torch.device`.

    Parameters
    ----------
    device
        ``"auto"`` (or None) picks CUDA, then Apple MPS, then the CPU. Any
        other value is a torch device name (``"cpu"``, ``"cuda"``,
        ``"cuda:1"``, ``"mps"``) or a :class:`torch.device`.

    Raises
    ------
    ValueError
        When the name is not a device, or names one this machine lacks.
    """
    if device is None or (isinstance(device, str) and device.strip().lower() == "auto"):
        return torch.device(available_devices()[0])
    try:
        dev = torch.device(device.strip().lower() if isinstance(device, str) else device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(
            f"unknown device {device!r}: use 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'"
        ) from exc
    available = available_devices()
    if dev.type == "cpu":
        return dev
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(
                f"device {str(device)!r} was requested but CUDA is not available here "
                f"(torch {torch.__version__}); available: {', '.join(available)}"
            )
        index = 0 if dev.index is None else dev.index
        if index >= torch.cuda.device_count():
            raise ValueError(
                f"device {str(device)!r} was requested but only {torch.cuda.device_count()} "
                f"CUDA device(s) exist; available: {', '.join(available)}"
            )
        return torch.device("cuda", index)
    if dev.type == "mps":
        if "mps" not in available:
            raise ValueError(
                f"device 'mps' was requested but Apple MPS is not available here; "
                f"available: {', '.join(available)}"
            )
        return dev
    raise ValueError(
        f"device {str(device)!r} is not supported: use 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'"
    )
