"""Training dynamics at equal loss (section 5.2): the paper reports that EST's stage-3 loss
curve is steeper than Original's where both are at the same loss.

`loss_slopes` cuts a run's training-loss curve into consecutive non-overlapping windows, fits
a line loss ~ a + b x in each (x = steps, tokens or FLOPs), and returns per window the slope
-b with its standard error and the window's mean loss. `slopes_at_equal_loss` bins several
runs' windows by loss level and compares the mean slopes of two runs bin by bin, with a 95 %
interval, so "steeper at equal loss" becomes a number.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from est_analysis.stats import t_half_width
from est_analysis.training.metrics import X_AXES


def loss_slopes(metrics: pd.DataFrame, window: int = 20, x: str = "step",
                stage: int | None = None) -> pd.DataFrame:
    """Per window: mean loss, slope -dL/dx and its standard error (OLS)."""
    if x not in X_AXES:
        raise ValueError(f"x={x!r}; choose one of {sorted(X_AXES)}")
    if window < 3:
        raise ValueError(f"window={window}: a slope with an error needs at least 3 points")
    data = metrics if stage is None else metrics[metrics["stage"] == stage]
    rows = []
    for start in range(0, len(data) - window + 1, window):
        part = data.iloc[start:start + window]
        fit = stats.linregress(part[X_AXES[x][0]].astype(float), part["train_loss"].astype(float))
        rows.append({"step": int(part["step"].iloc[window // 2]), "loss": part["train_loss"].mean(),
                     "slope": -fit.slope, "slope_stderr": fit.stderr})
    return pd.DataFrame(rows)


def slopes_at_equal_loss(slopes: dict[str, pd.DataFrame], bins: int = 6) -> pd.DataFrame:
    """Mean slope of each run per loss bin over the loss range the runs share, with a 95 %
    interval across the windows of the bin."""
    low = max(s["loss"].min() for s in slopes.values())
    high = min(s["loss"].max() for s in slopes.values())
    if not low < high:
        raise ValueError("the runs share no loss range: their loss curves do not overlap")
    edges = np.linspace(low, high, bins + 1)
    rows = []
    for name, table in slopes.items():
        for left, right in zip(edges, edges[1:]):
            inside = table[(table["loss"] >= left) & (table["loss"] <= right)]["slope"]
            if len(inside) == 0:
                continue
            half = (t_half_width(inside.std() / np.sqrt(len(inside)), len(inside))
                    if len(inside) > 1 else np.nan)
            rows.append({"run": name, "loss_level": (left + right) / 2, "slope": inside.mean(),
                         "ci_low": inside.mean() - half, "ci_high": inside.mean() + half,
                         "windows": len(inside)})
    return pd.DataFrame(rows)


def slope_ratio(table: pd.DataFrame, run: str, reference: str) -> dict[str, float]:
    """Mean over shared loss bins of slope(run) / slope(reference), with the bins' spread:
    > 1 means `run` descends faster at equal loss."""
    wide = table.pivot(index="loss_level", columns="run", values="slope").dropna()
    if wide.empty or run not in wide or reference not in wide:
        raise ValueError(f"no loss level where both {run!r} and {reference!r} have windows")
    ratios = wide[run] / wide[reference]
    half = (t_half_width(ratios.std() / np.sqrt(len(ratios)), len(ratios))
            if len(ratios) > 1 else np.nan)
    return {"ratio": float(ratios.mean()), "ci_low": float(ratios.mean() - half),
            "ci_high": float(ratios.mean() + half), "bins": int(len(ratios))}
