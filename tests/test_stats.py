import math
import warnings

import numpy as np
import pytest
from scipy import stats as sps

from est_analysis.stats import holm, paired, paired_tost, t_interval, tost, welch


def test_welch_matches_the_textbook_formula():
    a, b = [5.1, 5.3, 5.2, 5.6], [5.0, 4.9, 5.05]
    va, vb = np.var(a, ddof=1) / 4, np.var(b, ddof=1) / 3
    t = (np.mean(a) - np.mean(b)) / math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va ** 2 / 3 + vb ** 2 / 2)  # Welch-Satterthwaite
    d = welch(a, b)
    assert d.t == pytest.approx(t) and d.df == pytest.approx(df)
    assert d.p == pytest.approx(2 * sps.t.sf(abs(t), df))
    half = sps.t.ppf(0.975, df) * math.sqrt(va + vb)
    assert (d.low, d.high) == pytest.approx((d.estimate - half, d.estimate + half))


def test_welch_with_one_sample_knows_only_the_difference():
    d = welch([1.0], [0.5, 0.7])
    assert d.estimate == pytest.approx(0.4) and math.isnan(d.p) and math.isnan(d.low)


def test_tost_shows_equivalence_only_within_the_margin():
    rng = np.random.default_rng(0)
    a, b = 3.0 + 0.01 * rng.standard_normal(8), 3.002 + 0.01 * rng.standard_normal(8)
    assert tost(a, b, margin=0.05) < 0.001  # clearly inside the margin
    assert tost(a, b, margin=0.001) > 0.5  # the margin is narrower than the noise
    assert tost(a + 0.2, b, margin=0.05) > 0.99  # clearly different
    with pytest.raises(ValueError, match="margin"):
        tost(a, b, margin=0)


def test_holm_step_down():
    # sorted 0.01, 0.03, 0.04 -> 3 x 0.01, max(0.03, 2 x 0.03), max(0.06, 1 x 0.04)
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    adjusted = holm([0.5, math.nan, 0.02])
    assert adjusted[0] == pytest.approx(0.5) and math.isnan(adjusted[1])
    assert adjusted[2] == pytest.approx(0.04)
    assert holm([0.9, 0.8]) == pytest.approx([1.0, 1.0])  # 2 x 0.8 capped at 1, monotone


def test_t_interval_of_known_samples():
    interval = t_interval([1.0, 2.0, 3.0])
    assert interval.mean == 2.0 and interval.half_width == pytest.approx(sps.t.ppf(0.975, 2) / math.sqrt(3))


def test_welch_with_one_constant_side_is_the_test_of_the_other_sides_spread():
    constant, varied = [0.0117, 0.0117, 0.0117], [0.0117, 0.0156, 0.0137]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no precision-loss warning reaches the user
        d = welch(varied, constant)
    mean = sum(varied) / 3
    sd = (sum((v - mean) ** 2 for v in varied) / 2) ** 0.5
    t = (mean - 0.0117) / (sd / 3 ** 0.5)  # Welch reduces to a one-sample t-test, df = 2
    assert d.t == pytest.approx(t) and d.df == pytest.approx(2.0)


def test_paired_matches_the_one_sample_t_of_the_differences():
    a, b = [3.0, 3.5, 2.9, 3.2], [2.8, 3.4, 2.6, 3.1]
    d = np.subtract(a, b)
    n, mean, sd = len(d), d.mean(), d.std(ddof=1)
    t = mean / (sd / math.sqrt(n))  # the textbook formula, computed here
    half = sps.t.ppf(0.975, n - 1) * sd / math.sqrt(n)
    result = paired(a, b)
    assert result.estimate == pytest.approx(mean) and result.t == pytest.approx(t)
    assert result.df == n - 1 and result.p == pytest.approx(2 * sps.t.sf(abs(t), n - 1))
    assert (result.low, result.high) == (pytest.approx(mean - half), pytest.approx(mean + half))
    # pairing removes the seed-to-seed spread Welch has to carry: a smaller p here
    assert result.p < welch(a, b).p
    assert math.isnan(paired([1.0], [0.5]).p)
    with pytest.raises(ValueError, match="as many samples"):
        paired([1.0, 2.0], [1.0])


def test_paired_tost_is_the_90_percent_interval_of_the_differences_inside_the_margin():
    rng = np.random.default_rng(0)
    for _ in range(200):
        b = rng.normal(3.0, 0.1, size=3)
        d = rng.normal(rng.uniform(-0.03, 0.03), rng.uniform(0.001, 0.02), size=3)
        inside = t_interval(d, level=0.90)
        p = paired_tost(b + d, b, margin=0.02)
        assert (p < 0.05) == (-0.02 < inside.low and inside.high < 0.02)
    assert math.isnan(paired_tost([1.0], [1.0], margin=0.02))
    with pytest.raises(ValueError, match="margin must be positive, got 0"):
        paired_tost([1.0, 2.0], [1.0, 2.0], margin=0)
