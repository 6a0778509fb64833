"""`est quickstart`, the main job, at a tiny length: three arms in parallel processes, the
compute-matched Original trained for EST's measured FLOPs, traces, one verdict table, CSV and
figure; a second run reuses the finished runs and gives the same table."""

import json

import pandas as pd
import pytest

from est_analysis.cli.main import main
from est_analysis.quickstart import ARMS, verdict


@pytest.fixture(scope="module")
def quickstart(tmp_path_factory):
    out = tmp_path_factory.mktemp("quickstart")
    assert main(["quickstart", "--out", str(out), "--tokens-per-param", "0.5", "--no-progress"]) == 0
    return out


def test_three_arms_with_the_matched_one_at_ests_flops(quickstart):
    table = pd.read_csv(quickstart / "quickstart.csv")
    assert list(table["arm"]) == list(ARMS)
    original, est, matched = (table.iloc[i] for i in range(3))
    assert original["steps"] == est["steps"] > matched["steps"]
    # the matched arm is Original at the nearest whole step to EST's FLOPs
    per_step = original["total_flops"] / original["steps"]
    assert abs(matched["total_flops"] - est["total_flops"]) <= per_step / 2
    assert est["flops_saving"] == pytest.approx(1 - est["total_flops"] / original["total_flops"])
    assert est["gap_to_matched"] == pytest.approx(est["final_val_loss"] - matched["final_val_loss"])
    assert matched["gap_to_matched"] == 0
    assert (table["trace_ci_low"] < table["trace"]).all() and (table["trace"] < table["trace_ci_high"]).all()
    assert (quickstart / "quickstart.png").stat().st_size > 10_000


def test_a_second_run_reuses_the_runs_and_prints_the_verdict(quickstart, capsys):
    before = pd.read_csv(quickstart / "quickstart.csv")
    capsys.readouterr()
    assert main(["quickstart", "--out", str(quickstart), "--tokens-per-param", "0.5",
                 "--no-progress", "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert pd.DataFrame(printed["table"])["final_val_loss"].tolist() == before["final_val_loss"].tolist()
    assert "fewer training FLOPs than Original" in printed["verdict"]
    assert "One seed cannot tell" in printed["verdict"]


def test_the_verdict_says_which_way_the_gap_goes():
    rows = pd.DataFrame({"arm": list(ARMS), "final_val_loss": [3.0, 3.1, 3.2], "flops_saving": [0, .2, .2],
                         "gap_to_matched": [-.2, -.1, 0], "trace": [1.0, 2.0, 3.0]})
    assert "here EST saves compute" in verdict(rows, None)
    rows["gap_to_matched"] = [.1, .05, 0]
    assert "here EST does not save compute" in verdict(rows, None)
