"""`est landscape`: loss-landscape probes of trained runs (section 5.2's flat minima)."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from est_analysis import plotting
from est_analysis.cli.options import add_batch_options, add_run_argument, positive_int, run_and_batches
from est_analysis.cli.output import add_output_options, emit_table
from est_analysis.domains import NONNEGATIVE, POSITIVE, Domain
from est_analysis.landscape import (batch_loss_fn, epsilon_sharpness, filter_normalized_direction,
                                    interpolate, slice_1d, slice_2d)

EXAMPLES = """examples:
  est landscape slice runs/est --points 21 --plot figures/est_slice
  est landscape slice runs/est --dims 2 --points 11 --span 0.5 --csv plane.csv
  est landscape interpolate runs/original runs/est --plot figures/interp
  est landscape sharpness runs/est --eps 1e-3,5e-4 --json
"""

MIN_POINTS = Domain(int, low=2)  # a curve needs two points


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("landscape", help="1D/2D loss slices, interpolation, epsilon-sharpness",
                       formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EXAMPLES,
                       description="The loss around a trained run on fixed batches: slices along "
                                   "filter-normalized random directions (Li et al. 2018; biases "
                                   "and norms fixed), the straight line between two runs, "
                                   "and epsilon-sharpness (Keskar et al. 2017). Seeded.")
    commands = p.add_subparsers(dest="landscape_command", required=True,
                                metavar="{slice,interpolate,sharpness}")
    sl = commands.add_parser("slice", help="loss along 1 or 2 filter-normalized directions")
    add_run_argument(sl)
    sl.add_argument("--dims", type=int, choices=(1, 2), default=1, help="1 (line) or 2 (plane)")
    sl.add_argument("--span", type=POSITIVE.argtype(), default=1.0,
                    help="coefficients run from -SPAN to SPAN (default 1)")
    sl.set_defaults(func=run_slice)
    it = commands.add_parser("interpolate", help="loss on the line from RUN to OTHER")
    add_run_argument(it, help="the start of the line (alpha 0)")
    it.add_argument("other", type=Path, metavar="OTHER", help="the end of the line (alpha 1): "
                    "a run of the same model config")
    it.add_argument("--margin", type=NONNEGATIVE.argtype(), default=0.25,
                    help="also extrapolate this far beyond both ends (default 0.25)")
    it.set_defaults(func=run_interpolate)
    sh = commands.add_parser("sharpness", help="epsilon-sharpness by projected ascent")
    add_run_argument(sh)
    sh.add_argument("--eps", default="1e-3,5e-4",
                    help="comma-separated relative box sizes (default %(default)s, Keskar's)")
    sh.add_argument("--steps", type=positive_int, default=10, help="ascent steps (default 10)")
    sh.add_argument("--step-size", type=POSITIVE.argtype(), default=0.25,
                    help="each step's move, as a fraction of the box (default 0.25)")
    sh.set_defaults(func=run_sharpness)
    for q in (sl, it):
        q.add_argument("--points", type=MIN_POINTS.argtype(), default=21, help="points per axis (default 21)")
        q.add_argument("--plot", type=Path, help="write the figure to this path (PNG and PDF)")
    for q in (sl, it, sh):
        add_batch_options(q, batches=1)
        add_output_options(q)


def _finish(args: argparse.Namespace, table: pd.DataFrame, figure=None, record: str | None = None,
            **summary) -> None:
    if figure is not None:
        plotting.save(figure, args.plot)
    emit_table(args, table, summary, record=record)


def _grid(points: int, low: float, high: float) -> np.ndarray:
    return np.linspace(low, high, points)  # --points >= 2: MIN_POINTS


def run_slice(args: argparse.Namespace) -> None:
    alphas = _grid(args.points, -args.span, args.span)
    run, batches = run_and_batches(args)
    loss, progress = batch_loss_fn(batches), not args.no_progress
    first = filter_normalized_direction(run.model, args.seed)
    figure = None
    if args.dims == 1:
        table = slice_1d(run.model, loss, first, alphas, progress)
        if args.plot:
            figure = plotting.landscape_1d({f"step {run.step}" if run.step is not None else "trained elsewhere": table},
                                           "alpha (filter-normalized direction)")
    else:
        second = filter_normalized_direction(run.model, args.seed + 1)
        table = slice_2d(run.model, loss, first, second, alphas, alphas, progress)
        if args.plot:
            figure = plotting.landscape_2d(table)
    _finish(args, table, figure, f"slice_{args.dims}d", run=str(args.run), step=run.step,
            seed=args.seed)


def run_interpolate(args: argparse.Namespace) -> None:
    # both runs themselves (alpha 0 and 1) are always on the line, whatever --points gives
    alphas = np.union1d(_grid(args.points, -args.margin, 1 + args.margin), [0.0, 1.0])
    run, batches = run_and_batches(args)
    other, _ = run_and_batches(args, args.other)
    table = interpolate(run.model, other.model, batch_loss_fn(batches), alphas,
                        not args.no_progress)
    figure = None
    if args.plot:
        figure = plotting.landscape_1d({f"{args.run} -> {args.other}": table},
                                       "alpha (0: RUN, 1: OTHER)")
    _finish(args, table, figure, "interpolation", start=str(args.run), end=str(args.other))


def run_sharpness(args: argparse.Namespace) -> None:
    try:
        epsilons = [float(e) for e in args.eps.split(",")]
    except ValueError:
        raise ValueError(f"--eps {args.eps!r}: expected numbers separated by commas") from None
    run, batches = run_and_batches(args)
    loss = batch_loss_fn(batches)
    rows = [epsilon_sharpness(run.model, loss, eps, args.steps, args.step_size,
                              not args.no_progress).to_dict() for eps in epsilons]
    _finish(args, pd.DataFrame(rows), run=str(args.run), step=run.step)
