"""The trainer end to end at smoke scale: metrics, FLOPs by stage, exact resume, determinism."""

import pandas as pd
import pytest
import torch
import yaml
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

import est_analysis.models.head_loss as head_loss
import est_analysis.training.loop as train_module
from est_analysis.models import build_model, get_config
from est_analysis.subnet import Subnet
from est_analysis.training import RunDir, TrainConfig, TrainingError, load_run, train
from est_analysis.training.checkpoint import load_checkpoint
from est_analysis.training.metrics import TIMING_COLUMNS

SMOKE = TrainConfig(scale="smoke", steps=30, eval_every=10)


def _metrics(out):
    return pd.read_csv(out / "metrics.csv")


@pytest.fixture(scope="module")
def est_run(tmp_path_factory):
    return train(SMOKE, tmp_path_factory.mktemp("est"), progress=False)


def test_metrics_follow_the_schedule(est_run):
    m = _metrics(est_run)
    assert list(m["step"]) == list(range(30))
    assert list(m.groupby("stage")["step"].min()) == [0, 4, 14]  # est-gpt2 scaled to 30 steps
    assert m.loc[m.stage == 1, ["p_H", "p_M", "p_L"]].drop_duplicates().values.tolist() == [[0.5] * 3]
    assert (m["cum_flops"] == m["step_flops"].cumsum()).all()
    val_steps = set(m.loc[m.val_loss.notna(), "step"])
    assert {3, 4, 13, 14, 9, 19, 29, 0} <= val_steps  # both sides of each boundary, every 10
    assert m.train_loss.iloc[-5:].mean() < m.train_loss.iloc[:5].mean()
    config = yaml.safe_load((est_run / "config.yaml").read_text())
    assert config["boundaries"] == [4, 14, 30] and config["method"] == "est"


def _counted_flops(config, subnet) -> int:
    """Matmul FLOPs of a real forward+backward of `subnet` on an 8 x 64 batch, counted by
    torch (math attention, which computes the full T x T product)."""
    model = build_model(config)
    idx = torch.randint(0, config.vocab_size, (8, 64))
    with FlopCounterMode(display=False) as counter, sdpa_kernel(SDPBackend.MATH):
        model(idx, subnet).sum().backward()
    return counter.get_total_flops()


def test_the_flops_column_counts_each_steps_real_subnet(est_run):
    m = _metrics(est_run)
    config = get_config("gpt2-smoke")
    for step in (0, 4, 13, 14, 29):  # stage 1, stage 2 (first and last step), stage 3
        rates = tuple(m.loc[step, ["p_H", "p_M", "p_L"]])
        subnet = Subnet.for_step(config, rates, seed=0, step=step)
        assert m.loc[step, "step_flops"] == _counted_flops(config, subnet)
    assert m.groupby("stage")["step_flops"].nunique().tolist() == [1, 1, 1]


def test_same_seed_same_numbers_other_seed_other_numbers(est_run, tmp_path):
    again = _metrics(train(SMOKE, tmp_path / "again", progress=False))
    other = _metrics(train(TrainConfig(scale="smoke", steps=30, eval_every=10, seed=1),
                           tmp_path / "other", progress=False))
    first = _metrics(est_run)
    pd.testing.assert_frame_equal(first.drop(columns=list(TIMING_COLUMNS)),
                                  again.drop(columns=list(TIMING_COLUMNS)))
    assert not first["train_loss"].equals(other["train_loss"])


def test_resume_after_a_crash_repeats_the_uninterrupted_run(est_run, tmp_path, monkeypatch):
    real_step, calls = train_module.optimizer_step, {"n": 0}

    def crash_at_step_17(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 18:
            raise KeyboardInterrupt  # checkpoint is at step 14 (a stage boundary)
        return real_step(*args, **kwargs)

    config = TrainConfig(scale="smoke", steps=30, eval_every=10, ckpt_every=100)
    monkeypatch.setattr(train_module, "optimizer_step", crash_at_step_17)
    with pytest.raises(KeyboardInterrupt):
        train(config, tmp_path, progress=False)
    assert _metrics(tmp_path)["step"].max() == 16
    monkeypatch.setattr(train_module, "optimizer_step", real_step)
    with pytest.raises(TrainingError, match="already holds a run"):
        train(config, tmp_path, progress=False)
    train(config, tmp_path, resume=True, progress=False)
    resumed, reference = _metrics(tmp_path), _metrics(est_run)
    pd.testing.assert_frame_equal(resumed.drop(columns=list(TIMING_COLUMNS)),
                                  reference.drop(columns=list(TIMING_COLUMNS)))


def test_resume_refuses_a_different_config(est_run):
    with pytest.raises(TrainingError, match="config differs .*seed"):
        train(TrainConfig(scale="smoke", steps=30, eval_every=10, seed=9), est_run, resume=True,
              progress=False)


def test_original_trains_the_full_model_every_step(tmp_path):
    m = _metrics(train(TrainConfig(scale="smoke", steps=12, method="original",
                                   preset="est-tinyllama"), tmp_path, progress=False))
    assert (m[["p_H", "p_M", "p_L"]] == 1.0).all().all() and (m.stage == 1).all()
    assert (m.step_flops == _counted_flops(get_config("llama-smoke"), None)).all()


def test_non_finite_loss_stops_with_a_clear_message(tmp_path, monkeypatch):
    monkeypatch.setattr(head_loss, "linear_cross_entropy", lambda hidden, weight, y: hidden.sum() * float("nan"))
    with pytest.raises(TrainingError, match=r"training loss nan \(non-finite\) at step 0 .* train it again with a lower --lr"):
        train(SMOKE, tmp_path, progress=False)
    assert not (tmp_path / "checkpoint.pt").exists()


def test_snapshots_at_boundaries_every_n_steps_and_the_start(est_run, tmp_path):
    assert [p.name for p in RunDir(est_run).snapshots()] == [
        "step_0000004.pt", "step_0000014.pt", "step_0000030.pt"]  # boundaries only
    out = train(TrainConfig(scale="smoke", steps=30, eval_every=10, snapshot_every=10), tmp_path,
                progress=False)
    steps = [load_run(p).step for p in RunDir(out).snapshots()]
    assert steps == [0, 4, 10, 14, 20, 30]
    last, final = load_checkpoint(RunDir(out).snapshots()[-1]), load_checkpoint(out / "checkpoint.pt")
    assert "optimizer" not in last
    for name, tensor in final["model"].items():
        assert last["model"][name].equal(tensor)
