"""Throughput of a training step: tokens per second, and model FLOPs utilisation (MFU), the
matmul FLOP/s the step achieved (its subnet's forward+backward FLOPs, `cost.flops.step_flops`,
over its wall time) divided by the device's dense peak at the run's precision.

Peaks are the vendors' dense (no sparsity) tensor-core figures, looked up by the CUDA device
name; any other device has no known peak and needs `--peak-flops`, else MFU is left empty.
"""

from __future__ import annotations

import torch

# device-name substring -> precision -> dense peak FLOP/s (fp32 without TF32)
PEAK_FLOPS = {
    "H100 PCIe": {"bf16": 756e12, "fp16": 756e12, "fp32": 51e12},
    "H100": {"bf16": 989e12, "fp16": 989e12, "fp32": 67e12},  # SXM / HBM3
    "H200": {"bf16": 989e12, "fp16": 989e12, "fp32": 67e12},
    "A100": {"bf16": 312e12, "fp16": 312e12, "fp32": 19.5e12},
}


def device_peak_flops(device: torch.device, precision: str) -> float | None:
    """The dense peak FLOP/s of a known CUDA device at `precision` (fp32, bf16 or fp16)."""
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    for key, peaks in PEAK_FLOPS.items():  # the more specific names come first
        if key in name:
            return peaks[precision]
    return None


def tokens_per_s(tokens: int, seconds: float) -> float:
    return tokens / seconds if seconds > 0 else float("nan")


def mfu(flops: float, seconds: float, peak: float | None) -> float | None:
    """Achieved FLOP/s over the peak; None when the peak is unknown."""
    if peak is None or seconds <= 0:
        return None
    return flops / seconds / peak
