"""Figures, drawn with matplotlib and saved atomically to files."""

from __future__ import annotations

import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from est_analysis.io import atomic_write  # noqa: E402


def save_figure(fig: plt.Figure, path: str | Path, dpi: int = 150) -> Path:
    buffer = io.BytesIO()
    fig.savefig(buffer, format=Path(path).suffix.lstrip(".") or "png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return atomic_write(path, lambda f: f.write(buffer.getvalue()))


def plot_loss_curves(runs: dict[str, pd.DataFrame], path: str | Path, smooth: int = 10,
                     title: str = "") -> Path:
    """Training loss (of the trained subnet, smoothed) and full-model validation loss against
    steps, and validation loss against cumulative training FLOPs. Stage boundaries of
    multi-stage runs are dotted lines (Figures 2-4 of the paper)."""
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    for (label, metrics), color in zip(runs.items(), plt.rcParams["axes.prop_cycle"].by_key()["color"]):
        val = metrics[pd.to_numeric(metrics["val_loss"], errors="coerce").notna()]
        train = metrics["train_loss"].rolling(smooth, min_periods=1).mean()
        axes[0].plot(metrics["step"], train, color=color, label=label)
        axes[1].plot(val["step"], val["val_loss"].astype(float), "o-", ms=3, color=color, label=label)
        axes[2].plot(val["cum_flops"], val["val_loss"].astype(float), "o-", ms=3, color=color,
                     label=label)
        for boundary in metrics.loc[metrics["stage"].diff() > 0, "step"]:
            for ax in axes[:2]:
                ax.axvline(boundary, color=color, ls=":", lw=1)
    labels = [("step", f"train loss of the trained subnet (mean of {smooth})"),
              ("step", "validation loss (full model)"),
              ("cumulative training FLOPs", "validation loss (full model)")]
    for ax, (xlabel, ylabel) in zip(axes, labels):
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title)
    return save_figure(fig, path)


def plot_spectral_density(density, path: str | Path, title: str = "", points: int = 1000) -> Path:
    """Smoothed Hessian eigenvalue density from SLQ (`est_analysis.hessian.SpectralDensity`),
    on a log scale as in Ghorbani et al. (2019) and pyhessian."""
    low, high = density.nodes.min(), density.nodes.max()
    margin = 0.05 * max(high - low, 1e-12)
    grid = np.linspace(low - margin, high + margin, points)
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.semilogy(grid, density.on_grid(grid) + 1e-12)
    ax.set_xlabel("eigenvalue")
    ax.set_ylabel("density (smoothed)")
    ax.grid(alpha=0.3)
    if title:
        ax.set_title(title)
    return save_figure(fig, path)
