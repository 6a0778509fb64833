"""`est repro`: experiment configs, the resumable runner with provenance, and `all` at smoke
scale (what CI runs)."""

import dataclasses
import json
import subprocess

import pandas as pd
import pytest

import est_analysis.repro.runner as runner_module
from est_analysis.cli.main import main
from est_analysis.repro import load_experiment, run_table
from est_analysis.repro.claims import PAPER
from est_analysis.repro.runner import read_results, upsert_rows
from est_analysis.training import train


def test_configs_give_three_seeds_to_the_original_vs_est_rows_at_cpu_scale():
    table2 = load_experiment("table2", "cpu")
    seeds = pd.DataFrame([{"label": r.label, "seed": r.config.seed} for r in table2.runs])
    assert seeds.groupby("label")["seed"].count().to_dict() == {
        "EST": 3, "Layer-drop (extra row)": 1, "MSG": 1, "Original": 3, "RAPTR (extra row)": 1,
        "Staged Training": 1}
    assert len(load_experiment("table2", "cpu", seeds=5).runs) == 14
    keys = {r.key for r in table2.runs}
    # Table 3's and Table 5's Original and EST are Table 2's runs
    for table in ("table3", "table5"):
        shared = {r.key for r in load_experiment(table, "cpu").runs if r.label in ("Original", "EST")}
        assert shared <= keys
    llama = load_experiment("table4", "smoke").runs[0].config.resolved()
    assert llama.model == "llama-smoke"


@pytest.mark.parametrize("args, message", [
    (("table9", "cpu"), "unknown table"), (("table2", "huge"), "unknown scale"),
    (("table2", "cpu", 0), "at least 1"),
])
def test_bad_experiment_requests_are_named(args, message):
    with pytest.raises(ValueError, match=message):
        load_experiment(*args)


def test_repro_all_at_smoke_scale_then_a_rerun_trains_nothing(smoke_repro, monkeypatch, capsys):
    runs, results = smoke_repro
    assert main(["repro", "all", "--scale", "smoke", "--runs-root", str(runs), "--results-dir",
                 str(results), "--no-progress", "--json"]) == 0  # everything reused
    tables = json.loads(capsys.readouterr().out)
    assert set(tables) == {"table2", "table3", "table4", "table5", "inactive", "walltime"}
    table2 = read_results(results / "table2.csv")
    assert list(table2["label"]) == ["Original", "Staged Training", "MSG", "EST", "RAPTR (extra row)",
                                    "Layer-drop (extra row)"]
    for column in ("commit", "config_hash", "seed", "train_wall_s", "machine", "device", "torch",
                   "ood_loss", "next_token_acc", "last_word_acc"):
        assert table2[column].notna().all(), column
    assert table2.loc[table2.label == "EST", "flops_saving"].item() > 0.2
    assert pd.read_csv(results / "table5.csv")["trace"].notna().all()
    assert {"part", "variant"} <= set(pd.read_csv(results / "walltime.csv").columns)

    def no_training(*args, **kwargs):
        raise AssertionError("a finished run was trained again")
    monkeypatch.setattr(runner_module, "train", no_training)
    again = run_table("table2", "smoke", runs_root=runs, results_dir=results, progress=False)
    pd.testing.assert_frame_equal(again, table2, check_dtype=False)


def test_an_interrupted_run_resumes_and_other_scales_are_kept(tmp_path):
    runs, results = tmp_path / "runs", tmp_path / "results"
    results.mkdir()
    pd.DataFrame([{"scale": "cpu", "label": "Original", "seed": 0}]).to_csv(results / "table4.csv", index=False)
    first = run_table("table4", "smoke", runs_root=runs, results_dir=results, progress=False)
    run_dir = runs / "smoke" / load_experiment("table4", "smoke").runs[1].key
    (run_dir / "summary.json").unlink()  # as if killed after its last checkpoint
    second = run_table("table4", "smoke", runs_root=runs, results_dir=results, progress=False)
    assert second["final_val_loss"].tolist() == first["final_val_loss"].tolist()
    assert sorted(pd.read_csv(results / "table4.csv")["scale"]) == ["cpu", "smoke", "smoke"]


def test_claims_are_judged_from_the_smoke_results(smoke_repro, capsys):
    runs, results = smoke_repro
    assert main(["repro", "claims", "--scale", "smoke", "--runs-root", str(runs),
                 "--results-dir", str(results), "--json"]) == 0
    verdicts = pd.DataFrame(json.loads(capsys.readouterr().out))
    assert set(verdicts["claim"]) == set(PAPER)
    # every claim has its inputs but those read off the regime ladder, not run here
    unmeasured = set(verdicts.loc[verdicts["verdict"] == "not measured", "claim"])
    assert unmeasured == {"C1 iso-loss", "C5 at equal loss"}
    assert main(["repro", "claims", "--scale", "cpu", "--results-dir", str(results),
                 "--runs-root", str(runs), "--json"]) == 0  # no cpu results there
    assert set(pd.DataFrame(json.loads(capsys.readouterr().out))["verdict"]) == {"not measured"}


def test_rows_are_written_as_runs_finish_and_a_run_trained_otherwise_is_not_reused(tmp_path):
    runs, results = tmp_path / "runs", tmp_path / "results"
    spec = load_experiment("table4", "smoke").runs[1]  # EST, after the Original row
    other = dataclasses.replace(spec.config, lr=1e-3)  # another peak LR than the recipe's 3e-3
    train(other, runs / "smoke" / spec.key, progress=False)
    with pytest.raises(ValueError, match=r"trained with other settings \(lr: trained with 0.001, "
                                         r"this row asks for 0.003\); it is not reused"):
        run_table("table4", "smoke", runs_root=runs, results_dir=results, progress=False)
    written = pd.read_csv(results / "table4.csv")  # the row finished before the refusal
    assert written["label"].tolist() == ["Original"] and (written["scale"] == "smoke").all()


def test_a_commit_made_of_digits_stays_text(tmp_path):
    path = tmp_path / "table.csv"
    upsert_rows(path, pd.DataFrame([{"scale": "smoke", "commit": "0929207", "config_hash": "123"}]), "smoke")
    upsert_rows(path, pd.DataFrame([{"scale": "cpu", "commit": "9292077", "config_hash": "456"}]), "cpu")
    assert read_results(path)["commit"].tolist() == ["0929207", "9292077"]


def test_dirty_means_the_code_changed_not_the_results(tmp_path, monkeypatch):
    repo = tmp_path / "repo"
    package = repo / "pkg"
    package.mkdir(parents=True)
    (package / "code.py").write_text("x = 1\n")
    (repo / "results.csv").write_text("a\n1\n")
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t"]
    for args in (["init", "-q"], ["add", "."], ["commit", "-qm", "init"]):
        subprocess.run(git + args, check=True)
    monkeypatch.setattr(runner_module, "SOURCE", package)
    (repo / "results.csv").write_text("a\n2\n")  # a run wrote its results
    assert not runner_module.git_commit().endswith("+dirty")
    (package / "code.py").write_text("x = 2\n")  # the code changed
    assert runner_module.git_commit().endswith("+dirty")
