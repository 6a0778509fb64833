"""Curvature against the peers (issue #34): ours, curvlinops 3.0.1 and hessian-eigenthings
1.0.0a5 on the same briefly trained model and the same batches, timed in interleaved rounds
(median of --repeats):

1. `products`: one product and a block of 32, per operator, with each peer's largest relative
   difference from our product of the same vectors (a peer that computes another matrix shows
   it here);
2. `trace`: Hutch++ and XTrace at equal budgets of products, relative error against a long
   XTrace reference (median and 90th percentile over --seeds);
3. `eigen`: the top-5 eigenvalues, relative error against a long Lanczos reference (ours:
   Lanczos with --lanczos-iters steps, and block Lanczos, 8 vectors per pass, twice the
   products).

    pip install --no-deps -r tests/peers.txt && pip install -e '.[bench]'
    python benchmarks/curvature.py --scales smoke --out benchmarks/results
    python benchmarks/curvature.py --scales cpu --parts products --repeats 2 \
        --operators hessian ggn mc-fisher --out benchmarks/results  # gpt2-cpu: 10-40x a product;
        # the empirical Fisher's block of 32 was killed for memory on a 24 GiB machine

Peers as they ship: curvlinops multiplies a block by vmap over a forward-over-reverse
product; hessian-eigenthings has no block product (a block is k products), redoes the
forward and backward for every Hessian product, has no Monte-Carlo Fisher, and its empirical
Fisher is over per-sequence gradients (a different matrix from the per-token one here and in
curvlinops); its eigenvalues are its own Lanczos, curvlinops' are scipy's `eigsh` on
`to_scipy()`, as its documentation does.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import hessian_eigenthings as he
import numpy as np
import pandas as pd
import torch
from curvlinops import hutchpp_trace, xtrace as curvlinops_xtrace
from scipy.sparse.linalg import LinearOperator, eigsh

from est_analysis.hessian import curvature_operator, hutchpp, top_eigenvalues, xtrace
from est_analysis.hessian.curvlinops_bridge import curvlinops_operator
from est_analysis.hessian.flat_logits import FlatLogits
from est_analysis.io import atomic_write_text
from est_analysis.repro.walltime import device_name
from est_analysis.training import TrainConfig, load_run, train

OPERATORS = ("hessian", "ggn", "mc-fisher", "empirical-fisher")
# where a peer's product is not ours to float rounding, and why (max_rel_diff_vs_ours shows it)
MATRIX_NOTES = {("hessian", "curvlinops"): "wrong LayerNorm-gain rows (forward-over-reverse, torch 2.13)",
                ("mc-fisher", "curvlinops"): "its own label draw (same expectation: the GGN)",
                ("empirical-fisher", "hessian-eigenthings"): "per-sequence gradients, not per-token"}


def eigenthings_operator(name: str, model, batches):
    """hessian-eigenthings' operator for `name`, or None where it has none."""
    flat = FlatLogits(model)
    data = [(x, y.flatten()) for x, y in batches]
    criterion = torch.nn.CrossEntropyLoss()
    if name == "hessian":
        return he.HessianOperator(flat, data, he.supervised_loss(criterion))
    if name == "ggn":
        return he.GGNOperator(flat, data, he.supervised_forward, he.supervised_loss_of_output(criterion))
    if name == "empirical-fisher":  # per sequence: its per-sample loss sees one row of the batch
        return he.EmpiricalFisherOperator(flat, batches, he.supervised_per_sample_loss(criterion))
    return None


def peers(name: str, model, batches) -> dict:
    """Each tool's (one product, block product) for operator `name`."""
    ours = curvature_operator(name, model, batches)
    theirs = curvlinops_operator(name, model, batches)
    tools = {"ours": (ours.matvec, ours.matmat), "curvlinops": (theirs.__matmul__, theirs.__matmul__)}
    eigenthings = eigenthings_operator(name, model, batches)
    if eigenthings is not None:
        tools["hessian-eigenthings"] = (eigenthings.matvec, lambda block: torch.stack(
            [eigenthings.matvec(block[:, i]) for i in range(block.shape[1])], dim=1))
    return tools


def time_products(model, batches, block: int, repeats: int, operators: list[str]) -> list[dict]:
    rows = []
    for name in operators:
        tools = peers(name, model, batches)
        size = sum(p.numel() for p in model.parameters())
        vectors = torch.randn(size, block, generator=torch.Generator().manual_seed(0))
        reference = tools["ours"][1](vectors)
        times = {(tool, way): [] for tool in tools for way in ("one", "block")}
        difference = {}
        for repeat in range(repeats + 1):  # round 0 warms up
            for tool, (one, many) in tools.items():
                for way, run in (("one", lambda: one(vectors[:, 0])), ("block", lambda: many(vectors))):
                    start = time.perf_counter()
                    out = run()
                    if repeat:
                        times[tool, way].append(time.perf_counter() - start)
                    elif way == "block":
                        difference[tool] = ((out - reference).abs().max() / reference.abs().max()).item()
        for tool in tools:
            one, many = (statistics.median(times[tool, w]) for w in ("one", "block"))
            rows.append({"operator": name, "tool": tool, "matrix": MATRIX_NOTES.get((name, tool), "same"),
                         "one_product_ms": one * 1e3,
                         f"block_{block}_ms": many * 1e3, "block_ms_per_product": many * 1e3 / block,
                         "max_rel_diff_vs_ours": difference[tool]})
        print(pd.DataFrame(rows[-len(tools):]).to_string(index=False), flush=True)
    return rows


def estimate_traces(model, batches, budgets: list[int], seeds: int, reference_products: int,
                    operators: list[str]) -> list[dict]:
    """Hutch++ and XTrace per tool at each budget (the GGN, which every tool gets exact, and the
    Hessian)."""
    rows = []
    for name in operators:
        ours = curvature_operator(name, model, batches)
        start = time.perf_counter()
        reference = xtrace(ours, matvecs=reference_products, seed=10_000)
        print(f"{name}: reference XTrace {reference.estimate:.4f} +- {reference.stderr:.4f} "
              f"({reference_products} products, {time.perf_counter() - start:.0f} s)", flush=True)
        theirs = curvlinops_operator(name, model, batches)
        eigenthings = eigenthings_operator(name, model, batches)

        def seeded(f):
            def run(budget, seed):
                torch.manual_seed(seed)
                return float(f(budget, seed))
            return run

        estimators = {
            ("ours", "hutch++"): lambda m, s: hutchpp(ours, matvecs=m, seed=s).estimate,
            ("ours", "xtrace"): lambda m, s: xtrace(ours, matvecs=m, seed=s).estimate,
            ("curvlinops", "hutch++"): seeded(lambda m, s: hutchpp_trace(theirs, m)),
            ("curvlinops", "xtrace"): seeded(lambda m, s: curvlinops_xtrace(theirs, m)),
            ("hessian-eigenthings", "hutch++"):
                lambda m, s: he.hutch_plus_plus(eigenthings, num_matvecs=m, seed=s).estimate}
        for budget in budgets:
            results = {key: ([], []) for key in estimators}
            for seed in range(seeds):  # interleaved: every estimator per seed
                for key, run in estimators.items():
                    start = time.perf_counter()
                    value = run(budget, seed)
                    results[key][1].append(time.perf_counter() - start)
                    results[key][0].append(abs(value - reference.estimate) / abs(reference.estimate))
            for (tool, method), (errors, seconds) in results.items():
                rows.append({"operator": name, "tool": tool, "estimator": method, "products": budget,
                             "median_rel_error": float(np.median(errors)),
                             "p90_rel_error": float(np.quantile(errors, 0.9)),
                             "median_seconds": float(np.median(seconds)), "seeds": seeds,
                             "reference": reference.estimate, "reference_stderr": reference.stderr})
            print(pd.DataFrame(rows[-len(results):]).drop(columns=["reference", "reference_stderr"])
                  .to_string(index=False), flush=True)
    return rows


def top_five(model, batches, iters: int, reference_iters: int, operators: list[str]) -> list[dict]:
    rows = []
    for name in operators:
        ours = curvature_operator(name, model, batches)
        reference = np.array(top_eigenvalues(ours, k=5, iters=reference_iters, seed=1).values)
        theirs = curvlinops_operator(name, model, batches)
        eigenthings = eigenthings_operator(name, model, batches)
        def ours_top(**options):
            result = top_eigenvalues(ours, k=5, **options)
            return result.values, result.matvecs

        runs = {"ours (Lanczos)": lambda: ours_top(iters=iters),
                "ours (block Lanczos, 8 per pass)": lambda: ours_top(iters=2 * iters, block=8),
                "ours (scipy eigsh)": lambda: _counted_eigsh(ours.to_scipy()),
                "curvlinops (scipy eigsh)": lambda: _counted_eigsh(theirs.to_scipy(np.float32)),
                "hessian-eigenthings (Lanczos)": lambda: (sorted(he.lanczos(
                    eigenthings, k=5, max_iter=iters, which="LA", reorthogonalize=True,
                    seed=0).eigenvalues.tolist())[::-1], iters)}
        for tool, run in runs.items():
            start = time.perf_counter()
            values, products = run()
            seconds = time.perf_counter() - start
            rows.append({"operator": name, "tool": tool, "seconds": seconds, "products": products,
                         "max_rel_error_top5": float(np.max(np.abs(np.array(values) - reference) / np.abs(reference))),
                         "top5": " ".join(f"{v:.5g}" for v in values),
                         "reference_top5": " ".join(f"{v:.5g}" for v in reference)})
        print(pd.DataFrame(rows[-len(runs):]).drop(columns=["reference_top5"]).to_string(index=False), flush=True)
    return rows


def _counted_eigsh(operator) -> tuple[list[float], int]:
    """scipy's ARPACK top-5 (largest algebraic) to 1e-4 relative, and the products it used."""
    calls = {"n": 0}

    def matvec(x):
        calls["n"] += 1
        return operator.matvec(x)
    counted = LinearOperator(operator.shape, matvec=matvec, dtype=operator.dtype)
    values = eigsh(counted, k=5, which="LA", tol=1e-4)[0]
    return sorted(values.tolist())[::-1], calls["n"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scales", nargs="+", default=["smoke", "cpu"], help="gpt2-smoke, gpt2-cpu")
    parser.add_argument("--steps", type=int, default=100, help="training steps before measuring")
    parser.add_argument("--batches", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--seq-len", type=int, default=128, help="tokens per sequence (cropped)")
    parser.add_argument("--block", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--budgets", type=int, nargs="+", default=[30, 90])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--reference-products", type=int, default=1000)
    parser.add_argument("--lanczos-iters", type=int, default=50)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--parts", nargs="+", default=["products", "trace", "eigen"])
    parser.add_argument("--operators", nargs="+", default=list(OPERATORS), choices=OPERATORS,
                        help="trace and eigen: the Hessian and GGN among them")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as workdir:
        for scale in args.scales:
            run = load_run(train(TrainConfig(scale=scale, steps=args.steps, method="original",
                                             preset="original"), Path(workdir) / scale, progress=False))
            model = run.model
            batches = [(x[:, :args.seq_len], y[:, :args.seq_len])
                       for x, y in run.batches("train", args.batches, args.batch_size)]
            label = {"model": run.config.model, "batches": "x".join(map(str, (len(batches), *batches[0][0].shape))),
                     "params": sum(p.numel() for p in model.parameters())}
            print(f"== {label}", flush=True)
            parts = {"products": lambda name: time_products(model, batches, args.block, args.repeats, [name]),
                     "trace": lambda name: estimate_traces(model, batches, args.budgets, args.seeds,
                                                           args.reference_products, [name]),
                     "eigen": lambda name: top_five(model, batches, args.lanczos_iters,
                                                    3 * args.lanczos_iters, [name])}
            for part in args.parts:
                for name in args.operators:
                    if part == "products" or name in ("hessian", "ggn"):
                        rows = [{**label, **row} for row in parts[part](name)]
                        save(args.out, part, pd.DataFrame(rows), args.threads)


def save(out: Path | None, part: str, table: pd.DataFrame, threads: int) -> None:
    """Upsert one operator's rows at one model into curvature_<part>.csv as soon as they exist,
    so a long run that is stopped keeps what it measured."""
    if out is None:
        return
    table["device"], table["torch"] = device_name(torch.device("cpu"), threads), torch.__version__
    path = out / f"curvature_{part}.csv"
    if path.exists():
        earlier = pd.read_csv(path)
        same = earlier["model"].isin(table["model"]) & earlier["operator"].isin(table["operator"])
        table = pd.concat([earlier[~same], table], ignore_index=True)
    atomic_write_text(path, table.to_csv(index=False))


if __name__ == "__main__":
    main()
