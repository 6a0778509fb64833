"""One look for every figure of the project, and atomic saving as PNG and PDF."""

from __future__ import annotations

import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from est_analysis.io import atomic_write  # noqa: E402

STYLE = {"figure.dpi": 100, "axes.grid": True, "grid.alpha": 0.3, "axes.spines.top": False,
         "axes.spines.right": False, "legend.frameon": False, "font.size": 10}
# the same colour for a method in every figure
METHOD_COLORS = {"original": "#1f77b4", "est": "#ff7f0e", "staged": "#2ca02c", "msg": "#d62728",
                 "raptr": "#9467bd", "layer-drop": "#8c564b"}
CYCLE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"]


def color_for(label: str, index: int) -> str:
    """The method's colour when `label` names a method, else the index-th of the cycle."""
    return METHOD_COLORS.get(label, CYCLE[index % len(CYCLE)])


def new_figure(ncols: int = 1, width: float = 5.5, height: float = 4.0,
               **kwargs) -> tuple[plt.Figure, list[plt.Axes]]:
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(1, ncols, figsize=(width * ncols, height), squeeze=False, **kwargs)
        for ax in axes[0]:
            ax.grid(alpha=STYLE["grid.alpha"])
            ax.spines[["top", "right"]].set_visible(False)
    return fig, list(axes[0])


def save(fig: plt.Figure, path: str | Path, formats: tuple[str, ...] = ("png", "pdf"),
         dpi: int = 150) -> list[Path]:
    """Write `fig` as path.png and path.pdf (any suffix of `path` is replaced), each atomically,
    and close it."""
    path = Path(path)
    written = []
    for fmt in formats:
        buffer = io.BytesIO()
        fig.savefig(buffer, format=fmt, dpi=dpi, bbox_inches="tight")
        written.append(atomic_write(path.with_suffix(f".{fmt}"), lambda f: f.write(buffer.getvalue())))
    plt.close(fig)
    return written
