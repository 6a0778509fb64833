"""Hessian toolkit benchmark, measured side by side in one run:

1. cost of one Hessian-vector product relative to one forward+backward pass (target <= 3x),
   ours and pyhessian's, on the same model and batch;
2. how many HVPs Hutchinson and Hutch++ need to land within +-5 % of a long-run reference
   trace in at least 90 % of seeds (target: Hutch++ <= 1/3 of Hutchinson's).

Models are trained briefly first (`est train`), so the Hessian is that of a trained network.

    python benchmarks/hessian.py --out benchmarks/results
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel

from est_analysis.hessian import HessianOperator, hutchinson, hutchpp
from est_analysis.hessian.pyhessian_bridge import pyhessian_engine
from est_analysis.hessian.trace import rademacher
from est_analysis.io import atomic_write_text
from est_analysis.loss import batch_loss
from est_analysis.models import ModelConfig, build_model
from est_analysis.training import TrainConfig, load_run, train


def trained(scale: str, steps: int, workdir: Path):
    out = train(TrainConfig(scale=scale, steps=steps, method="original", preset="original"),
                workdir / scale, progress=False)
    return load_run(out)


def hvp_cost(run, batch_size: int, repeats: int) -> dict:
    model = run.model
    batch = run.batches("train", 1, batch_size)[0]

    def forward_backward():
        with sdpa_kernel(SDPBackend.MATH):
            batch_loss(model, batch).backward()
        model.zero_grad(set_to_none=True)

    op = HessianOperator(model, [batch])
    engine = pyhessian_engine(model, batch)
    generator = torch.Generator().manual_seed(0)
    times: dict[str, list[float]] = {"forward+backward": [], "ours": [], "pyhessian": []}
    for repeat in range(repeats + 1):
        v = rademacher(op.size, generator, op.dtype, op.device)
        pieces = [t.view_as(p) for t, p in zip(torch.split(v, [p.numel() for p in op.params]), op.params)]
        for name, fn in (("forward+backward", forward_backward), ("ours", lambda: op.matvec(v)),
                         ("pyhessian", lambda: torch.autograd.grad(engine.gradsH, engine.params,
                                                                   grad_outputs=pieces, retain_graph=True))):
            t0 = time.perf_counter()
            with sdpa_kernel(SDPBackend.MATH):
                fn()
            if repeat:
                times[name].append(time.perf_counter() - t0)
    model.zero_grad(set_to_none=True)
    median = {k: statistics.median(v) for k, v in times.items()}
    return {"model": run.config.model, "batch": f"{batch_size}x{run.config.seq_len}",
            "params": op.size, "fwd_bwd_ms": median["forward+backward"] * 1e3,
            "hvp_ms": median["ours"] * 1e3, "pyhessian_hvp_ms": median["pyhessian"] * 1e3,
            "hvp_over_fwd_bwd": median["ours"] / median["forward+backward"],
            "ours_over_pyhessian": median["ours"] / median["pyhessian"]}


def tiny_gpt2_at_init() -> HessianOperator:
    """A 4.8k-parameter GPT-2 at initialisation, float64, one batch of random tokens: the
    indefinite, high-variance case (per-probe spread larger than the trace)."""
    torch.manual_seed(0)
    model = build_model(ModelConfig("gpt2-tiny", "gpt2", n_layer=2, n_head=2, n_kv_head=2,
                                    d_model=12, d_mlp=48, vocab_size=64, block_size=16)).double()
    g = torch.Generator().manual_seed(1)
    batch = (torch.randint(0, 64, (8, 16), generator=g), torch.randint(0, 64, (8, 16), generator=g))
    return HessianOperator(model, [batch])


def probes_to_5_percent(op: HessianOperator, setting: str, seeds: int, reference_hvps: int,
                        budgets: list[int]) -> pd.DataFrame:
    reference = hutchpp(op, matvecs=reference_hvps, seed=10_000)
    rows = []
    for budget in budgets:
        for name, estimate in (("hutchinson", lambda s: hutchinson(op, probes=budget, seed=s)),
                               ("hutch++", lambda s: hutchpp(op, matvecs=budget, seed=s))):
            errors = [abs(estimate(seed).estimate / reference.estimate - 1) for seed in range(seeds)]
            rows.append({"setting": setting, "estimator": name, "hvps": budget,
                         "share_within_5pct": float(np.mean(np.array(errors) <= 0.05)),
                         "median_rel_error": float(np.median(errors))})
    table = pd.DataFrame(rows)
    table["reference_trace"] = reference.estimate
    table["reference_ci_rel"] = (reference.ci_high - reference.estimate) / abs(reference.estimate)
    return table


def first_budget(table: pd.DataFrame, setting: str, estimator: str) -> float:
    ok = table[(table.setting == setting) & (table.estimator == estimator)
               & (table.share_within_5pct >= 0.9)]
    return float(ok.hvps.min()) if len(ok) else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--reference-hvps", type=int, default=1500)
    parser.add_argument("--budgets", default="12,24,48,96,192,384")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--parts", default="cost,trained,init",
                        help="cost: HVP timing; trained / init: convergence on a trained smoke "
                             "GPT-2 / a tiny GPT-2 at initialisation")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    parts = set(args.parts.split(","))
    budgets = [int(b) for b in args.budgets.split(",")]
    tables = {}
    with tempfile.TemporaryDirectory() as workdir:
        if "cost" in parts:
            smoke, cpu = trained("smoke", 60, Path(workdir)), trained("cpu", 30, Path(workdir))
            tables["hvp_cost"] = pd.DataFrame([hvp_cost(smoke, 8, 10), hvp_cost(cpu, 4, 5)])
            print(f"HVP cost (median; CPU, {args.threads} threads):")
            print(tables["hvp_cost"].to_string(index=False, float_format=lambda v: f"{v:.3f}"))
        settings = []
        if "trained" in parts:
            smoke = trained("smoke", 60, Path(workdir))
            settings.append(("gpt2-smoke trained 60 steps",
                             HessianOperator(smoke.model, smoke.batches("train", 1))))
        if "init" in parts:
            settings.append(("gpt2-tiny 4.8k params at init", tiny_gpt2_at_init()))
        for setting, op in settings:
            table = probes_to_5_percent(op, setting, args.seeds, args.reference_hvps, budgets)
            tables.setdefault("convergence", []).append(table)
            print(f"\nHVPs to reach +-5 % of the reference ({setting}, {args.seeds} seeds):")
            print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
            hutch, hpp = (first_budget(table, setting, e) for e in ("hutchinson", "hutch++"))
            print(f"smallest budget with >= 90 % of seeds within 5 %: Hutchinson {hutch:g}, "
                  f"Hutch++ {hpp:g} (ratio {hpp / hutch:.3f})")
    if args.out:
        if "hvp_cost" in tables:
            atomic_write_text(args.out / "hessian_hvp_cost.csv", tables["hvp_cost"].to_csv(index=False))
        for table in tables.get("convergence", []):
            name = "trained" if "trained" in table.setting.iloc[0] else "init"
            atomic_write_text(args.out / f"hessian_convergence_{name}.csv", table.to_csv(index=False))


if __name__ == "__main__":
    main()
