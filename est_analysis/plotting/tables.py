"""Figures of the reproduced tables."""

from __future__ import annotations

import pandas as pd
from matplotlib import pyplot as plt

from est_analysis.plotting.style import color_for, new_figure


def saving_vs_loss(ours: pd.DataFrame, paper: pd.DataFrame | None = None) -> plt.Figure:
    """Final validation loss against FLOPs saving per label (Table 3's trade-off): ours as mean
    +- std over seeds (columns label, flops_saving, final_val_loss); the paper's reported points
    (columns label, flops_saving, val_loss) in a second panel, labelled as the paper's."""
    fig, axes = new_figure(2 if paper is not None else 1)
    stats = ours.groupby("label", sort=False).agg(
        saving=("flops_saving", "mean"), loss=("final_val_loss", "mean"),
        std=("final_val_loss", "std")).fillna({"std": 0.0})
    for label, row in stats.iterrows():
        axes[0].errorbar(row["saving"], row["loss"], yerr=row["std"], fmt="o", capsize=3,
                         color=color_for(label), label=label)
    axes[0].set_title("measured (this project)")
    if paper is not None:
        for row in paper.itertuples():
            axes[1].plot(row.flops_saving, row.val_loss, "s", color=color_for(row.label),
                         label=row.label)
        axes[1].set_title("reported by the paper (GPT-2 124M, 150k steps)")
    for ax in axes:
        ax.set_xlabel("FLOPs saving")
        ax.set_ylabel("final validation loss")
        ax.xaxis.set_major_formatter(plt.FuncFormatter(lambda v, _: f"{v:.0%}"))
        ax.legend(fontsize=7)
    return fig
