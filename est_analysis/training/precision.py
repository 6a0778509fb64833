"""The numeric precision of a training step (`--precision`): the autocast dtype of the forward
pass and, for fp16, a gradient scaler (fp16's narrow exponent range makes small gradients
underflow without one). Parameters, optimizer state and the loss stay in fp32.

`auto` is bf16 on CUDA and fp32 elsewhere."""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext

import torch

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def resolved_precision(precision: str, device: torch.device) -> str:
    if precision not in PRECISIONS:
        raise ValueError(f"precision={precision!r}; choose one of {PRECISIONS}")
    if precision == "auto":
        return "bf16" if device.type == "cuda" else "fp32"
    return precision


def autocast(precision: str, device: torch.device) -> AbstractContextManager:
    """The forward pass's autocast context (none for fp32)."""
    precision = resolved_precision(precision, device)
    if precision == "fp32":
        return nullcontext()
    return torch.autocast(device.type, dtype=DTYPES[precision])


def grad_scaler(precision: str, device: torch.device) -> torch.amp.GradScaler:
    """A gradient scaler, enabled for fp16 only (disabled, it passes everything through)."""
    enabled = resolved_precision(precision, device) == "fp16"
    return torch.amp.GradScaler(device.type, enabled=enabled)
