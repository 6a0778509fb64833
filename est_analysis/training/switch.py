"""An adaptive stage switch (issue #33 section 3): a sampled stage ends when training on its
subnets stops paying for itself, instead of at a fixed fraction of the run.

The signal is the training loss's slope per FLOP. Steps are grouped into windows of `window`
steps; after each window, the slope is the fall of the mean training loss from the previous
window to this one, divided by the FLOPs this window cost. The first slope measured in a stage
is its reference. The stage ends after the first window at which the slope has stayed below
`fraction` of that reference for `patience` windows in a row. The schedule's own boundary is the
latest a stage may end; the last stage (normally the full model) is never shortened, so the
run's length is unchanged and an early switch moves steps from a sampled stage to the next.

Every input is the loss averaged over processes, so every DDP rank switches at the same step.
The switch's state goes into the checkpoint, so a resumed run switches where the uninterrupted
one does.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from est_analysis.schedule import Schedule


@dataclass
class SlopeSwitch:
    fraction: float  # end the stage when its slope per FLOP falls below this share of its first
    window: int  # steps per loss window
    patience: int = 2  # windows in a row below the threshold
    # where it stands (checkpointed)
    stage: int = 0
    loss_sum: float = 0.0
    flops_sum: float = 0.0
    count: int = 0
    previous_mean: float | None = None
    reference: float | None = None
    below: int = 0

    def observe(self, schedule: Schedule, step: int, train_loss: float, step_flops: float
                ) -> Schedule | None:
        """Record 0-based `step`; the schedule with the current stage ending after `step` when
        the rule fires, else None."""
        stage = schedule.stage_at(step)
        if stage != self.stage:  # a new stage: its windows and reference start afresh
            self._restart(stage)
        if stage == len(schedule.boundaries) - 1 or step + 1 >= schedule.boundaries[stage]:
            return None
        self.loss_sum, self.flops_sum, self.count = (self.loss_sum + train_loss,
                                                     self.flops_sum + step_flops, self.count + 1)
        if self.count < self.window:
            return None
        mean, flops = self.loss_sum / self.count, self.flops_sum
        self.loss_sum, self.flops_sum, self.count = 0.0, 0.0, 0
        previous, self.previous_mean = self.previous_mean, mean
        if previous is None:
            return None
        slope = (previous - mean) / flops
        if self.reference is None:
            self.reference = slope
            return None
        self.below = self.below + 1 if slope < self.fraction * self.reference else 0
        if self.below < self.patience:
            return None
        self._restart(stage + 1)
        return ended_early(schedule, stage, step + 1)

    def _restart(self, stage: int) -> None:
        self.stage, self.loss_sum, self.flops_sum, self.count = stage, 0.0, 0.0, 0
        self.previous_mean, self.reference, self.below = None, None, 0

    def state_dict(self) -> dict:
        return dataclasses.asdict(self)

    @staticmethod
    def from_state(state: dict) -> "SlopeSwitch":
        return SlopeSwitch(**state)


def ended_early(schedule: Schedule, stage: int, end: int) -> Schedule:
    """`schedule` with 0-based `stage` ending at step `end` (before its own boundary); the next
    stage starts there and keeps its own end."""
    if not (schedule.stage_starts()[stage] < end < schedule.boundaries[stage]):
        raise ValueError(f"stage {stage + 1} of {schedule.boundaries} cannot end at step {end}")
    boundaries = list(schedule.boundaries)
    boundaries[stage] = end
    return Schedule(tuple(boundaries), schedule.rates)
