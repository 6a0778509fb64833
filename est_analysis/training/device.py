"""The device a run or an analysis uses, checked before anything is allocated: a name torch
knows, and hardware that is there."""

from __future__ import annotations

import torch

DEVICE_TYPES = ("cpu", "cuda", "mps")


def resolve_device(name: str) -> torch.device:
    """`auto` (CUDA when present, else the CPU), `cpu`, `cuda`, `cuda:N` or `mps`; a clear error
    naming the value for anything else, or for hardware this machine lacks."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        device = None
    if device is None or device.type not in DEVICE_TYPES:
        raise ValueError(f"device={name!r} is not a device: use auto, cpu, cuda, cuda:N or mps")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            build = "a CPU-only build" if torch.version.cuda is None else f"built for CUDA {torch.version.cuda}"
            raise ValueError(f"device={name!r}: CUDA is not available on this machine (torch "
                             f"{torch.__version__} is {build}, or no GPU is visible); use "
                             "--device cpu or auto")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(f"device={name!r}: this machine has {torch.cuda.device_count()} "
                             f"CUDA device(s), cuda:0 to cuda:{torch.cuda.device_count() - 1}")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device={name!r}: MPS is not available on this machine; use --device cpu")
    return device
