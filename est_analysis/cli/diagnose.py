"""`est diagnose`: section 5's explanations of EST as measurements on trained runs."""

from __future__ import annotations

import argparse

from est_analysis.domains import NONNEGATIVE_INT
from est_analysis.cli.options import add_run_argument, positive_int
from est_analysis.cli.output import add_output_options, emit_table
from est_analysis.diagnostics import (curvature_trajectory, loss_slopes, regularizer_table,
                                      regularizer_trajectory, slope_ratio, slopes_at_equal_loss,
                                      transition_table)
from est_analysis.hessian import OPERATORS
from est_analysis.schedule import parse_rates
from est_analysis.training import RunDir, load_run
from est_analysis.training.metrics import X_AXES

EXAMPLES = """examples:
  est diagnose regularizer runs/est                          # R at each stage's rates
  est diagnose regularizer runs/est/snapshots/step_0000028.pt --rates .5,.5,1
  est diagnose regularizer runs/est --trajectory --no-second-order --csv r.csv
  est diagnose transitions runs/est --json
  est diagnose dynamics runs/original runs/est --stage 3 --x flops
  est diagnose curvature runs/est --matvecs 30 --by-block
"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("diagnose", help="implicit regularizer, stage transitions, dynamics, curvature",
                       formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EXAMPLES,
                       description="Section 5 of the paper as measurements: the implicit "
                                   "regularizer R = E[L_subnet] - L_full of subnet sampling and "
                                   "its second-order prediction, the loss drop at stage "
                                   "transitions, the slope of the loss at equal loss, and the "
                                   "Hessian trace along a run. Runs keep snapshots at every stage "
                                   "boundary; train with --snapshot-every N for trajectories.")
    commands = p.add_subparsers(dest="diagnose_command", required=True,
                                metavar="{regularizer,transitions,dynamics,curvature}")

    reg = commands.add_parser("regularizer", help="R by Monte Carlo (with a CI) and its "
                              "second-order prediction per module kind")
    add_run_argument(reg)
    reg.add_argument("--rates", help="p_H,p_M,p_L triples separated by '/' (default: the run's "
                                     "stage rates that sample something)")
    reg.add_argument("--samples", type=positive_int, default=32,
                     help="subnets per estimate (default %(default)s)")
    reg.add_argument("--probes", type=positive_int, default=16,
                     help="random probes of the second-order prediction (default %(default)s)")
    reg.add_argument("--no-second-order", action="store_true", help="Monte Carlo only")
    reg.add_argument("--trajectory", action="store_true",
                     help="at every snapshot of the run (RUN must be a run directory)")
    reg.set_defaults(func=run_regularizer)

    tr = commands.add_parser("transitions", help="loss before/after each stage boundary and "
                             "Delta R between the two rate settings")
    add_run_argument(tr, help="EST run directory")
    tr.add_argument("--samples", type=positive_int, default=16,
                    help="subnets per R estimate (default %(default)s)")
    tr.add_argument("--window", type=positive_int, default=10,
                    help="training steps averaged on each side of a boundary (default %(default)s)")
    tr.set_defaults(func=run_transitions)

    dyn = commands.add_parser("dynamics", help="slope -dL/dx at equal loss, runs against the first")
    add_run_argument(dyn, nargs="+", help="run directories; the first is the reference")
    dyn.add_argument("--labels", help="comma-separated names (default: directory names)")
    dyn.add_argument("--x", choices=tuple(X_AXES), default="step",
                     help="slope per step, token, FLOP or second (default %(default)s)")
    dyn.add_argument("--window", type=positive_int, default=20,
                     help="steps per fitted window (default %(default)s)")
    dyn.add_argument("--bins", type=positive_int, default=6,
                     help="loss bins over the shared range (default %(default)s)")
    dyn.add_argument("--stage", type=positive_int, help="use only this stage of multi-stage runs "
                     "(single-stage runs are used whole), e.g. 3 for EST's final stage")
    dyn.set_defaults(func=run_dynamics)

    cur = commands.add_parser("curvature", help="Hessian (or GGN, Fisher) trace (Hutch++) of every snapshot")
    add_run_argument(cur, help="run directory")
    cur.add_argument("--matvecs", type=positive_int, default=30,
                     help="Hessian-vector products per snapshot (default %(default)s)")
    cur.add_argument("--by-block", action="store_true", help="also trace per block")
    cur.add_argument("--operator", choices=sorted(OPERATORS), default="hessian",
                     help="which curvature (default %(default)s; docs/curvature.md)")
    cur.add_argument("--steps", help="comma-separated snapshot steps (default: every snapshot)")
    cur.set_defaults(func=run_curvature)

    for q, batches in ((reg, 4), (tr, 4), (cur, 2)):
        q.add_argument("--batches", type=positive_int, default=batches,
                       help="fixed validation batches (default %(default)s)")
        q.add_argument("--seed", type=NONNEGATIVE_INT.argtype(), default=0, help="seed of the draws (default 0)")
        q.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    for q in (reg, tr, dyn, cur):
        add_output_options(q)


def run_regularizer(args: argparse.Namespace) -> None:
    if args.rates:
        rates = parse_rates(args.rates)
    elif args.run.is_dir():
        rates = [r for r in RunDir(args.run).stage_rates() if not r.is_full]
        if not rates:
            raise ValueError(f"{args.run} trains the full model in every stage; "
                             "give --rates to measure R at other rates")
    else:
        raise ValueError("--rates is needed with a checkpoint file (the stage rates come from "
                         "a run directory's metrics.csv)")
    second_order, progress = not args.no_second_order, not args.no_progress
    if args.trajectory:
        if not args.run.is_dir():
            raise ValueError(f"--trajectory needs a run directory, not {args.run}")
        table = regularizer_trajectory(args.run, rates, args.samples, args.batches,
                                       args.seed, second_order, args.probes, progress)
        emit_table(args, table, record="regularizer")
        return
    run = load_run(args.run)
    table = regularizer_table(run.model, run.batches("val", args.batches), rates, args.samples,
                              args.probes, second_order, args.seed, progress)
    emit_table(args, table.assign(step=run.step), record="regularizer_final")


def run_transitions(args: argparse.Namespace) -> None:
    emit_table(args, transition_table(args.run, args.samples, args.window, args.batches, args.seed,
                                      progress=not args.no_progress), record="transitions")


def run_dynamics(args: argparse.Namespace) -> None:
    labels = args.labels.split(",") if args.labels else [p.name for p in args.runs]
    if len(args.runs) < 2 or len(labels) != len(args.runs) or len(set(labels)) != len(labels):
        raise ValueError(f"runs {[str(p) for p in args.runs]} / --labels {args.labels!r}: give at "
                         "least two runs and one distinct label per run")
    slopes = {}
    for label, path in zip(labels, args.runs):
        metrics = RunDir(path).read_metrics()
        stages = int(metrics["stage"].max())
        stage = args.stage if args.stage and stages > 1 else None
        if stage is not None and stage > stages:
            raise ValueError(f"--stage {stage}: run {path} has {stages} stages; give a stage "
                             f"from 1 to {stages}")
        slopes[label] = loss_slopes(metrics, args.window, args.x, stage)
        if slopes[label].empty:
            raise ValueError(f"run {path} has fewer than --window {args.window} steps"
                             + (f" in stage {stage}" if stage else "") + "; use a smaller --window")
    table = slopes_at_equal_loss(slopes, args.bins)
    ratios = {f"slope_ratio {label} / {labels[0]}": slope_ratio(table, label, labels[0])
              for label in labels[1:]}
    emit_table(args, table, ratios)


def run_curvature(args: argparse.Namespace) -> None:
    try:
        steps = [int(s) for s in args.steps.split(",")] if args.steps else None
    except ValueError:
        raise ValueError(f"--steps {args.steps!r}: expected integers separated by commas") from None
    emit_table(args, curvature_trajectory(args.run, args.matvecs, args.batches, args.seed,
                                          args.by_block, steps, progress=not args.no_progress,
                                          operator=args.operator),
               record="curvature")
