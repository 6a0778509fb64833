"""RAPTR, Random Part Training (Panigrahi et al., ICLR 2025, "Efficient stagewise pretraining via
progressive subnetworks"): each step trains a random path of ell_s layers, ell_s growing stage by
stage up to the full model; a fixed set of layers is on every path.

Choices (the paper's full text is not in this repository; each is an option):
- fixed layers: the first and the last (`fixed="first,last"`), the paper's setting for its
  BERT and UL2 runs as we read it; `"none"` samples every layer.
- path lengths: L/2 rising in equal steps to L over four stages of equal length (the paper's
  6-8-10-12 "Equi" schedule for 12-layer BERT; 3-4-5-6 for our 6-layer cpu models). A custom
  schedule with rates (1, 1, ell/L) per stage replaces it (`--stages/--rates`).
- output scaling: `scale="none"` (default) runs the sampled layers unscaled, as the paper's
  stability argument for stage transitions rests on residual connections and layer norms;
  `scale="inverse"` multiplies each sampled non-fixed layer's branches by 1/q, q its
  inclusion probability, so the expected residual update equals the full model's.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from est_analysis.methods.base import SubnetPolicy
from est_analysis.model_config import ModelConfig
from est_analysis.schedule import Schedule
from est_analysis.seeding import seeded_generator
from est_analysis.subnet import LayerLoad, Rates, Subnet, units_kept

FIXED_CHOICES = ("first,last", "first", "last", "none")
SCALE_CHOICES = ("none", "inverse")


@dataclass(frozen=True)
class RaptrOptions:
    fixed: str = "first,last"
    scale: str = "none"

    def __post_init__(self) -> None:
        if self.fixed not in FIXED_CHOICES:
            raise ValueError(f"raptr option fixed={self.fixed!r}; choose one of {FIXED_CHOICES}")
        if self.scale not in SCALE_CHOICES:
            raise ValueError(f"raptr option scale={self.scale!r}; choose one of {SCALE_CHOICES}")


def default_schedule(config: ModelConfig, total_steps: int) -> Schedule:
    """Four equal stages with path lengths L/2, 2L/3, 5L/6, L (rounded; repeats merged)."""
    n = config.n_layer
    lengths = sorted({max(1, round(n * f)) for f in (1 / 2, 2 / 3, 5 / 6, 1)})
    fractions = [(i + 1) / len(lengths) for i in range(len(lengths))]
    return Schedule.from_fractions(fractions, [Rates(1.0, 1.0, ell / n) for ell in lengths],
                                   total_steps)


@dataclass
class RaptrPolicy(SubnetPolicy):
    config: ModelConfig
    schedule: Schedule
    seed: int
    options: RaptrOptions

    def __post_init__(self) -> None:
        n = self.config.n_layer
        names = {"first": [0], "last": [n - 1], "first,last": [0, n - 1], "none": []}
        self.fixed = tuple(sorted(set(names[self.options.fixed])))
        for stage, (p_heads, p_mlp, p_layers) in enumerate(self.schedule.rates, 1):
            if (p_heads, p_mlp) != (1.0, 1.0):
                raise ValueError(f"raptr stage {stage}: rates ({p_heads}, {p_mlp}, {p_layers}); "
                                 "RAPTR samples layers only, give (1, 1, ell/L)")
            kept = units_kept(n, p_layers, "p_L (RAPTR path length ell / L)")
            if kept < len(self.fixed):
                raise ValueError(f"raptr stage {stage}: a path of {kept} layers cannot hold the "
                                 f"{len(self.fixed)} fixed layers {self.fixed}; lengthen the path "
                                 "or use fixed=none")

    def _path_length(self, step: int) -> int:
        return round(self.config.n_layer * self.schedule.rates_at(step).p_layers)

    def _inclusion(self, step: int) -> float:
        """Probability that a non-fixed layer is on the path."""
        free = self.config.n_layer - len(self.fixed)
        return 1.0 if free == 0 else (self._path_length(step) - len(self.fixed)) / free

    def subnet(self, step: int) -> Subnet:
        n, length = self.config.n_layer, self._path_length(step)
        if length == n:
            return Subnet.full(self.config)
        free = torch.tensor([i for i in range(n) if i not in self.fixed])
        drawn = free[torch.randperm(len(free), generator=seeded_generator(self.seed, step))]
        layers = tuple(sorted(self.fixed + tuple(drawn[: length - len(self.fixed)].tolist())))
        scale = None
        if self.options.scale == "inverse" and length > len(self.fixed):
            boost = 1.0 / self._inclusion(step)
            scale = tuple(1.0 if i in self.fixed else boost for i in layers)
        return Subnet(layers, (None,) * len(layers), (None,) * len(layers), branch_scale=scale)

    def expected_loads(self, step: int) -> list[LayerLoad]:
        q = self._inclusion(step)
        return [LayerLoad(1.0 if i in self.fixed else q, self.config.n_head, self.config.d_mlp)
                for i in range(self.config.n_layer)]
