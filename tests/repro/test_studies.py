"""The why-EST-trails studies at smoke scale: the runs each trains, their arms and settings, and
runs shared with the ladder read from its results."""

import shutil
from dataclasses import replace

import pandas as pd
import pytest
from scipy import stats

from est_analysis.cli.main import main
from est_analysis.repro.studies import stage_fractions, study_summary
from est_analysis.stats import paired
from est_analysis.training import TrainConfig, train


@pytest.fixture
def workspace(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "paper_repro").mkdir()
    return tmp_path / "paper_repro" / "smoke" / "results"  # the smoke scale's scratch workspace


def study(name: str, results) -> pd.DataFrame:
    assert main(["repro", name, "--scale", "smoke", "--no-progress", "--json"]) == 0
    return pd.read_csv(results / f"{name}.csv")


def test_custom_schedule_at_the_presets_boundaries_is_the_preset(tmp_path):
    # the ablation's variants are custom schedules at est-gpt2's fractions: with est-gpt2's own
    # rates such a schedule must train exactly the EST run
    config = TrainConfig(scale="smoke", steps=30, seed=3)
    custom = replace(config, stages=stage_fractions("est-gpt2"),
                     rates=[[0.5, 0.5, 0.5], [0.5, 0.5, 1], [1, 1, 1]])
    assert custom.schedule() == config.schedule()
    losses = [pd.read_csv(train(c, tmp_path / name, progress=False) / "metrics.csv")["train_loss"]
              for c, name in ((config, "preset"), (custom, "custom"))]
    pd.testing.assert_series_equal(*losses)


HEADS = "heads (stages 1-2) + layers (stage 1)"  # two of the ablation's variants (smoke scale)
NEURONS = "neurons (stage 2)"


def test_ablation_samples_components_each_beside_an_original_of_its_own_flops_paired_by_seed(workspace):
    rows = study("ablation", workspace)
    assert len(rows) == 2 * (3 + 2 * 2)  # 2 seeds x (three reference arms + two variants x 2)
    heads = rows[rows["arm"] == f"EST, {HEADS}"]
    assert set(heads["rates"]) == {"0.5,1,0.5/0.5,1,1/1,1,1"}
    assert set(rows.loc[rows["arm"] == f"EST, {NEURONS}", "rates"]) == {"1,1,1/1,0.5,1/1,1,1"}
    by_arm = rows.groupby("arm")["total_flops"].mean()
    for variant in (HEADS, NEURONS):
        assert by_arm["EST"] < by_arm[f"EST, {variant}"] < by_arm["Original"]
        est, matched = (rows[(rows["group"] == variant) & (rows["arm"] == arm)].set_index("seed")
                        for arm in (f"EST, {variant}", "Original at the variant's FLOPs"))
        assert (matched["method"] == "original").all()
        # within one step of Original's FLOPs per step
        step = rows.loc[rows["arm"] == "Original", "total_flops"].iloc[0] / rows.loc[rows["arm"] == "Original", "steps"].iloc[0]
        assert ((matched["total_flops"] - est["total_flops"]).abs() <= step / 2).all()
    # paired: the same seeds for every arm of every group
    assert rows.groupby(["group", "arm"])["seed"].apply(sorted).map(tuple).nunique() == 1
    # the validation loss at each stage end, at the stage's last step, for the EST runs
    for _, row in heads.iterrows():
        metrics = pd.read_csv(workspace.parents[2] / row["run_dir"] / "metrics.csv")
        for stage in (1, 2):
            last = metrics[metrics["stage"] == stage].iloc[-1]
            assert row[f"stage{stage}_end_step"] == last["step"]
            assert row[f"stage{stage}_end_val_loss"] == pytest.approx(last["val_loss"])
    assert rows.loc[rows["method"] == "original", "stage1_end_val_loss"].isna().all()
    # the summary: each variant paired by seed against Original, EST and its own matched Original
    summary = study_summary(rows)
    heads = summary[(summary["arm"] == f"EST, {HEADS}") & (summary["versus"] == "Original")].iloc[0]
    by_seed = rows.set_index(["arm", "seed"])["final_val_loss"]
    expected = paired(by_seed[f"EST, {HEADS}"].sort_index(), by_seed["Original"].sort_index())
    assert heads["diff"] == pytest.approx(expected.estimate) and heads["seeds"] == 2
    assert heads["p_paired"] == pytest.approx(expected.p, nan_ok=True)
    est_gap = (by_seed["EST"] - by_seed["Original"]).mean()
    assert heads["share_of_est_gap"] == pytest.approx(expected.estimate / est_gap)
    assert set(summary["arm"]) == {f"EST, {HEADS}", f"EST, {NEURONS}"}
    # each variant against the Original of its own FLOPs, with the paired TOST within 0.02
    matched = summary[(summary["arm"] == f"EST, {HEADS}")
                      & (summary["versus"] == "Original at the variant's FLOPs")].iloc[0]
    group = rows[rows["group"] == HEADS].set_index(["arm", "seed"])["final_val_loss"]
    d = (group[f"EST, {HEADS}"] - group["Original at the variant's FLOPs"]).to_numpy()
    tost = max(stats.ttest_1samp(d, -0.02, alternative="greater").pvalue,
               stats.ttest_1samp(d, 0.02, alternative="less").pvalue)
    assert matched["diff"] == pytest.approx(d.mean()) and matched["p_tost"] == pytest.approx(tost)


def test_runs_shared_with_the_ladder_are_read_from_its_results(workspace):
    rows = study("ablation", workspace)
    original = rows[(rows["arm"] == "Original") & (rows["seed"] == 0)].iloc[0]
    ladder = pd.DataFrame([original.to_dict() | {"final_val_loss": 1.25, "axis": "length", "rung": 0.06}])
    ladder.to_csv(workspace / "ladder.csv", index=False)
    # the run's directory is gone: the study must take the ladder's row, not retrain it
    shutil.rmtree(workspace.parents[2] / original["run_dir"])  # recorded from the root
    again = study("ablation", workspace)
    reused = again[(again["arm"] == "Original") & (again["seed"] == 0)].iloc[0]
    assert reused["final_val_loss"] == 1.25 and reused["reused_from"] == "ladder.csv"


def test_width_grows_heads_at_fixed_head_size_and_the_control_overfits_a_slice(workspace):
    width = study("width", workspace)
    assert set(width["model"]) == {"gpt2-regime-d16", "gpt2-regime"}
    assert set(width["arm"]) == {"Original", "EST", "Original at EST's FLOPs"}
    control = study("control", workspace)
    assert set(control["arm"]) == {"Original", "EST", "EST-ONE-STAGE"}
    assert (control["train_fraction"] == 0.01).all()
    assert control["passes"].round().eq(3).all()
    curves = pd.read_csv(workspace / "control_curves.csv")
    assert len(curves.groupby(["arm", "seed"])) == 6 and curves["val_loss"].notna().all()


def test_lr_study_varies_the_peak_lr_and_swaps_schedules(workspace):
    rows = study("lr", workspace)
    gpt2 = rows[rows["group"].str.startswith("gpt2, lr")]
    assert set(gpt2["lr"]) == {0.001, 0.003}
    swapped = rows[rows["group"] == "llama, linear no warmup"]
    assert set(swapped["lr_schedule"]) == {"linear"} and set(swapped["model"]) == {"llama-smoke"}
    cosine = rows[rows["group"] == "gpt2, warmup + cosine"]
    assert set(cosine["lr_schedule"]) == {"cosine"} and (cosine["warmup_fraction"] > 0).all()
    from est_analysis.repro.summary import summary_markdown
    markdown = summary_markdown("smoke", workspace)  # the README's form, from the CSV alone
    assert "**Why EST trails: peak LR and schedule** (`results/lr.csv`, 30 runs, " in markdown
    partial = rows[rows["seed"] == 0]  # one seed of two: the summary says the study is partial
    partial.to_csv(workspace / "lr.csv", index=False)
    assert "(`results/lr.csv`, 15 of 30 runs so far, " in summary_markdown("smoke", workspace)
    assert "| gpt2, lr 0.001 | EST | Original at EST's FLOPs | 2 |" in markdown


def test_a_study_resumes_from_its_own_results_without_its_run_directories(workspace):
    first = study("control", workspace)
    curves = pd.read_csv(workspace / "control_curves.csv")
    shutil.rmtree(workspace.parent / "runs")  # a fresh checkout: results, no runs
    again = study("control", workspace)
    assert not (workspace.parent / "runs").exists()  # nothing retrained
    pd.testing.assert_frame_equal(again, first)
    pd.testing.assert_frame_equal(pd.read_csv(workspace / "control_curves.csv"), curves)


def test_a_resumed_study_stopped_partway_keeps_the_rows_it_had_not_reached(workspace, monkeypatch,
                                                                         capsys):
    import est_analysis.repro.studies as studies
    first = study("control", workspace)
    shutil.rmtree(workspace.parent / "runs")  # a fresh checkout: results, no runs
    first.drop(index=2).to_csv(workspace / "control.csv", index=False)  # one run still to train

    def stopped(*args, **kwargs):
        raise KeyboardInterrupt
    with monkeypatch.context() as patch:
        patch.setattr(studies, "ensure_trained", stopped)
        assert main(["repro", "control", "--scale", "smoke", "--no-progress"]) == 130
    assert "interrupted; run the same command again" in capsys.readouterr().err
    # stopped at the third run: the rows after it, read back from this CSV alone, are kept
    kept = pd.read_csv(workspace / "control.csv")
    assert sorted(kept["run_dir"]) == sorted(first.drop(index=2)["run_dir"])
    again = study("control", workspace)  # resumed: the one run retrained, the file as it was
    same = first.columns.drop("train_wall_s")
    pd.testing.assert_frame_equal(again[same], first[same])


def test_an_ablation_at_the_scales_own_length_records_its_rates(workspace, monkeypatch):
    # at the recipe's length a run leaves `steps` None (it is the tables' own run): the row's
    # rates must come from the resolved config (the regime ablation at 300 tokens/param)
    import est_analysis.repro.studies as studies
    from est_analysis.repro.ladder import model_params
    config = TrainConfig(scale="smoke")
    own_length = config.resolved().steps * config.tokens_per_step() / model_params(config)
    real = studies.load_study

    def at_own_length(name, scale):
        at, spec = real(name, scale)
        return at | {"tokens_per_param": own_length, "seeds": 1}, spec
    monkeypatch.setattr(studies, "load_study", at_own_length)
    rows = study("ablation", workspace)
    fixed_length = rows[~rows["arm"].str.startswith("Original at")]
    assert (fixed_length["steps"] == config.resolved().steps).all()
    assert set(rows.loc[rows["arm"] == f"EST, {HEADS}", "rates"]) == {"0.5,1,0.5/0.5,1,1/1,1,1"}


def test_the_schedule_screen_trains_searched_candidates_beside_their_own_originals(workspace):
    rows = study("schedules", workspace)
    candidates = rows[rows["arm"].str.startswith("EST, ")]
    assert len(candidates) >= 1 and (candidates["rates"].str.split("/").str[0].str.split(",").str[1] == "1").all()
    for group, g in rows.groupby("group"):
        est, matched = (g[g["arm"] == a] for a in (f"EST, {group}", "Original at the variant's FLOPs"))
        assert len(est) == len(matched) == 1 and (matched["method"] == "original").all()
        step = matched["total_flops"].iloc[0] / matched["steps"].iloc[0]
        assert abs(matched["total_flops"].iloc[0] - est["total_flops"].iloc[0]) <= step / 2
    summary = study_summary(rows)
    assert set(summary["versus"]) == {"Original at the variant's FLOPs"} and "p_tost" in summary
    for _, line in summary.iterrows():  # the saving against the full Original of the same length
        g = rows[rows["group"] == line["group"]].set_index("arm")
        est, matched = g.loc[line["arm"]], g.loc["Original at the variant's FLOPs"]
        full = est["steps"] * matched["total_flops"] / matched["steps"]
        assert line["flops_saving"] == pytest.approx(1 - est["total_flops"] / full) and line["flops_saving"] > 0.1
    # the finals: the screen's best candidate (lowest minus its own Original), longer, 2 seeds
    best = summary.sort_values("diff").iloc[0]
    finals = study("finals", workspace)
    assert set(finals["group"]) == {best["group"]} and sorted(set(finals["seed"])) == [0, 1]
    screened = rows[rows["arm"] == best["arm"]].iloc[0]
    final = finals[finals["arm"] == best["arm"]]
    assert (final["rates"] == screened["rates"]).all() and (final["steps"] > screened["steps"]).all()
    assert len(finals) == 4 and "p_tost" in study_summary(finals)


def test_the_finals_wait_for_the_screen(workspace, capsys):
    assert main(["repro", "finals", "--scale", "smoke", "--no-progress"]) == 2
    assert "run `est repro schedules --scale smoke` first" in capsys.readouterr().err
