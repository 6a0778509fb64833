"""Loss curves (Figures 2-4 of the paper): training or validation loss against steps, tokens,
FLOPs or wall time, stage boundaries shaded and labelled, several runs overlaid, and a band of
+- one standard deviation where a run is given with several seeds."""

from __future__ import annotations

import pandas as pd
from matplotlib import pyplot as plt
from matplotlib.patches import Patch

from est_analysis.plotting.style import color_for, new_figure
from est_analysis.training.metrics import X_AXES
Y_LABELS = {"train": "training loss of the trained subnet", "val": "validation loss (full model)"}
Runs = dict[str, "pd.DataFrame | list[pd.DataFrame]"]  # label -> metrics of one or more seeds


def _seeds(metrics: pd.DataFrame | list[pd.DataFrame]) -> list[pd.DataFrame]:
    return [metrics] if isinstance(metrics, pd.DataFrame) else list(metrics)


def _curve(metrics: pd.DataFrame, x: str, y: str, smooth: int) -> pd.Series:
    """y indexed by step: the smoothed training loss, or the logged validation losses."""
    if y == "train":
        values = metrics["train_loss"].rolling(smooth, min_periods=1).mean()
    else:
        values = pd.to_numeric(metrics["val_loss"], errors="coerce")
    return pd.Series(values.to_numpy(), index=metrics[X_AXES[x][0]].to_numpy()).dropna()


def shade_stages(ax: plt.Axes, metrics: pd.DataFrame, x: str = "step") -> None:
    """Alternate light bands over a run's stages, each labelled with its rates at the top."""
    column = X_AXES[x][0]
    stages = metrics.groupby("stage")
    if stages.ngroups < 2:
        return
    span = metrics[column].iloc[-1] - metrics[column].iloc[0]
    for i, (stage, part) in enumerate(stages):
        left, right = part[column].iloc[0], part[column].iloc[-1]
        ax.axvspan(left, right, color="0.5", alpha=0.08 if i % 2 == 0 else 0.0, lw=0)
        rates = part[["p_H", "p_M", "p_L"]].iloc[0]
        wide = (right - left) > 0.2 * span  # room for the rates under the stage number
        label = f"stage {stage}\n({rates.p_H:g},{rates.p_M:g},{rates.p_L:g})" if wide else f"{stage}"
        ax.text((left + right) / 2, 1.0, label, transform=ax.get_xaxis_transform(), ha="center",
                va="bottom", fontsize=7)
        if i:
            ax.axvline(left, color="0.4", ls=":", lw=1)


LINE_STYLES = (("-", "o"), ("--", "s"), (":", "^"), ("-.", "D"))  # (line, marker) per run


def draw_loss_curves(ax: plt.Axes, runs: Runs, x: str = "step", y: str = "val",
                     smooth: int = 10, stages_of: str | None = None) -> None:
    """Draw each run (mean over seeds, +- one std band) on `ax`; shade the stages of the run
    labelled `stages_of` (default: the first multi-stage run)."""
    if x not in X_AXES or y not in Y_LABELS:
        raise ValueError(f"x={x!r}, y={y!r}: x is one of {sorted(X_AXES)}, y one of {sorted(Y_LABELS)}")
    for i, (label, metrics) in enumerate(runs.items()):
        curves = pd.concat([_curve(m, x, y, smooth) for m in _seeds(metrics)], axis=1)
        mean = curves.mean(axis=1)
        color = color_for(label)
        n = curves.shape[1]
        line, marker = LINE_STYLES[i % len(LINE_STYLES)]  # runs that overlap stay told apart
        ax.plot(mean.index, mean.to_numpy(), ls=line, marker=marker if y == "val" else None,
                ms=4 - i % 2, mfc="white" if i % 2 else color, color=color,
                label=label if n == 1 else f"{label} (mean of {n} seeds)")
        if n > 1:
            std = curves.std(axis=1)
            ax.fill_between(mean.index, mean - std, mean + std, color=color, alpha=0.2, lw=0)
    multi_stage = [l for l, m in runs.items() if _seeds(m)[0]["stage"].nunique() > 1]
    owner = stages_of or (multi_stage[0] if multi_stage else None)
    if owner:
        shade_stages(ax, _seeds(runs[owner])[0], x)
    ax.set_xlabel(X_AXES[x][1])
    ax.set_ylabel(Y_LABELS[y] + (f" (mean of {smooth} steps)" if y == "train" and smooth > 1 else ""))
    handles, _ = ax.get_legend_handles_labels()
    if owner and len(runs) > 1:  # whose stages the bands are
        handles.append(Patch(facecolor="0.5", alpha=0.25, label=f"stages of {owner}"))
    ax.legend(handles=handles)


def loss_curves(runs: Runs, x: str = "step", y: str = "val", smooth: int = 10,
                title: str = "") -> plt.Figure:
    """One panel: `y` loss of every run against `x`."""
    fig, (ax,) = new_figure()
    draw_loss_curves(ax, runs, x, y, smooth)
    if title:
        fig.suptitle(title, y=1.06)
    return fig


def comparison_figure(runs: Runs, smooth: int = 10, title: str = "") -> plt.Figure:
    """Three panels: training loss and validation loss against steps, validation loss against
    FLOPs (what `est compare` draws)."""
    fig, axes = new_figure(3, width=5.0)
    for ax, (x, y) in zip(axes, (("step", "train"), ("step", "val"), ("flops", "val"))):
        draw_loss_curves(ax, runs, x, y, smooth)
    if title:
        fig.suptitle(title, y=1.08)
    return fig

