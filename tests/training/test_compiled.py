"""`--compile`: a bounded number of graphs over EST's changing subnets, every method traced
without graph breaks on both architectures and equal to its eager run, and a compiled run that
is killed and resumed repeats the uninterrupted compiled run exactly."""

import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
from torch._dynamo.utils import counters

import est_analysis.training.compiled as compiled
from est_analysis.methods import METHODS
from est_analysis.training import RunDir, TrainConfig, train
from est_analysis.training.metrics import TIMING_COLUMNS

KILLER = Path(__file__).with_name("sigkill_after.py")
# est-gpt2: (.5,.5,.5) then (.5,.5,1) -- the same per-block counts (2 of 4 heads, 128 of 256
# neurons) -- then the full block; plus the full block under no_grad for validation; plus the
# loss (one logits shape)
GRAPH_BOUND = 4
# per method at smoke scale, each stage visited: Original full + eval; RAPTR one path length;
# layer-drop's per-step 1/p reaches the block as a tensor; Staged and MSG grow the model; each
# plus the loss
METHOD_GRAPH_BOUNDS = {"original": 3, "est": 4, "raptr": 3, "layer-drop": 4, "staged": 5,
                       "msg": 13}


def test_est_compiles_a_bounded_number_of_graphs_across_stages(tmp_path):
    torch._dynamo.reset()
    counters.clear()
    # 150 steps: stages at 0, 20, 70; a new random subnet (heads, neurons, layers) every step
    train(TrainConfig(scale="smoke", steps=150, eval_every=25, compile=True), tmp_path,
          progress=False)
    assert counters["stats"]["unique_graphs"] <= GRAPH_BOUND
    metrics = RunDir(tmp_path).read_metrics()
    assert metrics["stage"].nunique() == 3 and metrics["train_loss"].notna().all()


# every method once, each architecture and precision twice (the full product costs minutes)
CASES = [("original", "est-gpt2", "fp32"), ("layer-drop", "est-gpt2", "bf16"),
         ("msg", "est-gpt2", "fp16"), ("est", "est-tinyllama", "bf16"),
         ("raptr", "est-tinyllama", "fp16"), ("staged", "est-tinyllama", "fp32")]


def test_cases_cover_every_method():
    assert sorted(method for method, _, _ in CASES) == sorted(METHODS)


@pytest.mark.parametrize("method, preset, precision", CASES)
def test_every_method_compiles_whole_blocks_and_matches_eager(method, preset, precision,
                                                             tmp_path, monkeypatch):
    monkeypatch.setattr(compiled, "BACKEND", "aot_eager")  # dynamo's tracing, no code generation

    def run(compile: bool) -> pd.DataFrame:
        torch._dynamo.reset()
        counters.clear()
        config = TrainConfig(scale="smoke", steps=24, eval_every=12, method=method, preset=preset,
                             precision=precision, compile=compile)
        return RunDir(train(config, tmp_path / str(compile), progress=False)).read_metrics()

    eager, compiled_run = run(False), run(True)
    assert not counters["graph_break"], dict(counters["graph_break"])
    assert 1 <= counters["stats"]["unique_graphs"] <= METHOD_GRAPH_BOUNDS[method]
    assert eager["stage"].nunique() > 1 or method in ("original", "layer-drop")
    numbers = list(set(eager.columns) - set(TIMING_COLUMNS))
    pd.testing.assert_frame_equal(compiled_run[numbers], eager[numbers], atol=2e-3, rtol=0)


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
