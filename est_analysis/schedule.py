"""The sampling scheduler of Definition 3.1: stage boundaries S = (s^1, ..., s^T) and rates
P = [(p_H, p_M, p_L)^1, ..., (p_H, p_M, p_L)^T]. Stage t covers steps [s^(t-1), s^t), s^0 = 0.

Presets are stored with boundaries as fractions of the paper's run so that they scale to
any run length; `Schedule.preset(name, total_steps)` turns them into absolute steps.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
import itertools
from fractions import Fraction

from est_analysis.subnet import Rates

HALF, FULL = Rates(0.5, 0.5, 0.5), Rates(1.0, 1.0, 1.0)
HALF_WIDTH = Rates(0.5, 0.5, 1.0)  # stage 2 of the practical scheduler
HALF_DEPTH = Rates(1.0, 1.0, 0.5)


@dataclass(frozen=True)
class PresetSpec:
    """A schedule as the paper gives it: boundaries in steps of a run of `paper_steps`."""

    boundaries: tuple[int, ...]
    rates: tuple[Rates, ...]
    description: str

    @property
    def paper_steps(self) -> int:
        return self.boundaries[-1]


PRESETS: dict[str, PresetSpec] = {
    "original": PresetSpec((150_000,), (FULL,), "the full model every step"),
    "est-gpt2": PresetSpec((20_000, 70_000, 150_000), (HALF, HALF_WIDTH, FULL),
                           "practical scheduler for GPT-2 (section 4.1), 26.7 % saving"),
    "est-tinyllama": PresetSpec((10_000, 25_000, 60_000), (HALF, HALF_WIDTH, FULL),
                                "practical scheduler for TinyLlama (section 4.2), 25.0 % saving"),
    # Table 3. The paper's bullet list prints the first entry as EST-TWO-STAGE-A with
    # S=(50k,150k), P=[(.5,.5,1)]; its text and Table 3 (50.0 % saving) make it EST-ONE-STAGE:
    # all 150k steps at (.5,.5,1).
    "est-one-stage": PresetSpec((150_000,), (HALF_WIDTH,), "Table 3: stage 2 only, 50.0 % saving"),
    "est-two-stage-a": PresetSpec((50_000, 150_000), (HALF_WIDTH, FULL), "Table 3: switch at 50k"),
    "est-two-stage-b": PresetSpec((70_000, 150_000), (HALF_WIDTH, FULL), "Table 3: switch at 70k"),
    "est-two-stage-c": PresetSpec((90_000, 150_000), (HALF_WIDTH, FULL), "Table 3: switch at 90k"),
    "est-three-stage": PresetSpec((20_000, 70_000, 150_000), (HALF, HALF_DEPTH, FULL),
                                  "Table 3: stage 2 samples layers instead of heads/neurons"),
}


@dataclass(frozen=True)
class Schedule:
    boundaries: tuple[int, ...]  # s^1 < ... < s^T = total steps
    rates: tuple[Rates, ...]  # one (p_H, p_M, p_L) per stage

    def __post_init__(self) -> None:
        object.__setattr__(self, "boundaries", tuple(int(b) for b in self.boundaries))
        object.__setattr__(self, "rates", tuple(Rates(*r) for r in self.rates))
        if not self.boundaries:
            raise ValueError("a schedule needs at least one stage")
        if len(self.boundaries) != len(self.rates):
            raise ValueError(f"{len(self.boundaries)} stage boundaries but {len(self.rates)} rate "
                             "triples: give one (p_H, p_M, p_L) per stage")
        previous = 0
        for b in self.boundaries:
            if b <= previous:
                raise ValueError(f"stage boundaries {self.boundaries} must be strictly increasing "
                                 "and positive")
            previous = b
        for stage, rates in enumerate(self.rates, 1):
            for name, p in zip(("p_H", "p_M", "p_L"), rates):
                if not 0.0 < p <= 1.0:
                    raise ValueError(f"stage {stage}: {name}={p} is outside (0, 1]")

    @property
    def total_steps(self) -> int:
        return self.boundaries[-1]

    @staticmethod
    def from_fractions(fractions: list[float], rates: list[tuple[float, float, float]],
                       total_steps: int) -> "Schedule":
        """Boundaries as fractions of the run (the last must be 1), rounded to whole steps."""
        if abs(fractions[-1] - 1.0) > 1e-9:
            raise ValueError(f"the last boundary fraction is {fractions[-1]}, it must be 1")
        if any(b <= a for a, b in zip([0] + list(fractions), fractions)):
            raise ValueError(f"stage boundaries {[float(f) for f in fractions]} must be strictly "
                             "increasing and positive")
        exact = [Fraction(f).limit_denominator(10**6) for f in fractions]
        rounded = lambda steps: [round(f * steps) for f in exact]  # noqa: E731
        fits = lambda steps: all(b > a for a, b in zip([0] + rounded(steps), rounded(steps)))  # noqa: E731
        boundaries = rounded(total_steps)
        if not fits(total_steps):
            shown = ", ".join(str(f) for f in exact)
            needed = next(n for n in itertools.count(total_steps + 1) if fits(n))
            raise ValueError(f"{total_steps} steps are too few for stage boundaries at {shown} of "
                             f"the run: they round to steps {boundaries}; use {needed} steps or "
                             "more (every stage needs one)")
        return Schedule(tuple(boundaries), tuple(Rates(*r) for r in rates))

    @staticmethod
    def preset(name: str, total_steps: int | None = None) -> "Schedule":
        """A named schedule scaled to `total_steps` (default: the paper's run length)."""
        if name not in PRESETS:
            raise ValueError(f"unknown schedule preset {name!r}; choose one of {sorted(PRESETS)}")
        spec = PRESETS[name]
        total = spec.paper_steps if total_steps is None else total_steps
        if total < 1:
            raise ValueError(f"total_steps={total}: a run needs at least one step")
        fractions = [Fraction(b, spec.paper_steps) for b in spec.boundaries]
        return Schedule.from_fractions(fractions, list(spec.rates), total)

    @staticmethod
    def custom(boundaries: list[float], rates: list[tuple[float, float, float]],
               total_steps: int) -> "Schedule":
        """A user schedule: boundaries as fractions of the run (all <= 1, e.g. 0.2, 0.5, 1) or as
        absolute steps (the last must equal `total_steps`)."""
        if all(b <= 1 for b in boundaries):
            return Schedule.from_fractions(list(boundaries), rates, total_steps)
        schedule = Schedule(tuple(int(b) for b in boundaries), tuple(map(tuple, rates)))
        schedule.check_total(total_steps)
        return schedule

    def check_total(self, total_steps: int) -> None:
        if self.total_steps != total_steps:
            raise ValueError(f"the last stage boundary {self.total_steps} must equal the total "
                             f"steps {total_steps}")

    def stage_at(self, step: int) -> int:
        """0-based stage index of 0-based `step`."""
        if not 0 <= step < self.total_steps:
            raise ValueError(f"step {step} is outside the schedule [0, {self.total_steps})")
        return bisect.bisect_right(self.boundaries, step)

    def rates_at(self, step: int) -> Rates:
        return self.rates[self.stage_at(step)]

    def stage_starts(self) -> tuple[int, ...]:
        return (0,) + self.boundaries[:-1]


def parse_boundaries(text: str) -> list[float]:
    """Command-line stage boundaries: steps '20000,70000,150000' or fractions '0.2,0.5,1'."""
    try:
        return [float(b) for b in text.split(",")]
    except ValueError:
        raise ValueError(f"cannot read stages {text!r}: expected e.g. "
                         "--stages 20000,70000,150000 --rates .5,.5,.5/.5,.5,1/1,1,1") from None


def parse_rates(text: str) -> list[tuple[float, float, float]]:
    """'/'-separated p_H,p_M,p_L triples: '.5,.5,.5/.5,.5,1/1,1,1'."""
    try:
        triples = [tuple(float(p) for p in triple.split(",")) for triple in text.split("/")]
    except ValueError:
        raise ValueError(f"cannot read rates {text!r}: expected p_H,p_M,p_L triples separated "
                         "by '/', e.g. .5,.5,.5/.5,.5,1/1,1,1") from None
    for triple in triples:
        if len(triple) != 3:
            raise ValueError(f"rates {triple} must be three numbers p_H,p_M,p_L")
    return triples
