"""Kill anywhere (issue #32): a run checkpointing every step is SIGKILLed just after each stage
boundary, at random moments and inside each phase of a checkpoint write; every resume continues
to exactly the uninterrupted run, and a reader polling the run directory meanwhile never finds
checkpoint.pt missing."""

import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

from est_analysis.cli.main import main
from est_analysis.training import RunDir
from est_analysis.training.checkpoint import load_checkpoint
from est_analysis.training.metrics import TIMING_COLUMNS

IN_WRITE = Path(__file__).with_name("sigkill_in_checkpoint.py")
AFTER = Path(__file__).with_name("sigkill_after.py")  # kills just before a chosen step
PHASES = ("partial", "kept", "renamed")


class Reader:
    """Polls checkpoint.pt as `est export` run during training would: once the first checkpoint
    exists, counts every look that finds none, and loads it now and then."""

    def __init__(self, run: RunDir) -> None:
        self.run, self.looks, self.missing, self.loaded = run, 0, 0, 0
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._poll, daemon=True)
        self.thread.start()

    def _poll(self) -> None:
        seen = False
        while not self.stopped.is_set():
            exists = self.run.checkpoint.exists()
            seen |= exists
            if seen:
                self.looks += 1
                self.missing += not exists
                if exists and self.looks % 200 == 0:
                    load_checkpoint(self.run.checkpoint)  # complete, and matching its digest
                    self.loaded += 1
            time.sleep(0.0005)

    def stop(self) -> None:
        self.stopped.set()
        self.thread.join()


def _args(out: Path, config: Path) -> list[str]:
    return ["train", "--config", str(config), "--out", str(out), "--no-progress"]


def _has_checkpoint(run: RunDir) -> bool:
    """Whatever a kill left, a checkpoint to resume from (the new one or the one kept before it)."""
    return run.checkpoint.exists() or run.previous_checkpoint.exists()


def _done_steps(run: RunDir) -> int:
    return len(run.read_metrics()) if run.metrics.exists() else 0


def _kill_at_random(run: RunDir, config: Path, rng: random.Random) -> None:
    """Start (or resume) the run, let it train a random while, then SIGKILL it."""
    before = _done_steps(run)
    resume = ["--resume"] if _has_checkpoint(run) else []
    process = subprocess.Popen([sys.executable, "-m", "est_analysis.cli", *_args(run.path, config),
                                *resume], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    while process.poll() is None and _done_steps(run) <= before:  # until it trains
        time.sleep(0.005)
    time.sleep(rng.uniform(0.0, 0.08))
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=60)


def _kill_in_write(run: RunDir, config: Path, phase: str, n: int) -> None:
    resume = ["--resume"] if _has_checkpoint(run) else []
    killed = subprocess.run([sys.executable, str(IN_WRITE), phase, str(n), *_args(run.path, config),
                             *resume], timeout=120, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert killed.returncode == -signal.SIGKILL, killed.stderr.decode()


def _kill_before_step(run: RunDir, config: Path, step: int) -> None:
    """Resume the run and SIGKILL it just before `step` (nothing when it is already past it)."""
    start = load_checkpoint(run.checkpoint)["step"] if run.checkpoint.exists() else 0
    if start >= step:
        return
    resume = ["--resume"] if _has_checkpoint(run) else []
    killed = subprocess.run([sys.executable, str(AFTER), str(step - start), *_args(run.path, config),
                             *resume], timeout=120, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert killed.returncode == -signal.SIGKILL, killed.stderr.decode()


def _check_kill_anywhere(tmp_path: Path, steps: int, random_kills: int, seed: int) -> None:
    config = tmp_path / "run.yaml"
    config.write_text(f"scale: smoke\nsteps: {steps}\nckpt_every: 1\neval_every: 10\n")
    assert main(_args(tmp_path / "reference", config)) == 0

    run, rng = RunDir(tmp_path / "killed"), random.Random(seed)
    reader = Reader(run)
    try:
        plan = [("random", 0)] * random_kills + [(phase, rng.randint(2, 4)) for phase in PHASES]
        rng.shuffle(plan)
        # est-gpt2's stages start at 2/15 and 7/15 of the run: a kill just after each
        boundaries = [round(steps * 2 / 15), round(steps * 7 / 15)]
        plan = [("before", boundaries[0] + 1)] + plan[:len(plan) // 2] + [("before", boundaries[1] + 1)] + plan[len(plan) // 2:]
        for how, n in plan:
            if how == "random":
                _kill_at_random(run, config, rng)
            elif how == "before":
                _kill_before_step(run, config, n)
            else:
                _kill_in_write(run, config, how, n)
        resume = ["--resume"] if _has_checkpoint(run) else []
        assert main(_args(run.path, config) + resume) == 0
    finally:
        reader.stop()
    assert reader.looks > 1000 and reader.loaded > 5 and reader.missing == 0, vars(reader)

    reference = RunDir(tmp_path / "reference")
    pd.testing.assert_frame_equal(run.read_metrics().drop(columns=list(TIMING_COLUMNS)),
                                  reference.read_metrics().drop(columns=list(TIMING_COLUMNS)))
    final, expected = load_checkpoint(run.checkpoint), load_checkpoint(reference.checkpoint)
    assert final["step"] == steps
    for name, tensor in expected["model"].items():
        assert torch.equal(final["model"][name], tensor), name
    assert not list(run.path.glob(".*.tmp"))  # the resumes removed what the kills left
    assert not run.previous_checkpoint.exists()  # a finished run keeps one checkpoint


def test_sigkill_anywhere_through_the_checkpoint_writes_resumes_exactly(tmp_path):
    # 70 steps, a checkpoint after each: 70 checkpoint writes; kills just after both stage
    # boundaries, at 3 random moments and inside each phase of a write
    _check_kill_anywhere(tmp_path, steps=70, random_kills=3, seed=0)


@pytest.mark.slow
def test_sigkill_anywhere_long(tmp_path):
    _check_kill_anywhere(tmp_path, steps=300, random_kills=25, seed=1)
