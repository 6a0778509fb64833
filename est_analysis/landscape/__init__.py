"""Loss-landscape probes: slices along filter-normalized random directions (Li et al., NeurIPS
2018), linear interpolation between two checkpoints, and epsilon-sharpness (Keskar et al., ICLR
2017), for the flat-minimum explanation of EST's behaviour (section 5.2)."""

from est_analysis.landscape.directions import Direction, filter_normalized_direction
from est_analysis.landscape.probes import LossFn, batch_loss_fn, interpolate, slice_1d, slice_2d
from est_analysis.landscape.sharpness import SharpnessResult, epsilon_sharpness

__all__ = ["Direction", "LossFn", "SharpnessResult", "batch_loss_fn", "epsilon_sharpness",
           "filter_normalized_direction", "interpolate", "slice_1d", "slice_2d"]
