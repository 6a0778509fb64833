"""Run `est ARGS...` in this process and SIGKILL it just before its (N+1)-th optimizer step:
a crash at a known point of the run, which no race can move past the run's end.

    python tests/training/sigkill_after.py N train --config run.yaml --out DIR [--resume]

Under torchrun every rank runs this script and kills itself at the same step.
"""

import os
import signal
import sys

import est_analysis.training.loop as loop
from est_analysis.cli.main import main


def die_after(steps: int) -> None:
    real, done = loop.optimizer_step, [0]

    def optimizer_step(*args, **kwargs):
        if done[0] == steps:
            os.kill(os.getpid(), signal.SIGKILL)
        done[0] += 1
        return real(*args, **kwargs)

    loop.optimizer_step = optimizer_step


if __name__ == "__main__":
    die_after(int(sys.argv[1]))
    sys.exit(main(sys.argv[2:]))
