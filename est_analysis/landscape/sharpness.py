"""Epsilon-sharpness (Keskar et al., ICLR 2017, eq. 4): the largest loss increase inside the box
|z_i| <= eps (|theta_i| + 1) around the weights, as a percentage of 1 + L(theta):

    phi(theta, eps) = 100 (max_z L(theta + z) - L(theta)) / (1 + L(theta)).

Keskar et al. solve the inner maximisation approximately with L-BFGS-B; we take a few projected
signed-gradient ascent steps (each moves every coordinate by `step_size` of its box half-width,
then clips to the box), which is deterministic and needs one gradient per step. The result is a
lower bound of the true maximum; more steps can only tighten it in expectation.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn
from tqdm.auto import tqdm

from est_analysis.landscape.probes import LossFn, restored_weights


@dataclass
class SharpnessResult:
    eps: float
    loss: float  # L(theta)
    max_loss: float  # the largest L(theta + z) the ascent found
    sharpness: float  # 100 (max_loss - loss) / (1 + loss)
    steps: int

    def to_dict(self) -> dict:
        return asdict(self)


def epsilon_sharpness(model: nn.Module, loss_fn: LossFn, eps: float = 1e-3, steps: int = 10,
                      step_size: float = 0.25, progress: bool = False) -> SharpnessResult:
    """phi(theta, eps) by `steps` projected ascent steps; the model's weights are restored."""
    if not eps > 0:
        raise ValueError(f"eps={eps} must be positive: it is the box's relative half-width")
    if steps < 1 or not step_size > 0:
        raise ValueError(f"steps={steps}, step_size={step_size}: need steps >= 1, step_size > 0")
    model.eval()
    params = [p for _, p in model.named_parameters()]
    with restored_weights(model) as origin:
        radius = [eps * (origin[n].abs() + 1) for n, _ in model.named_parameters()]
        with torch.no_grad():
            base = float(loss_fn(model))
        best = base
        offsets = [torch.zeros_like(p) for p in params]
        for _ in tqdm(range(steps), disable=not progress, desc="sharpness ascent"):
            grads = torch.autograd.grad(loss_fn(model), params, allow_unused=True)
            with torch.no_grad():
                for p, z, g, r, start in zip(params, offsets, grads, radius, origin.values()):
                    if g is not None:
                        z.add_(step_size * r * g.sign()).clamp_(-r, r)
                    p.copy_(start + z)
                best = max(best, float(loss_fn(model)))
    return SharpnessResult(eps, base, best, 100 * (best - base) / (1 + base), steps)
