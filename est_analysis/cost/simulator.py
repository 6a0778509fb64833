"""The scheduler cost simulator of section 3.3 (eq. 8-10): the cost of a step, a stage and a
whole schedule relative to Original, for EST schedules and for any method's policy.

A step is described by its layer loads (per layer: the probability that it runs and its kept
heads and neurons, `subnet.LayerLoad`); EST's uniform loads and every method's
`expected_loads` are priced by the same function, `loads_cost`, under one of two accountings:
- `paper` (eq. 8-10): only the MHA and MLP costs C_H, C_M of the layers,
  N_L p_L (p_H C_H + p_M C_M) / (N_L (C_H + C_M)). C_H : C_M comes from the FLOPs model of
  the config (attention scores included) unless given; it cancels when p_H = p_M.
- `full`: everything the step computes, the never-sampled LM head included, plus elementwise
  work (norms, embedding gradients) estimated by `flops.elementwise_step_flops`.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

import pandas as pd

from est_analysis.cost.flops import (BACKWARD_FACTOR, elementwise_step_flops, head_mlp_costs,
                                     layer_forward_flops)
from est_analysis.model_config import ModelConfig
from est_analysis.schedule import Schedule
from est_analysis.subnet import LayerLoad, Rates, check_rates, uniform_loads

if TYPE_CHECKING:
    from est_analysis.methods import SubnetPolicy

ACCOUNTINGS = ("paper", "full")


def loads_cost(final: ModelConfig, step_model: ModelConfig, loads: list[LayerLoad],
               accounting: str = "paper", seq_len: int | None = None,
               head_mlp_ratio: float | None = None) -> float:
    """Expected cost of a step with these layer `loads` (counted in `step_model`, the model of
    that step) relative to a full step of `final`. `paper` prices heads and neurons by eq. 8
    with the final model's C_H and C_M (Staged Training's half-width model thus costs half, as
    the paper counts it); `full` counts the step model's real FLOPs, LM head and elementwise
    work. `head_mlp_ratio` = C_H / C_M overrides the FLOPs model's ratio (paper accounting)."""
    if accounting not in ACCOUNTINGS:
        raise ValueError(f"unknown accounting {accounting!r}; choose one of {ACCOUNTINGS}")
    if accounting == "paper":
        c_h, c_m = head_mlp_costs(final, seq_len) if head_mlp_ratio is None else (head_mlp_ratio, 1.0)
        work = sum(p * (h / final.n_head * c_h + m / final.d_mlp * c_m) for p, h, m in loads)
        return work / (final.n_layer * (c_h + c_m))
    seq_len = seq_len or final.block_size
    return _full_step(step_model, loads, seq_len) / _full_step(final, uniform_loads(final, Rates()),
                                                               seq_len)


def _full_step(config: ModelConfig, loads: list[LayerLoad], seq_len: int) -> float:
    """Expected matmul + elementwise FLOPs of one sequence's step under `loads`."""
    layers = sum(p * _layer_forward(config, h, m, seq_len) for p, h, m in loads)
    head = 2 * seq_len * config.d_model * config.vocab_size
    base = elementwise_step_flops(config, 0, 1, seq_len)  # affine in the number of layers
    per_layer = elementwise_step_flops(config, 1, 1, seq_len) - base
    return BACKWARD_FACTOR * (layers + head) + base + per_layer * sum(p for p, _, _ in loads)


@lru_cache(maxsize=4096)
def _layer_forward(config: ModelConfig, heads: int, neurons: int, seq_len: int) -> int:
    return sum(layer_forward_flops(config, heads, neurons, 1, seq_len).values()) if heads or neurons else 0


def step_cost(config: ModelConfig, rates: Rates | tuple[float, float, float],
              accounting: str = "paper", seq_len: int | None = None,
              head_mlp_ratio: float | None = None) -> float:
    """Cost of one EST step at `rates` relative to a full step (eq. 8 for `paper`)."""
    check_rates(config, rates)
    return loads_cost(config, config, uniform_loads(config, Rates(*rates)), accounting, seq_len,
                      head_mlp_ratio)


def policy_step_cost(policy: "SubnetPolicy", step: int, accounting: str = "paper",
                     seq_len: int | None = None, head_mlp_ratio: float | None = None) -> float:
    """Expected cost of `step` of any method relative to a full step of its final model."""
    return loads_cost(policy.config, policy.model_config_at(step), policy.expected_loads(step),
                      accounting, seq_len, head_mlp_ratio)


@dataclass(frozen=True)
class StageCost:
    start: int
    end: int
    step_cost: float  # relative to a full step
    label: str

    @property
    def steps(self) -> int:
        return self.end - self.start


def _label(rates: Rates) -> str:
    return f"({rates.p_heads:g}, {rates.p_mlp:.3g}, {rates.p_layers:.3g})"


def schedule_costs(config: ModelConfig, schedule: Schedule, accounting: str = "paper",
                   seq_len: int | None = None, head_mlp_ratio: float | None = None) -> list[StageCost]:
    starts = schedule.stage_starts()
    return [StageCost(start, end, step_cost(config, rates, accounting, seq_len, head_mlp_ratio),
                      _label(rates))
            for start, end, rates in zip(starts, schedule.boundaries, schedule.rates)]


def policy_costs(policy: "SubnetPolicy", accounting: str = "paper", seq_len: int | None = None,
                 head_mlp_ratio: float | None = None) -> list[StageCost]:
    """Per-stage costs of any method (its mean step cost over each stage), for `cost_table`."""
    changes = sorted(set(policy.load_changes()) | {policy.schedule.total_steps})
    totals = [0.0] * len(policy.schedule.boundaries)
    for start, end in zip(changes, changes[1:]):
        cost = policy_step_cost(policy, start, accounting, seq_len, head_mlp_ratio)
        for stage, (s, e) in enumerate(zip(policy.schedule.stage_starts(), policy.schedule.boundaries)):
            totals[stage] += cost * max(0, min(end, e) - max(start, s))
    return [StageCost(s, e, total / (e - s), _label(policy.rates(s)))
            for s, e, total in zip(policy.schedule.stage_starts(), policy.schedule.boundaries, totals)]


def cost_table(stages: list[StageCost], efficiency: float | dict[str, float] = 1.0) -> pd.DataFrame:
    """Per-stage table: steps, rates, step cost relative to full, stage cost in full-step units,
    and predicted wall time in full-step units. `efficiency` = ideal time ratio / measured time
    ratio of subnet steps (1 = the FLOPs ideal); a dict maps stage labels to efficiencies."""
    rows = []
    for number, stage in enumerate(stages, 1):
        eff = efficiency.get(stage.label, 1.0) if isinstance(efficiency, dict) else efficiency
        wall_ratio = 1.0 if stage.step_cost == 1.0 else min(1.0, stage.step_cost / eff)
        rows.append({"stage": number, "start": stage.start, "end": stage.end, "steps": stage.steps,
                     "rates (p_H, p_M, p_L)": stage.label, "step_cost": stage.step_cost,
                     "stage_cost": stage.steps * stage.step_cost, "step_time": wall_ratio,
                     "stage_time": stage.steps * wall_ratio})
    return pd.DataFrame(rows)


def saving(table: pd.DataFrame) -> float:
    """1 - C_EST / C_original (eq. 9 over eq. 10)."""
    return 1.0 - table["stage_cost"].sum() / table["steps"].sum()


def speedup(table: pd.DataFrame) -> float:
    """Predicted wall-clock speedup of the schedule over Original."""
    return table["steps"].sum() / table["stage_time"].sum()


def schedule_saving(config: ModelConfig, schedule: Schedule, accounting: str = "paper",
                    seq_len: int | None = None, head_mlp_ratio: float | None = None) -> float:
    return saving(cost_table(schedule_costs(config, schedule, accounting, seq_len, head_mlp_ratio)))


def method_saving(policy: "SubnetPolicy", accounting: str = "paper", seq_len: int | None = None
                  ) -> float:
    return saving(cost_table(policy_costs(policy, accounting, seq_len)))
