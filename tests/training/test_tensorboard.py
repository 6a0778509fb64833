"""`--tensorboard`: the event file holds metrics.csv's columns, step for step, and a resumed
run's repeated steps replace the interrupted ones (read back with TensorBoard's own reader)."""

import pytest

import est_analysis.training.loop as loop
from est_analysis.training import RunDir, TrainConfig, train

pytest.importorskip("tensorboard")
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402


def _scalars(run: RunDir, tag: str) -> dict[int, float]:
    events = EventAccumulator(str(run.path / "tensorboard"))
    events.Reload()
    scalars = events.Scalars(tag)
    assert len({e.step for e in scalars}) == len(scalars)  # no step written twice
    return {e.step: e.value for e in scalars}


def test_event_file_holds_the_metrics_and_resume_replaces_repeated_steps(tmp_path, monkeypatch):
    config = TrainConfig(scale="smoke", steps=12, eval_every=4, ckpt_every=4, tensorboard=True)
    reference = RunDir(train(config, tmp_path / "reference", progress=False))
    metrics = reference.read_metrics()
    for column in ("train_loss", "lr", "cum_flops", "p_H", "tokens_per_s"):
        assert _scalars(reference, column) == pytest.approx(dict(zip(metrics["step"], metrics[column])),
                                                            rel=1e-6)
    evaluated = metrics.dropna(subset=["val_loss"])
    assert _scalars(reference, "val_loss") == pytest.approx(
        dict(zip(evaluated["step"], evaluated["val_loss"])), rel=1e-6)

    real, calls = loop.optimizer_step, {"n": 0}

    def crash_at_step_10(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 11:
            raise KeyboardInterrupt  # steps 8-9 are logged, the checkpoint is at step 8
        return real(*args, **kwargs)

    monkeypatch.setattr(loop, "optimizer_step", crash_at_step_10)
    with pytest.raises(KeyboardInterrupt):
        train(config, tmp_path / "resumed", progress=False)
    monkeypatch.setattr(loop, "optimizer_step", real)
    resumed = RunDir(train(config, tmp_path / "resumed", resume=True, progress=False))
    assert _scalars(resumed, "train_loss") == pytest.approx(_scalars(reference, "train_loss"), rel=1e-6)
