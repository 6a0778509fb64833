"""`est` as a user meets it: help texts, a run, and bad input answered with a clear message,
exit status 2, and no output directory left behind."""

import json
import math
import subprocess
import sys

import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

from est_analysis.cli.main import main
from est_analysis.training import load_run


def test_help_explains_every_subcommand():
    out = subprocess.run([sys.executable, "-m", "est_analysis.cli", "--help"],
                         capture_output=True, text=True, check=True).stdout
    assert "Evolving Subnetwork Training" in out and "examples:" in out
    for command in ("train", "compare", "list"):
        text = subprocess.run([sys.executable, "-m", "est_analysis.cli", command, "--help"],
                              capture_output=True, text=True, check=True).stdout
        assert "--json" in text


def test_train_smoke_and_json_summary(tmp_path, capsys):
    assert main(["train", "--scale", "smoke", "--steps", "12", "--out", str(tmp_path / "r"),
                 "--no-progress", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["steps"] == 12 and summary["method"] == "est"
    assert (tmp_path / "r" / "metrics.csv").exists()


def test_compare_writes_table_and_figure(tmp_path, capsys):
    assert main(["compare", "--scale", "smoke", "--steps", "12", "--out", str(tmp_path),
                 "--no-progress", "--json"]) == 0
    rows = {r["method"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["original"]["flops_saving"] == 0
    assert 0.1 < rows["est"]["flops_saving"] < 0.5
    assert (tmp_path / "loss_curves.png").stat().st_size > 10_000


def test_list_json_names_every_method_with_its_options(capsys):
    assert main(["list", "--json"]) == 0
    methods = json.loads(capsys.readouterr().out)["methods"]
    assert list(methods) == ["original", "est", "staged", "msg", "raptr", "layer-drop"]
    assert methods["layer-drop"]["options"] == {"theta": 0.5, "gamma": None, "progressive": True}


def test_cost_reproduces_the_paper_figure(capsys):
    assert main(["cost", "--preset", "est-gpt2", "--model", "gpt2-124m", "--accounting", "paper",
                 "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["saving"] == pytest.approx(0.26667, abs=5e-5)
    assert main(["cost", "--stages", "20000,70000,150000", "--rates", ".5,.5,.5/.5,.5,1/1,1,1"]) == 0
    assert "26.7%" in capsys.readouterr().out
    assert main(["cost", "paper"]) == 0
    assert "C_H : C_M between" in capsys.readouterr().out


@pytest.mark.parametrize("args, message", [
    (["--stages", "70000,20000,150000", "--rates", ".5,.5,.5/.5,.5,1/1,1,1"], "strictly increasing"),
    (["--stages", "20000,150000", "--rates", ".5,.5,.5/.5,.5,1/1,1,1"], "2 stage boundaries but 3"),
    (["--stages", "0.5,1", "--rates", ".5,.5,2/1,1,1"], r"p_L=2.0 is outside \(0, 1\]"),
    (["--stages", "0.5,1", "--rates", ".3,.5,1/1,1,1"], "not a whole number"),
    (["--stages", "20000,140000", "--rates", ".5,.5,1/1,1,1", "--steps", "150000"], "must equal"),
    (["--efficiency", "1.5"], r"must be a finite number in \(0, 1\]"),
])
def test_cost_rejects_bad_schedules(capsys, args, message):
    assert main(["cost", *args]) == 2
    err = capsys.readouterr().err
    assert __import__("re").search(message, err), err


def test_cost_search_cli(capsys):
    assert main(["cost", "search", "--target-saving", "0.2", "--rate-values", ".5,1",
                 "--grid", "0.1", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows and all(abs(r["saving"] - 0.2) <= 0.01 for r in rows)


def test_cost_with_measured_efficiency(tmp_path, capsys):
    csv = tmp_path / "walltime.csv"
    csv.write_text("model,micro_batch,part,variant,efficiency\n"
                   "m,8,training step,stage1 sliced,0.5\nm,8,training step,stage2 sliced,1.0\n"
                   "m,1,training step,stage1 sliced,0.1\n")
    assert main(["cost", "--preset", "est-gpt2", "--accounting", "paper", "--json",
                 "--efficiency-from", str(csv)]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["predicted_speedup"] == pytest.approx(150 / (20 * 0.5 + 50 * 0.5 + 80))
    assert main(["cost", "--efficiency-from", str(csv), "--efficiency-model", "x"]) == 2
    assert "no training-step rows for model 'x'" in capsys.readouterr().err


@pytest.fixture(scope="module")
def smoke_checkpoint(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    assert main(["train", "--steps", "12", "--out", str(out), "--no-progress"]) == 0
    return out


def _reference_trace(run_dir, probes: int = 60) -> tuple[float, float]:
    """Hutchinson's trace of the run's training loss on its first fixed training batch, with
    Hessian-vector products written out here (double backward, math attention): (mean, se)."""
    run = load_run(run_dir)
    model, (x, y) = run.model.eval(), run.batches("train", 1)[0]
    params = list(model.parameters())
    generator = torch.Generator().manual_seed(12345)
    with sdpa_kernel(SDPBackend.MATH):
        grads = torch.autograd.grad(F.cross_entropy(model(x).flatten(0, 1), y.flatten()), params,
                                    create_graph=True)
        samples = []
        for _ in range(probes):
            v = [torch.randint(0, 2, p.shape, generator=generator).float() * 2 - 1 for p in params]
            hv = torch.autograd.grad(grads, params, grad_outputs=v, retain_graph=True)
            samples.append(sum((a * b).sum() for a, b in zip(v, hv)).item())
    samples = torch.tensor(samples, dtype=torch.float64)
    return samples.mean().item(), (samples.std() / probes ** 0.5).item()


def test_hessian_trace_json(smoke_checkpoint, capsys):
    assert main(["hessian", "trace", str(smoke_checkpoint), "--json", "--probes", "30",
                 "--batches", "1", "--no-progress", "--by-block"]) == 0
    result = json.loads(capsys.readouterr().out)
    reference, reference_se = _reference_trace(smoke_checkpoint)
    assert abs(result["trace"] - reference) < 4 * math.hypot(result["stderr"], reference_se)
    assert result["hvps"] == 30 and result["stderr"] < 0.5 * abs(reference)
    assert sum(b["trace"] for b in result["blocks"].values()) == pytest.approx(result["trace"])
    assert "layer0.attn" in result["blocks"] and "embeddings+lm_head (tied)" in result["blocks"]
    assert main(["hessian", "eigen", str(smoke_checkpoint), "--top", "2",
                 "--iters", "20", "--batches", "1", "--json", "--no-progress"]) == 0
    single = json.loads(capsys.readouterr().out)
    assert len(single["top"]) == 2 and single["top"][0] >= single["top"][1]
    assert main(["hessian", "eigen", str(smoke_checkpoint), "--top", "2", "--block", "4",
                 "--iters", "40", "--batches", "1", "--json", "--no-progress"]) == 0
    blocked = json.loads(capsys.readouterr().out)
    assert blocked["block"] == 4 and blocked["hvps"] == 40
    for value, residual, other in zip(blocked["top"], blocked["residual_bounds"], single["top"]):
        assert abs(value - other) <= residual + max(single["residual_bounds"]) + 1e-6 * abs(other)


def test_hessian_trace_of_the_ggn_agrees_across_estimators(smoke_checkpoint, capsys):
    results = {}
    for estimator in ("hutchpp", "xtrace"):
        assert main(["hessian", "trace", str(smoke_checkpoint), "--operator", "ggn", "--estimator",
                     estimator, "--probes", "40", "--batches", "1", "--json", "--no-progress"]) == 0
        results[estimator] = json.loads(capsys.readouterr().out)
    a, b = results["hutchpp"], results["xtrace"]
    assert a["operator"] == "ggn" and a["hvps"] == 40 and b["hvps"] == 40
    assert a["trace"] > 0 and b["trace"] > 0  # the GGN is PSD
    assert abs(a["trace"] - b["trace"]) < 4 * math.hypot(a["stderr"], b["stderr"])
    assert main(["hessian", "eigen", str(smoke_checkpoint), "--operator", "empirical-fisher",
                 "--iters", "15", "--batches", "1", "--json", "--no-progress"]) == 0
    assert json.loads(capsys.readouterr().out)["smallest_ritz"] > -1e-4  # PSD up to rounding
    assert main(["hessian", "trace", str(smoke_checkpoint), "--operator", "ggn", "--estimator",
                 "pyhessian", "--batches", "1"]) == 2


def test_hessian_diag_tables_sum_to_one_total_and_save_per_tensor(smoke_checkpoint, capsys, tmp_path):
    from safetensors.torch import load_file
    out = tmp_path / "diag.safetensors"
    assert main(["hessian", "diag", str(smoke_checkpoint), "--operator", "ggn", "--estimator", "xdiag",
                 "--probes", "20", "--batches", "1", "--json", "--no-progress", "--save", str(out)]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["products"] == 20
    block_sum = sum(b["diag_sum"] for b in result["blocks"])
    assert sum(t["diag_sum"] for t in result["tensors"]) == pytest.approx(block_sum)
    saved = load_file(out)
    assert sum(v.sum().item() for k, v in saved.items() if k.startswith("diag.")) == pytest.approx(block_sum, rel=1e-5)
    assert main(["hessian", "diag", str(smoke_checkpoint), "--save", str(tmp_path / "d.npy")]) == 2
    assert not (tmp_path / "d.npy").exists()


@pytest.mark.parametrize("method, options", [
    ("staged", []), ("msg", []), ("raptr", ["--method-option", "scale=inverse"]),
    ("layer-drop", ["--method-option", "progressive=false"]), ("original", []),
])
def test_every_method_trains_from_the_cli(tmp_path, capsys, method, options):
    assert main(["train", "--method", method, *options, "--scale", "smoke", "--steps", "24",
                 "--out", str(tmp_path), "--no-progress", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    # an untrained model predicts about uniformly: loss ln(vocab) = ln 512 = 6.24
    assert summary["method"] == method and summary["final_val_loss"] < math.log(512) - 0.5


def test_cost_prices_a_baseline_beside_est(capsys):
    main(["cost", "--method", "staged", "--json"])
    result = json.loads(capsys.readouterr().out)
    assert result["savings_by_accounting"]["paper"] == pytest.approx(1 / 6)
    assert result["est_savings_by_accounting"]["paper"] == pytest.approx(0.26667, abs=1e-4)


@pytest.mark.parametrize("args, message", [
    (["--method", "staged", "--method-option", "theta=0.5"], "no option"),
    (["--method", "msg", "--stages", "0.5,1", "--rates", "1,1,1/1,1,1"], "has its own stages"),
    (["--method", "raptr", "--method-option", "fixed"], "expected NAME=VALUE"),
])
def test_train_rejects_bad_method_settings(tmp_path, capsys, args, message):
    assert main(["train", *args, "--scale", "smoke", "--out", str(tmp_path), "--no-progress"]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "metrics.csv").exists()


def test_compare_at_a_scale_uses_its_recipe_and_says_short_timings_are_not_evidence(tmp_path, capsys):
    assert main(["compare", "--scale", "smoke", "--out", str(tmp_path), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "Not evidence of speed" in printed
    table = pd.read_csv(tmp_path / "comparison.csv")
    assert set(table["steps"]) == {60}  # the smoke recipe's length, not est compare's 200


def test_a_diagnostic_is_kept_in_the_run_where_est_plot_finds_it(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--scale", "smoke", "--steps", "30", "--out", str(run), "--no-progress"]) == 0
    assert main(["diagnose", "regularizer", str(run), "--samples", "4", "--batches", "1",
                 "--no-second-order", "--csv", str(tmp_path / "r.csv"), "--no-progress"]) == 0
    assert (run / "diagnostics" / "regularizer_final.csv").read_text() == (tmp_path / "r.csv").read_text()
    capsys.readouterr()
    assert main(["plot", str(run), "--out", str(tmp_path / "figures")]) == 0
    assert (tmp_path / "figures" / "run_regularizer_final.png").exists()


def test_hessian_trace_gives_an_interval_over_batches(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--scale", "smoke", "--steps", "20", "--out", str(run), "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["hessian", "trace", str(run), "--batches", "3", "--probes", "9", "--over-batches",
                 "--json", "--no-progress"]) == 0
    result = json.loads(capsys.readouterr().out)
    per_batch = result["per_batch"]
    assert len(per_batch) == 3 and result["batch_mean"] == pytest.approx(sum(per_batch) / 3)
    low, high = result["batch_ci95"]
    assert low < result["batch_mean"] < high and (high - low) > 0
    assert main(["hessian", "trace", str(run), "--batches", "1", "--over-batches"]) == 2
    assert "--over-batches needs --batches 2 or more" in capsys.readouterr().err


def test_est_plot_of_several_runs_writes_beside_them_not_into_the_first(tmp_path, capsys):
    for name in ("a", "b"):
        assert main(["train", "--scale", "smoke", "--steps", "10", "--out", str(tmp_path / "runs" / name),
                     "--no-progress"]) == 0
    assert main(["plot", str(tmp_path / "runs" / "a"), str(tmp_path / "runs" / "b")]) == 0
    assert (tmp_path / "runs" / "figures" / "loss_val_vs_step.png").exists()
    assert not (tmp_path / "runs" / "a" / "figures").exists()
    assert main(["landscape", "slice", str(tmp_path / "runs" / "a"), "--points", "3", "--batches", "1",
                 "--no-progress"]) == 0
    assert (tmp_path / "runs" / "a" / "diagnostics" / "slice_1d.csv").exists()  # est plot draws it
