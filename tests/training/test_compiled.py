"""`--compile`: a bounded number of graphs over EST's changing subnets, and a compiled run that
is killed and resumed repeats the uninterrupted compiled run exactly."""

import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import torch
from torch._dynamo.utils import counters

from est_analysis.training import RunDir, TrainConfig, train
from est_analysis.training.metrics import TIMING_COLUMNS

KILLER = Path(__file__).with_name("sigkill_after.py")
# est-gpt2: (.5,.5,.5) then (.5,.5,1) -- the same per-block counts (2 of 4 heads, 128 of 256
# neurons) -- then the full block; plus the full block under no_grad for validation
GRAPH_BOUND = 3


def test_est_compiles_a_bounded_number_of_graphs_across_stages(tmp_path):
    torch._dynamo.reset()
    counters.clear()
    # 150 steps: stages at 0, 20, 70; a new random subnet (heads, neurons, layers) every step
    train(TrainConfig(scale="smoke", steps=150, eval_every=25, compile=True), tmp_path,
          progress=False)
    assert counters["stats"]["unique_graphs"] <= GRAPH_BOUND
    metrics = RunDir(tmp_path).read_metrics()
    assert metrics["stage"].nunique() == 3 and metrics["train_loss"].notna().all()


def test_compiled_run_resumes_exactly(tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text("scale: smoke\nsteps: 30\nckpt_every: 3\neval_every: 10\ncompile: true\n")

    def args(out: Path, resume: bool = False) -> list[str]:
        return ["train", "--config", str(config), "--out", str(out), "--no-progress"] + (
            ["--resume"] if resume else [])

    subprocess.run([sys.executable, "-m", "est_analysis.cli", *args(tmp_path / "reference")],
                   check=True, timeout=600)
    killed = subprocess.run([sys.executable, str(KILLER), "17", *args(tmp_path / "killed")],
                            timeout=600, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    assert killed.returncode == -signal.SIGKILL
    subprocess.run([sys.executable, "-m", "est_analysis.cli", *args(tmp_path / "killed", True)],
                   check=True, timeout=600)
    resumed = RunDir(tmp_path / "killed").read_metrics().drop(columns=list(TIMING_COLUMNS))
    reference = RunDir(tmp_path / "reference").read_metrics().drop(columns=list(TIMING_COLUMNS))
    pd.testing.assert_frame_equal(resumed, reference)
