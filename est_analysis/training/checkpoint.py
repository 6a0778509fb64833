"""Checkpoints and snapshots: written atomically (at every instant the file is a complete
checkpoint; a crash mid-write leaves the previous one in place), carrying a digest of their
contents, and read back with a clear error when a file is truncated, corrupted, edited or from
an incompatible run.

The digest (BLAKE2b over every tensor's dtype, shape and bytes and every other value, in key
order) is stored inside the file it covers, so the two can never disagree after a crash. It
is checked on every load; files written before digests existed load without the check."""

from __future__ import annotations

import errno
import hashlib
import shutil
from pathlib import Path

import torch

from est_analysis.io import atomic_write

DIGEST_KEY = "content_digest"


class CheckpointError(RuntimeError):
    pass


def content_digest(state: object) -> str:
    """A digest of `state` (nested dicts, lists and tuples of tensors and plain values) that
    changes when any tensor element or value does; dict order does not matter."""
    h = hashlib.blake2b(digest_size=16)
    _feed(h, state)
    return h.hexdigest()


def _feed(h: "hashlib._Hash", value: object) -> None:
    if isinstance(value, torch.Tensor):
        t = value.detach().cpu().contiguous()
        h.update(f"T{t.dtype}{tuple(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy())  # the buffer itself, not a copy
    elif isinstance(value, dict):
        h.update(b"D%d" % len(value))
        for key in sorted(value, key=repr):
            h.update(repr(key).encode())
            _feed(h, value[key])
    elif isinstance(value, (list, tuple)):
        h.update(b"L%d" % len(value))
        for item in value:
            _feed(h, item)
    else:
        h.update(f"V{value!r}".encode())


def save_checkpoint(path: str | Path, state: dict, keep_previous: str | Path | None = None) -> None:
    """Write `state` with its digest, atomically. With `keep_previous`, the checkpoint `path`
    held until now stays complete under that name (`io.atomic_write`). A full disk (torch
    reports it as a failed write) is one OSError naming the file, with the partial file
    removed and `path` as it was."""
    path = Path(path)
    state = {**state, DIGEST_KEY: content_digest(state)}
    try:
        atomic_write(path, lambda f: torch.save(state, f), keep_previous)
    except (OSError, RuntimeError) as err:
        if not _disk_full(err, path):
            raise
        free = shutil.disk_usage(path.parent).free
        kept = ("the previous checkpoint is intact; free some space, then resume with --resume"
                if path.exists() else "no earlier checkpoint exists; free some space and run again")
        raise OSError(f"no space left on the device writing {path} "
                      f"({free // 2**20} MiB free): the partial file was removed and {kept}") from None


def _disk_full(err: BaseException, path: Path) -> bool:
    if isinstance(err, OSError) and err.errno == errno.ENOSPC:
        return True
    # torch's zip writer reports a short write as "... failed writing file ... unexpected pos"
    return "unexpected pos" in str(err) or "No space left" in str(err) or (
        "failed writing" in str(err) and shutil.disk_usage(path.parent).free < 2**20)


def load_checkpoint(path: str | Path) -> dict:
    """The checkpoint or snapshot at `path`, its digest verified (CheckpointError otherwise)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}: give a run directory that holds "
                              "checkpoint.pt, or the checkpoint file itself")
    recover = ("restore a good copy (a run keeps checkpoint.previous.pt until it finishes: "
               "`est train --resume` falls back to it), or delete the run directory to start over")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many kinds for damaged files
        raise CheckpointError(f"checkpoint {path} is unreadable (truncated or corrupted: "
                              f"{type(err).__name__}); {recover}") from None
    if not isinstance(state, dict) or not {"model", "step", "config"} <= set(state):
        raise CheckpointError(f"{path} is not an est_analysis training checkpoint or snapshot")
    recorded = state.pop(DIGEST_KEY, None)
    if recorded is not None and content_digest(state) != recorded:
        raise CheckpointError(f"checkpoint {path} does not match its digest (its bytes changed "
                              f"after it was written: a damaged disk or an edit); {recover}")
    return state
