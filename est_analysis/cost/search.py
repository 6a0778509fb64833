"""Schedule search, a planning tool beyond the paper: enumerate sampling schedulers on a grid of
stage boundaries and rates, keep those that meet a target saving (or a FLOPs budget) and the
user's constraints, and rank them by cost. It predicts cost only, never final loss.

Constraints built in, following the paper: subnetworks only grow (each rate is
non-decreasing from stage to stage, section 3.3) and the last stage trains the full model.
Table 3 suggests a long final stage is vital (EST-ONE-STAGE and EST-TWO-STAGE-C lose), so
`min_final_fraction` bounds its length from below.
"""

from __future__ import annotations

import itertools
import math
from functools import lru_cache

import pandas as pd

from est_analysis.cost.simulator import step_cost
from est_analysis.model_config import ModelConfig
from est_analysis.subnet import Rates, check_rates

MAX_SCHEDULES = 5_000_000  # about a minute of pricing on one core


def _grid_fractions(grid: float) -> list[float]:
    n = round(1 / grid)
    if abs(n * grid - 1) > 1e-9 or n < 2:
        raise ValueError(f"grid={grid} must divide 1 into at least two steps (e.g. 0.05, 0.1)")
    return [i / n for i in range(1, n)]


COMPONENTS = ("heads", "neurons", "layers")  # the order of (p_H, p_M, p_L)


def _valid_rates(config: ModelConfig, values: tuple[float, ...],
                 sampled: tuple[str, ...] = COMPONENTS) -> list[Rates]:
    """The rate triples on the grid `values` that `config` can run, sampling only the
    components in `sampled` (the others stay at 1), the full model excepted."""
    unknown = sorted(set(sampled) - set(COMPONENTS))
    if unknown or not sampled:
        raise ValueError(f"sampled components {list(sampled)}: choose some of {COMPONENTS}")
    triples = []
    for triple in itertools.product(values, repeat=3):
        if any(p != 1.0 for p, name in zip(triple, COMPONENTS) if name not in sampled):
            continue
        try:
            check_rates(config, triple)
        except ValueError:
            continue
        if triple != (1.0, 1.0, 1.0):
            triples.append(Rates(*triple))
    return triples


def _grows(path: tuple[Rates, ...]) -> bool:
    """Every stage is at least as large as the one before in every dimension, and differs
    from it (equal neighbours would be one stage)."""
    return all(first != second and all(a <= b for a, b in zip(first, second))
               for first, second in zip(path, path[1:]))


def search_schedules(config: ModelConfig, total_steps: int, target_saving: float | None = None,
                     budget: float | None = None, tolerance: float = 0.01,
                     stage_counts: tuple[int, ...] = (2, 3), grid: float = 0.05,
                     rate_values: tuple[float, ...] = (0.25, 0.5, 0.75, 1.0),
                     min_final_fraction: float = 0.3, accounting: str = "paper",
                     seq_len: int | None = None, top: int = 20,
                     sampled: tuple[str, ...] = COMPONENTS) -> pd.DataFrame:
    """Schedules with |saving - target_saving| <= tolerance, ranked by closeness to the target,
    or with cost <= budget (a fraction of Original's FLOPs), ranked by cost (cheapest first);
    ties go to a longer final stage, then to fewer stages. `sampled` restricts which of
    heads, neurons and layers a stage may sample (e.g. heads and layers, leaving neurons)."""
    if (target_saving is None) == (budget is None):
        raise ValueError("give exactly one of target_saving or budget")
    if not 0 <= min_final_fraction < 1:
        raise ValueError(f"min_final_fraction={min_final_fraction} must be in [0, 1)")
    cost_of = lru_cache(maxsize=None)(lambda r: step_cost(config, r, accounting, seq_len))
    fractions = _grid_fractions(grid)
    candidates = _valid_rates(config, rate_values, sampled)
    for n_stages in stage_counts:
        if n_stages < 2:
            raise ValueError("a searched schedule has at least 2 stages (the last is full)")
    count = sum(math.comb(len(fractions), n - 1) * len(candidates) ** (n - 1) for n in stage_counts)
    if count > MAX_SCHEDULES:
        raise ValueError(f"--stage-counts {','.join(map(str, stage_counts))} with a grid of "
                         f"{len(fractions)} boundaries and {len(candidates)} rate triples is "
                         f"{count:.3g} schedules to price, more than {MAX_SCHEDULES:.0e}: use fewer "
                         "stages, a coarser --grid or fewer --rate-values")
    rows = []
    for n_stages in stage_counts:
        for cuts in itertools.combinations(fractions, n_stages - 1):
            if 1 - cuts[-1] < min_final_fraction - 1e-9:
                continue
            lengths = [b - a for a, b in zip((0.0,) + cuts, cuts + (1.0,))]
            for path in itertools.product(candidates, repeat=n_stages - 1):
                if not _grows(path):
                    continue
                cost = sum(length * cost_of(r) for length, r in zip(lengths, path)) + lengths[-1]
                keep = (abs(1 - cost - target_saving) <= tolerance if budget is None
                        else cost <= budget)
                if keep:
                    boundaries = [round(c * total_steps) for c in cuts] + [total_steps]
                    rows.append({"stages": n_stages, "boundaries": boundaries,
                                 "rates": [tuple(r) for r in path] + [(1.0, 1.0, 1.0)],
                                 "final_fraction": lengths[-1], "cost": cost, "saving": 1 - cost})
    columns = ["stages", "boundaries", "rates", "final_fraction", "cost", "saving"]
    if not rows:
        return pd.DataFrame(columns=columns)
    table = pd.DataFrame(rows, columns=columns)
    table["rank_key"] = table["cost"] if budget is not None else (table["saving"] - target_saving).abs()
    table = table.sort_values(["rank_key", "final_fraction", "stages"], ascending=[True, False, True],
                              kind="stable").drop(columns="rank_key")
    return table.head(top).reset_index(drop=True)
