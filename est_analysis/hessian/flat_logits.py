"""Our decoders as the `model(inputs) -> outputs` with `criterion(outputs, targets)` that
curvature libraries (pyhessian, curvlinops, hessian-eigenthings) expect."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel

from est_analysis.models import Decoder


class FlatLogits(nn.Module):
    """`model(idx)` with logits flattened to (B*T, vocab), targets to match being (B*T,).
    Attention runs under the math kernel: the fused CPU kernel has no double backward and no
    forward-mode rule."""

    def __init__(self, model: Decoder) -> None:
        super().__init__()
        self.model = model

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        with sdpa_kernel(SDPBackend.MATH):
            return self.model(idx).flatten(0, 1)
