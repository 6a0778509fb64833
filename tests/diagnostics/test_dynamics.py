"""Slopes at equal loss: on synthetic curves with a known answer."""

import numpy as np
import pandas as pd
import pytest

from est_analysis.diagnostics import loss_slopes, slope_ratio, slopes_at_equal_loss


def _exponential_run(tau: float, steps: int = 600, noise: float = 0.0) -> pd.DataFrame:
    """L(t) = 2 + 3 exp(-t / tau): at loss L the slope -dL/dt is (L - 2) / tau."""
    step = np.arange(steps)
    loss = 2 + 3 * np.exp(-step / tau) + noise * np.random.default_rng(0).standard_normal(steps)
    return pd.DataFrame({"step": step, "stage": 1, "train_loss": loss, "tokens": step * 100,
                         "cum_flops": step * 1e9, "wall_s": step * 0.5})


def test_a_curve_twice_as_fast_is_twice_as_steep_at_equal_loss():
    slopes = {"reference": loss_slopes(_exponential_run(200.0), window=10),
              "fast": loss_slopes(_exponential_run(100.0), window=10)}
    table = slopes_at_equal_loss(slopes, bins=5)
    assert slope_ratio(table, "fast", "reference")["ratio"] == pytest.approx(2.0, rel=0.05)
    per_token = loss_slopes(_exponential_run(200.0), window=10, x="tokens")
    assert per_token["slope"].to_numpy() == pytest.approx(slopes["reference"]["slope"] / 100)


def test_noise_widens_the_interval_but_keeps_the_ratio():
    slopes = {"reference": loss_slopes(_exponential_run(200.0, noise=0.02), window=40),
              "fast": loss_slopes(_exponential_run(100.0, noise=0.02), window=40)}
    ratio = slope_ratio(slopes_at_equal_loss(slopes, bins=3), "fast", "reference")
    assert ratio["ci_low"] < ratio["ratio"] < ratio["ci_high"]
    assert ratio["ci_low"] < 2.0 < ratio["ci_high"]


def test_disjoint_loss_ranges_and_bad_axes_are_refused():
    high = _exponential_run(200.0).assign(train_loss=lambda d: d["train_loss"] + 10)
    with pytest.raises(ValueError, match="share no loss range"):
        slopes_at_equal_loss({"a": loss_slopes(high), "b": loss_slopes(_exponential_run(200.0))})
    with pytest.raises(ValueError, match="choose one of"):
        loss_slopes(high, x="epochs")
