"""Masked Structural Growth (Yao et al., 2023) as the EST paper ran it (section 4.1): stage 1
trains half the layers, heads and MLP width; stage 2 all layers with half the heads and MLP;
stage 3 all heads with half the MLP; stage 4 the full model (boundaries 20k/40k/70k of 150k).

The small structures are fixed prefixes of the full model (the first layers, KV groups and
neurons), executed as a `Subnet` without rescaling, so each stage really computes only its
structure. A grown part enters through a mask that rises linearly from 0 at the growth step
to 1 over `ramp` of the run (MSG's code: 5000 steps; 5000/150000 here), which makes growth
strictly function-preserving whatever the new weights are:
- new layers: both residual branches multiplied by the mask (0 = identity block); their
  weights are copies of the first layers, as MSG's default stacking copies the small model's
  layers on top, and their optimizer state starts empty;
- new heads / neurons: their outputs multiplied by the mask; their weights are the untouched
  initial values (a fresh initialisation from the same distribution).
Parts not yet grown do not exist for MSG, so the optimizer treats everything outside the
structure as `frozen` (no update, no weight decay, no moments), whatever --inactive-params says.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from est_analysis.domains import PROBABILITY, declared
from est_analysis.methods.base import SubnetPolicy
from est_analysis.models.base import Decoder
from est_analysis.model_config import ModelConfig
from est_analysis.schedule import Schedule
from est_analysis.subnet import LayerLoad, Rates, Subnet

PAPER_STEPS, GROW_TIME = 150_000, 5000
# (p_H, p_M, p_L) of each stage, as fractions of the full model
MSG_STAGES = ((20_000, Rates(0.5, 0.5, 0.5)), (40_000, Rates(0.5, 0.5, 1.0)),
              (70_000, Rates(1.0, 0.5, 1.0)), (150_000, Rates(1.0, 1.0, 1.0)))


@dataclass(frozen=True)
class MsgOptions:
    ramp: float = declared(GROW_TIME / PAPER_STEPS, PROBABILITY)  # mask 0 -> 1 over this
    # fraction of the run


def msg_schedule(total_steps: int) -> Schedule:
    return Schedule.from_fractions([b / PAPER_STEPS for b, _ in MSG_STAGES],
                                   [r for _, r in MSG_STAGES], total_steps)


@dataclass
class MsgPolicy(SubnetPolicy):
    config: ModelConfig
    total_steps: int
    options: MsgOptions
    inactive_mode: str | None = "frozen"

    def __post_init__(self) -> None:
        self.schedule = msg_schedule(self.total_steps)
        c = self.config
        if c.n_layer % 2 or c.n_kv_head % 2 or c.d_mlp % 2:
            raise ValueError(f"MSG halves layers, KV groups and MLP width; {c.name} has "
                             f"{c.n_layer} layers, {c.n_kv_head} KV groups, {c.d_mlp} neurons")
        self.ramp_steps = max(1, round(self.options.ramp * self.total_steps))
        self.small_layers = c.n_layer // 2
        self.small_heads = torch.arange(c.n_head // 2)  # the first KV groups' query heads
        self.small_neurons = torch.arange(c.d_mlp // 2)

    def _mask(self, step: int, stage: int) -> float:
        """The growth mask of the part added at the start of `stage` (1-based, >= 2)."""
        grown_at = self.schedule.stage_starts()[stage - 1]
        return min(1.0, (step - grown_at) / self.ramp_steps)

    def _ramp(self, n_old: int, n_new: int, mask: float) -> torch.Tensor | float:
        return 1.0 if mask == 1.0 else torch.cat([torch.ones(n_old), torch.full((n_new,), mask)])

    def subnet(self, step: int) -> Subnet:
        stage = self.schedule.stage_at(step) + 1
        c, half_layers = self.config, self.small_layers
        if stage == 1:
            layers, branch = tuple(range(half_layers)), None
        else:
            layers, mask = tuple(range(c.n_layer)), self._mask(step, 2)
            branch = None if mask == 1.0 else (1.0,) * half_layers + (mask,) * half_layers
        n = len(layers)
        heads, head_scale = self.small_heads, 1.0
        if stage >= 3:
            heads = None
            head_scale = self._ramp(c.n_head // 2, c.n_head - c.n_head // 2, self._mask(step, 3))
        neurons, neuron_scale = self.small_neurons, 1.0
        if stage == 4:
            neurons = None
            neuron_scale = self._ramp(c.d_mlp // 2, c.d_mlp - c.d_mlp // 2, self._mask(step, 4))
        return Subnet(layers, (heads,) * n, (neurons,) * n, (head_scale,) * n,
                      (neuron_scale,) * n, branch)

    def eval_subnet(self, step: int) -> Subnet | None:
        """MSG's model is its current structure, masks included."""
        return self.subnet(step)

    def grow(self, step: int, model: Decoder, optimizer: torch.optim.Optimizer
             ) -> tuple[Decoder, torch.optim.Optimizer]:
        """At the layer-growth step, copy the first half of the layers onto the second half."""
        if step == self.schedule.stage_starts()[1]:
            with torch.no_grad():
                for i in range(self.small_layers):
                    source, target = model.blocks[i], model.blocks[self.small_layers + i]
                    for p_target, p_source in zip(target.parameters(), source.parameters()):
                        p_target.copy_(p_source)
                        optimizer.state.pop(p_target, None)
        return model, optimizer

    def expected_loads(self, step: int) -> list[LayerLoad]:
        subnet, c = self.subnet(step), self.config
        counts = dict(zip(subnet.layers, subnet.counts(c)))
        return [LayerLoad(1.0, *counts[i]) if i in counts else LayerLoad(0.0, 0, 0)
                for i in range(c.n_layer)]

    @property
    def skips_layers(self) -> bool:
        return True
