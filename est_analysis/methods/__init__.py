"""Training methods, all run by the same trainer on the same data and priced by the same cost
model. Each is a policy over subnetworks (`SubnetPolicy`): the model never knows which method
runs; it executes the subnet it is given. Methods that change the model's shape (Staged
Training's width growth, MSG's layer copies) add a `grow` hook at their growth steps.

`METHOD_SUMMARIES` says in one line what each method trains.
"""

from __future__ import annotations

from typing import Any

from est_analysis.methods.base import SubnetPolicy, parse_options
from est_analysis.methods.est import EstOptions, EstPolicy
from est_analysis.methods.layer_drop import LayerDropOptions, LayerDropPolicy
from est_analysis.methods.msg import MsgOptions, MsgPolicy
from est_analysis.methods.raptr import RaptrOptions, RaptrPolicy, default_schedule
from est_analysis.methods.staged import StagedOptions, StagedPolicy
from est_analysis.model_config import ModelConfig
from est_analysis.schedule import Schedule

METHOD_SUMMARIES = {
    "original": "the full model every step",
    "est": "Evolving Subnetwork Training with any schedule (presets incl. Table 3, or custom)",
    "staged": "Staged Training: half hidden size for the first third, then width growth",
    "msg": "Masked Structural Growth with the EST paper's four-stage schedule",
    "raptr": "RAPTR: random paths of layers, path length growing stage by stage",
    "layer-drop": "Progressive Layer Dropping (progressive=false: stochastic depth)",
}
METHODS = tuple(METHOD_SUMMARIES)
# methods whose stages the user may set with --stages/--rates
CUSTOM_SCHEDULE_METHODS = ("est", "raptr")
OPTIONS = {"original": None, "est": EstOptions, "staged": StagedOptions, "msg": MsgOptions,
           "raptr": RaptrOptions, "layer-drop": LayerDropOptions}

__all__ = ["METHODS", "METHOD_SUMMARIES", "OPTIONS", "CUSTOM_SCHEDULE_METHODS", "EstPolicy", "SubnetPolicy",
           "build_policy"]


def build_policy(method: str, config: ModelConfig, total_steps: int, seed: int,
                 schedule: Schedule | None = None, options: dict[str, Any] | None = None
                 ) -> SubnetPolicy:
    """The policy of `method` for a run of `total_steps` on `config`. `schedule` is EST's
    (required) or RAPTR's custom one; `options` are the method's own settings (see each
    method's Options class)."""
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {METHODS}")
    options_class = OPTIONS[method]
    if options_class is None:
        if options:
            raise ValueError(f"method {method!r} takes no options (got {sorted(options)})")
    else:
        parsed = parse_options(options_class, options, method)
    if method == "original":
        return EstPolicy(config, Schedule.preset("original", total_steps), seed)
    if method == "est":
        if schedule is None:
            raise ValueError("method 'est' needs a schedule (a preset or --stages/--rates)")
        return EstPolicy(config, schedule, seed, parsed)
    if method == "raptr":
        return RaptrPolicy(config, schedule or default_schedule(config, total_steps), seed, parsed)
    if schedule is not None:
        raise ValueError(f"method {method!r} has its own stages; --stages/--rates apply to "
                         f"{CUSTOM_SCHEDULE_METHODS} only (use --method-option for its settings)")
    if method == "staged":
        return StagedPolicy(config, total_steps, seed, parsed)
    if method == "msg":
        return MsgPolicy(config, total_steps, parsed)
    return LayerDropPolicy(config, total_steps, seed, parsed)
