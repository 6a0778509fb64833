"""Loss along lines and planes in weight space: L(theta + a d1 + b d2) on a grid (Li et al.,
NeurIPS 2018, eq. 1-2), and L((1 - a) theta_A + a theta_B) between two checkpoints (Goodfellow
et al., ICLR 2015). The model's weights are restored afterwards, whatever happens."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

from est_analysis.landscape.directions import Direction
from est_analysis.loss import Batch, mean_loss

LossFn = Callable[[nn.Module], torch.Tensor]  # the loss of the module at its current weights


def batch_loss_fn(batches: list[Batch]) -> LossFn:
    """Mean next-token cross-entropy of a decoder over fixed `batches`."""
    return lambda model: mean_loss(model, batches)


@contextmanager
def restored_weights(model: nn.Module) -> Iterator[dict[str, torch.Tensor]]:
    """Yield a copy of the weights; put them back on exit."""
    origin = {name: p.detach().clone() for name, p in model.named_parameters()}
    try:
        yield origin
    finally:
        with torch.no_grad():
            for name, p in model.named_parameters():
                p.copy_(origin[name])


def _evaluate(model: nn.Module, loss_fn: LossFn, weights: dict[str, torch.Tensor]) -> float:
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.copy_(weights[name])
        return float(loss_fn(model))


def _check(model: nn.Module, *directions: Direction) -> None:
    names = {name for name, _ in model.named_parameters()}
    for direction in directions:
        if set(direction) != names:
            raise ValueError("the direction does not match the model's parameters "
                             f"(missing {sorted(names - set(direction))[:3]}, extra "
                             f"{sorted(set(direction) - names)[:3]})")


def slice_1d(model: nn.Module, loss_fn: LossFn, direction: Direction,
             alphas: torch.Tensor | list[float], progress: bool = False) -> pd.DataFrame:
    """Columns alpha, loss: L(theta + alpha d)."""
    _check(model, direction)
    model.eval()
    rows = []
    with restored_weights(model) as origin:
        for alpha in tqdm(list(map(float, alphas)), disable=not progress, desc="1D slice"):
            point = {n: origin[n] + alpha * direction[n] for n in origin}
            rows.append({"alpha": alpha, "loss": _evaluate(model, loss_fn, point)})
    return pd.DataFrame(rows)


def slice_2d(model: nn.Module, loss_fn: LossFn, first: Direction, second: Direction,
             alphas: torch.Tensor | list[float], betas: torch.Tensor | list[float],
             progress: bool = False) -> pd.DataFrame:
    """Columns alpha, beta, loss: L(theta + alpha d1 + beta d2) on the grid alphas x betas."""
    _check(model, first, second)
    model.eval()
    grid = [(float(a), float(b)) for a in alphas for b in betas]
    rows = []
    with restored_weights(model) as origin:
        for alpha, beta in tqdm(grid, disable=not progress, desc="2D slice"):
            point = {n: origin[n] + alpha * first[n] + beta * second[n] for n in origin}
            rows.append({"alpha": alpha, "beta": beta, "loss": _evaluate(model, loss_fn, point)})
    return pd.DataFrame(rows)


def interpolate(model: nn.Module, other: nn.Module, loss_fn: LossFn,
                alphas: torch.Tensor | list[float], progress: bool = False) -> pd.DataFrame:
    """Columns alpha, loss: L((1 - alpha) theta_model + alpha theta_other), evaluated in `model`
    (alpha = 0 is `model`, 1 is `other`; values outside [0, 1] extrapolate)."""
    theirs = dict(other.named_parameters())
    mine = dict(model.named_parameters())
    if set(theirs) != set(mine) or any(theirs[n].shape != p.shape for n, p in mine.items()):
        raise ValueError("the two models have different architectures; interpolation needs two "
                         "checkpoints of the same model config")
    model.eval()
    rows = []
    with restored_weights(model) as origin:
        for alpha in tqdm(list(map(float, alphas)), disable=not progress, desc="interpolation"):
            point = {n: (1 - alpha) * origin[n] + alpha * theirs[n].detach().to(origin[n].device)
                     for n in origin}
            rows.append({"alpha": alpha, "loss": _evaluate(model, loss_fn, point)})
    return pd.DataFrame(rows)
