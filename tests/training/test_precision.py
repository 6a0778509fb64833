"""`--precision` and the throughput columns: autocast really lowers the forward pass, fp16
carries a gradient scaler through checkpoints, `auto` is fp32 on CPU, and MFU is the step's
FLOPs over its time and the peak."""

import json

import pandas as pd
import pytest
import torch

import est_analysis.training.loop as loop
from est_analysis.training import RunDir, TrainConfig, TrainingError, train
from est_analysis.training.checkpoint import load_checkpoint
from est_analysis.training.metrics import TIMING_COLUMNS
from est_analysis.training.throughput import device_peak_flops

STEPS = 20


def _run(tmp_path, name, **fields) -> RunDir:
    config = TrainConfig(scale="smoke", steps=STEPS, eval_every=10, **fields)
    return RunDir(train(config, tmp_path / name, progress=False))


def _numbers(run: RunDir) -> pd.DataFrame:
    return run.read_metrics().drop(columns=list(TIMING_COLUMNS))


def test_auto_is_fp32_on_cpu_and_lower_precisions_change_the_forward_pass(tmp_path):
    fp32, auto = _run(tmp_path, "fp32", precision="fp32"), _run(tmp_path, "auto")
    pd.testing.assert_frame_equal(_numbers(fp32), _numbers(auto))
    assert auto.read_summary()["precision"] == "fp32"
    for precision in ("bf16", "fp16"):
        low = _run(tmp_path, precision, precision=precision)
        first = low.read_metrics()["train_loss"].iloc[0]
        assert first != fp32.read_metrics()["train_loss"].iloc[0]  # autocast is on
        assert first == pytest.approx(fp32.read_metrics()["train_loss"].iloc[0], abs=0.05)
        final = low.read_summary()["final_val_loss"]
        assert final == pytest.approx(fp32.read_summary()["final_val_loss"], abs=0.1)
        assert low.read_summary()["precision"] == precision


def test_fp16_resumes_exactly_with_its_gradient_scaler(tmp_path, monkeypatch):
    reference = _run(tmp_path, "reference", precision="fp16", ckpt_every=5)
    scaler = load_checkpoint(reference.checkpoint)["scaler"]
    assert scaler["scale"] > 0 and "_growth_tracker" in scaler
    real, calls = loop.optimizer_step, {"n": 0}

    def crash_at_step_12(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 13:
            raise KeyboardInterrupt  # the last checkpoint is at step 10
        return real(*args, **kwargs)

    config = TrainConfig(scale="smoke", steps=STEPS, eval_every=10, precision="fp16", ckpt_every=5)
    monkeypatch.setattr(loop, "optimizer_step", crash_at_step_12)
    with pytest.raises(KeyboardInterrupt):
        train(config, tmp_path / "resumed", progress=False)
    monkeypatch.setattr(loop, "optimizer_step", real)
    with pytest.raises(TrainingError, match="precision: checkpoint 'fp16' vs now 'bf16'"):
        train(TrainConfig(**{**config.__dict__, "precision": "bf16"}), tmp_path / "resumed",
              resume=True, progress=False)
    resumed = RunDir(train(config, tmp_path / "resumed", resume=True, progress=False))
    pd.testing.assert_frame_equal(_numbers(resumed), _numbers(reference))


def test_throughput_columns_follow_from_flops_time_and_peak(tmp_path):
    run = _run(tmp_path, "peak", peak_flops=1e12)
    metrics, summary = run.read_metrics(), run.read_summary()
    step_tokens = 8 * 64
    assert metrics["tokens_per_s"].to_numpy() == pytest.approx(step_tokens / metrics["step_s"])
    assert metrics["mfu"].to_numpy() == pytest.approx(metrics["step_flops"] / metrics["step_s"] / 1e12)
    assert summary["tokens_per_s"] == pytest.approx(STEPS * step_tokens / summary["train_wall_s"])
    assert summary["mfu"] == pytest.approx(summary["total_flops"] / summary["train_wall_s"] / 1e12)
    unknown = _run(tmp_path, "no-peak")
    assert unknown.read_metrics()["mfu"].isna().all() and unknown.read_summary()["mfu"] is None
    assert json.loads(unknown.summary.read_text())["peak_flops"] is None


def test_known_gpus_have_their_dense_peaks(monkeypatch):
    cuda = torch.device("cuda")
    for name, precision, peak in (("NVIDIA H100 80GB HBM3", "bf16", 989e12),
                                  ("NVIDIA H100 PCIe", "bf16", 756e12),
                                  ("NVIDIA H200", "fp32", 67e12),
                                  ("NVIDIA A100-SXM4-80GB", "fp16", 312e12),
                                  ("NVIDIA GeForce RTX 4090", "bf16", None)):
        monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None, name=name: name)
        assert device_peak_flops(cuda, precision) == peak, name
    assert device_peak_flops(torch.device("cpu"), "fp32") is None
