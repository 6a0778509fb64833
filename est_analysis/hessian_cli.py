"""`est hessian`: Hessian trace, top eigenvalues and spectral density of a trained checkpoint."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd

from est_analysis.checkpoint_options import add_checkpoint_options, load_checkpoint_batches

HESSIAN_EXAMPLES = """examples:
  est hessian trace --checkpoint runs/smoke --json
  est hessian trace --checkpoint runs/smoke/checkpoint.pt --tol 0.05 --by-block
  est hessian trace --checkpoint runs/smoke --method pyhessian --batches 1 --probes 100
  est hessian eigen --checkpoint runs/smoke --top 5
  est hessian density --checkpoint runs/smoke --plot density.png
"""


def add_hessian_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("hessian", help="Hessian trace / eigenvalues / density of a checkpoint",
                       formatter_class=argparse.RawDescriptionHelpFormatter, epilog=HESSIAN_EXAMPLES,
                       description="Curvature of the training loss of a trained checkpoint (full "
                                   "model, eval mode), as in the paper's Table 5 and section 5.2.")
    commands = p.add_subparsers(dest="hessian_command", required=True, metavar="{trace,eigen,density}")
    trace = commands.add_parser("trace", help="Tr(H) with a 95 %% CI (Hutch++ by default)")
    trace.add_argument("--method", choices=("hutchpp", "hutchinson", "pyhessian"), default="hutchpp")
    trace.add_argument("--probes", type=int, default=99,
                       help="Hessian-vector products to spend (Hutch++: a third sketch, a third "
                            "exact part, a third probes) (default %(default)s)")
    trace.add_argument("--tol", type=float, help="instead of --probes: stop when the CI half-width "
                                                 "is below TOL x |trace|")
    trace.add_argument("--by-block", action="store_true",
                       help="also trace embeddings, each layer's attention and MLP, norms, LM head")
    trace.set_defaults(func=cmd_trace)
    eigen = commands.add_parser("eigen", help="top eigenvalues by Lanczos")
    eigen.add_argument("--top", type=int, default=1, help="how many (default %(default)s)")
    eigen.add_argument("--iters", type=int, help="Lanczos steps (default max(3 top + 30, 50))")
    eigen.set_defaults(func=cmd_eigen)
    density = commands.add_parser("density", help="spectral density by stochastic Lanczos quadrature")
    density.add_argument("--iters", type=int, default=80, help="Lanczos steps per run")
    density.add_argument("--runs", type=int, default=4, help="independent starting vectors")
    density.add_argument("--plot", type=Path, help="write the smoothed density to this path as PNG and PDF")
    density.set_defaults(func=cmd_density)
    for q in (trace, eigen, density):
        add_checkpoint_options(q)

def _operator(args: argparse.Namespace):
    from est_analysis.hessian import HessianOperator

    run, batches = load_checkpoint_batches(args)
    return run, batches, HessianOperator(run.model, batches)


def cmd_trace(args: argparse.Namespace) -> None:
    from est_analysis.hessian import hutchinson, hutchpp
    from est_analysis.hessian.pyhessian_bridge import pyhessian_trace

    if args.method == "pyhessian":
        if args.batches != 1 or args.tol or args.by_block:
            raise ValueError("--method pyhessian takes one batch (--batches 1), a fixed --probes, "
                             "and no --by-block: pyhessian has no fixed multi-batch probes, CI "
                             "stopping rule or per-block traces")
        run, (batch,) = load_checkpoint_batches(args)
        result = pyhessian_trace(run.model, batch, args.probes, args.seed)
    else:
        run, _, op = _operator(args)
        estimator = hutchpp if args.method == "hutchpp" else hutchinson
        budget = {"matvecs": args.probes} if args.method == "hutchpp" else {"probes": args.probes}
        result = estimator(op, tol=args.tol, seed=args.seed, by_block=args.by_block,
                           progress=not args.no_progress, **budget)
    summary = result.to_dict() | {"checkpoint": str(args.checkpoint), "step": run.step,
                                  "data": args.data, "batches": args.batches}
    if args.json:
        print(json.dumps(summary))
        return
    print(f"{args.checkpoint} (step {run.step}), {args.data} data, {args.batches} batch(es)")
    print(f"Tr(H) = {result.estimate:.6g} +- {result.stderr:.3g} (95 % CI {result.ci_low:.6g} .. "
          f"{result.ci_high:.6g}); per parameter {result.per_param:.4g} over {result.n_params} "
          f"parameters; {args.method}, {result.matvecs} HVPs, {result.wall_s:.1f} s")
    if result.blocks:
        blocks = pd.DataFrame([{"block": k, "trace": e, "stderr": s} for k, (e, s) in result.blocks.items()])
        blocks["share"] = blocks["trace"] / result.estimate
        print(blocks.to_string(index=False, float_format=lambda v: f"{v:.4g}"))


def cmd_eigen(args: argparse.Namespace) -> None:
    from est_analysis.hessian import top_eigenvalues

    if args.top < 1:
        raise ValueError(f"--top {args.top} must be at least 1")
    run, _, op = _operator(args)
    result = top_eigenvalues(op, args.top, args.iters, args.seed, progress=not args.no_progress)
    summary = {"checkpoint": str(args.checkpoint), "step": run.step, "top": result.values,
               "residual_bounds": result.residuals, "smallest_ritz": result.smallest,
               "hvps": result.matvecs, "wall_s": result.wall_s}
    if args.json:
        print(json.dumps(summary))
        return
    for i, (value, residual) in enumerate(zip(result.values, result.residuals), 1):
        print(f"lambda_{i} = {value:.6g}  (Lanczos residual bound {residual:.2g})")
    print(f"most negative Ritz value {result.smallest:.6g}; {result.matvecs} HVPs, {result.wall_s:.1f} s")


def cmd_density(args: argparse.Namespace) -> None:
    from est_analysis.hessian import spectral_density

    run, _, op = _operator(args)
    density = spectral_density(op, args.iters, args.runs, args.seed, progress=not args.no_progress)
    if args.plot:
        from est_analysis.plotting import save, spectral_density

        figure = spectral_density(density)
        figure.axes[0].set_title(f"{args.checkpoint} (step {run.step})")
        save(figure, args.plot)
    summary = {"checkpoint": str(args.checkpoint), "step": run.step,
               "nodes": density.nodes.tolist(), "weights": density.weights.tolist(),
               "slq_trace": density.trace(op.size), "hvps": density.matvecs, "wall_s": density.wall_s}
    if args.json:
        print(json.dumps(summary))
        return
    print(f"eigenvalue range {density.nodes.min():.4g} .. {density.nodes.max():.4g}; "
          f"SLQ trace {summary['slq_trace']:.6g}; mass below 0: "
          f"{float(np.sum(density.weights * (density.nodes < 0)) / density.nodes.shape[0]):.3f}; "
          f"{density.matvecs} HVPs, {density.wall_s:.1f} s" + (f"; plot {args.plot}" if args.plot else ""))
