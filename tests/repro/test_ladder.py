"""The regime ladder: iso-loss FLOPs saving read off Original's loss-vs-FLOPs curve, and the
runs `est repro ladder` trains (three arms per rung, the matched Original at EST's FLOPs)."""

import json
import math

import numpy as np
import pandas as pd
import pytest

from est_analysis.cli.main import main
from est_analysis.repro.ladder import (flops_to_reach, iso_loss_saving, paper_tokens_per_param,
                                       steps_for)
from est_analysis.training import TrainConfig


def test_flops_to_reach_interpolates_in_log_flops_and_names_bounds():
    log_c = np.log([1e9, 1e10, 1e11])
    losses = np.array([4.0, 3.0, 2.5])
    needed, bound = flops_to_reach(log_c, losses, 2.75)  # halfway between 1e10 and 1e11
    assert needed == pytest.approx(10 ** 10.5) and bound == ""
    assert flops_to_reach(log_c, losses, 2.0) == (pytest.approx(1e11), "at least")
    assert flops_to_reach(log_c, losses, 5.0) == (pytest.approx(1e9), "at most")


def test_iso_loss_saving_of_a_known_curve():
    # Original: loss = 10 - 0.5 log10(C) at C = 1e9..1e12, two seeds +- 0.01 around it
    originals = pd.DataFrame([{"total_flops": c, "final_val_loss": 10 - 0.5 * math.log10(c) + e}
                              for c in (1e9, 1e10, 1e11, 1e12) for e in (-0.01, 0.01)])
    # EST: 3e10 FLOPs reaching the loss Original reaches at 1e11 -> saves 70 %
    est = pd.DataFrame({"total_flops": [3e10] * 3, "final_val_loss": [4.49, 4.5, 4.51]})
    saving, low, high, p, bound = iso_loss_saving(est, originals)
    assert saving == pytest.approx(0.7) and bound == "" and p < 0.01
    assert low < 0.7 < high and high - low < 0.2
    worse = est.assign(final_val_loss=5.0)  # Original's 1e10 loss at 3e10 FLOPs: costs 3x
    assert iso_loss_saving(worse, originals)[0] == pytest.approx(1 - 3)


def test_lengths_are_tokens_per_parameter():
    # the paper's GPT-2 run: 512 x 1024 tokens x 150k steps on 124 M parameters
    assert paper_tokens_per_param("est-gpt2") == pytest.approx(632, rel=0.01)
    config = TrainConfig(scale="regime")
    assert steps_for(config, 300) == config.resolved().steps  # the regime scale is 300 tokens/param


def test_ladder_at_smoke_scale(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "paper_repro").mkdir()
    assert main(["repro", "ladder", "--scale", "smoke", "--no-progress", "--json"]) == 0
    rows = pd.read_csv(tmp_path / "paper_repro" / "smoke" / "results" / "ladder.csv")
    length = rows[rows["axis"] == "length"]
    # rungs 0.03 and 0.06 with three arms, the fit-only length with Original alone; 2 seeds
    assert len(length) == 2 * (2 * 3 + 1)
    for _, rung in length[length["rung"] < 0.1].groupby(["rung", "seed"]):
        arms = rung.set_index("arm")
        est, matched = arms.loc["EST"], arms.loc["Original at EST's FLOPs"]
        assert est["total_flops"] < arms.loc["Original", "total_flops"]
        step = arms.loc["Original", "total_flops"] / arms.loc["Original", "steps"]
        assert abs(matched["total_flops"] - est["total_flops"]) <= step / 2  # nearest whole step
    assert set(rows.loc[rows["axis"] == "size", "model"]) == {"gpt2-regime-d16", "gpt2-regime"}
    summary = pd.DataFrame(json.loads(capsys.readouterr().out))
    assert len(summary) == 4 and summary["gap_matched"].notna().all()
    assert (tmp_path / "paper_repro" / "smoke" / "figures" / "ladder_smoke.png").is_file()
    # a rerun reuses every run (nothing trained: each row names the same run directory)
    assert main(["repro", "ladder", "--scale", "smoke", "--no-progress", "--json"]) == 0
    again = pd.read_csv(tmp_path / "paper_repro" / "smoke" / "results" / "ladder.csv")
    assert list(again["run_dir"]) == list(rows["run_dir"])
    assert list(again["train_wall_s"]) == list(rows["train_wall_s"])


def test_width_gaps_pair_est_with_the_matched_original_of_its_own_seed():
    from est_analysis.repro.ladder import width_gaps
    from est_analysis.plotting import ladder_figure

    rows = pd.DataFrame([{"group": f"{m} @ 16 tok/param", "model": m, "arm": arm, "seed": s,
                          "tokens_per_param": 16.0 if arm != "Original at EST's FLOPs" else 12.6,
                          "final_val_loss": loss + s * 0.1}
                         for m in ("gpt2-regime", "gpt2-l4-d64-h8")
                         for arm, loss in (("Original", 3.0), ("EST", 3.2), ("Original at EST's FLOPs", 3.1))
                         for s in range(3)])
    gaps = width_gaps(rows)
    assert list(gaps["d_model"]) == [32, 64] and list(gaps["tokens_per_param"]) == [16.0, 16.0]
    assert gaps["diff"].tolist() == pytest.approx([0.1, 0.1]) and (gaps["seeds"] == 3).all()
    summary = pd.DataFrame({"axis": [], "tokens_per_param": [], "params": []})
    assert len(ladder_figure(summary, width=gaps).axes) == 4


def test_the_power_law_saving_inverts_a_known_curve():
    from est_analysis.repro.ladder import power_law_saving
    flops = np.geomspace(1e9, 1e13, 6)
    originals = pd.DataFrame({"total_flops": flops, "final_val_loss": 2.0 + 40.0 * flops ** -0.15})
    needed = 3e11  # Original reaches EST's loss at these FLOPs; EST spent half of them
    est = pd.DataFrame({"total_flops": [needed / 2], "final_val_loss": [2.0 + 40.0 * needed ** -0.15]})
    saving, bound = power_law_saving(est, originals)
    assert saving == pytest.approx(0.5, abs=1e-3) and bound == ""
    below_floor = est.assign(final_val_loss=1.9)  # no Original reaches it: a bound
    assert power_law_saving(below_floor, originals)[1] == "at least"
