"""Figures of the loss-landscape probes (`est_analysis.landscape`)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib import pyplot as plt

from est_analysis.plotting.style import color_for, new_figure


def landscape_1d(curves: dict[str, pd.DataFrame], x_label: str = "alpha") -> plt.Figure:
    """Loss against the step along a direction (or the interpolation coefficient), one line per
    entry (`slice_1d` / `interpolate` output)."""
    fig, (ax,) = new_figure()
    for label, curve in curves.items():
        ax.plot(curve["alpha"], curve["loss"], "o-", ms=3, color=color_for(label), label=label)
    ax.set_xlabel(x_label)
    ax.set_ylabel("loss")
    ax.legend()
    return fig


def landscape_2d(surface: pd.DataFrame, levels: int = 20, log: bool = False) -> plt.Figure:
    """Filled contours of the loss over the (alpha, beta) plane (`slice_2d` output), the
    trained weights at the origin marked."""
    grid = surface.pivot(index="beta", columns="alpha", values="loss")
    values = np.log(grid.to_numpy()) if log else grid.to_numpy()
    fig, (ax,) = new_figure(width=5.0, height=4.5)
    filled = ax.contourf(grid.columns, grid.index, values, levels=levels, cmap="viridis")
    ax.contour(grid.columns, grid.index, values, levels=levels, colors="k", linewidths=0.3)
    fig.colorbar(filled, ax=ax, label="log loss" if log else "loss")
    ax.plot(0, 0, "r*", ms=10)
    ax.set_xlabel("alpha (direction 1)")
    ax.set_ylabel("beta (direction 2)")
    ax.grid(False)
    return fig
