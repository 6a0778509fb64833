"""A run directory and the names of everything it holds; no other module spells them.

    metrics.csv      one row per step (`metrics.py`)
    checkpoint.pt    model, optimizer and progress, for exact resume
    checkpoint.previous.pt  the checkpoint before it, kept until the run has trained past the
                     newer one (a divergence rolls back to it); removed when the run finishes
    .lock            held by the process training the run (names it)
    config.yaml      the resolved config, model config and stage boundaries
    summary.json     final validation loss, FLOPs, wall time (written at the end)
    provenance.json  commit, config hash, machine (written by `est repro`)
    <name>.json      evaluations cached by `est repro` (proxies.json, hessian-<settings>.json)
    snapshots/       model-only copies: step_0001000.pt
    diagnostics/     tables written by `est diagnose` / `est landscape` (--csv)
    figures/         `est plot`'s default output
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd

from est_analysis.subnet import Rates


class RunDirError(ValueError):
    """A path is not (or not yet) the run directory a command needs."""


class RunDir:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    metrics = property(lambda self: self.path / "metrics.csv")
    checkpoint = property(lambda self: self.path / "checkpoint.pt")
    previous_checkpoint = property(lambda self: self.path / "checkpoint.previous.pt")
    lock = property(lambda self: self.path / ".lock")
    config = property(lambda self: self.path / "config.yaml")
    summary = property(lambda self: self.path / "summary.json")
    provenance = property(lambda self: self.path / "provenance.json")
    snapshot_dir = property(lambda self: self.path / "snapshots")
    figures = property(lambda self: self.path / "figures")

    def diagnostics(self, name: str) -> Path:
        return self.path / "diagnostics" / f"{name}.csv"

    def evaluation(self, name: str) -> Path:
        return self.path / f"{name}.json"

    def snapshot(self, step: int) -> Path:
        return self.snapshot_dir / f"step_{step:07d}.pt"

    @staticmethod
    def snapshot_step(path: Path) -> int:
        """The step of a snapshot file, from its name (step_0001000.pt -> 1000)."""
        return int(path.stem.removeprefix("step_"))

    def snapshots(self) -> list[Path]:
        """The run's snapshots in step order (a clear error when it kept none)."""
        found = sorted(self.snapshot_dir.glob("step_*.pt"))
        if not found:
            raise RunDirError(f"{self.path} has no snapshots: runs keep one at each stage boundary "
                              "and every --snapshot-every steps; retrain with --snapshot-every N")
        return found

    @property
    def has_run(self) -> bool:
        return self.metrics.exists() or self.checkpoint.exists()

    @property
    def finished(self) -> bool:
        return self.summary.exists()

    def why_no_checkpoint(self) -> str:
        """Why there is nothing to resume here, and what to do instead."""
        if not self.path.is_dir():
            return f"{self.path} does not exist: train without --resume to start the run"
        if not self.has_run:
            return (f"{self.path} holds no run (no checkpoint.pt, no metrics.csv): train without "
                    "--resume to start one, or give the directory of the run to continue")
        return (f"{self.path} has no checkpoint.pt (the run stopped before its first checkpoint, "
                "or it was deleted), so it cannot continue exactly: remove the directory (or "
                "choose a new --out) and train from the start")

    def remove_failed_start(self, created: Path | None) -> None:
        """Remove what a start that failed before its first step wrote: the directories it
        created (`created`, the outermost), else only the run's own files."""
        if created is not None:
            shutil.rmtree(created, ignore_errors=True)
            return
        for path in (self.config, self.metrics, self.checkpoint, self.previous_checkpoint,
                     self.lock):
            path.unlink(missing_ok=True)
        for directory in (self.snapshot_dir, self.path / "tensorboard"):
            shutil.rmtree(directory, ignore_errors=True)

    def read_metrics(self) -> pd.DataFrame:
        if not self.metrics.exists():
            raise RunDirError(f"{self.path} has no metrics.csv: not a run directory")
        metrics = pd.read_csv(self.metrics)
        return metrics.assign(cum_lr=metrics["lr"].cumsum())  # training.metrics.X_AXES

    def read_summary(self) -> dict:
        if not self.summary.exists():
            raise RunDirError(f"{self.path} has no summary.json: the run has not finished")
        return json.loads(self.summary.read_text())

    def stage_rates(self) -> list[Rates]:
        """The sampling rates of each stage, in stage order, from metrics.csv."""
        table = self.read_metrics().drop_duplicates("stage")
        return [Rates(*row) for row in table[["p_H", "p_M", "p_L"]].itertuples(index=False)]


def checkpoint_file(path: str | Path) -> Path:
    """A run directory's checkpoint.pt, or `path` itself when it names a file."""
    path = Path(path)
    return RunDir(path).checkpoint if path.is_dir() else path
