"""Crash safety: runs killed with SIGKILL at known points resume to exactly the uninterrupted
run, and a crash in the middle of a checkpoint write leaves the previous checkpoint intact."""

import random
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

import est_analysis.training.checkpoint as checkpoint_module
from est_analysis.training import RunDir
from est_analysis.training.checkpoint import load_checkpoint, save_checkpoint
from est_analysis.training.metrics import TIMING_COLUMNS

KILLER = Path(__file__).with_name("sigkill_after.py")


def _train_args(out: Path, config: Path, resume: bool = False) -> list[str]:
    return ["train", "--config", str(config), "--out", str(out), "--no-progress"] + (
        ["--resume"] if resume else [])


def _resumes_from(run: RunDir) -> int:
    return load_checkpoint(run.checkpoint)["step"] if run.checkpoint.exists() else 0


def test_sigkill_at_chosen_steps_then_resume_repeats_the_run(tmp_path):
    config = tmp_path / "run.yaml"
    # est-gpt2 at 60 steps: stages start at 0, 8, 28; a checkpoint every 3 steps
    config.write_text("scale: smoke\nsteps: 60\nbatch_size: 48\nckpt_every: 3\neval_every: 10\n")
    subprocess.run([sys.executable, "-m", "est_analysis.cli",
                    *_train_args(tmp_path / "reference", config)], check=True, timeout=300)

    run = RunDir(tmp_path / "killed")
    kill_steps = [9, 29] + random.Random(0).sample(range(12, 55), 2)  # just after 2 boundaries
    for n, step in enumerate(sorted(kill_steps)):
        start = _resumes_from(run)
        killed = subprocess.run([sys.executable, str(KILLER), str(step - start),
                                 *_train_args(run.path, config, resume=n > 0)], timeout=300,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        assert killed.returncode == -signal.SIGKILL
        assert len(run.read_metrics()) == step  # steps before the kill, none after
    subprocess.run([sys.executable, "-m", "est_analysis.cli",
                    *_train_args(run.path, config, resume=True)], check=True, timeout=300)

    resumed = run.read_metrics().drop(columns=list(TIMING_COLUMNS))
    reference = RunDir(tmp_path / "reference").read_metrics().drop(columns=list(TIMING_COLUMNS))
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
