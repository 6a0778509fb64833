"""Stage transitions: the loss on both sides of each boundary and Delta R at the boundary."""

import pytest

from est_analysis.diagnostics import transition_table
from est_analysis.training import CheckpointError, RunDir


def test_one_row_per_boundary_with_consistent_columns(est_run):
    table = transition_table(est_run, samples=3, window=5, batches=1)
    assert list(table["boundary"]) == [8, 28]
    assert list(table["rates_after"]) == [(0.5, 0.5, 1.0), (1.0, 1.0, 1.0)]
    last = table.iloc[-1]
    assert last["loss_after_same_batches"] == last["full_loss"]  # the full model: R = 0
    before_minus_after = table["loss_before_same_batches"] - table["loss_after_same_batches"]
    assert before_minus_after.to_numpy() == pytest.approx(table["delta_R"].to_numpy())
    assert (table["observed_drop_stderr"] > 0).all()


def test_runs_without_transitions_or_snapshots_are_refused(est_run, original_run, tmp_path):
    with pytest.raises(ValueError, match="single stage"):
        transition_table(original_run)
    copy = tmp_path / "run"
    copy.mkdir()
    (copy / "metrics.csv").write_text((est_run / "metrics.csv").read_text())
    with pytest.raises(CheckpointError, match=RunDir(copy).snapshot(8).name):
        transition_table(copy)
