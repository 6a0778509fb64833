"""Checkpoints: written atomically (a crash mid-write leaves the previous one intact) and read
back with a clear error when a file is truncated, corrupted or from an incompatible run."""

from __future__ import annotations

from pathlib import Path

import torch

from est_analysis.io import atomic_write


class CheckpointError(RuntimeError):
    pass


def save_checkpoint(path: str | Path, state: dict) -> None:
    atomic_write(path, lambda f: torch.save(state, f))


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
