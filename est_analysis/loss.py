"""The one loss of the project: mean next-token cross-entropy of a decoder (or of one of its
subnets) on (inputs, targets) batches, computed on the model's device."""

from __future__ import annotations

import torch

from est_analysis.models import Decoder
from est_analysis.models.head_loss import token_loss
from est_analysis.subnet import Subnet

Batch = tuple[torch.Tensor, torch.Tensor]  # (inputs, next-token targets), each (B, T)


def batch_loss(model: Decoder, batch: Batch, subnet: Subnet | None = None) -> torch.Tensor:
    """The loss of the full model (or `subnet`) on one batch, with its autograd graph."""
    x, y = batch
    device = next(model.parameters()).device
    return token_loss(model(x.to(device), subnet), y)


def mean_loss(model: Decoder, batches: list[Batch], subnet: Subnet | None = None
              ) -> torch.Tensor:
    """The loss averaged over `batches` (each weighs the same), with its autograd graph."""
    if not batches:
        raise ValueError("a loss needs at least one batch")
    return sum(batch_loss(model, batch, subnet) for batch in batches) / len(batches)


@torch.no_grad()
def evaluate(model: Decoder, batches: list[Batch], subnet: Subnet | None = None) -> float:
    """The mean loss over `batches` in eval mode, without a graph, as a float (summed in
    float64); the model's train/eval mode is restored."""
    if not batches:
        raise ValueError("a loss needs at least one batch")
    was_training = model.training
    model.eval()
    try:
        return sum(batch_loss(model, batch, subnet).item() for batch in batches) / len(batches)
    finally:
        model.train(was_training)
