"""`--tensorboard`: the rows of `metrics.csv` also written as TensorBoard scalars (one tag per
column, the step as x), in `RUN/tensorboard/`. A resumed run purges the events of the steps it
repeats, as `metrics.csv` drops their rows."""

from __future__ import annotations

import math
from pathlib import Path


class TensorBoardLog:
    def __init__(self, log_dir: str | Path, keep_steps_before: int = 0) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise ValueError("--tensorboard needs the tensorboard package: pip install "
                             "tensorboard") from None
        self._writer = SummaryWriter(str(log_dir), purge_step=keep_steps_before or None)

    def write(self, row: dict) -> None:
        for column, value in row.items():
            if column != "step" and isinstance(value, (int, float)) and math.isfinite(value):
                self._writer.add_scalar(column, value, row["step"])
        self._writer.flush()

    def close(self) -> None:
        self._writer.close()
