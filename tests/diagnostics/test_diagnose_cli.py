"""`est diagnose` from the command line: every subcommand on a smoke run, JSON and CSV output,
and bad input answered with a one-line error."""

import json

import pandas as pd
import pytest

from est_analysis.cli.main import main


def _json(capsys):
    return json.loads(capsys.readouterr().out)


def test_regularizer_at_the_runs_stage_rates(est_run, capsys, tmp_path):
    csv = tmp_path / "r.csv"
    assert main(["diagnose", "regularizer", str(est_run), "--samples", "2",
                 "--probes", "2", "--batches", "1", "--no-progress", "--json", "--csv", str(csv)]) == 0
    table = pd.DataFrame(_json(capsys)["table"])
    assert list(table["rates"].unique()) == ["0.5,0.5,0.5", "0.5,0.5,1"]
    assert (table["step"] == 60).all()
    pd.testing.assert_frame_equal(pd.read_csv(csv), table, check_dtype=False)


def test_regularizer_trajectory_over_snapshots(est_run, capsys):
    assert main(["diagnose", "regularizer", str(est_run), "--trajectory",
                 "--rates", "0.5,0.5,1", "--no-second-order", "--samples", "2", "--batches", "1",
                 "--no-progress", "--json"]) == 0
    assert [row["step"] for row in _json(capsys)["table"]] == [0, 8, 20, 28, 40, 60]


def test_transitions_dynamics_and_curvature(est_run, original_run, capsys):
    assert main(["diagnose", "transitions", str(est_run), "--samples", "2",
                 "--batches", "1", "--window", "4", "--no-progress", "--json"]) == 0
    assert [row["boundary"] for row in _json(capsys)["table"]] == [8, 28]
    assert main(["diagnose", "dynamics", str(original_run), str(est_run), "--labels",
                 "original,est", "--window", "5", "--bins", "2", "--json"]) == 0
    result = _json(capsys)
    assert {row["run"] for row in result["table"]} == {"original", "est"}
    assert "slope_ratio est / original" in result
    assert main(["diagnose", "curvature", str(est_run), "--matvecs", "6",
                 "--batches", "1", "--no-progress"]) == 0
    assert "trace" in capsys.readouterr().out


@pytest.mark.parametrize("args, message", [
    (["regularizer", "{est}/checkpoint.pt"], "--rates is needed"),
    (["regularizer", "{est}/checkpoint.pt", "--rates", ".5,.5", "--trajectory"], "three numbers"),
    (["regularizer", "{est}/checkpoint.pt", "--rates", ".5,.5,1", "--trajectory"],
     "needs a run directory"),
    (["dynamics", "{est}"], "at least two runs"),
    (["dynamics", "{est}", "{est}/nowhere"], "has no metrics.csv: not a run directory"),
    (["transitions", "{original}"], "single stage"),
])
def test_bad_input_gets_one_line(est_run, original_run, capsys, args, message):
    args = [a.format(est=est_run, original=original_run) for a in args]
    assert main(["diagnose", *args]) == 2
    err = capsys.readouterr().err
    assert message in err and err.startswith("est diagnose: error:") and err.count("\n") == 1


def test_option_values_are_checked_by_the_parser(est_run, capsys):
    assert main(["diagnose", "regularizer", str(est_run), "--samples", "0"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[-1] == "est diagnose regularizer: error: argument --samples: '0' must be an integer >= 1"
