"""Which part of the model one training step computes (section 3.2), and how it is sampled.

A `Subnet` lists the active layers (eq. 7) and, for each active layer, the kept attention
heads (eq. 5) and MLP neurons (eq. 6). `None` means "all of them" and lets the model take the
unsliced fast path. Optional scales let other methods reuse the same execution path: a
per-layer multiplier of both residual branches (layer dropping's 1/keep-probability, MSG's
growth mask of a new layer) and per-unit multipliers of kept heads and neurons (MSG's masks of
new heads and neurons). Without them a layer's kept units are rescaled by EST's 1/p = N/|I|. Sampling draws exactly `N * p` units without replacement, as the paper's
|I| = N p; `N * p` must therefore be a whole number (see `units_kept`).

Grouped-query attention: heads are sampled as whole key/value groups, each with all of its
query heads, so the kept K/V projections are really smaller too and every kept query head
keeps the key/value head it was trained with. `p_H` is therefore a fraction of KV groups
(equal to the fraction of query heads); for GPT-2 a group is one head.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch

from est_analysis.model_config import ModelConfig
from est_analysis.seeding import seeded_generator


class Rates(NamedTuple):
    """Sampling rates (p_H, p_M, p_L) of Definition 3.1."""

    p_heads: float = 1.0
    p_mlp: float = 1.0
    p_layers: float = 1.0

    @property
    def is_full(self) -> bool:
        return self == (1.0, 1.0, 1.0)


def units_kept(n_units: int, rate: float, what: str) -> int:
    """|I| = N p (section 3.2). Rule: N p must be an integer (within 1e-6) and at least 1."""
    if not 0.0 < rate <= 1.0:
        raise ValueError(f"{what}: rate {rate} is outside (0, 1]; sampling rates are fractions")
    kept = n_units * rate
    if abs(kept - round(kept)) > 1e-6 or round(kept) < 1:
        raise ValueError(
            f"{what}: rate {rate} x {n_units} units = {kept:g} is not a whole number of units. "
            f"EST keeps exactly N*p units; choose p from "
            f"{[f'{k}/{n_units}' for k in range(1, n_units + 1)]}"
        )
    return int(round(kept))


def check_rates(config: ModelConfig, rates: Rates | tuple[float, float, float]
                ) -> tuple[int, int, int]:
    """Kept (KV groups, neurons, layers) at `rates`; a clear error if N p is not whole."""
    p_heads, p_mlp, p_layers = rates
    return (units_kept(config.n_kv_head, p_heads, "p_H (attention heads / KV groups)"),
            units_kept(config.d_mlp, p_mlp, "p_M (MLP neurons)"),
            units_kept(config.n_layer, p_layers, "p_L (layers)"))


def _choose(n: int, k: int, generator: torch.Generator) -> torch.Tensor | None:
    """k of range(n) without replacement, sorted; None when k == n (keep everything)."""
    if k == n:
        return None
    return torch.randperm(n, generator=generator)[:k].sort().values


# per active layer: None (EST's N/|I| for a subset, 1 for all units), one number for every
# kept unit, or a tensor with one multiplier per kept unit
UnitScale = "float | torch.Tensor | None"


@dataclass(frozen=True)
class Subnet:
    layers: tuple[int, ...]  # active layer ids, ascending
    heads: tuple[torch.Tensor | None, ...]  # per active layer: kept query-head ids, or None = all
    neurons: tuple[torch.Tensor | None, ...]  # per active layer: kept MLP neuron ids, or None = all
    head_scale: tuple[UnitScale, ...] | None = None  # per active layer; None: EST's 1/p_H
    neuron_scale: tuple[UnitScale, ...] | None = None  # per active layer; None: EST's 1/p_M
    branch_scale: tuple[float, ...] | None = None  # per active layer, on both branches; None: 1

    @staticmethod
    def full(config: ModelConfig) -> "Subnet":
        n = config.n_layer
        return Subnet(tuple(range(n)), (None,) * n, (None,) * n)

    @staticmethod
    def sample(config: ModelConfig, rates: Rates | tuple[float, float, float],
               generator: torch.Generator) -> "Subnet":
        """Draw I_L, then I_H and I_M for each active layer (Algorithm 1, lines 5 and 12-13)."""
        n_groups, n_neurons, n_layers = check_rates(config, rates)
        layer_ids = _choose(config.n_layer, n_layers, generator)
        layers = tuple(range(config.n_layer)) if layer_ids is None else tuple(layer_ids.tolist())
        heads, neurons = [], []
        for _ in layers:
            groups = _choose(config.n_kv_head, n_groups, generator)
            heads.append(None if groups is None else _query_heads(groups, config.group_size))
            neurons.append(_choose(config.d_mlp, n_neurons, generator))
        return Subnet(layers, tuple(heads), tuple(neurons))

    @staticmethod
    def for_step(config: ModelConfig, rates: Rates | tuple[float, float, float],
                 seed: int, step: int) -> "Subnet":
        """The subnet of training step `step` of a run seeded with `seed`: drawn from a generator
        seeded by (seed, step) only, so a resumed run and every process of a multi-process run
        draw the same subnet."""
        if Rates(*rates).is_full:
            return Subnet.full(config)
        return Subnet.sample(config, rates, seeded_generator(seed, step))

    def to(self, device: torch.device | str) -> "Subnet":
        move = lambda t: t.to(device, non_blocking=True) if torch.is_tensor(t) else t  # noqa: E731
        moved = lambda ts: None if ts is None else tuple(map(move, ts))  # noqa: E731
        return Subnet(self.layers, moved(self.heads), moved(self.neurons), moved(self.head_scale),
                      moved(self.neuron_scale), self.branch_scale)

    def layer_plans(self) -> list[dict]:
        """Keyword arguments of `Block.forward` for each active layer, in order."""
        n = len(self.layers)
        head_scale, neuron_scale = self.head_scale or (None,) * n, self.neuron_scale or (None,) * n
        branch_scale = self.branch_scale or (1.0,) * n
        return [dict(heads=h, neurons=m, head_scale=hs, neuron_scale=ms, branch_scale=b)
                for h, m, hs, ms, b in zip(self.heads, self.neurons, head_scale, neuron_scale,
                                           branch_scale)]

    def counts(self, config: ModelConfig) -> list[tuple[int, int]]:
        """(kept query heads, kept neurons) for each active layer."""
        return [(config.n_head if h is None else len(h), config.d_mlp if m is None else len(m))
                for h, m in zip(self.heads, self.neurons)]

    def same_as(self, other: "Subnet") -> bool:
        def eq(a: object, b: object) -> bool:
            if torch.is_tensor(a) and torch.is_tensor(b):
                return torch.equal(a.cpu(), b.cpu())
            return not torch.is_tensor(a) and not torch.is_tensor(b) and a == b
        return (self.layers == other.layers
                and all(eq(a[k], b[k]) for a, b in zip(self.layer_plans(), other.layer_plans())
                        for k in a))


def _query_heads(groups: torch.Tensor, group_size: int) -> torch.Tensor:
    """Query-head ids of the given KV groups (head h belongs to group h // group_size)."""
    return (groups[:, None] * group_size + torch.arange(group_size)).flatten()


class LayerLoad(NamedTuple):
    """The expected work of one layer in one step, what the cost simulator prices: the
    probability that the layer runs, and its kept heads and neurons (in that step's model)."""

    keep_prob: float
    heads: int
    neurons: int


def uniform_loads(config: ModelConfig, rates: Rates) -> list[LayerLoad]:
    """EST's loads at `rates`: every layer runs with probability p_L and keeps N p of its heads
    and neurons."""
    p_heads, p_mlp, p_layers = rates
    return [LayerLoad(p_layers, round(config.n_head * p_heads), round(config.d_mlp * p_mlp))] * config.n_layer
