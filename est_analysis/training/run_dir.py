"""A run directory and the names of everything it holds; no other module spells them.

    metrics.csv      one row per step (`metrics.py`)
    checkpoint.pt    model, optimizer and progress, for exact resume
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
        return self.metrics.exists()

    @property
    def finished(self) -> bool:
        return self.summary.exists()

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
