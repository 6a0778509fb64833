"""Figures of the section-5 diagnostics (`est_analysis.diagnostics`): regularizer gap along a
run, transition drops against Delta R, slope against loss level, Hessian traces with intervals
and per-block shares, and the Hessian eigenvalue density."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib import pyplot as plt
from matplotlib.patches import Patch

from est_analysis.plotting.style import color_for, fit_tick_labels, new_figure, series_color


def regularizer_trajectory(table: pd.DataFrame) -> plt.Figure:
    """R (Monte Carlo, 95 % CI band) against step, one line per rates and sampled kind; the
    second-order prediction dashed where it exists (`regularizer_trajectory` output)."""
    fig, (ax,) = new_figure()
    for i, ((rates, sampled), part) in enumerate(table.groupby(["rates", "sampled"], sort=False)):
        part = part.sort_values("step")
        color = series_color(i)
        ax.plot(part["step"], part["R_mc"], "o-", ms=3, color=color, label=f"({rates}) {sampled}")
        ax.fill_between(part["step"], part["R_mc_ci_low"], part["R_mc_ci_high"], color=color,
                        alpha=0.2, lw=0)
        if "R_predicted" in part and part["R_predicted"].notna().any():
            ax.plot(part["step"], part["R_predicted"], "--", color=color, lw=1)
    ax.set_xlabel("step")
    ax.set_ylabel("R = E[L_subnet] - L_full (dashed: 2nd order)")
    ax.legend(fontsize=7)
    return fig


def regularizer_prediction(table: pd.DataFrame) -> plt.Figure:
    """Second-order prediction against Monte Carlo R, one point per rates and kind, with both
    intervals and the diagonal (`regularizer_table` output)."""
    rows = table[table["R_predicted"].notna()]
    fig, (ax,) = new_figure(width=4.5, height=4.5)
    for i, (sampled, part) in enumerate(rows.groupby("sampled", sort=False)):
        ax.errorbar(part["R_mc"], part["R_predicted"], xerr=1.96 * part["R_mc_stderr"],
                    yerr=1.96 * part["R_predicted_stderr"], fmt="o", color=series_color(i),
                    label=sampled, capsize=2)
    top = max(rows["R_mc"].max(), rows["R_predicted"].max()) * 1.1 if len(rows) else 1.0
    ax.plot([0, top], [0, top], color="0.5", lw=1, ls=":")
    ax.set_xlabel("R measured (Monte Carlo)")
    ax.set_ylabel("R predicted (1/2 tr(H Cov))")
    ax.legend()
    return fig


def _rates(rates: object) -> str:
    """(0.5, 0.5, 1.0) as '(.5,.5,1)': short enough for a tick label."""
    values = rates if isinstance(rates, (tuple, list)) else str(rates).strip("()[] ").split(",")
    try:
        texts = [f"{float(v):g}" for v in values]
    except ValueError:  # not numbers: shown as given
        return str(rates)
    return "(" + ",".join(s[1:] if s.startswith("0.") else s for s in texts) + ")"


def transition_drops(table: pd.DataFrame) -> plt.Figure:
    """Observed loss drop at each stage boundary beside Delta R on the same weights
    (`transition_table` output)."""
    fig, (ax,) = new_figure()
    position = np.arange(len(table))
    ax.bar(position - 0.2, table["observed_drop"], 0.4, yerr=1.96 * table["observed_drop_stderr"],
           label="observed drop of the training loss", capsize=3, color=series_color(0))
    ax.bar(position + 0.2, table["delta_R"], 0.4, yerr=1.96 * table["delta_R_stderr"],
           label="Delta R (same weights, same batches)", capsize=3, color=series_color(1))
    seeds = table["seed"] if "seed" in table and table["seed"].nunique() > 1 else None
    ax.set_xticks(position, [f"step {b}" + (f", seed {seeds.iloc[i]}" if seeds is not None else "")
                             + f"\n{_rates(a)}\n-> {_rates(c)}" for i, (b, a, c) in enumerate(
                                 zip(table["boundary"], table["rates_before"], table["rates_after"]))],
                  fontsize=7)
    fit_tick_labels(ax)
    ax.set_ylabel("loss drop at the boundary")
    ax.axhline(0, color="0.3", lw=0.8)
    ax.legend(fontsize=8)
    return fig


def slopes_vs_loss(table: pd.DataFrame, x_label: str = "step") -> plt.Figure:
    """Mean slope -dL/dx per loss bin with its 95 % interval, one line per run
    (`slopes_at_equal_loss` output); the loss axis runs from high to low, as training does."""
    fig, (ax,) = new_figure()
    for run, part in table.groupby("run", sort=False):
        ax.errorbar(part["loss_level"], part["slope"],
                    yerr=[part["slope"] - part["ci_low"], part["ci_high"] - part["slope"]],
                    fmt="o-", ms=4, capsize=2, color=color_for(run), label=run)
    ax.invert_xaxis()
    ax.set_xlabel("training loss level")
    ax.set_ylabel(f"slope -dL/d{x_label}")
    ax.legend()
    return fig


def trace_bars(traces: pd.DataFrame, block_columns: list[str] | None = None,
               symbol: str = "Tr(H)") -> plt.Figure:
    """A curvature trace (`symbol`: Tr(H), Tr(G) for the GGN, ...) per row (a run, or a step of
    `curvature_trajectory`) with its 95 % CI; with `block_columns` (e.g. the table's 'block:*'
    columns) a second panel stacks the shares."""
    label_column = "run" if "run" in traces else "step"
    blocks = block_columns if block_columns is not None else [c for c in traces if c.startswith("block:")]
    fig, axes = new_figure(2 if blocks else 1)
    labels = traces[label_column].astype(str)
    axes[0].bar(labels, traces["trace"], yerr=[traces["trace"] - traces["ci_low"],
                                               traces["ci_high"] - traces["trace"]],
                capsize=3, color=[color_for(lbl) for lbl in labels])
    axes[0].set_xlabel(label_column)
    axes[0].set_ylabel(f"{symbol} (95 % CI)")
    methods = list(dict.fromkeys(lbl.split(" seed")[0] for lbl in labels))
    if len(methods) < len(labels):  # several seeds of a method share its colour: name them
        axes[0].legend(handles=[Patch(color=color_for(m), label=m) for m in methods], fontsize=7)
    fit_tick_labels(axes[0])
    if blocks:
        bottom = np.zeros(len(traces))
        palette = plt.get_cmap("tab20")
        for i, column in enumerate(blocks):
            share = (traces[column] / traces["trace"]).to_numpy()
            axes[1].bar(labels, share, bottom=bottom, label=column.removeprefix("block:"),
                        color=palette(i % palette.N))
            bottom += share
        axes[1].set_ylabel("share of the trace")
        axes[1].set_xlabel(label_column)
        axes[1].legend(fontsize=6, ncol=2)
    return fig


def trace_trajectories(tables: dict[str, pd.DataFrame]) -> plt.Figure:
    """Hessian trace against step with its 95 % CI band, one line per run
    (`curvature_trajectory` outputs): does EST keep a smaller trace to the end (section 5.2)?"""
    fig, (ax,) = new_figure()
    for label, table in tables.items():
        color = color_for(label)
        ax.plot(table["step"], table["trace"], "o-", ms=3, color=color, label=label)
        ax.fill_between(table["step"], table["ci_low"], table["ci_high"], color=color, alpha=0.2, lw=0)
    ax.set_xlabel("step")
    ax.set_ylabel("Tr(H) (95 % CI)")
    ax.legend()
    return fig


def spectral_density(density, points: int = 1000) -> plt.Figure:
    """Smoothed Hessian eigenvalue density from SLQ (`est_analysis.hessian.SpectralDensity`),
    on a log scale as in Ghorbani et al. (2019) and pyhessian."""
    low, high = density.nodes.min(), density.nodes.max()
    margin = 0.05 * max(high - low, 1e-12)
    grid = np.linspace(low - margin, high + margin, points)
    fig, (ax,) = new_figure()
    ax.semilogy(grid, density.on_grid(grid) + 1e-12)
    ax.set_xlabel("eigenvalue")
    ax.set_ylabel("density (smoothed)")
    return fig
