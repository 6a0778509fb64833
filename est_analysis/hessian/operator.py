"""The Hessian of the training loss as a linear operator on flat parameter vectors.

`HessianOperator` builds the loss (mean next-token cross-entropy over a fixed set of
batches) once with `create_graph=True` and answers each Hessian-vector product with one
double-backward pass through that retained graph (Pearlmutter's trick), so H v costs about
two backward passes and no forward pass. The model is put in eval mode (deterministic; our
models have no dropout) and attention runs on the math kernel: the CPU fused kernel has no
double backward. Vectors are flat (all trainable parameters concatenated in
`model.named_parameters()` order); `blocks` names the slices of that vector (embeddings,
each layer's attention and MLP, norms, LM head) for per-block traces.
"""

from __future__ import annotations

import re
from typing import Protocol

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel

from est_analysis.loss import Batch, mean_loss
from est_analysis.models import Decoder


class LinearOperator(Protocol):
    """What the estimators need: a symmetric operator on flat vectors."""

    size: int
    dtype: torch.dtype
    device: torch.device
    blocks: dict[str, slice | torch.Tensor]
    matvecs: int  # products computed so far

    def matvec(self, v: torch.Tensor) -> torch.Tensor: ...


def block_name(param_name: str) -> str:
    """Which block of the per-block breakdown a parameter belongs to."""
    layer = re.match(r"blocks\.(\d+)\.(attn|mlp)\.", param_name)
    if layer:
        return f"layer{layer.group(1)}.{layer.group(2)}"
    if "norm" in param_name:
        return "norms"
    if param_name.startswith(("wte", "wpe")):
        return "embeddings"
    if param_name.startswith("lm_head"):
        return "lm_head"
    raise ValueError(f"parameter {param_name!r} belongs to no known block")


class HessianOperator:
    """H = d^2 L / d theta^2 of the mean loss over `batches`, for the full model."""

    def __init__(self, model: Decoder, batches: list[Batch]) -> None:
        if not batches:
            raise ValueError("the Hessian needs at least one batch")
        model.eval()
        named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        self.params = [p for _, p in named]
        self.size = sum(p.numel() for p in self.params)
        self.dtype, self.device = self.params[0].dtype, self.params[0].device
        self.matvecs = 0
        tied = model.lm_head.weight is model.wte.weight  # GPT-2: one matrix, two roles
        ranges: dict[str, list[tuple[int, int]]] = {}
        offset = 0
        for name, p in named:
            block = block_name(name)
            if tied and block == "embeddings":
                block = "embeddings+lm_head (tied)"
            ranges.setdefault(block, []).append((offset, offset + p.numel()))
            offset += p.numel()
        self.blocks = {name: _as_index(r) for name, r in ranges.items()}
        with sdpa_kernel(SDPBackend.MATH):
            loss = mean_loss(model, batches)
            self.loss = loss.item()
            self._grads = torch.autograd.grad(loss, self.params, create_graph=True)

    def matvec(self, v: torch.Tensor) -> torch.Tensor:
        """H v for a flat vector v."""
        pieces = torch.split(v.to(self.dtype), [p.numel() for p in self.params])
        with sdpa_kernel(SDPBackend.MATH):
            hv = torch.autograd.grad(self._grads, self.params,
                                     grad_outputs=[x.view_as(p) for x, p in zip(pieces, self.params)],
                                     retain_graph=True)
        self.matvecs += 1
        return torch.cat([h.reshape(-1) for h in hv])


def _as_index(ranges: list[tuple[int, int]]) -> slice | torch.Tensor:
    """A slice when the ranges are contiguous (most blocks), else an index tensor (norms)."""
    if all(a[1] == b[0] for a, b in zip(ranges, ranges[1:])):
        return slice(ranges[0][0], ranges[-1][1])
    return torch.cat([torch.arange(a, b) for a, b in ranges])


class MatrixOperator:
    """An explicit symmetric matrix as an operator (for tests and benchmarks)."""

    def __init__(self, matrix: torch.Tensor, blocks: dict[str, slice] | None = None) -> None:
        self.matrix = matrix
        self.size = matrix.shape[0]
        self.dtype, self.device = matrix.dtype, matrix.device
        self.blocks = blocks or {"all": slice(0, self.size)}
        self.matvecs = 0

    def matvec(self, v: torch.Tensor) -> torch.Tensor:
        self.matvecs += 1
        return self.matrix @ v
