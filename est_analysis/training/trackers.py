"""`--logger`: the tracker that receives a run's metrics besides `metrics.csv`, always written
(litgpt's convention: one option names the logger). Each gets every row of `metrics.csv` (loss,
LR, FLOPs, tokens, stage, rates, timing; the step as x) and the run's config:

- `csv`: `metrics.csv` only (default);
- `tensorboard`: event files in `RUN/tensorboard/` (`tensorboard --logdir RUN`); a resumed
  run purges the events of the steps it repeats, as `metrics.csv` drops their rows;
- `trackio`: trackio's local SQLite store (`$TRACKIO_DIR`, default
  `~/.cache/huggingface/trackio`), project `est`, the run named after its directory
  (`trackio show --project est`); a resumed run continues the same run;
- `wandb`: Weights & Biases in offline mode, in `RUN/wandb/` (`wandb sync RUN/wandb/offline-run-*`
  uploads it later, if you choose); a resumed run continues the same run id.

Nothing reaches a network: trackio is never given a Space, W&B runs offline. A resumed run is
bit-identical to an uninterrupted one, so steps a tracker receives twice carry equal values
(only the timing columns differ).
"""

from __future__ import annotations

import hashlib
import math
import os
from pathlib import Path
from typing import Protocol

LOGGERS = ("csv", "tensorboard", "trackio", "wandb")
EXTRAS = {"tensorboard": "tensorboard", "trackio": "trackio", "wandb": "wandb"}


class Tracker(Protocol):
    def write(self, row: dict) -> None: ...

    def close(self) -> None: ...


def _scalars(row: dict) -> dict[str, float]:
    """The row's finite numbers (an unvalidated step has no val_loss), without the step."""
    return {k: v for k, v in row.items()
            if k != "step" and isinstance(v, (int, float)) and math.isfinite(v)}


def _missing(logger: str) -> ValueError:
    return ValueError(f"--logger {logger} needs the {EXTRAS[logger]} package: pip install "
                      f"{EXTRAS[logger]} (or choose --logger csv)")


class TensorBoardLog:
    def __init__(self, log_dir: Path, config: dict, keep_steps_before: int) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise _missing("tensorboard") from None
        self._writer = SummaryWriter(str(log_dir), purge_step=keep_steps_before or None)
        if not keep_steps_before:
            self._writer.add_text("config", "\n".join(f"    {k}: {v}" for k, v in config.items()))

    def write(self, row: dict) -> None:
        for column, value in _scalars(row).items():
            self._writer.add_scalar(column, value, row["step"])
        self._writer.flush()

    def close(self) -> None:
        self._writer.close()


class _RunLog:
    """A tracker whose run object takes `log(values, step=...)` and `finish()` (trackio, W&B)."""

    def write(self, row: dict) -> None:
        self._run.log(_scalars(row), step=row["step"])

    def close(self) -> None:
        self._run.finish()


class TrackioLog(_RunLog):
    def __init__(self, run_dir: Path, config: dict, keep_steps_before: int) -> None:
        try:
            import trackio
        except ImportError:
            raise _missing("trackio") from None
        self._run = trackio.init(project="est", name=_run_name(run_dir), config=config,
                                 resume="allow" if keep_steps_before else "never",
                                 auto_log_cpu=False, auto_log_gpu=False)


class WandbLog(_RunLog):
    def __init__(self, run_dir: Path, config: dict, keep_steps_before: int) -> None:
        try:
            import wandb
        except ImportError:
            raise _missing("wandb") from None
        log_dir = run_dir / "wandb"
        log_dir.mkdir(exist_ok=True)
        os.environ.setdefault("WANDB_SILENT", "true")
        self._run = wandb.init(mode="offline", dir=str(run_dir), project="est",
                               name=_run_name(run_dir), id=_run_id(run_dir), config=config,
                               resume="allow" if keep_steps_before else None)


def _run_name(run_dir: Path) -> str:
    return run_dir.resolve().name


def _run_id(run_dir: Path) -> str:
    """A W&B run id that is the same for every process training this directory (resume)."""
    return hashlib.sha1(str(run_dir.resolve()).encode()).hexdigest()[:16]


def open_tracker(logger: str, run_dir: Path, config: dict, keep_steps_before: int) -> Tracker | None:
    """The tracker `logger` names for the run in `run_dir` (None for csv); `keep_steps_before`
    is the step a resumed run continues from (0 for a new run)."""
    if logger not in LOGGERS:
        raise ValueError(f"--logger {logger!r}: choose one of {', '.join(LOGGERS)}")
    kinds = {"tensorboard": lambda: TensorBoardLog(run_dir / "tensorboard", config, keep_steps_before),
             "trackio": lambda: TrackioLog(run_dir, config, keep_steps_before),
             "wandb": lambda: WandbLog(run_dir, config, keep_steps_before)}
    return kinds[logger]() if logger in kinds else None
