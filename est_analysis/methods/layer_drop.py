"""Progressive Layer Dropping (Zhang & He, NeurIPS 2020), as DeepSpeed implements it: at step t
the keep probability theta(t) = (1 - theta_bar) exp(-gamma t) + theta_bar decays from 1 to its
floor theta_bar, and layer l (1-based) of L is kept with probability 1 - (l / L)(1 - theta(t)),
so deeper layers are dropped more. Each layer is kept or dropped independently per step; a kept
layer's branches are multiplied by 1 / keep-probability (inverted scaling, so the full model is
used unscaled at evaluation). With `progressive=false`, theta(t) = theta_bar throughout: plain
stochastic depth with Huang et al.'s (2016) linear decay rule.

DeepSpeed's defaults are theta_bar = 0.5 and gamma = 0.001 per step. Short runs would never
leave the ramp at that gamma, so the default here keeps the ramp's share of the run: gamma =
0.001 * 150000 / total_steps, the default's shape on the EST paper's 150k-step run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from est_analysis.domains import BOOLEAN, NONNEGATIVE, UNIT, declared
from est_analysis.methods.base import SubnetPolicy
from est_analysis.model_config import ModelConfig
from est_analysis.schedule import Schedule
from est_analysis.seeding import seeded_generator
from est_analysis.subnet import LayerLoad, Rates, Subnet

DEEPSPEED_GAMMA, REFERENCE_STEPS = 0.001, 150_000


@dataclass(frozen=True)
class LayerDropOptions:
    theta: float = declared(0.5, UNIT)  # theta_bar, the floor of the keep probability
    gamma: float | None = declared(None, NONNEGATIVE)  # decay per step; None: DeepSpeed's
    # 0.001 rescaled to the run
    progressive: bool = declared(True, BOOLEAN)  # False: stochastic depth (theta = theta_bar
    # from the start)


@dataclass
class LayerDropPolicy(SubnetPolicy):
    config: ModelConfig
    total_steps: int
    seed: int
    options: LayerDropOptions

    def __post_init__(self) -> None:
        self.schedule = Schedule((self.total_steps,), (Rates(),))
        self.gamma = (self.options.gamma if self.options.gamma is not None
                      else DEEPSPEED_GAMMA * REFERENCE_STEPS / self.total_steps)

    def theta(self, step: int) -> float:
        if not self.options.progressive:
            return self.options.theta
        return (1.0 - self.options.theta) * math.exp(-self.gamma * step) + self.options.theta

    def keep_probs(self, step: int) -> list[float]:
        """Keep probability of each layer at `step` (deeper layers lower)."""
        theta, n = self.theta(step), self.config.n_layer
        return [1.0 - (layer / n) * (1.0 - theta) for layer in range(1, n + 1)]

    def subnet(self, step: int) -> Subnet:
        probs = self.keep_probs(step)
        draws = torch.rand(len(probs), generator=seeded_generator(self.seed, step), dtype=torch.float64)
        layers = tuple(i for i, (u, p) in enumerate(zip(draws.tolist(), probs)) if u < p)
        return Subnet(layers, (None,) * len(layers), (None,) * len(layers),
                      branch_scale=tuple(1.0 / probs[i] for i in layers))

    def rates(self, step: int) -> Rates:
        probs = self.keep_probs(step)
        return Rates(1.0, 1.0, sum(probs) / len(probs))

    def expected_loads(self, step: int) -> list[LayerLoad]:
        return [LayerLoad(p, self.config.n_head, self.config.d_mlp) for p in self.keep_probs(step)]

    def load_changes(self) -> list[int]:
        """Every step of the ramp; after exp(-gamma t) < 1e-12 the loads are constant."""
        if not self.options.progressive or self.gamma == 0:
            return [0]
        return list(range(min(self.total_steps, math.ceil(-math.log(1e-12) / self.gamma))))

    @property
    def skips_layers(self) -> bool:
        return self.options.theta < 1.0
