"""Section 5 of the paper as measurements: the implicit regularizer of subnet sampling and its
second-order prediction, the loss drop at stage transitions, the slope of the loss at equal
loss, and the Hessian trace along a run."""

from est_analysis.diagnostics.curvature import curvature_trajectory
from est_analysis.diagnostics.dynamics import loss_slopes, slope_ratio, slopes_at_equal_loss
from est_analysis.diagnostics.regularizer import (GapEstimate, SecondOrderPrediction,
                                                  regularizer_gap, regularizer_table,
                                                  regularizer_trajectory, second_order_gap)
from est_analysis.diagnostics.transitions import transition_table

__all__ = ["GapEstimate", "SecondOrderPrediction", "curvature_trajectory", "loss_slopes",
           "regularizer_gap", "regularizer_table", "regularizer_trajectory",
           "second_order_gap", "slope_ratio",
           "slopes_at_equal_loss", "transition_table"]
