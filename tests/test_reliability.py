"""Crash safety: runs killed with SIGKILL at arbitrary points resume to exactly the
uninterrupted run, and a crash in the middle of a checkpoint write leaves the previous
checkpoint intact."""

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

import est_analysis.checkpoint as checkpoint_module
from est_analysis.checkpoint import load_checkpoint, save_checkpoint
from est_analysis.metrics import TIMING_COLUMNS

ROOT = Path(__file__).resolve().parents[1]


def _command(out: Path, config: Path, resume: bool = False) -> list[str]:
    return [sys.executable, "-m", "est_analysis.cli", "train", "--config", str(config),
            "--out", str(out), "--no-progress"] + (["--resume"] if resume else [])


def _rows(path: Path) -> int:
    try:
        return max(0, len(path.read_text().splitlines()) - 1)
    except FileNotFoundError:
        return 0


def test_sigkill_at_random_steps_then_resume_repeats_the_run(tmp_path):
    config = tmp_path / "run.yaml"
    # est-gpt2 at 60 steps: stages start at 0, 8, 28; a checkpoint every 3 steps
    config.write_text("scale: smoke\nsteps: 60\nbatch_size: 48\nckpt_every: 3\neval_every: 10\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    subprocess.run(_command(tmp_path / "reference", config), env=env, check=True, timeout=300)

    out = tmp_path / "killed"
    kill_points = [9, 29] + random.Random(0).sample(range(12, 55), 2)  # just after 2 boundaries
    for n, rows in enumerate(sorted(kill_points)):
        process = subprocess.Popen(_command(out, config, resume=n > 0), env=env,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 120
        while _rows(out / "metrics.csv") < rows and process.poll() is None and time.time() < deadline:
            time.sleep(0.002)
        process.send_signal(signal.SIGKILL)
        assert process.wait() == -signal.SIGKILL  # killed mid-run, not finished
        assert _rows(out / "metrics.csv") < 60
    subprocess.run(_command(out, config, resume=True), env=env, check=True, timeout=300)

    resumed = pd.read_csv(out / "metrics.csv").drop(columns=list(TIMING_COLUMNS))
    reference = pd.read_csv(tmp_path / "reference" / "metrics.csv").drop(columns=list(TIMING_COLUMNS))
    pd.testing.assert_frame_equal(resumed, reference)


def test_a_crash_while_writing_a_checkpoint_keeps_the_previous_one(tmp_path, monkeypatch):
    path = tmp_path / "checkpoint.pt"
    good = {"model": {"w": torch.ones(3)}, "optimizer": {}, "step": 3, "config": {}}
    save_checkpoint(path, good)

    def crash_mid_write(state, f):
        f.write(b"\x80\x02 half a checkpoint")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(checkpoint_module.torch, "save", crash_mid_write)
    with pytest.raises(OSError):
        save_checkpoint(path, {**good, "step": 6})
    assert load_checkpoint(path)["step"] == 3
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.pt"]  # no temp file left
