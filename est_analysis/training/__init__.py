"""Training: one run's config and recipes, the loop (in named steps), checkpoints, metrics,
the learning-rate schedules, the optimizer and its treatment of parameters outside the
subnet, DDP, the asynchronous index generator, and `RunDir`, which names a run's files."""

from est_analysis.training.checkpoint import CheckpointError
from est_analysis.training.config import TrainConfig
from est_analysis.training.loop import TrainingError, train
from est_analysis.training.reopen import TrainedRun, load_run
from est_analysis.training.run_dir import RunDir, RunDirError

__all__ = ["CheckpointError", "RunDir", "RunDirError", "TrainConfig", "TrainedRun",
           "TrainingError", "load_run", "train"]
