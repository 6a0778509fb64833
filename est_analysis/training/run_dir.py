"""A run directory and the names of everything it holds; no other module spells them.

    metrics.csv      one row per step (`metrics.py`)
    checkpoint.pt    model, optimizer and progress, for exact resume
    checkpoint.previous.pt  the checkpoint before it, kept until the run has trained past the
                     newer one (a divergence rolls back to it, and a resume falls back to it
                     when checkpoint.pt is damaged); removed when the run finishes
    checkpoint.damaged.pt  a checkpoint.pt that failed its digest, set aside by that fallback
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

import os
import shutil
from pathlib import Path

import pandas as pd

from est_analysis.io import is_regular_file, keep_copy, read_json, remove_stale_temporaries
from est_analysis.subnet import Rates
from est_analysis.training.checkpoint import CheckpointError, load_checkpoint


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
    damaged_checkpoint = property(lambda self: self.path / "checkpoint.damaged.pt")
    lock = property(lambda self: self.path / ".lock")
    config = property(lambda self: self.path / "config.yaml")
    summary = property(lambda self: self.path / "summary.json")
    provenance = property(lambda self: self.path / "provenance.json")
    snapshot_dir = property(lambda self: self.path / "snapshots")
    tensorboard = property(lambda self: self.path / "tensorboard")
    wandb = property(lambda self: self.path / "wandb")
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
        found = sorted(p for p in self.snapshot_dir.glob("step_*.pt")
                       if p.stem.removeprefix("step_").isdigit())  # not a user's step_x.pt
        if not found:
            raise RunDirError(f"{self.path} has no snapshots: runs keep one at each stage boundary "
                              "and every --snapshot-every steps; retrain with --snapshot-every N")
        return found

    @property
    def has_run(self) -> bool:
        return self.metrics.exists() or self.can_resume

    @property
    def can_resume(self) -> bool:
        """A checkpoint to continue from exists (checkpoint.pt, or the one kept before it)."""
        return self.checkpoint.is_file() or self.previous_checkpoint.is_file()

    def newest_checkpoint(self) -> tuple[dict, Path]:
        """The newest checkpoint that loads and matches its digest, and its file: checkpoint.pt,
        else the previous one (read only; `restore_newest_checkpoint` repairs)."""
        try:
            return load_checkpoint(self.checkpoint), self.checkpoint
        except CheckpointError as err:
            if not self.previous_checkpoint.is_file():
                raise
            try:
                return load_checkpoint(self.previous_checkpoint), self.previous_checkpoint
            except CheckpointError:
                raise err from None

    def restore_newest_checkpoint(self) -> tuple[dict, str | None]:
        """`newest_checkpoint`, made checkpoint.pt again when it was the previous one (a damaged
        checkpoint.pt is kept as checkpoint.damaged.pt), with a note saying so; also removes
        the temporary files a killed write left. Call it only holding the run's lock."""
        for name in (self.checkpoint, self.previous_checkpoint, self.metrics, self.config,
                     self.summary, self.damaged_checkpoint):
            remove_stale_temporaries(name)
        state, path = self.newest_checkpoint()
        if path == self.checkpoint:
            return state, None
        if self.checkpoint.is_file():
            keep_copy(self.checkpoint, self.damaged_checkpoint)
        os.replace(self.previous_checkpoint, self.checkpoint)
        why = ("is damaged (kept as checkpoint.damaged.pt)" if self.damaged_checkpoint.is_file()
               else "is missing")
        return state, (f"{self.checkpoint} {why}: resuming from the checkpoint before it "
                       f"(step {state['step']})")

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

    def own_files(self) -> tuple[Path, ...]:
        """The files a run writes directly in its directory."""
        return (self.config, self.metrics, self.checkpoint, self.previous_checkpoint,
                self.damaged_checkpoint, self.summary, self.lock)

    def discard_unstarted_run(self) -> None:
        """Remove a run that stopped before its first checkpoint (it cannot be continued), in a
        directory that `est repro` owns: the run's own files, snapshots and TensorBoard logs."""
        for path in self.own_files():
            if is_regular_file(path):
                path.unlink()
        for directory in (self.snapshot_dir, self.tensorboard, self.wandb):
            if directory.is_dir() and not directory.is_symlink():
                shutil.rmtree(directory)

    def read_metrics(self) -> pd.DataFrame:
        if not self.metrics.exists():
            raise RunDirError(f"{self.path} has no metrics.csv: not a run directory")
        metrics = pd.read_csv(self.metrics)
        return metrics.assign(cum_lr=metrics["lr"].cumsum())  # training.metrics.X_AXES

    def read_summary(self) -> dict:
        if not self.summary.exists():
            raise RunDirError(f"{self.path} has no summary.json: the run has not finished")
        return read_json(self.summary, "the run did not finish writing it: resume the run (est train --resume)")

    def stage_rates(self) -> list[Rates]:
        """The sampling rates of each stage, in stage order, from metrics.csv."""
        table = self.read_metrics().drop_duplicates("stage")
        return [Rates(*row) for row in table[["p_H", "p_M", "p_L"]].itertuples(index=False)]


class FreshStart:
    """What a new run will create, recorded before it creates anything, so that a start that
    fails removes exactly that and nothing else: the run's files and folders that did not
    exist (files only while they are still regular files), then the directories that did not
    exist, innermost first and each only while empty (another process may have put its own
    run in a parent meanwhile). A directory holding files a new run would overwrite is refused
    up front (`RunDirError`), so no file of the user's is ever replaced or removed."""

    def __init__(self, run: RunDir) -> None:
        clashes = [p.name for p in (run.config, run.summary, run.previous_checkpoint,
                                    run.damaged_checkpoint, run.snapshot_dir, run.tensorboard,
                                    run.wandb)
                   if os.path.lexists(p)]
        if clashes:
            raise RunDirError(f"{run.path} already holds {', '.join(clashes)}, which a new run "
                              "would overwrite: choose a new --out (or move them away)")
        self.dirs, path = [], run.path  # innermost first
        while not os.path.lexists(path):
            self.dirs.append(path)
            path = path.parent
        self.files = [p for p in run.own_files() if not os.path.lexists(p)]
        self.trees = [run.snapshot_dir, run.tensorboard, run.wandb]

    def undo(self) -> None:
        for path in self.files:
            if is_regular_file(path):
                path.unlink()
        for tree in self.trees:
            if tree.is_dir() and not tree.is_symlink():
                shutil.rmtree(tree)
        for directory in self.dirs:
            try:
                directory.rmdir()  # only an empty directory
            except OSError:
                return


def checkpoint_file(path: str | Path) -> Path:
    """A run directory's checkpoint.pt, or `path` itself when it names a file."""
    path = Path(path)
    return RunDir(path).checkpoint if path.is_dir() else path
