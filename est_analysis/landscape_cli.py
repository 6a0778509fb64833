"""`est landscape`: loss-landscape probes of trained checkpoints (section 5.2's flat minima)."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from est_analysis.checkpoint_options import add_checkpoint_options, load_checkpoint_batches
from est_analysis.table_output import emit_table

LANDSCAPE_EXAMPLES = """examples:
  est landscape slice --checkpoint runs/est --points 21 --plot figures/est_slice
  est landscape slice --checkpoint runs/est --dims 2 --points 11 --span 0.5 --csv plane.csv
  est landscape interpolate --checkpoint runs/original --to runs/est --plot figures/interp
  est landscape sharpness --checkpoint runs/est --eps 1e-3,5e-4 --json
"""


def add_landscape_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("landscape", help="1D/2D loss slices, interpolation, epsilon-sharpness",
                       formatter_class=argparse.RawDescriptionHelpFormatter, epilog=LANDSCAPE_EXAMPLES,
                       description="The loss around a checkpoint on fixed batches: slices along "
                                   "filter-normalized random directions (Li et al. 2018; biases "
                                   "and norms fixed), the straight line between two checkpoints, "
                                   "and epsilon-sharpness (Keskar et al. 2017). Seeded.")
    commands = p.add_subparsers(dest="landscape_command", required=True,
                                metavar="{slice,interpolate,sharpness}")
    sl = commands.add_parser("slice", help="loss along 1 or 2 filter-normalized directions")
    sl.add_argument("--dims", type=int, choices=(1, 2), default=1, help="1 (line) or 2 (plane)")
    sl.add_argument("--span", type=float, default=1.0,
                    help="coefficients run from -SPAN to SPAN (default 1)")
    sl.set_defaults(func=cmd_slice)
    it = commands.add_parser("interpolate", help="loss on the line from --checkpoint to --to")
    it.add_argument("--to", type=Path, required=True, help="second run directory or checkpoint")
    it.add_argument("--margin", type=float, default=0.25,
                    help="also extrapolate this far beyond both ends (default 0.25)")
    it.set_defaults(func=cmd_interpolate)
    sh = commands.add_parser("sharpness", help="epsilon-sharpness by projected ascent")
    sh.add_argument("--eps", default="1e-3,5e-4",
                    help="comma-separated relative box sizes (default %(default)s, Keskar's)")
    sh.add_argument("--steps", type=int, default=10, help="ascent steps (default 10)")
    sh.add_argument("--step-size", type=float, default=0.25,
                    help="each step's move, as a fraction of the box (default 0.25)")
    sh.set_defaults(func=cmd_sharpness)
    for q in (sl, it):
        q.add_argument("--points", type=int, default=21, help="points per axis (default 21)")
        q.add_argument("--plot", type=Path, help="write the figure to this path (PNG and PDF)")
    for q in (sl, it, sh):
        add_checkpoint_options(q, batches=1)
        q.add_argument("--csv", type=Path, help="also write the table to this CSV")


def _finish(args: argparse.Namespace, table: pd.DataFrame, figure=None, **summary) -> None:
    if figure is not None:
        from est_analysis.plotting import save

        save(figure, args.plot)
    emit_table(args, table, summary)

def _grid(points: int, low: float, high: float) -> np.ndarray:
    if points < 2:
        raise ValueError(f"--points {points}: a curve needs at least 2 points")
    return np.linspace(low, high, points)


def cmd_slice(args: argparse.Namespace) -> None:
    from est_analysis.landscape import (batch_loss_fn, filter_normalized_direction, slice_1d,
                                        slice_2d)

    if not args.span > 0:
        raise ValueError(f"--span {args.span} must be positive")
    alphas = _grid(args.points, -args.span, args.span)
    run, batches = load_checkpoint_batches(args)
    loss, progress = batch_loss_fn(batches), not args.no_progress
    first = filter_normalized_direction(run.model, args.seed)
    figure = None
    if args.dims == 1:
        table = slice_1d(run.model, loss, first, alphas, progress)
        if args.plot:
            from est_analysis.plotting import landscape_1d

            figure = landscape_1d({f"step {run.step}": table}, "alpha (filter-normalized direction)")
    else:
        second = filter_normalized_direction(run.model, args.seed + 1)
        table = slice_2d(run.model, loss, first, second, alphas, alphas, progress)
        if args.plot:
            from est_analysis.plotting import landscape_2d

            figure = landscape_2d(table)
    _finish(args, table, figure, checkpoint=str(args.checkpoint), step=run.step, seed=args.seed)


def cmd_interpolate(args: argparse.Namespace) -> None:
    from est_analysis.landscape import batch_loss_fn, interpolate

    if args.margin < 0:
        raise ValueError(f"--margin {args.margin} must be >= 0")
    alphas = _grid(args.points, -args.margin, 1 + args.margin)
    run, batches = load_checkpoint_batches(args)
    other, _ = load_checkpoint_batches(args, args.to)
    table = interpolate(run.model, other.model, batch_loss_fn(batches), alphas,
                        not args.no_progress)
    figure = None
    if args.plot:
        from est_analysis.plotting import landscape_1d

        figure = landscape_1d({f"{args.checkpoint} -> {args.to}": table},
                              "alpha (0: --checkpoint, 1: --to)")
    _finish(args, table, figure, start=str(args.checkpoint), end=str(args.to))


def cmd_sharpness(args: argparse.Namespace) -> None:
    from est_analysis.landscape import batch_loss_fn, epsilon_sharpness

    try:
        epsilons = [float(e) for e in args.eps.split(",")]
    except ValueError:
        raise ValueError(f"--eps {args.eps!r}: expected numbers separated by commas") from None
    run, batches = load_checkpoint_batches(args)
    loss = batch_loss_fn(batches)
    rows = [epsilon_sharpness(run.model, loss, eps, args.steps, args.step_size,
                              not args.no_progress).to_dict() for eps in epsilons]
    _finish(args, pd.DataFrame(rows), checkpoint=str(args.checkpoint), step=run.step)
