"""The why-EST-trails figure (`repro.studies`, `repro.conclusions`): EST's gap to the
compute-matched Original against steps for each width, each ablation variant against Original,
the positive control's validation curves, and the final loss against peak LR per arm."""

from __future__ import annotations

import textwrap

import numpy as np
import pandas as pd
from matplotlib import pyplot as plt

from est_analysis.plotting.style import color_for, new_figure, series_color


def _interval(ax: plt.Axes, x, y, low, high, **kwargs) -> None:
    """Points with 95 % bars; a point without an interval (one seed) is drawn hollow."""
    x, y, low, high = (np.asarray(v, dtype=float) for v in (x, y, low, high))
    known = ~np.isnan(low)
    yerr = np.vstack([y - low, high - y])[:, known]
    line = ax.errorbar(x[known], y[known], yerr=yerr, capsize=3, **kwargs)
    ax.plot(x[~known], y[~known], kwargs.get("fmt", "o")[0], mfc="white",
            color=line[0].get_color())


def gap_by_steps(ax: plt.Axes, cells: pd.DataFrame) -> None:
    """EST - matched Original (paired 95 %) against steps, one line per model of the length
    and width axes (`conclusions.matched_cells`)."""
    runs = cells[cells["axis"].isin(["length", "width"])]
    if runs.empty:
        ax.text(0.5, 0.5, "not measured yet", transform=ax.transAxes, ha="center")
        return
    for i, (model, line) in enumerate(runs.sort_values("steps").groupby("model", sort=False)):
        _interval(ax, line["steps"], line["diff"], line["diff_low"], line["diff_high"],
                  fmt="o-", label=model, color=series_color(i))
    ax.axhline(0, color="black", lw=0.8)
    ax.set_xscale("log")
    ax.set_xlabel("steps (each point: one length of one model)")
    ax.set_ylabel("EST - Original at EST's FLOPs")
    ax.set_title("length and width")
    ax.legend(fontsize=7)


def ablation_bars(ax: plt.Axes, summary: pd.DataFrame, reference: pd.DataFrame) -> None:
    """Each ablation variant and EST minus Original (bars, paired 95 %), labelled with its
    FLOPs saving, and each variant minus the Original trained for its own FLOPs (diamonds)
    (`studies.study_summary` of the ablation; `reference` its EST-vs-Original line)."""
    lines = pd.concat([reference, summary[summary["versus"] == "Original"]], ignore_index=True)
    matched = summary[~summary["versus"].isin(["Original", "EST"])].set_index("arm")  # own FLOPs
    y = np.arange(len(lines))[::-1]
    for yi, (_, line) in zip(y, lines.iterrows()):
        ax.barh(yi, line["diff"], color=color_for(line["arm"]), alpha=0.7)
        if not np.isnan(line["diff_low"]):
            ax.plot([line["diff_low"], line["diff_high"]], [yi, yi], color="black", lw=1.2)
        if line["arm"] in matched.index:
            own = matched.loc[line["arm"]]
            ax.plot(own["diff"], yi - 0.3, "D", color="black", ms=4,
                    label="minus the Original of its own FLOPs" if yi == y[1] else None)
            if not np.isnan(own["diff_low"]):
                ax.plot([own["diff_low"], own["diff_high"]], [yi - 0.3] * 2, color="black", lw=0.8, ls=":")
        seeds = int(line["seeds"])
        ax.annotate(f"{1 - line['flops_ratio']:.0%} fewer FLOPs, {seeds} seed{'s' if seeds > 1 else ''}",
                    (0, yi), xytext=(3, 8), textcoords="offset points", fontsize=6)
    ax.set_yticks(y, [textwrap.fill(arm.removeprefix("EST, "), 28) for arm in lines["arm"]], fontsize=6)
    ax.axvline(0, color="black", lw=0.8)
    ax.set_xlabel("minus Original (bars; < 0: better)")
    ax.set_title("components (each named by all it samples)")
    if not matched.empty:
        ax.legend(fontsize=6, loc="lower right")


def control_curves(ax: plt.Axes, curves: pd.DataFrame, title: str = "positive control") -> None:
    """A study's validation loss per arm against steps (the positive control's, or the
    instability probe's): the mean over seeds, shaded between the lowest and highest seed."""
    for arm, runs in curves.dropna(subset=["val_loss"]).groupby("arm", sort=False):
        by_step = runs.groupby("step")["val_loss"]
        mean = by_step.mean()
        ax.plot(mean.index, mean, label=f"{arm} ({runs['seed'].nunique()} seeds)",
                color=color_for(arm))
        ax.fill_between(mean.index, by_step.min(), by_step.max(), color=color_for(arm), alpha=0.2)
    ax.set_xlabel("step")
    ax.set_ylabel("validation loss")
    ax.set_title(f"{title}: {curves['group'].iloc[0]}" if len(curves) else title, fontsize=8)
    ax.legend(fontsize=7)


def instability_curves(ax: plt.Axes, curves: pd.DataFrame) -> None:
    """The d = 64 cell's arms evaluated every few steps: a spike or plateau, or a slower curve."""
    control_curves(ax, curves, "validation every few steps")


def screen(ax: plt.Axes, summary: pd.DataFrame, finals: pd.DataFrame | None = None) -> None:
    """The schedule screen and its finals: each candidate minus the Original of its own FLOPs
    against the FLOPs it saved (`studies.study_summary` of the schedules and finals studies;
    hollow: the screen's one seed, triangles its adaptive switches; filled: the finals)."""
    adaptive = summary["group"].str.contains("switched")
    for part, marker, label in ((summary[~adaptive], "o", "screen, cost search"),
                                (summary[adaptive], "^", "screen, adaptive switch")):
        _interval(ax, part["flops_saving"], part["diff"], part["diff_low"], part["diff_high"],
                  fmt=marker, color=color_for("EST"), label=label)
    if finals is not None and not finals.empty:
        _interval(ax, finals["flops_saving"], finals["diff"], finals["diff_low"],
                  finals["diff_high"], fmt="s", color=color_for("Original"),
                  label=f"finals ({int(finals['seeds'].max())} seeds, longer)")
    ax.axhline(0, color="black", lw=0.8)
    ax.set_xlabel("FLOPs saved against the full Original (measured)")
    ax.set_ylabel("minus the Original of its own FLOPs")
    ax.set_title("schedules without neuron sampling")
    ax.legend(fontsize=7)


def lr_sweep(ax: plt.Axes, rows: pd.DataFrame) -> None:
    """Final validation loss against peak LR for each arm of the LR study's GPT-2 cells: the
    mean over seeds, bars from the lowest to the highest seed."""
    peaks = rows[rows["group"].str.startswith("gpt2, lr ")]
    for arm, runs in peaks.groupby("arm", sort=False):
        loss = runs.groupby("lr")["final_val_loss"]
        mean = loss.mean()
        ax.errorbar(mean.index, mean, yerr=[mean - loss.min(), loss.max() - mean], fmt="o-",
                    capsize=3, label=f"{arm} ({runs['seed'].nunique()} seeds)",
                    color=color_for("Original" if arm == "Original" else
                                    "EST" if arm == "EST" else "Staged Training"))
    ax.set_xscale("log")
    ax.set_xticks(sorted(peaks["lr"].unique()), [f"{lr:g}" for lr in sorted(peaks["lr"].unique())])
    ax.minorticks_off()
    ax.set_xlabel("peak learning rate")
    ax.set_ylabel("final validation loss")
    ax.set_title("peak LR (GPT-2 schedule)")
    ax.legend(fontsize=7)


def studies_figure(cells: pd.DataFrame, ablation: pd.DataFrame, ablation_reference: pd.DataFrame,
                   curves: pd.DataFrame, lr_rows: pd.DataFrame,
                   instability: pd.DataFrame | None = None,
                   schedules: pd.DataFrame | None = None,
                   finals: pd.DataFrame | None = None) -> plt.Figure:
    """The panels side by side; a study without rows says so in its panel."""
    fig, axes = new_figure(6, width=4.6, layout="constrained")
    panels = ((gap_by_steps, (cells,)), (ablation_bars, (ablation, ablation_reference)),
              (control_curves, (curves,)), (lr_sweep, (lr_rows,)),
              (instability_curves, (instability,)), (screen, (schedules,)))
    for ax, (draw, data) in zip(axes, panels):
        if any(frame is None or frame.empty for frame in data):
            ax.text(0.5, 0.5, "not measured yet", transform=ax.transAxes, ha="center")
            continue
        draw(ax, *data, **({"finals": finals} if draw is screen else {}))
    return fig
