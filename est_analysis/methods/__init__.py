"""A training method is a policy over subnetworks: given a step, which `Subnet` to train.

The model never knows which method runs; it executes the subnet it is given. Methods that
change the model's shape (growth operators) add a hook at stage boundaries.
"""

from __future__ import annotations

from est_analysis.methods.est import EstPolicy, SubnetPolicy
from est_analysis.models.config import ModelConfig
from est_analysis.schedule import Schedule

METHODS = ("original", "est")

__all__ = ["METHODS", "EstPolicy", "SubnetPolicy", "build_policy"]


def build_policy(method: str, schedule: Schedule, config: ModelConfig, seed: int) -> SubnetPolicy:
    """`original` trains the full model every step; `est` follows `schedule`."""
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {METHODS}")
    if method == "original":
        schedule = Schedule.preset("original", schedule.total_steps)
    return EstPolicy(config, schedule, seed)
