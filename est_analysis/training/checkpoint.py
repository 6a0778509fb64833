"""Checkpoints: written atomically (a crash mid-write leaves the previous one intact) and read
back with a clear error when a file is truncated, corrupted or from an incompatible run."""

from __future__ import annotations

import errno
import shutil
from pathlib import Path

import torch

from est_analysis.io import atomic_write


class CheckpointError(RuntimeError):
    pass


def save_checkpoint(path: str | Path, state: dict) -> None:
    """Write `state` atomically; a full disk (torch reports it as a failed write) is one
    OSError naming the file, with the partial file removed and the previous one intact."""
    path = Path(path)
    try:
        atomic_write(path, lambda f: torch.save(state, f))
    except (OSError, RuntimeError) as err:
        if not _disk_full(err, path):
            raise
        free = shutil.disk_usage(path.parent).free
        raise OSError(f"no space left on the device writing {path} "
                      f"({free // 2**20} MiB free): the partial file was removed and the "
                      "previous checkpoint is intact; free some space, then resume with "
                      "--resume") from None


def _disk_full(err: BaseException, path: Path) -> bool:
    if isinstance(err, OSError) and err.errno == errno.ENOSPC:
        return True
    # torch's zip writer reports a short write as "... failed writing file ... unexpected pos"
    return "unexpected pos" in str(err) or "No space left" in str(err) or (
        "failed writing" in str(err) and shutil.disk_usage(path.parent).free < 2**20)


def load_checkpoint(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}: give a run directory that holds "
                              "checkpoint.pt, or the checkpoint file itself")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many kinds for damaged files
        raise CheckpointError(
            f"checkpoint {path} is unreadable (truncated or corrupted: {type(err).__name__}); "
            "restore a good copy, or delete it and the run directory to start over") from None
    if not isinstance(state, dict) or not {"model", "step", "config"} <= set(state):
        raise CheckpointError(f"{path} is not an est_analysis training checkpoint or snapshot")
    return state
