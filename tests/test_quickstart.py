"""`est quickstart`, the main job, at a tiny length: three arms in parallel processes, the
compute-matched Original trained for EST's measured FLOPs, traces, one verdict table, CSV and
figure; a second run reuses the finished runs and gives the same table."""

import json
from pathlib import Path

import pandas as pd
import pytest

from est_analysis.cli.main import main
from est_analysis.quickstart import ARMS, committed_result, configs, matched_steps, verdict
from est_analysis.repro.conclusions import stated

ROOT = Path(__file__).resolve().parents[1]


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
    # the progress bar's total, fixed before training, is the length the matched arm got
    assert matched_steps(configs(0, 0.5)) == matched["steps"]
    assert est["flops_saving"] == pytest.approx(1 - est["total_flops"] / original["total_flops"])
    assert est["gap_to_matched"] == pytest.approx(est["final_val_loss"] - matched["final_val_loss"])
    assert matched["gap_to_matched"] == 0
    assert (table["trace_ci_low"] < table["trace"]).all() and (table["trace"] < table["trace_ci_high"]).all()
    assert (quickstart / "quickstart.png").stat().st_size > 10_000
    assert not table["reused"].any() and (table["train_cpu_s"] > 0).all()
    assert est["cpu_saving"] == pytest.approx(1 - est["train_cpu_s"] / original["train_cpu_s"])


def test_a_second_run_reuses_the_runs_and_prints_the_verdict(quickstart, capsys):
    before = pd.read_csv(quickstart / "quickstart.csv")
    capsys.readouterr()
    assert main(["quickstart", "--out", str(quickstart), "--tokens-per-param", "0.5",
                 "--no-progress", "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    again = pd.DataFrame(printed["table"])
    assert again["final_val_loss"].tolist() == before["final_val_loss"].tolist()
    assert again["reused"].all()
    assert main(["quickstart", "--out", str(quickstart), "--tokens-per-param", "0.5", "--no-progress"]) == 0
    assert f"Reused the finished runs of {', '.join(ARMS)} in {quickstart}" in capsys.readouterr().out
    assert "fewer training FLOPs than Original" in printed["verdict"]
    assert "One seed is not a test" in printed["verdict"]  # 0.5 tokens/parameter: no committed cell


def test_the_verdict_says_which_way_the_gap_goes():
    rows = pd.DataFrame({"arm": list(ARMS), "final_val_loss": [3.0, 3.1, 3.2], "flops_saving": [0, .2, .2],
                         "cpu_saving": [0, .15, .2],
                         "gap_to_matched": [-.2, -.1, 0], "trace": [1.0, 2.0, 3.0]})
    assert "in this run EST saved compute" in verdict(rows, None)
    rows["gap_to_matched"] = [.1, .05, 0]
    assert "in this run EST did not save compute" in verdict(rows, None)


def test_the_committed_result_reads_as_in_the_readme_and_docs():
    # one statement of the committed 64 tokens/parameter cell (raw p, Holm, verdict) in the
    # quickstart's reading, the README and docs/reproduction.md
    committed = committed_result(64)
    assert committed is not None and committed["seeds"] >= 2
    rows = pd.DataFrame({"arm": list(ARMS), "final_val_loss": [3.0, 3.1, 3.05], "flops_saving": [0, .2, .2],
                         "cpu_saving": [0, .15, .2],
                         "gap_to_matched": [-.05, .05, 0], "trace": [1.0, 2.0, 3.0]})
    statement = stated(committed)
    assert f"is {statement}; this seed's +0.050 lies" in verdict(rows, committed)
    assert committed["verdict"] in statement and f"raw p {committed['p']:.2g}" in statement
    for page in ("README.md", "docs/reproduction.md"):
        assert statement in (ROOT / page).read_text(), f"{page}: run scripts/update_readme.py"
