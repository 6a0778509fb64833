"""The regime ladder figure (`repro.ladder.ladder_summary`): EST's loss gap and iso-loss FLOPs
saving against tokens per parameter, and the gap against model size."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib import pyplot as plt
from matplotlib.ticker import NullFormatter

from est_analysis.plotting.style import color_for, new_figure, series_color


def _errorbar(ax: plt.Axes, x: pd.Series, y: pd.Series, low: pd.Series, high: pd.Series,
              label: str, color: str, marker: str = "o") -> None:
    """Points with their intervals; a side with no interval (nan) draws no bar."""
    yerr = np.vstack([(y - low).fillna(0).to_numpy(), (high - y).fillna(0).to_numpy()])
    ax.errorbar(x, y, yerr=yerr, fmt=f"{marker}-", capsize=3, color=color, label=label)


def ladder_figure(summary: pd.DataFrame, paper_regimes: dict[str, float] | None = None,
                  width: pd.DataFrame | None = None) -> plt.Figure:
    """Three panels: gap (EST - Original, EST - Original at EST's FLOPs) and iso-loss saving
    against tokens per parameter (the length axis), and both gaps against parameters (the size
    axis). Bars are 95 % intervals (Welch; bootstrap for the saving); a hollow marker is a bound
    (EST's loss outside Original's measured range). `paper_regimes` marks the paper's runs.
    With `width` (`width_gaps` of the width study) a fourth panel: EST - Original at EST's
    FLOPs against width at fixed depth and head size, one line per length."""
    fig, axes = new_figure(3 if width is None else 4, width=5.0, layout="constrained")
    gap_ax, saving_ax, size_ax = axes[:3]
    if width is not None:
        _width_panel(axes[3], width)
    length = summary[summary["axis"] == "length"].sort_values("tokens_per_param")
    size = summary[summary["axis"] == "size"].sort_values("params")
    for frame, ax, x in ((length, gap_ax, "tokens_per_param"), (size, size_ax, "params")):
        if frame.empty:  # an axis whose runs have not finished yet
            ax.text(0.5, 0.5, "not measured yet", transform=ax.transAxes, ha="center")
            continue
        for column, label in (("gap", "EST - Original (same steps)"),
                              ("gap_matched", "EST - Original at EST's FLOPs")):
            if column in frame:
                _errorbar(ax, frame[x], frame[column], frame[f"{column}_low"],
                          frame[f"{column}_high"], label,
                          color_for("Original" if column == "gap" else "Staged Training"))
        ax.axhline(0, color="black", lw=0.8)
        ax.set_xscale("log")
        ax.set_ylabel("EST loss - other loss (< 0: EST better)")
    if length.empty:
        return fig
    _errorbar(saving_ax, length["tokens_per_param"], length["iso_loss_saving"],
              length["iso_loss_saving_low"], length["iso_loss_saving_high"],
              "iso-loss FLOPs saving", color_for("EST"))
    bounds = length[length["iso_loss_bound"].fillna("") != ""]
    saving_ax.plot(bounds["tokens_per_param"], bounds["iso_loss_saving"], "o", mfc="white",
                   color=color_for("EST"), label="bound (outside Original's range)")
    saving_ax.plot(length["tokens_per_param"], 1 - length["flops_ratio"], "k:",
                   label="EST's FLOPs saving (saving if losses were equal)")
    saving_ax.axhline(0, color="black", lw=0.8)
    saving_ax.set_xscale("log")
    saving_ax.set_ylabel("FLOPs saved at equal loss (< 0: costs more)")
    saving_ax.yaxis.set_major_formatter(plt.FuncFormatter(lambda v, _: f"{v:.0%}"))
    for ax in (gap_ax, saving_ax):
        ax.set_xlabel("tokens per parameter")
        for name, tpp in (paper_regimes or {}).items():
            ax.axvline(tpp, color="grey", ls="--", lw=1)
            ax.annotate(f"paper: {name}", (tpp, 0.02), xycoords=("data", "axes fraction"),
                        rotation=90, fontsize=7, ha="right", color="grey")
    if not length.empty:
        gap_ax.set_title(f"length ({length['model'].iloc[0]})")
    if not size.empty:
        size_ax.set_title(f"model size at {size['tokens_per_param'].iloc[0]:.3g} tokens/parameter")
        size_ax.set_xticks(size["params"], [f"{p / 1e3:.0f} k" for p in size["params"]])
        size_ax.xaxis.set_minor_formatter(NullFormatter())
    size_ax.set_xlabel("parameters")
    for ax in (gap_ax, saving_ax, size_ax):
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    return fig


def _width_panel(ax: plt.Axes, width: pd.DataFrame) -> None:
    """EST - compute-matched Original (paired 95 % interval; a point without one is a single
    seed) against d_model, one line per tokens per parameter."""
    for i, (tpp, line) in enumerate(width.sort_values("d_model").groupby("tokens_per_param")):
        _errorbar(ax, line["d_model"], line["diff"], line["diff_low"], line["diff_high"],
                  f"{tpp:g} tokens/parameter", series_color(i))
        for _, point in line.iterrows():
            ax.annotate(f"{int(point['seeds'])} seed{'s' * (point['seeds'] > 1)}",
                        (point["d_model"], point["diff"]), textcoords="offset points",
                        xytext=(4, 4), fontsize=6)
    ax.axhline(0, color="black", lw=0.8)
    ax.set_xscale("log", base=2)
    ax.set_xticks(sorted(width["d_model"].unique()), [f"{d:g}" for d in sorted(width["d_model"].unique())])
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("d_model (4 layers, head size 8, heads = d / 8)")
    ax.set_ylabel("EST - Original at EST's FLOPs")
    ax.set_title("width")
    ax.legend(fontsize=7)
