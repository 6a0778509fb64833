"""Staged Training (Shen et al., ICML 2022) as the EST paper ran it (section 4.1): the first
third of the run (50k of 150k steps) trains a model of half the hidden size, which the
width-growth operator (`width_growth.py`) then turns into the full model, trained to the end.

The half-width model halves the hidden size, the number of (KV) heads and the MLP width and
keeps the head size, as the operator doubles heads rather than their size. The learning-rate
schedule runs on across the growth (the EST paper's single 150k-step schedule).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from est_analysis.domains import NONNEGATIVE, OPEN_UNIT, declared
from est_analysis.methods.base import SubnetPolicy
from est_analysis.methods.width_growth import grow_width
from est_analysis.models.base import Decoder
from est_analysis.model_config import ModelConfig
from est_analysis.schedule import Schedule
from est_analysis.seeding import seeded_generator
from est_analysis.subnet import Rates, Subnet

GROWTH_SALT = 3


@dataclass(frozen=True)
class StagedOptions:
    grow_at: float = declared(1 / 3, OPEN_UNIT)  # fraction of the run trained at half width
    noise: float = declared(1e-3, NONNEGATIVE)  # std of the zero-sum symmetry-breaking
    # perturbation (0: none)


def half_width(config: ModelConfig) -> ModelConfig:
    """The half-hidden-size model of Staged Training's first stage."""
    if config.d_model % 2 or config.n_kv_head % 2 or config.d_mlp % 2:
        raise ValueError(f"Staged Training halves d_model, KV heads and MLP width; {config.name} "
                         f"has {config.d_model}, {config.n_kv_head} and {config.d_mlp}")
    return replace(config, name=f"{config.name}-half-width", d_model=config.d_model // 2,
                   n_head=config.n_head // 2, n_kv_head=config.n_kv_head // 2,
                   d_mlp=config.d_mlp // 2)


@dataclass
class StagedPolicy(SubnetPolicy):
    config: ModelConfig
    total_steps: int
    seed: int
    options: StagedOptions

    def __post_init__(self) -> None:
        self.schedule = Schedule.from_fractions([self.options.grow_at, 1.0], [Rates()] * 2,
                                                self.total_steps)
        self.small = half_width(self.config)
        self.grow_step = self.schedule.boundaries[0]

    def model_config_at(self, step: int) -> ModelConfig:
        return self.small if step < self.grow_step else self.config

    def subnet(self, step: int) -> Subnet:
        return Subnet.full(self.model_config_at(step))

    def grow(self, step: int, model: Decoder, optimizer: torch.optim.Optimizer
             ) -> tuple[Decoder, torch.optim.Optimizer]:
        if step != self.grow_step or model.config != self.small:
            return model, optimizer
        generator = seeded_generator(self.seed, step, GROWTH_SALT)
        return grow_width(model, optimizer, self.config, self.options.noise, generator)

    @property
    def skips_layers(self) -> bool:
        return False
