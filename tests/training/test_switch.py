"""The adaptive stage switch (--switch-slope): the rule on a loss curve worked out by hand, and
in the trainer: the stage ends where the rule says, the subnets follow the moved boundary, and
a resumed run switches where the uninterrupted one does."""

import json

import pandas as pd
import pytest

import est_analysis.training.loop as train_module
from est_analysis.schedule import Schedule
from est_analysis.training import TrainConfig, train
from est_analysis.training.metrics import TIMING_COLUMNS
from est_analysis.training.switch import SlopeSwitch

SCHEDULE = Schedule((100, 200, 300), ((0.5, 0.5, 0.5), (0.5, 0.5, 1.0), (1.0, 1.0, 1.0)))


def _feed(switch, losses, schedule=SCHEDULE):
    for step, loss in enumerate(losses):
        switched = switch.observe(schedule, step, loss, 1.0)
        if switched:
            return switched
    return None


def test_the_stage_ends_after_the_slope_stays_below_the_fraction_for_patience_windows():
    # slope 1 per step to step 50, then 0.2. Windows of 5 steps: window means fall by 5 (slope
    # per FLOP 1, the reference) up to window 9; window 10 straddles the kink (mean -50.4
    # against -47: 0.68, above 0.5); windows 11 and 12 fall by 1 (0.2, below): the stage ends
    # after window 12's last step, 64.
    losses = [-s if s < 50 else -50 - 0.2 * (s - 50) for s in range(100)]
    switched = _feed(SlopeSwitch(fraction=0.5, window=5, patience=2), losses)
    assert switched.boundaries == (65, 200, 300) and switched.rates == SCHEDULE.rates
    assert _feed(SlopeSwitch(fraction=0.5, window=5, patience=3), losses).boundaries == (70, 200, 300)
    assert _feed(SlopeSwitch(fraction=0.1, window=5, patience=2), losses) is None  # 0.2 > 0.1


def test_a_steady_slope_keeps_the_schedules_boundary_and_a_rising_loss_ends_the_stage():
    assert _feed(SlopeSwitch(fraction=0.5, window=5), [-s for s in range(100)]) is None
    rising = [-s for s in range(20)] + [-19 + s for s in range(80)]
    assert _feed(SlopeSwitch(fraction=0.5, window=5), rising).boundaries == (30, 200, 300)


def test_the_last_stage_is_never_shortened():
    last = Schedule((10, 100), ((0.5, 0.5, 1.0), (1.0, 1.0, 1.0)))
    switch = SlopeSwitch(fraction=0.9, window=2)
    for step in range(10, 100):  # a flat loss in the full stage
        assert switch.observe(last, step, 1.0, 1.0) is None


SWITCHED = TrainConfig(scale="smoke", steps=60, eval_every=100, stages=[0.5, 0.8, 1.0],
                       rates=[[0.5, 0.5, 0.5], [0.5, 0.5, 1.0], [1.0, 1.0, 1.0]],
                       switch_slope=0.5, switch_window=4)


@pytest.fixture(scope="module")
def switched_run(tmp_path_factory):
    return train(SWITCHED, tmp_path_factory.mktemp("switched"), progress=False)


def test_the_trainer_switches_where_the_rule_does_on_its_own_losses(switched_run):
    m = pd.read_csv(switched_run / "metrics.csv")
    schedule, switch = SWITCHED.resolved().schedule(), SWITCHED.resolved().stage_switch()
    for row in m.itertuples():  # the rule replayed on the logged losses and FLOPs
        schedule = switch.observe(schedule, row.step, row.train_loss, row.step_flops) or schedule
    boundaries = json.loads((switched_run / "summary.json").read_text())["boundaries"]
    assert boundaries == list(schedule.boundaries) and boundaries[0] < 30  # stage 1 ended early
    starts = m.groupby("stage")["step"].min().tolist()
    assert starts == [0] + boundaries[:-1]
    for stage, rates in enumerate(schedule.rates, 1):
        assert m.loc[m.stage == stage, ["p_H", "p_M", "p_L"]].drop_duplicates().values.tolist() == [list(rates)]
    assert m.loc[m.val_loss.notna(), "step"].isin([boundaries[0] - 1, boundaries[0]]).sum() == 2
    assert (switched_run / "snapshots" / f"step_{boundaries[0]:07d}.pt").exists()


def test_a_resumed_run_switches_where_the_uninterrupted_one_does(switched_run, tmp_path, monkeypatch):
    real_step, calls = train_module.optimizer_step, {"n": 0}
    boundaries = json.loads((switched_run / "summary.json").read_text())["boundaries"]

    def crash_after_the_switch(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == boundaries[0] + 3:
            raise KeyboardInterrupt  # the checkpoint is at the switched boundary
        return real_step(*args, **kwargs)

    monkeypatch.setattr(train_module, "optimizer_step", crash_after_the_switch)
    with pytest.raises(KeyboardInterrupt):
        train(SWITCHED, tmp_path, progress=False)
    monkeypatch.setattr(train_module, "optimizer_step", real_step)
    train(SWITCHED, tmp_path, resume=True, progress=False)
    assert json.loads((tmp_path / "summary.json").read_text())["boundaries"] == boundaries
    pd.testing.assert_frame_equal(
        pd.read_csv(tmp_path / "metrics.csv").drop(columns=list(TIMING_COLUMNS)),
        pd.read_csv(switched_run / "metrics.csv").drop(columns=list(TIMING_COLUMNS)))


def test_switching_needs_est_and_a_slope():
    with pytest.raises(ValueError, match="method 'original' has none to switch"):
        TrainConfig(method="original", switch_slope=0.5).resolved()
    with pytest.raises(ValueError, match="give both"):
        TrainConfig(switch_window=5).resolved()
    with pytest.raises(ValueError, match="switch_slope"):
        TrainConfig(switch_slope=1.5)
