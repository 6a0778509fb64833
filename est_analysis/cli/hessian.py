"""`est hessian`: trace, top eigenvalues and spectral density of a trained run's Hessian, GGN,
Monte-Carlo Fisher or empirical Fisher (`--operator`)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd
from safetensors.torch import save as safetensors_save

from est_analysis import plotting
from est_analysis.domains import POSITIVE
from est_analysis.cli.options import add_batch_options, add_run_argument, positive_int, run_and_batches
from est_analysis.hessian import (OPERATORS, CurvatureOperator, curvature_operator, hutchinson, hutchpp,
                                  spectral_density, top_eigenvalues)
from est_analysis.hessian.curvatures import SYMBOLS
from est_analysis.hessian.diagonal import hutchinson_diagonal, xdiag
from est_analysis.hessian.trace import xtrace
from est_analysis.hessian.pyhessian_bridge import pyhessian_trace
from est_analysis.io import atomic_write
from est_analysis.stats import t_interval
from est_analysis.training import TrainedRun

EXAMPLES = """examples:
  est hessian trace runs/smoke --json
  est hessian trace runs/smoke/checkpoint.pt --tol 0.05 --by-block
  est hessian trace runs/smoke --estimator pyhessian --batches 1 --probes 100
  est hessian trace runs/smoke --operator ggn --estimator xtrace
  est hessian eigen runs/smoke --top 5
  est hessian eigen runs/smoke --top 5 --operator ggn --block 8 --iters 96
  est hessian density runs/smoke --plot density.png
  est hessian diag runs/smoke --operator ggn --estimator xdiag --save ggn_diag.safetensors
"""
ESTIMATORS = ("hutchpp", "hutchinson", "xtrace", "pyhessian")
DIAGONAL_ESTIMATORS = {"hutchinson": lambda op, probes, seed: hutchinson_diagonal(op, probes, seed),
                       "xdiag": lambda op, probes, seed: xdiag(op, probes, seed)}
ESTIMATOR_FUNCTIONS = {"hutchpp": hutchpp, "hutchinson": hutchinson, "xtrace": xtrace}


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("hessian", help="trace / eigenvalues / density of a trained run's Hessian, GGN or Fisher",
                       formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EXAMPLES,
                       description="Curvature of the training loss of a trained run (full "
                                   "model, eval mode), as in the paper's Table 5 and section 5.2.")
    commands = p.add_subparsers(dest="hessian_command", required=True, metavar="{trace,eigen,density,diag}")
    trace = commands.add_parser("trace", help="the trace with a 95 %% CI (Hutch++ by default)")
    trace.add_argument("--estimator", choices=ESTIMATORS, default="hutchpp",
                       help="trace estimator (default %(default)s)")
    trace.add_argument("--probes", type=positive_int, default=99,
                       help="operator-vector products to spend (Hutch++: a third sketch, a third "
                            "exact part, a third probes; XTrace: half probes, half basis) "
                            "(default %(default)s)")
    trace.add_argument("--tol", type=POSITIVE.argtype(), help="instead of --probes: stop when the CI half-width "
                                                 "is below TOL x |trace|")
    trace.add_argument("--by-block", action="store_true",
                       help="also trace embeddings, each layer's attention and MLP, norms, LM head")
    trace.add_argument("--over-batches", action="store_true",
                       help="also estimate the trace of each batch alone and give an interval over "
                            "the batches (the default CI covers probe noise on these batches only)")
    trace.set_defaults(func=run_trace)
    eigen = commands.add_parser("eigen", help="top eigenvalues by Lanczos")
    eigen.add_argument("--top", type=positive_int, default=1, help="how many (default %(default)s)")
    eigen.add_argument("--iters", type=positive_int,
                       help="products: Lanczos steps, or with --block the block Krylov space's size "
                            "(default max(3 top + 30, 50))")
    eigen.add_argument("--block", type=positive_int, default=1,
                       help="block Lanczos with this many vectors per pass over the batches "
                            "(default %(default)s: single-vector Lanczos)")
    eigen.set_defaults(func=run_eigen)
    density = commands.add_parser("density", help="spectral density by stochastic Lanczos quadrature")
    density.add_argument("--iters", type=positive_int, default=80, help="Lanczos steps per run")
    density.add_argument("--vectors", type=positive_int, default=4,
                         help="independent starting vectors (default %(default)s)")
    density.add_argument("--plot", type=Path, help="write the smoothed density to this path as PNG and PDF")
    density.set_defaults(func=run_density)
    diag = commands.add_parser("diag", help="the diagonal, summed per block and per parameter tensor")
    diag.add_argument("--estimator", choices=tuple(DIAGONAL_ESTIMATORS), default="hutchinson",
                      help="hutchinson (independent probes, a calibrated interval) or xdiag (far "
                           "smaller error on decaying spectra, a heuristic interval) (default %(default)s)")
    diag.add_argument("--probes", type=positive_int, default=100,
                      help="operator-vector products to spend (default %(default)s)")
    diag.add_argument("--save", type=Path, help="write the diagonal and its standard error per "
                                                 "parameter tensor to this .safetensors file")
    diag.set_defaults(func=run_diag)
    for q in (trace, eigen, density, diag):
        add_run_argument(q)
        add_batch_options(q)
        q.add_argument("--operator", choices=sorted(OPERATORS), default="hessian",
                       help="which curvature: the Hessian (default), the exact generalised "
                            "Gauss-Newton matrix, the Monte-Carlo GGN (type-2 Fisher) or the "
                            "empirical Fisher (docs/curvature.md)")
        q.add_argument("--mc-samples", type=positive_int, default=1,
                       help="labels drawn per token for --operator mc-fisher (default 1)")
        q.add_argument("--json", action="store_true", help="print JSON")


def _operator(args: argparse.Namespace) -> tuple[TrainedRun, CurvatureOperator]:
    run, batches = run_and_batches(args)
    return run, curvature_operator(args.operator, run.model, batches, args.mc_samples, args.seed)


def _budget(args: argparse.Namespace) -> dict:
    return {"probes": args.probes} if args.estimator == "hutchinson" else {"matvecs": args.probes}


def run_trace(args: argparse.Namespace) -> None:
    symbol = SYMBOLS[args.operator]
    if args.estimator == "pyhessian":
        if args.batches != 1 or args.tol or args.by_block or args.operator != "hessian":
            raise ValueError("--estimator pyhessian takes one batch (--batches 1), a fixed "
                             "--probes, no --by-block and --operator hessian: pyhessian has no "
                             "fixed multi-batch probes, CI stopping rule, per-block traces or "
                             "other operators")
        run, (batch,) = run_and_batches(args)
        result = pyhessian_trace(run.model, batch, args.probes, args.seed)
    elif args.estimator == "xtrace" and (args.tol or args.by_block):
        raise ValueError("--estimator xtrace takes a fixed --probes budget and no --by-block; "
                         "use --estimator hutchpp for a --tol stopping rule or per-block traces")
    else:
        run, op = _operator(args)
        options = {} if args.estimator == "xtrace" else {
            "tol": args.tol, "by_block": args.by_block, "progress": not args.no_progress}
        result = ESTIMATOR_FUNCTIONS[args.estimator](op, seed=args.seed, **options, **_budget(args))
    summary = result.to_dict() | {"run": str(args.run), "step": run.step, "data": args.data,
                                  "batches": args.batches, "operator": args.operator}
    if args.over_batches:
        summary |= _over_batches(args, run)
    if args.json:
        print(json.dumps(summary))
        return
    print(f"{run.describe(args.run, args.data)}; {args.batches} batch(es)")
    print(f"Tr({symbol}) = {_sig(result.estimate, result.stderr)} (standard error {result.stderr:.2g}; "
          f"95 % CI {_sig(result.ci_low, result.stderr)} .. {_sig(result.ci_high, result.stderr)}); "
          f"per parameter {result.per_param:.4g} over {result.n_params} "
          f"parameters; {args.estimator}, {result.matvecs} products, {result.wall_s:.1f} s")
    print(f"The CI covers the estimator's probe noise on these {args.batches} fixed batch(es) of "
          f"{args.data} data only; other batches give another {args.operator} (--over-batches)"
          + ("; xtrace's interval is the paper's heuristic (docs/curvature.md)." if args.estimator == "xtrace" else "."))
    if args.over_batches:
        print(f"Over batches: each of the {args.batches} batches alone gives "
              f"{', '.join(f'{t:.4g}' for t in summary['per_batch'])}; mean {summary['batch_mean']:.6g} "
              f"(95 % t-interval over batches {summary['batch_ci95'][0]:.6g} .. "
              f"{summary['batch_ci95'][1]:.6g})")
    if result.blocks:
        blocks = pd.DataFrame([{"block": k, "trace": e, "stderr": s} for k, (e, s) in result.blocks.items()])
        blocks["share"] = blocks["trace"] / result.estimate
        print(blocks.to_string(index=False, float_format=lambda v: f"{v:.4g}"))


def _sig(value: float, stderr: float) -> str:
    """`value` to the decimal of the standard error's second significant digit (all of them
    when the error is 0), so that the estimate and its interval are rounded alike."""
    if not np.isfinite(stderr) or stderr <= 0:
        return f"{value:.6g}"
    decimals = max(0, 1 - int(np.floor(np.log10(stderr))))
    return f"{value:.{decimals}f}"


def _over_batches(args: argparse.Namespace, run: TrainedRun) -> dict:
    """The trace of each batch's loss alone, and a t-interval over the batches: what another draw
    of batches would give, which the probe CI does not cover. Needs two batches or more."""
    if args.batches < 2:
        raise ValueError("--over-batches needs --batches 2 or more (an interval over one batch "
                         "does not exist)")
    batches = run.batches(args.data, args.batches, args.batch_size, args.seq_len)
    estimator = ESTIMATOR_FUNCTIONS.get(args.estimator, hutchpp)
    per_batch = [estimator(curvature_operator(args.operator, run.model, [batch], args.mc_samples, args.seed),
                           seed=args.seed, **_budget(args)).estimate for batch in batches]
    interval = t_interval(per_batch)
    return {"per_batch": per_batch, "batch_mean": interval.mean,
            "batch_ci95": [interval.low, interval.high]}


def run_eigen(args: argparse.Namespace) -> None:
    run, op = _operator(args)
    result = top_eigenvalues(op, args.top, args.iters, args.seed, progress=not args.no_progress,
                             block=args.block)
    summary = {"run": str(args.run), "step": run.step, "operator": args.operator, "top": result.values,
               "residual_bounds": result.residuals, "smallest_ritz": result.smallest,
               "block": args.block, "hvps": result.matvecs, "wall_s": result.wall_s}
    if args.json:
        print(json.dumps(summary))
        return
    for i, (value, residual) in enumerate(zip(result.values, result.residuals), 1):
        print(f"lambda_{i} = {value:.6g}  (residual ||H y - lambda y|| {residual:.2g})")
    print(f"most negative Ritz value {result.smallest:.6g}; {result.matvecs} products, {result.wall_s:.1f} s")


def run_density(args: argparse.Namespace) -> None:
    run, op = _operator(args)
    density = spectral_density(op, args.iters, args.vectors, args.seed, progress=not args.no_progress)
    if args.plot:
        figure = plotting.spectral_density(density)
        figure.axes[0].set_title(run.describe(args.run, args.data).split(";")[0])
        plotting.save(figure, args.plot)
    summary = {"run": str(args.run), "step": run.step, "operator": args.operator,
               "nodes": density.nodes.tolist(), "weights": density.weights.tolist(),
               "slq_trace": density.trace(op.size), "hvps": density.matvecs, "wall_s": density.wall_s}
    if args.json:
        print(json.dumps(summary))
        return
    print(f"eigenvalue range {density.nodes.min():.4g} .. {density.nodes.max():.4g}; "
          f"SLQ trace {summary['slq_trace']:.6g}; mass below 0: "
          f"{float(np.sum(density.weights * (density.nodes < 0)) / density.nodes.shape[0]):.3f}; "
          f"{density.matvecs} products, {density.wall_s:.1f} s" + (f"; plot {args.plot}" if args.plot else ""))


def run_diag(args: argparse.Namespace) -> None:
    if args.save and args.save.suffix != ".safetensors":
        raise ValueError(f"--save {args.save}: give a path ending in .safetensors")
    run, op = _operator(args)
    result = DIAGONAL_ESTIMATORS[args.estimator](op, args.probes, args.seed)
    blocks, tensors = result.summary(op.blocks), result.summary(op.tensors)
    if args.save:
        diagonal, stderr = result.diagonal.cpu(), result.stderr.cpu()
        named = {f"{kind}.{name}": values[where].reshape(p.shape).contiguous()
                 for kind, values in (("diag", diagonal), ("stderr", stderr))
                 for (name, where), p in zip(op.tensors.items(), op.params)}
        atomic_write(args.save, lambda f: f.write(safetensors_save(named)))
    summary = {"run": str(args.run), "step": run.step, "operator": args.operator,
               "estimator": args.estimator, "products": result.matvecs, "wall_s": result.wall_s,
               "blocks": blocks.to_dict(orient="records"), "tensors": tensors.to_dict(orient="records")}
    if args.json:
        print(json.dumps(summary))
        return
    print(f"{run.describe(args.run, args.data)}; {args.batches} batch(es); diag({SYMBOLS[args.operator]}) "
          f"by {args.estimator}, {result.matvecs} products, {result.wall_s:.1f} s"
          + ("; its intervals are a heuristic (docs/curvature.md)" if args.estimator == "xdiag" else ""))
    for table in (blocks, tensors):
        print(table.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    if args.save:
        print(f"diagonal and standard errors per tensor: {args.save}")
