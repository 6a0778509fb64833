"""The project's figures. Every function takes data (a DataFrame or a result object of the
library) and returns a matplotlib Figure; `save` writes it as PNG and PDF."""

from est_analysis.plotting.curves import comparison_figure, draw_loss_curves, loss_curves, shade_stages
from est_analysis.plotting.diagnostics import (regularizer_prediction, regularizer_trajectory,
                                               slopes_vs_loss, spectral_density, trace_bars,
                                               trace_trajectories, transition_drops)
from est_analysis.plotting.ladder import ladder_figure
from est_analysis.plotting.landscape import landscape_1d, landscape_2d
from est_analysis.plotting.studies import studies_figure
from est_analysis.plotting.tables import saving_vs_loss
from est_analysis.plotting.style import METHOD_COLORS, color_for, new_figure, save, series_color

__all__ = ["METHOD_COLORS", "color_for", "comparison_figure", "draw_loss_curves", "ladder_figure",
           "landscape_1d", "landscape_2d", "loss_curves", "new_figure", "regularizer_prediction",
           "regularizer_trajectory", "save", "saving_vs_loss", "series_color", "shade_stages",
           "slopes_vs_loss", "spectral_density", "studies_figure", "trace_bars", "trace_trajectories",
           "transition_drops"]
