"""Claims C1-C8 are judged from the numbers: synthetic tables with known answers."""

import pandas as pd

from est_analysis.repro.claims import compare, judge_claims


def _table(rows):
    return pd.DataFrame([{"label": label, "final_val_loss": loss, "flops_saving": saving,
                          "train_wall_s": wall, "machine": "test machine", "ood_loss": loss + 1,
                          "next_token_acc": 0.3, "last_word_acc": 0.1, "trace": 100 * loss}
                         for label, loss, saving, wall in rows])


def test_compare_separates_better_equal_and_worse():
    a, b = pd.Series([3.00, 3.01, 2.99]), pd.Series([3.20, 3.21, 3.19])
    assert compare(a, b)[0] == "holds"
    assert compare(b, a)[0] == "does not hold"
    assert compare(a, a + 0.001)[0] == "holds within noise"
    assert compare(pd.Series([3.0]), pd.Series([3.1]))[0] == "no seed spread (run more seeds)"


def test_verdicts_follow_the_tables():
    table2 = _table([("Original", 3.06, 0.0, 100), ("Original", 3.07, 0.0, 102),
                     ("EST", 3.05, 0.267, 80), ("EST", 3.06, 0.267, 82)])
    variants = [("EST-ONE-STAGE", 3.36, 0.5, 1), ("EST-TWO-STAGE-A", 3.04, 0.167, 1),
                ("EST-TWO-STAGE-B", 3.06, 0.233, 1), ("EST-TWO-STAGE-C", 3.09, 0.3, 1),
                ("EST-THREE-STAGE", 3.07, 0.267, 1), ("EST-THREE-STAGE", 3.08, 0.267, 1)]
    table3 = pd.concat([table2, _table(variants)])
    transitions = pd.DataFrame({"observed_drop": [0.2, 0.1], "observed_drop_stderr": [0.01, 0.02],
                                "delta_R": [0.1, 0.05]})
    slope = {"ratio": 1.5, "ci_low": 1.2, "ci_high": 1.8, "bins": 4}
    verdicts = judge_claims(table2, table3, table2, transitions, slope).set_index("claim")["verdict"]
    assert verdicts["C1"] == "holds within noise"
    assert verdicts["C2"] == "holds"
    assert verdicts["C3"] == "holds" and verdicts["C4"] == "holds" and verdicts["C7"] == "holds"
    assert verdicts["C8"] == "holds"
    assert judge_claims().set_index("claim")["verdict"].eq("not measured").all()
