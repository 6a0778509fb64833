"""Filter-normalized random directions (Li et al., NeurIPS 2018, section 4).

A direction d has one tensor per parameter. Gaussian entries are rescaled so that every filter
of d has the norm of the same filter of the weights: ||d_i|| = ||theta_i||. A filter is an
output row of a weight matrix (a neuron of a linear layer; for an embedding, one token's
vector), the transformer analogue of a convolution filter. One-dimensional parameters (biases,
LayerNorm/RMSNorm gains and biases) get a zero direction, as Li et al. do for biases and batch
norm ("ignore biasbn"), so a slice never moves them.
"""

from __future__ import annotations

import torch
from torch import nn

Direction = dict[str, torch.Tensor]


def filter_normalized_direction(model: nn.Module, seed: int) -> Direction:
    """A random Gaussian direction, filter-normalized against `model`'s weights (seeded)."""
    generator = torch.Generator().manual_seed(seed)
    direction = {}
    for name, p in model.named_parameters():
        if p.dim() < 2:
            direction[name] = torch.zeros_like(p)
            continue
        d = torch.randn(p.shape, generator=generator, dtype=torch.float64)
        weights = p.detach().double().cpu()
        rows, d_rows = weights.flatten(1), d.flatten(1)
        scale = rows.norm(dim=1, keepdim=True) / d_rows.norm(dim=1, keepdim=True).clamp_min(1e-30)
        direction[name] = (d_rows * scale).reshape(p.shape).to(p.dtype).to(p.device)
    return direction
