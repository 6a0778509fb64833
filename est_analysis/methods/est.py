"""Evolving Subnetwork Training (Algorithm 1): at each step, a random subnet at the
scheduler's current rates, drawn from a generator seeded by (seed, step)."""

from __future__ import annotations

from dataclasses import dataclass

from est_analysis.methods.base import SubnetPolicy
from est_analysis.model_config import ModelConfig
from est_analysis.schedule import Schedule
from est_analysis.subnet import Subnet, check_rates


@dataclass
class EstPolicy(SubnetPolicy):
    config: ModelConfig
    schedule: Schedule
    seed: int

    def __post_init__(self) -> None:
        for rates in self.schedule.rates:  # fail at start-up, not at the first step of a stage
            check_rates(self.config, rates)

    def subnet(self, step: int) -> Subnet:
        return Subnet.for_step(self.config, self.schedule.rates_at(step), self.seed, step)
