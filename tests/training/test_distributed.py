"""Multi-process training under torchrun (2 CPU processes, gloo) matches one process."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from est_analysis.training import RunDir, TrainConfig, train
from est_analysis.training.distributed import DistContext, torchrun_command
from est_analysis.training.metrics import TIMING_COLUMNS

HERE = Path(__file__).parent
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]


def _torchrun(args):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(args, env=env, capture_output=True, text=True, timeout=300)


def test_every_rank_draws_the_same_subnets(tmp_path):
    out = tmp_path / "probe.txt"
    result = _torchrun([*TORCHRUN, str(HERE / "distributed_subnet_probe.py"), str(out)])
    assert result.returncode == 0, result.stderr[-2000:]
    assert out.read_text() == "2 0"


@pytest.mark.parametrize("method", ["est", "original"])
def test_two_ranks_with_half_batches_match_one_rank(tmp_path, method):
    """2 ranks x 4 sequences = 1 rank x 8: the same windows, subnets and averaged gradients;
    grad accumulation (2 micro-batches) exercises DDP's no_sync path."""
    args = ["train", "--scale", "smoke", "--steps", "20", "--method", method, "--grad-accum", "2",
            "--eval-every", "5", "--no-progress"]
    result = _torchrun(torchrun_command(2, args + ["--out", str(tmp_path / "ddp")]))
    assert result.returncode == 0, result.stderr[-3000:]
    single = train(TrainConfig(scale="smoke", steps=20, method=method, grad_accum=2, eval_every=5),
                   tmp_path / "single", progress=False)
    ddp = pd.read_csv(tmp_path / "ddp" / "metrics.csv").drop(columns=list(TIMING_COLUMNS))
    one = pd.read_csv(single / "metrics.csv").drop(columns=list(TIMING_COLUMNS))
    pd.testing.assert_frame_equal(ddp, one, check_exact=False, rtol=1e-5, atol=1e-5)
    assert sorted(p.name for p in (tmp_path / "ddp").iterdir()) == [
        "checkpoint.pt", "config.yaml", "metrics.csv", "snapshots", "summary.json"]
    # only rank 0 writes: one snapshot per stage boundary, none duplicated or half-written
    assert sorted(p.name for p in (tmp_path / "ddp" / "snapshots").iterdir()) == sorted(
        p.name for p in (single / "snapshots").iterdir())


def test_each_rank_takes_its_own_rows():
    rows = [DistContext(rank, 4).rows(8) for rank in range(4)]
    assert [(r.start, r.stop) for r in rows] == [(0, 2), (2, 4), (4, 6), (6, 8)]
    with pytest.raises(ValueError, match="not divisible by the 3 processes"):
        DistContext(0, 3).rows(8)


def test_a_killed_two_rank_run_resumes_to_the_uninterrupted_two_rank_run(tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text("scale: smoke\nsteps: 40\nbatch_size: 32\nckpt_every: 4\neval_every: 10\n")
    args = ["train", "--config", str(config), "--out", str(tmp_path / "ddp"), "--no-progress"]
    # both ranks SIGKILL themselves before the 16th step's optimizer update (checkpoint: step 12)
    killed = _torchrun([*TORCHRUN, str(HERE / "sigkill_after.py"), "15", *args])
    assert killed.returncode != 0 and f"Signal {int(signal.SIGKILL)} (SIGKILL)" in killed.stderr
    run = RunDir(tmp_path / "ddp")
    assert len(run.read_metrics()) == 15 and not run.finished
    result = _torchrun(torchrun_command(2, args + ["--resume"]))
    assert result.returncode == 0, result.stderr[-3000:]
    reference = ["train", "--config", str(config), "--out", str(tmp_path / "reference"), "--no-progress"]
    assert _torchrun(torchrun_command(2, reference)).returncode == 0
    resumed = run.read_metrics().drop(columns=list(TIMING_COLUMNS))
    uninterrupted = RunDir(tmp_path / "reference").read_metrics().drop(columns=list(TIMING_COLUMNS))
    pd.testing.assert_frame_equal(resumed, uninterrupted)
