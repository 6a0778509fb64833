"""What every training method provides to the trainer and the cost simulator.

A method is a policy over subnetworks: for each step, which `Subnet` of the model to train.
The few methods that change the model itself (Staged Training's width growth, MSG's layer
copies) do it in `grow`, called before the step they start at.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch

from est_analysis.domains import check_fields
from est_analysis.models.base import Decoder
from est_analysis.model_config import ModelConfig
from est_analysis.schedule import Schedule
from est_analysis.subnet import LayerLoad, Rates, Subnet, uniform_loads


class SubnetPolicy:
    """Base of all methods. Subclasses set `config` (the final, full model), `schedule` (stage
    boundaries, logged rates) and implement `subnet`."""

    config: ModelConfig
    schedule: Schedule
    inactive_mode: str | None = None  # forced optimizer treatment outside the subnet, if any

    def subnet(self, step: int) -> Subnet:
        raise NotImplementedError

    def rates(self, step: int) -> Rates:
        """Nominal (p_H, p_M, p_L) of the step, for the metrics log."""
        return self.schedule.rates_at(step)

    def model_config_at(self, step: int) -> ModelConfig:
        """The model trained at `step` (Staged Training's is smaller before growth)."""
        return self.config

    def eval_subnet(self, step: int) -> Subnet | None:
        """What "the model" is after `step`, for validation: the full model (None) unless the
        method's model is still a smaller structure (MSG)."""
        return None

    def grow(self, step: int, model: Decoder, optimizer: torch.optim.Optimizer
             ) -> tuple[Decoder, torch.optim.Optimizer]:
        """Called before `step` is trained; growth methods return the grown model/optimizer."""
        return model, optimizer

    def update_scales(self, step: int) -> dict[str, float]:
        """Multipliers of the learning rate at `step` for the parameter groups named by
        `scaled_parameters` (none: every parameter steps at the run's LR)."""
        return {}

    def scaled_parameters(self, model: Decoder) -> dict[str, list[torch.nn.Parameter]]:
        """Parameters of `model` the optimizer keeps in groups of their own, by group name,
        so that `update_scales` can scale their updates."""
        return {}

    def expected_loads(self, step: int) -> list[LayerLoad]:
        """Per layer of `model_config_at(step)`: expected work at `step` (for the cost model)."""
        return uniform_loads(self.model_config_at(step), self.rates(step))

    def load_changes(self) -> list[int]:
        """Steps at which `expected_loads` may change (it is constant in between)."""
        return list(self.schedule.stage_starts())

    @property
    def skips_layers(self) -> bool:
        """Whether some steps leave whole layers out (DDP must then look for unused parameters)."""
        return any(r.p_layers < 1 for r in self.schedule.rates)


def parse_options(cls: type, options: dict[str, Any] | None, method: str) -> Any:
    """A method's options dataclass from a {name: value} mapping, with a clear error for names
    the method does not have."""
    options = dict(options or {})
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(options) - fields)
    if unknown:
        raise ValueError(f"method {method!r} has no option(s) {unknown}; its options are "
                         f"{sorted(fields) or 'none'}")
    parsed = cls(**options)
    check_fields(parsed, prefix=f"{method} option ")
    return parsed
