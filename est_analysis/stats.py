"""Summary statistics shared by every estimator and verdict: the mean of independent samples
with its standard error and Student-t interval; Welch's test of a difference of means and the
paired t-test of arms trained from the same seeds, the two one-sided tests (TOST) of their equivalence within a margin, and Holm's correction of a
family of p-values."""

from __future__ import annotations

import math
import warnings
from contextlib import contextmanager
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


@contextmanager
def _one_side_constant():
    """scipy warns of precision loss when a side's values are all equal (every seed reaching
    the same accuracy); Welch's test is still defined by the other side's variance, and both
    sides constant is handled before the test, so the warning says nothing here."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Precision loss occurred", RuntimeWarning)
        yield


@dataclass(frozen=True)
class Difference:
    """mean(a) - mean(b) with Welch's t statistic, its degrees of freedom, a two-sided p-value
    and t-interval. With fewer than two samples on a side nothing but the difference is known
    (t, p and the interval are nan)."""

    estimate: float
    low: float
    high: float
    t: float
    df: float
    p: float
    n_a: int
    n_b: int


def welch(a: Iterable[float], b: Iterable[float], level: float = 0.95) -> Difference:
    """Welch's unequal-variance t-test of mean(a) - mean(b) (scipy.stats.ttest_ind)."""
    x, y = np.asarray(list(a), dtype=np.float64), np.asarray(list(b), dtype=np.float64)
    if x.size == 0 or y.size == 0:
        raise ValueError("a difference of means needs at least one sample on each side")
    estimate = float(x.mean() - y.mean())
    if x.size < 2 or y.size < 2 or (x.var(ddof=1) == 0 and y.var(ddof=1) == 0):
        return Difference(estimate, math.nan, math.nan, math.nan, math.nan, math.nan,
                          int(x.size), int(y.size))
    with _one_side_constant():
        result = stats.ttest_ind(x, y, equal_var=False)
        ci = result.confidence_interval(level)
    return Difference(estimate, float(ci.low), float(ci.high), float(result.statistic),
                      float(result.df), float(result.pvalue), int(x.size), int(y.size))


def paired(a: Iterable[float], b: Iterable[float], level: float = 0.95) -> Difference:
    """mean(a_i - b_i) over pairs (two arms trained from the same seed: the same
    initialisation and data order) with the paired t-test (scipy.stats.ttest_rel) and its
    t-interval; nan where fewer than two pairs or no spread of the differences is known."""
    x, y = np.asarray(list(a), dtype=np.float64), np.asarray(list(b), dtype=np.float64)
    if x.shape != y.shape or x.size == 0:
        raise ValueError(f"a paired difference needs as many samples on each side, got "
                         f"{x.size} and {y.size}")
    d = x - y
    estimate = float(d.mean())
    if d.size < 2 or d.var(ddof=1) == 0:
        return Difference(estimate, math.nan, math.nan, math.nan, math.nan, math.nan,
                          int(x.size), int(y.size))
    result = stats.ttest_rel(x, y)
    ci = result.confidence_interval(level)
    return Difference(estimate, float(ci.low), float(ci.high), float(result.statistic),
                      float(result.df), float(result.pvalue), int(x.size), int(y.size))


def tost(a: Iterable[float], b: Iterable[float], margin: float) -> float:
    """p-value of the two one-sided Welch tests that |mean(a) - mean(b)| < `margin`: a small
    p shows equivalence within the margin (nan when a side has fewer than two samples)."""
    return tost_test(a, b, margin)[0]


def tost_test(a: Iterable[float], b: Iterable[float], margin: float) -> tuple[float, float, float]:
    """(p, t, df) of TOST: the p-value (the larger of the two one-sided ones) and the t
    statistic and Welch degrees of freedom of the one-sided test that gives it (nan when a
    side has fewer than two samples)."""
    if not margin > 0:
        raise ValueError(f"an equivalence margin must be positive, got {margin}")
    x, y = np.asarray(list(a), dtype=np.float64), np.asarray(list(b), dtype=np.float64)
    if x.size < 2 or y.size < 2:
        return math.nan, math.nan, math.nan
    with _one_side_constant():
        above = stats.ttest_ind(x, y - margin, equal_var=False, alternative="greater")
        below = stats.ttest_ind(x, y + margin, equal_var=False, alternative="less")
    binding = above if above.pvalue >= below.pvalue else below
    return float(binding.pvalue), float(binding.statistic), float(binding.df)


def aligned(a, b) -> tuple:
    """Two labelled series (pandas Series, e.g. final losses indexed by seed) at the labels both
    have, in one order: the pairs `paired` and `paired_tost` take."""
    common = a.index.intersection(b.index)
    return a.loc[common], b.loc[common]


def paired_tost(a: Iterable[float], b: Iterable[float], margin: float) -> float:
    """p-value of the two one-sided paired t-tests that |mean(a_i - b_i)| < `margin` (pairs as
    in `paired`): small p shows the arms equal within the margin; nan with fewer than two pairs
    or no spread of the differences."""
    if not margin > 0:
        raise ValueError(f"an equivalence margin must be positive, got {margin}")
    d = np.asarray(list(a), dtype=np.float64) - np.asarray(list(b), dtype=np.float64)
    if d.size < 2 or d.var(ddof=1) == 0:
        return math.nan
    above = stats.ttest_1samp(d, -margin, alternative="greater").pvalue
    below = stats.ttest_1samp(d, margin, alternative="less").pvalue
    return float(max(above, below))


def holm(pvalues: Iterable[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values (step-down, monotone, capped at 1); nan stays nan
    and is not counted in the family."""
    p = np.asarray(list(pvalues), dtype=np.float64)
    known = np.flatnonzero(~np.isnan(p))
    adjusted = np.full(p.shape, math.nan)
    order = known[np.argsort(p[known], kind="stable")]
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(order) - rank) * p[i]))
        adjusted[i] = running
    return adjusted.tolist()
