"""Slopes at equal loss: on synthetic curves with a known answer."""

import numpy as np
import pandas as pd
import pytest

from est_analysis.diagnostics import loss_slopes, slope_ratio, slopes_at_equal_loss
from est_analysis.training import RunDir


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


def _ratio(noise: float) -> dict:
    slopes = {"reference": loss_slopes(_exponential_run(200.0, noise=noise), window=40),
              "fast": loss_slopes(_exponential_run(100.0, noise=noise), window=40)}
    return slope_ratio(slopes_at_equal_loss(slopes, bins=3), "fast", "reference")


def test_noise_widens_the_interval_and_it_still_covers_the_true_ratio():
    width = lambda r: r["ci_high"] - r["ci_low"]  # noqa: E731
    ratios = [_ratio(noise) for noise in (0.0, 0.1, 0.2)]
    assert width(ratios[0]) < width(ratios[1]) / 2 < width(ratios[2]) / 4
    assert all(r["ci_low"] < 2.0 < r["ci_high"] for r in ratios)


def test_disjoint_loss_ranges_and_bad_axes_are_refused():
    high = _exponential_run(200.0).assign(train_loss=lambda d: d["train_loss"] + 10)
    with pytest.raises(ValueError, match="share no loss range"):
        slopes_at_equal_loss({"a": loss_slopes(high), "b": loss_slopes(_exponential_run(200.0))})
    with pytest.raises(ValueError, match="choose one of"):
        loss_slopes(high, x="epochs")


def test_slopes_per_unit_of_cumulative_learning_rate(tmp_path):
    # loss falls by 2 per unit of cumulative LR while the LR halves: per step the slope halves,
    # per unit of LR it stays 2
    lr = np.repeat([0.02, 0.01], 30)
    cum_lr = np.cumsum(lr)
    (tmp_path / "metrics.csv").write_text(pd.DataFrame({
        "step": range(60), "stage": 1, "lr": lr, "train_loss": 5 - 2 * cum_lr}).to_csv(index=False))
    metrics = RunDir(tmp_path).read_metrics()
    per_lr = loss_slopes(metrics, window=30, x="cum_lr")
    per_step = loss_slopes(metrics, window=30, x="step")
    assert per_lr["slope"].tolist() == pytest.approx([2.0, 2.0])
    assert per_step["slope"].tolist() == pytest.approx([0.04, 0.02])
