"""Staged Training's width-growth operator (Shen et al., ICML 2022, section 3): a model of
hidden size d becomes one of hidden size 2d that computes the same function.

The grown model carries two copies of the small model's hidden state, [h, h]: embeddings are
duplicated along the hidden axis, every weight matrix becomes block-diagonal with the small
matrix in both blocks (attention gets twice the heads, of the same size; the MLP twice the
neurons), norms and biases are duplicated. LayerNorm/RMSNorm of [h, h] equal [norm(h), norm(h)],
so every layer keeps computing [f(h), f(h)]; the final norm's gain (and bias) are halved so
that the LM head, whose input columns are duplicated, still gives the same logits.

Optimizer state follows the same map (their training-dynamics-preserving choice): each copy of
a parameter receives half the small model's gradient, so AdamW's first moment is halved and the
second quartered, which leaves the Adam update of every copied entry equal to the small
model's; the final norm's gain, whose gradient is not halved, keeps its state as is.

Symmetry breaking (ours): Shen et al. train with dropout, which lets the two copies diverge.
Our models have no dropout, and under gradient descent an exactly symmetric pair stays
symmetric forever. We therefore perturb every block-diagonal matrix by a zero-sum noise,
[[A - N1, N1], [N2, A - N2]], which is exact on the duplicated input [h, h] (the function is
unchanged) while the copies are no longer identical. `noise=0` gives their operator exactly.
"""

from __future__ import annotations

import torch

from est_analysis.models import Decoder, build_model
from est_analysis.model_config import ModelConfig

ADAM_MOMENT_SCALE = {"exp_avg": 0.5, "exp_avg_sq": 0.25}
FUSED_CHUNKS = {"qkv.weight": 3, "qkv.bias": 3}  # GPT-2's fused Q/K/V: grow each part apart


def _block_diagonal(small: torch.Tensor, noise: float, generator: torch.Generator | None
                    ) -> torch.Tensor:
    rows, cols = small.shape
    big = small.new_zeros(2 * rows, 2 * cols)
    big[:rows, :cols] = small
    big[rows:, cols:] = small
    if noise > 0:
        for row_block in (slice(0, rows), slice(rows, 2 * rows)):
            n = torch.randn(rows, cols, generator=generator, dtype=torch.float64).to(small) * noise
            other = slice(cols, 2 * cols) if row_block.start == 0 else slice(0, cols)
            own = slice(0, cols) if row_block.start == 0 else slice(cols, 2 * cols)
            big[row_block, own] -= n
            big[row_block, other] += n
    return big


def grow_tensor(name: str, small: torch.Tensor, big_shape: torch.Size, noise: float = 0.0,
                generator: torch.Generator | None = None) -> torch.Tensor:
    """The grown version of parameter (or same-shaped state) `name`."""
    chunks = next((k for suffix, k in FUSED_CHUNKS.items() if name.endswith(suffix)), 1)
    parts = small.chunk(chunks, dim=0)
    if small.dim() == 1:  # norms and biases: duplicate
        return torch.cat([torch.cat([p, p]) for p in parts])
    if big_shape[0] == small.shape[0]:  # embeddings and the LM head: duplicate along d
        return torch.cat([small, small], dim=1)
    return torch.cat([_block_diagonal(p, noise, generator) for p in parts], dim=0)


def grow_width(model: Decoder, optimizer: torch.optim.Optimizer, big_config: ModelConfig,
               noise: float = 0.0, generator: torch.Generator | None = None
               ) -> tuple[Decoder, torch.optim.Optimizer]:
    """The grown model and a new optimizer of the same class and hyper-parameters whose state
    is the grown state of `optimizer`."""
    device = next(model.parameters()).device
    big = build_model(big_config).to(device)
    small_params = dict(model.named_parameters())
    big_params = dict(big.named_parameters())
    if set(small_params) != set(big_params):
        raise ValueError(f"cannot grow {model.config.name} into {big_config.name}: their "
                         "parameters differ")
    with torch.no_grad():
        for name, p in small_params.items():
            grown = grow_tensor(name, p, big_params[name].shape, noise, generator)
            if name.startswith("norm_f."):
                grown = grown / 2
            big_params[name].copy_(grown)

    name_of = {id(p): name for name, p in small_params.items()}
    groups = [{**{k: v for k, v in group.items() if k != "params"},
               "params": [big_params[name_of[id(p)]] for p in group["params"]]}
              for group in optimizer.param_groups]
    grown_optimizer = type(optimizer)(groups)
    for name, p in small_params.items():
        state = optimizer.state.get(p)
        if not state:
            continue
        target = big_params[name]
        new_state = {}
        for key, value in state.items():
            if torch.is_tensor(value) and value.shape == p.shape:
                value = grow_tensor(name, value, target.shape)
                if not name.startswith("norm_f."):
                    value = value * ADAM_MOMENT_SCALE.get(key, 1.0)
            new_state[key] = value.clone() if torch.is_tensor(value) else value
        grown_optimizer.state[target] = new_state
    return big, grown_optimizer
