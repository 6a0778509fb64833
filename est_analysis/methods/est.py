"""Evolving Subnetwork Training (Algorithm 1): at each step, a random subnet at the
scheduler's current rates, drawn from a generator seeded by (seed, step).

`neuron_scaling` (a method option, issue #33) chooses how sampled MLP neurons are rescaled:

- `inverted` (default, the paper's eq. 6): the kept neurons' output is multiplied by 1/p_M
  while training; the full model is used as it is.
- `update`: as `inverted`, but while neurons are sampled the AdamW update of each MLP's output
  projection is multiplied by p_M. Adam's step size ignores the gradient's scale, so under
  `inverted` a sampled stage moves the MLP's output about 1/p_M times as far per step as the
  full model does; this arm undoes that.
- `classic`: no 1/p_M in training; the full model's MLP output is multiplied by p_M while
  neurons are sampled (classic, non-inverted dropout at evaluation). At a stage boundary the
  output projections are multiplied by f(before) / f(after), f = p_M of a sampled stage and 1
  of a full one, so the full-width function stays the same and a full stage trains the folded
  weights. AdamW's moments are left as they are.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from est_analysis.methods.base import SubnetPolicy
from est_analysis.model_config import ModelConfig
from est_analysis.models.base import Decoder
from est_analysis.schedule import Schedule
from est_analysis.subnet import Subnet, check_rates

NEURON_SCALINGS = ("inverted", "update", "classic")
MLP_OUTPUT = "mlp_output"  # the group of parameters whose update `update` scales


@dataclass(frozen=True)
class EstOptions:
    neuron_scaling: str = "inverted"

    def __post_init__(self) -> None:
        if self.neuron_scaling not in NEURON_SCALINGS:
            raise ValueError(f"est option neuron_scaling={self.neuron_scaling!r}; choose one of "
                             f"{NEURON_SCALINGS}")


def mlp_output_weights(model: Decoder) -> list[torch.nn.Parameter]:
    """Each block's MLP output-projection weight (the last of its sliced parameters)."""
    return [block.mlp.sliced_parameters(None)[-1][0] for block in model.blocks]


@dataclass
class EstPolicy(SubnetPolicy):
    config: ModelConfig
    schedule: Schedule
    seed: int
    options: EstOptions = field(default_factory=EstOptions)

    def __post_init__(self) -> None:
        for rates in self.schedule.rates:  # fail at start-up, not at the first step of a stage
            check_rates(self.config, rates)

    def subnet(self, step: int) -> Subnet:
        subnet = Subnet.for_step(self.config, self.schedule.rates_at(step), self.seed, step)
        if self.options.neuron_scaling == "classic" and self._full_width_factor(step) != 1.0:
            subnet = Subnet(subnet.layers, subnet.heads, subnet.neurons, subnet.head_scale,
                            (1.0,) * len(subnet.layers), subnet.branch_scale)
        return subnet

    def eval_subnet(self, step: int) -> Subnet | None:
        factor = self._full_width_factor(step)
        if self.options.neuron_scaling != "classic" or factor == 1.0:
            return None
        full = Subnet.full(self.config)
        return Subnet(full.layers, full.heads, full.neurons, None, (factor,) * len(full.layers))

    def grow(self, step: int, model: Decoder, optimizer: torch.optim.Optimizer
             ) -> tuple[Decoder, torch.optim.Optimizer]:
        if self.options.neuron_scaling == "classic" and step > 0 and step in self.schedule.stage_starts():
            ratio = self._full_width_factor(step - 1) / self._full_width_factor(step)
            if ratio != 1.0:
                with torch.no_grad():
                    for weight in mlp_output_weights(model):
                        weight.mul_(ratio)
        return model, optimizer

    def update_scales(self, step: int) -> dict[str, float]:
        if self.options.neuron_scaling != "update":
            return {}
        return {MLP_OUTPUT: self.schedule.rates_at(step).p_mlp}

    def scaled_parameters(self, model: Decoder) -> dict[str, list[torch.nn.Parameter]]:
        return {MLP_OUTPUT: mlp_output_weights(model)} if self.options.neuron_scaling == "update" else {}

    def _full_width_factor(self, step: int) -> float:
        """p_M while neurons are sampled, else 1."""
        return float(self.schedule.rates_at(step).p_mlp)
