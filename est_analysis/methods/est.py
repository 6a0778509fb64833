"""Evolving Subnetwork Training (Algorithm 1): at each step, a random subnet at the
scheduler's current rates, drawn from a generator seeded by (seed, step)."""

from __future__ import annotations

from dataclasses import dataclass

from est_analysis.models.config import ModelConfig
from est_analysis.schedule import Schedule
from est_analysis.subnet import Rates, Subnet, check_rates


class SubnetPolicy:
    """Base of all methods: a schedule of stages and the subnet of each step."""

    config: ModelConfig
    schedule: Schedule

    def subnet(self, step: int) -> Subnet:
        raise NotImplementedError

    def rates(self, step: int) -> Rates:
        return self.schedule.rates_at(step)


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
