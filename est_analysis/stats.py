"""Summary statistics shared by every estimator: the mean of independent samples, its
standard error and a Student-t confidence interval."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable

import numpy as np
from scipy import stats


@dataclass(frozen=True)
class Interval:
    """Mean of n samples with its standard error and two-sided t-interval."""

    mean: float
    stderr: float  # inf when n < 2 (no spread is known)
    low: float
    high: float
    n: int

    @property
    def half_width(self) -> float:
        return self.high - self.mean


def t_half_width(stderr: float, n: int, level: float = 0.95) -> float:
    """Half-width of the two-sided t-interval at `level` for a mean of n samples."""
    return float(stats.t.ppf(0.5 + level / 2, n - 1)) * stderr if n > 1 else math.inf


def t_interval(samples: Iterable[float], level: float = 0.95, offset: float = 0.0) -> Interval:
    """Mean (+ `offset`), standard error std/sqrt(n) and t-interval of `samples`; with one
    sample the error and the interval are infinite."""
    values = np.asarray(list(samples), dtype=np.float64)
    if values.size == 0:
        raise ValueError("a confidence interval needs at least one sample")
    mean = float(values.mean()) + offset
    stderr = float(values.std(ddof=1) / math.sqrt(values.size)) if values.size > 1 else math.inf
    half = t_half_width(stderr, values.size, level)
    return Interval(mean, stderr, mean - half, mean + half, int(values.size))
