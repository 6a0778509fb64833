"""Hessian trace along a run: one estimate per snapshot, equal to the toolkit's on that file."""

import pytest

from est_analysis.diagnostics import curvature_trajectory
from est_analysis.hessian import GGNOperator, HessianOperator, hutchpp
from est_analysis.training import RunDir, load_run


def test_trajectory_traces_every_snapshot(est_run):
    table = curvature_trajectory(est_run, matvecs=6, batches=1)
    assert list(table["step"]) == [0, 8, 20, 28, 40, 60]
    run = load_run(RunDir(est_run).snapshots()[2])
    direct = hutchpp(HessianOperator(run.model, run.batches("val", 1)), matvecs=6)
    assert table.iloc[2]["trace"] == direct.estimate


def test_trajectory_at_chosen_steps(est_run):
    assert list(curvature_trajectory(est_run, matvecs=6, batches=1, steps=[60, 0])["step"]) == [0, 60]
    with pytest.raises(ValueError, match="no snapshot at steps \\[5\\]"):
        curvature_trajectory(est_run, steps=[5])


def test_trajectory_of_the_ggn_is_the_ggn_trace_of_each_snapshot(est_run):
    table = curvature_trajectory(est_run, matvecs=6, batches=1, steps=[0, 60], operator="ggn")
    assert list(table["operator"]) == ["ggn", "ggn"] and (table["trace"] > 0).all()  # PSD
    run = load_run(RunDir(est_run).snapshots()[-1])
    direct = hutchpp(GGNOperator(run.model, run.batches("val", 1)), matvecs=6)
    assert table.iloc[1]["trace"] == direct.estimate
