"""The computed verdicts on why EST trails, from hand-built results CSVs whose answers are known:
a cell EST clearly trails, a cell where both arms agree to a millinat, a study cell made of the
ladder's own runs (counted once), each arm at its own best LR, and the positive control."""

import pandas as pd
import pytest
from scipy import stats

from est_analysis.repro.conclusions import conclusions_markdown, matched_cells
from est_analysis.stats import holm

MATCHED = "Original at EST's FLOPs"


def runs(scale, group, arm, losses, **fields):
    return [{"study": "", "scale": scale, "group": group, "arm": arm, "seed": seed, "model": "m",
             "steps": 100, "passes": 1.0, "final_val_loss": loss, "total_flops": 1.0,
             "run_dir": f"runs/{group}/{arm}/{seed}", "reused_from": "", **fields}
            for seed, loss in enumerate(losses)]


@pytest.fixture
def results(tmp_path):
    ladder = (runs("regime", "l", "EST", [3.10, 3.12, 3.11], axis="length", rung=64.0)
              + runs("regime", "l", MATCHED, [3.00, 3.01, 3.02], axis="length", rung=64.0)
              + runs("regime", "e", "EST", [2.900, 2.950, 3.000], axis="length", rung=300.0)
              + runs("regime", "e", MATCHED, [2.901, 2.949, 3.001], axis="length", rung=300.0))
    pd.DataFrame(ladder).to_csv(tmp_path / "ladder.csv", index=False)
    shared = [r | {"group": "gpt2-regime @ 64 tok/param"} for r in ladder[:6]]  # the ladder's runs
    wide = runs("regime", "wide", "EST", [2.5, 2.6]) + runs("regime", "wide", MATCHED, [2.4, 2.3])
    pd.DataFrame(shared + wide).to_csv(tmp_path / "width.csv", index=False)
    lr = []
    for peak, est, matched in ((0.001, [3.3, 3.4], [3.2, 3.25]), (0.01, [3.5, 3.6], [3.1, 3.0])):
        group = f"gpt2, lr {peak:g}"
        lr += runs("regime", group, "EST", est, lr=peak) + runs("regime", group, MATCHED, matched, lr=peak)
    pd.DataFrame(lr).to_csv(tmp_path / "lr.csv", index=False)
    return tmp_path


def test_every_cell_is_tested_once_paired_by_seed_and_holm_within_its_axis(results):
    cells = matched_cells("regime", results, margin=0.02).set_index("cell")
    again = cells.loc["gpt2-regime @ 64 tok/param"]  # the ladder's rung 64 again: tested once
    assert again["same_as"] == "m @ 64 tok/param"
    assert list(cells[cells["same_as"] == ""]["axis"]) == ["length", "length", "width", "lr", "lr", "lr"]
    assert (cells.loc[again["same_as"], ["p_holm", "verdict", "family"]] == again[["p_holm", "verdict", "family"]]).all()
    trails = cells.loc["m @ 64 tok/param"]
    expected = stats.ttest_rel([3.10, 3.12, 3.11], [3.00, 3.01, 3.02])
    assert trails["diff"] == pytest.approx(0.1) and trails["p"] == pytest.approx(expected.pvalue)
    length_p = [expected.pvalue, stats.ttest_rel([2.900, 2.950, 3.000], [2.901, 2.949, 3.001]).pvalue]
    assert trails["p_holm"] == pytest.approx(holm(length_p)[0])
    assert trails["verdict"] == "EST trails"
    # differences of -1, +1, -1 millinats: equal within 0.02 by the paired TOST
    assert cells.loc["m @ 300 tok/param", "verdict"] == "equal within +-0.02"
    # EST is best at 0.001, the matched Original at 0.01: compared at those
    # both optima sit at an end of the grid (0.001, 0.01): said in the cell's name
    best = cells.loc["gpt2, each at its best peak LR (EST 0.001, matched Original 0.01; not "
                     "bracketed: EST at the grid's bottom, matched Original at the grid's top)"]
    assert best["diff"] == pytest.approx(((3.3 - 3.1) + (3.4 - 3.0)) / 2)


def test_the_control_is_uninformative_where_original_does_not_overfit(results):
    control = (runs("regime", "slice", "Original", [3.0, 3.1])
               + runs("regime", "slice", "EST", [2.9, 3.0]) + runs("regime", "slice", "EST-ONE-STAGE", [2.9, 3.0]))
    for row in control:
        row["study"] = "control"
        row["best_val_loss"] = row["final_val_loss"] - 0.005  # Original's last is near its best
    pd.DataFrame(control).to_csv(results / "control.csv", index=False)
    assert "it does not overfit here, so the control is uninformative" in conclusions_markdown(
        "regime", results)
    for row in control[:2]:
        row["best_val_loss"] = row["final_val_loss"] - 0.3
    pd.DataFrame(control).to_csv(results / "control.csv", index=False)
    text = conclusions_markdown("regime", results)
    assert "Original ends +0.300 above its own best validation loss; against it" in text
    assert "**EST trails** at m @ 64 tok/param (+0.100, 3 seeds, 100 steps)" in text


def test_a_cell_reusing_some_runs_of_another_is_kept_but_not_counted_as_disjoint(results):
    ladder = pd.read_csv(results / "ladder.csv")
    rung64 = ladder[ladder["rung"] == 64.0].to_dict("records")
    # 'gpt2, lr 0.003' made of 4 of rung 64's 6 runs (seeds 0-1) and nothing else: as at regime
    reused = [r | {"group": "gpt2, lr 0.003", "lr": 0.003} for r in rung64 if r["seed"] < 2]
    lr = pd.read_csv(results / "lr.csv")
    pd.concat([lr, pd.DataFrame(reused)]).to_csv(results / "lr.csv", index=False)
    cells = matched_cells("regime", results, margin=0.02).set_index("cell")
    assert not cells.loc["gpt2, lr 0.003", "disjoint"] and cells.loc["m @ 64 tok/param", "disjoint"]
    own = cells[cells["disjoint"] & (cells["seeds"] > 1)]
    worse = int((own["diff"] > 0).sum())
    expected = stats.binomtest(worse, len(own)).pvalue
    text = conclusions_markdown("regime", results)
    assert (f"above the matched Original's in {worse} of {len(own)} cells that share no run "
            f"(two-sided sign test p {expected:.2g}; left out: 1 reusing runs of another cell)") in text
