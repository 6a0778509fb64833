"""One look for every figure of the project, and atomic saving as PNG and PDF."""

from __future__ import annotations

import io
import sys
import textwrap
import zlib
from pathlib import Path

import matplotlib

if "ipykernel" not in sys.modules:  # files only; a notebook keeps its inline backend
    matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from est_analysis.io import atomic_write  # noqa: E402

STYLE = {"figure.dpi": 100, "axes.grid": True, "grid.alpha": 0.3, "axes.spines.top": False,
         "axes.spines.right": False, "legend.frameon": False, "font.size": 10}
# One colour per method and per Table 3 schedule, the same in every figure and panel.
METHOD_COLORS = {"original": "#1f77b4", "est": "#ff7f0e", "staged": "#2ca02c", "msg": "#d62728",
                 "raptr": "#9467bd", "layer-drop": "#8c564b", "est-one-stage": "#e377c2",
                 "est-two-stage-a": "#7f7f7f", "est-two-stage-b": "#bcbd22",
                 "est-two-stage-c": "#17becf", "est-three-stage": "#393b79"}
ALIASES = {"staged-training": "staged"}  # the paper's row names
# other labels (run names, rates) get a colour from their name, never from their position
OTHER_COLORS = ["#637939", "#8c6d31", "#843c39", "#7b4173", "#3182bd", "#e6550d", "#31a354",
                "#756bb1", "#636363", "#9c9ede"]
SERIES = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b"]


def color_for(label: str) -> str:
    """The colour of a method, schedule or run label, whatever the figure and the order: the
    method's own (case, spaces and a '(...)' or ' seed N' suffix ignored), else one fixed by
    the name."""
    key = label.split(" (")[0].split(" seed")[0].strip().lower().replace(" ", "-")
    key = ALIASES.get(key, key)
    if key in METHOD_COLORS:
        return METHOD_COLORS[key]
    return OTHER_COLORS[zlib.crc32(key.encode()) % len(OTHER_COLORS)]


def _x_labels_overlap(ax: plt.Axes) -> bool:
    ax.figure.canvas.draw()
    boxes = [label.get_window_extent() for label in ax.get_xticklabels() if label.get_text()]
    return any(a.overlaps(b) for a, b in zip(boxes, boxes[1:]))


def fit_tick_labels(ax: plt.Axes, width: int = 12) -> None:
    """Keep the x tick labels apart (long run names, many bars): wrap each line at spaces to
    `width` characters, and turn them upright if they still overlap."""
    if not _x_labels_overlap(ax):
        return
    ticks = ax.get_xticks()
    texts = ["\n".join(textwrap.fill(line, width) for line in label.get_text().split("\n"))
             for label in ax.get_xticklabels()]
    ax.set_xticks(ticks, texts)
    if _x_labels_overlap(ax):
        plt.setp(ax.get_xticklabels(), rotation=90)


def series_color(index: int) -> str:
    """The colour of the index-th of several series that are not methods (e.g. rate settings)."""
    return SERIES[index % len(SERIES)]


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
