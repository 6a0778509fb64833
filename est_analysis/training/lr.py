"""The paper's learning-rate schedules (appendix A.1 and A.2), scaled to the run length.

- `linear` (GPT-2): start at the peak and decay linearly to zero at the last step.
- `cosine` (TinyLlama): linear warmup (2000 of 60000 steps in the paper, i.e. 1/30 of the run)
  then cosine decay to `min_ratio` of the peak (TinyLlama's released config: 4e-5 = 0.1 x 4e-4).
"""

from __future__ import annotations

import math

LR_SCHEDULES = ("linear", "cosine")


def lr_at(step: int, total_steps: int, peak: float, kind: str, warmup_steps: int = 0,
          min_ratio: float = 0.0) -> float:
    """Learning rate of 0-based `step`."""
    if step < warmup_steps:
        return peak * (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    if kind == "linear":
        decay = 1.0 - progress
    elif kind == "cosine":
        decay = 0.5 * (1.0 + math.cos(math.pi * progress))
    else:
        raise ValueError(f"unknown lr schedule {kind!r}; choose one of {LR_SCHEDULES}")
    return peak * (min_ratio + (1.0 - min_ratio) * decay)
