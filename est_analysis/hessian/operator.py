"""Curvature of the training loss as a linear operator on flat parameter vectors, and the
Hessian, its first instance.

Vectors are flat (all trainable parameters concatenated in `model.named_parameters()` order);
`blocks` names the slices of that vector for per-block results (embeddings, each layer's
attention and MLP, norms, LM head) and `tensors` the slice of each parameter tensor. Every
operator answers `matmat(V)` for a block of k vectors with one batched pass through its
retained graph (`torch.autograd.grad(..., is_grads_batched=True)`, vmap over the vectors), so
an estimator pays for the graph once per block instead of once per vector; `matvec` is the
one-column case. The operator is the mean over a fixed set of batches (each weighs the same).
Under torchrun each process holds its own batches and the products are summed over processes
(`all_reduce`) before dividing by the total number of batches, so the result is the
single-process operator over all of them.

`HessianOperator` builds the loss once with `create_graph=True` and answers each product with
one double-backward pass through that graph (Pearlmutter's trick): about two backward passes,
no forward. The model is put in eval mode (deterministic; our models have no dropout) and
attention runs on the math kernel (the CPU fused kernel has no double backward).
"""

from __future__ import annotations

import re
from typing import Protocol, Sequence

import numpy as np
import torch
import torch.distributed as dist
from scipy.sparse.linalg import LinearOperator as ScipyOperator
from torch.nn.attention import SDPBackend, sdpa_kernel

from est_analysis.loss import Batch, batch_loss
from est_analysis.models import Decoder
from est_analysis.training.memory import check_memory

# vectors per batched pass (memory grows with it: each carries its own copy of the graph's
# intermediate products)
DEFAULT_CHUNK = 16


class LinearOperator(Protocol):
    """What the estimators need: a symmetric operator on flat vectors."""

    size: int
    dtype: torch.dtype
    device: torch.device
    blocks: dict[str, slice | torch.Tensor]
    matvecs: int  # products computed so far (a matmat of k columns counts k)

    def matvec(self, v: torch.Tensor) -> torch.Tensor: ...

    def matmat(self, vectors: torch.Tensor) -> torch.Tensor: ...


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


class CurvatureOperator:
    """A symmetric curvature matrix of the mean loss over `batches`, for the full model.
    Subclasses give `_batched(vectors)`: the sum over this process's batches of each batch's
    matrix times the k rows of `vectors` (k, size), as pieces shaped like the parameters."""

    name = "curvature"

    def __init__(self, model: Decoder, batches: list[Batch], chunk: int = DEFAULT_CHUNK) -> None:
        if not batches:
            raise ValueError(f"the {self.name} needs at least one batch")
        model.eval()
        named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        self.params = [p for _, p in named]
        self.size = sum(p.numel() for p in self.params)
        self.dtype, self.device = self.params[0].dtype, self.params[0].device
        self.matvecs, self.chunk = 0, chunk
        self.local_batches = len(batches)
        self.total_batches = _all_processes_sum(torch.tensor(float(len(batches)))).item()
        tied = model.lm_head.weight is model.wte.weight  # GPT-2: one matrix, two roles
        ranges: dict[str, list[tuple[int, int]]] = {}
        self.tensors: dict[str, slice] = {}
        offset = 0
        for name, p in named:
            block = block_name(name)
            if tied and block == "embeddings":
                block = "embeddings+lm_head (tied)"
            ranges.setdefault(block, []).append((offset, offset + p.numel()))
            self.tensors[name] = slice(offset, offset + p.numel())
            offset += p.numel()
        self.blocks = {name: _as_index(r) for name, r in ranges.items()}

    def matvec(self, v: torch.Tensor) -> torch.Tensor:
        """The operator times a flat vector v."""
        return self.matmat(v[:, None])[:, 0]

    def matmat(self, vectors: torch.Tensor) -> torch.Tensor:
        """The operator times each column of `vectors` (size, k), `chunk` columns per pass."""
        columns = []
        for start in range(0, vectors.shape[1], self.chunk):
            block = vectors[:, start:start + self.chunk].T.to(self.dtype)
            check_memory(self._bytes(block.shape[0]), self.device,
                         f"{self.name} products for {block.shape[0]} vectors at once",
                         "lower the operator's chunk (vectors per pass)")
            pieces = torch.split(block, [p.numel() for p in self.params], dim=1)
            with sdpa_kernel(SDPBackend.MATH):
                products = self._batched([x.reshape(-1, *p.shape) for x, p in zip(pieces, self.params)])
            flat = torch.cat([h.reshape(block.shape[0], -1) for h in products], dim=1)
            columns.append(_all_processes_sum(flat).T / self.total_batches)
            self.matvecs += block.shape[0]
        return torch.cat(columns, dim=1)

    def to_scipy(self) -> ScipyOperator:
        """The operator for scipy's solvers (`scipy.sparse.linalg.eigsh`, `cg`, ...), on numpy
        arrays."""
        def matmat(x: np.ndarray) -> np.ndarray:
            product = self.matmat(torch.as_tensor(np.asarray(x), device=self.device).reshape(self.size, -1))
            return product.cpu().numpy()

        return ScipyOperator((self.size, self.size), matvec=lambda x: matmat(x).ravel(),
                             rmatvec=lambda x: matmat(x).ravel(), matmat=matmat,
                             dtype=torch.empty((), dtype=self.dtype).numpy().dtype)

    def _bytes(self, k: int) -> int:
        """Memory a pass over k vectors adds beyond the retained graph."""
        return 3 * k * self.size * torch.empty((), dtype=self.dtype).element_size()

    def _batched(self, vectors: list[torch.Tensor]) -> tuple[torch.Tensor, ...]:
        raise NotImplementedError


class HessianOperator(CurvatureOperator):
    """H = d^2 L / d theta^2 of the mean loss over `batches`."""

    name = "Hessian"

    def __init__(self, model: Decoder, batches: list[Batch], chunk: int = DEFAULT_CHUNK) -> None:
        super().__init__(model, batches, chunk)
        with sdpa_kernel(SDPBackend.MATH):
            loss_sum = sum(batch_loss(model, batch) for batch in batches)
            self.loss = loss_sum.item() / len(batches)
            self._grads = torch.autograd.grad(loss_sum, self.params, create_graph=True)

    def _batched(self, vectors: list[torch.Tensor]) -> tuple[torch.Tensor, ...]:
        return batched_grad(self._grads, self.params, vectors)


def batched_grad(outputs: Sequence[torch.Tensor] | torch.Tensor, inputs: list[torch.Tensor],
                 grad_outputs: Sequence[torch.Tensor] | torch.Tensor) -> tuple[torch.Tensor, ...]:
    """The vector-Jacobian products of `outputs` for each of the k cotangents stacked along
    dim 0 of `grad_outputs`, as (k, *input) tensors, keeping the graph. One cotangent skips
    `is_grads_batched`'s vmap, whose overhead shows on a single product."""
    stacked = [grad_outputs] if isinstance(grad_outputs, torch.Tensor) else list(grad_outputs)
    if stacked[0].shape[0] == 1:
        single = [g[0] for g in stacked]
        grads = torch.autograd.grad(outputs, inputs, grad_outputs=single, retain_graph=True)
        return tuple(g[None] for g in grads)
    return torch.autograd.grad(outputs, inputs, grad_outputs=grad_outputs, retain_graph=True,
                               is_grads_batched=True)


def _all_processes_sum(tensor: torch.Tensor) -> torch.Tensor:
    """`tensor` summed over the processes of a torchrun job (itself in one process)."""
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        tensor = tensor.clone()
        dist.all_reduce(tensor)
    return tensor


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

    def matmat(self, vectors: torch.Tensor) -> torch.Tensor:
        self.matvecs += vectors.shape[1]
        return self.matrix @ vectors
