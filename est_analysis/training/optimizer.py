"""The optimizer (AdamW, appendix A) and how it treats parameters outside the step's subnet,
the same way for heads, neurons and layers. Plain PyTorch is inconsistent here: a sliced-away
row gets an exact zero gradient and still moves under AdamW (momentum and weight decay), while
a skipped layer's parameters get `grad=None` and are not updated at all. `--inactive-params`
chooses:

- `dense` (default): every parameter takes an optimizer step every step, with zero gradient
  outside the subnet (skipped layers get explicit zero gradients). This is what structured
  dropout and stochastic depth do when implemented by masking, the regularization view of
  section 5 of the paper.
- `frozen`: parameters outside the subnet, and their AdamW moments, do not change at all:
  the step is that of the subnet as a model of its own. (AdamW's per-tensor step counter,
  used for bias correction, still advances.)
- `torch-default`: plain PyTorch with `zero_grad(set_to_none=True)` (the default since
  torch 2.0): sliced rows behave as `dense`, skipped layers as `frozen`. This is the most
  likely setting of the paper's own implementation (appendix B slices the full weights; its
  layer skipping leaves the skipped layers without gradients under DDP's unused-parameter
  handling), so it is offered for faithful reproduction.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from est_analysis.models.base import Decoder
from est_analysis.subnet import Subnet

INACTIVE_MODES = ("dense", "frozen", "torch-default")
FUSED_DEVICES = ("cpu", "cuda")  # where torch has a fused AdamW kernel


def make_optimizer(model: nn.Module, lr: float, weight_decay: float = 0.1,
                   betas: tuple[float, float] = (0.9, 0.95),
                   scaled: dict[str, list[nn.Parameter]] | None = None) -> torch.optim.AdamW:
    """AdamW with weight decay on matrices and embeddings only (GPT-2/nanoGPT convention).
    The parameters in `scaled` (group name -> parameters, a method's `scaled_parameters`) get
    groups of their own, tagged `scaled` with their name, whose learning rate the loop
    multiplies by the method's `update_scales`. The update is PyTorch's fused AdamW kernel
    where the parameters' device has one (CPU, CUDA): the same AdamW, 3.5x faster on the
    `gpt2-cpu` model than the per-tensor loop (benchmarks/stage_step.py), equal to it to float
    rounding (tests/training/test_optimizer.py)."""
    apart = {id(p) for ps in (scaled or {}).values() for p in ps}
    params = [p for p in model.parameters() if id(p) not in apart]
    groups = [{"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay},
              {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]
    groups += [{"params": ps, "weight_decay": weight_decay if ps[0].dim() >= 2 else 0.0,
                "scaled": name} for name, ps in (scaled or {}).items()]
    fused = all(p.device.type in FUSED_DEVICES and p.is_floating_point() for p in model.parameters())
    return torch.optim.AdamW(groups, lr=lr, betas=betas, fused=fused or None)


def _outside(size: int, kept: torch.Tensor) -> torch.Tensor:
    mask = torch.ones(size, dtype=torch.bool, device=kept.device)
    mask[kept] = False
    return mask.nonzero().squeeze(1)


def _row_tensors(p: nn.Parameter, optimizer: torch.optim.Optimizer) -> dict[str, torch.Tensor]:
    """The parameter and its same-shaped optimizer state (AdamW: exp_avg, exp_avg_sq)."""
    state = optimizer.state.get(p, {})
    return {"param": p.data} | {k: v for k, v in state.items()
                                if torch.is_tensor(v) and v.shape == p.shape}


def optimizer_step(model: Decoder, optimizer: torch.optim.Optimizer, subnet: Subnet,
                   mode: str = "dense", step: Callable[[], object] | None = None) -> None:
    """`optimizer.step()` (or `step()`, e.g. a gradient scaler's) with the chosen treatment of
    parameters outside `subnet`."""
    step = step or optimizer.step
    if mode not in INACTIVE_MODES:
        raise ValueError(f"unknown inactive-params mode {mode!r}; choose one of {INACTIVE_MODES}")
    kept, skipped = model.subnet_slices(subnet)
    for p in skipped:
        p.grad = torch.zeros_like(p) if mode == "dense" else None
    if mode != "frozen":
        step()
        return
    saved = []
    for p, dim, idx in kept:
        outside = _outside(p.size(dim), idx)
        before = {k: t.index_select(dim, outside) for k, t in _row_tensors(p, optimizer).items()}
        saved.append((p, dim, outside, before))
    step()
    for p, dim, outside, before in saved:
        for name, tensor in _row_tensors(p, optimizer).items():
            # moments created by this very step held zero outside the subnet before it
            old = before.get(name)
            tensor.index_copy_(dim, outside, old if old is not None else
                               torch.zeros_like(tensor.index_select(dim, outside)))
