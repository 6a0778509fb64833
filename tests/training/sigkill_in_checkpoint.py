"""Run `est ARGS...` in this process and SIGKILL it inside its N-th checkpoint write, at PHASE:

    partial   half-way through writing the new checkpoint's temporary file
    kept      after the old checkpoint is kept as checkpoint.previous.pt, before the rename
    renamed   after the new checkpoint replaced checkpoint.pt, before the directory is synced

    python tests/training/sigkill_in_checkpoint.py PHASE N train --config run.yaml --out DIR
"""

import os
import signal
import sys

import est_analysis.io as io
import est_analysis.training.checkpoint as checkpoint
from est_analysis.cli.main import main


def die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def die_in_write(phase: str, n: int) -> None:
    writes = [0]
    real_save, real_keep, real_sync = checkpoint.save_checkpoint, io.keep_copy, io._fsync_dir

    def save_checkpoint(path, state, keep_previous=None):
        if "optimizer" in state:  # a checkpoint, not a snapshot
            writes[0] += 1
        return real_save(path, state, keep_previous)

    def torch_save(state, f):
        if writes[0] == n and phase == "partial":
            f.write(b"PK\x03\x04 half a checkpoint")
            f.flush()
            die()
        return real_torch_save(state, f)

    def keep_copy(path, previous):
        real_keep(path, previous)
        if writes[0] == n and phase == "kept":
            die()

    def fsync_dir(directory):
        if writes[0] == n and phase == "renamed":
            die()
        real_sync(directory)

    real_torch_save = checkpoint.torch.save
    checkpoint.torch.save = torch_save
    io.keep_copy, io._fsync_dir = keep_copy, fsync_dir
    import est_analysis.training.loop as loop
    loop.save_checkpoint = save_checkpoint


if __name__ == "__main__":
    die_in_write(sys.argv[1], int(sys.argv[2]))
    sys.exit(main(sys.argv[3:]))
