"""`est diagnose`: section 5's explanations of EST as measurements on trained runs."""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from est_analysis.table_output import emit_table

DIAGNOSE_EXAMPLES = """examples:
  est diagnose regularizer --checkpoint runs/est                    # R at each stage's rates
  est diagnose regularizer --checkpoint runs/est/snapshots/step_0000028.pt --rates .5,.5,1
  est diagnose regularizer --checkpoint runs/est --trajectory --no-second-order --csv r.csv
  est diagnose transitions --run runs/est --json
  est diagnose dynamics --runs runs/original,runs/est --stage 3 --x flops
  est diagnose curvature --run runs/est --matvecs 30 --by-block
"""


def add_diagnose_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("diagnose", help="implicit regularizer, stage transitions, dynamics, curvature",
                       formatter_class=argparse.RawDescriptionHelpFormatter, epilog=DIAGNOSE_EXAMPLES,
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
    reg.add_argument("--checkpoint", type=Path, required=True,
                     help="run directory, checkpoint.pt or a snapshot file")
    reg.add_argument("--rates", help="p_H,p_M,p_L triples separated by '/' (default: the run's "
                                     "stage rates that sample something)")
    reg.add_argument("--samples", type=int, default=32, help="subnets per estimate (default 32)")
    reg.add_argument("--probes", type=int, default=16,
                     help="random probes of the second-order prediction (default 16)")
    reg.add_argument("--no-second-order", action="store_true", help="Monte Carlo only")
    reg.add_argument("--trajectory", action="store_true",
                     help="at every snapshot of the run (--checkpoint must be a run directory)")
    reg.set_defaults(func=cmd_regularizer)

    tr = commands.add_parser("transitions", help="loss before/after each stage boundary and "
                             "Delta R between the two rate settings")
    tr.add_argument("--run", type=Path, required=True, help="EST run directory")
    tr.add_argument("--samples", type=int, default=16, help="subnets per R estimate (default 16)")
    tr.add_argument("--window", type=int, default=10,
                    help="training steps averaged on each side of a boundary (default 10)")
    tr.set_defaults(func=cmd_transitions)

    dyn = commands.add_parser("dynamics", help="slope -dL/dx at equal loss, run against reference")
    dyn.add_argument("--runs", required=True,
                     help="comma-separated run directories; the first is the reference")
    dyn.add_argument("--labels", help="comma-separated names (default: directory names)")
    dyn.add_argument("--x", choices=("step", "tokens", "flops", "wall"), default="step",
                     help="slope per step, token, FLOP or second (default step)")
    dyn.add_argument("--window", type=int, default=20,
                     help="steps per fitted window (default 20)")
    dyn.add_argument("--bins", type=int, default=6, help="loss bins over the shared range (default 6)")
    dyn.add_argument("--stage", type=int, help="use only this stage of multi-stage runs "
                     "(single-stage runs are used whole), e.g. 3 for EST's final stage")
    dyn.set_defaults(func=cmd_dynamics)

    cur = commands.add_parser("curvature", help="Hessian trace (Hutch++) of every snapshot")
    cur.add_argument("--run", type=Path, required=True, help="run directory")
    cur.add_argument("--matvecs", type=int, default=30,
                     help="Hessian-vector products per snapshot (default 30)")
    cur.add_argument("--by-block", action="store_true", help="also trace per block")
    cur.add_argument("--steps", help="comma-separated snapshot steps (default: every snapshot)")
    cur.set_defaults(func=cmd_curvature)

    for q, batches in ((reg, 4), (tr, 4), (cur, 2)):
        q.add_argument("--batches", type=int, default=batches,
                       help="fixed validation batches (default %(default)s)")
        q.add_argument("--seed", type=int, default=0, help="seed of the draws (default 0)")
        q.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    for q in (reg, tr, dyn, cur):
        q.add_argument("--csv", type=Path, help="also write the table to this CSV")
        q.add_argument("--json", action="store_true", help="print JSON")

def _check_positive(args: argparse.Namespace, *names: str) -> None:
    for name in names:
        value = getattr(args, name)
        if value is not None and value < 1:
            raise ValueError(f"--{name.replace('_', '-')} {value} must be a positive integer")


def cmd_regularizer(args: argparse.Namespace) -> None:
    from est_analysis.diagnostics import regularizer_table, regularizer_trajectory
    from est_analysis.runs import load_run, stage_rates
    from est_analysis.schedule import parse_rates

    _check_positive(args, "samples", "probes", "batches")
    if args.rates:
        rates = parse_rates(args.rates)
    elif args.checkpoint.is_dir():
        rates = [r for r in stage_rates(args.checkpoint) if not r.is_full]
        if not rates:
            raise ValueError(f"{args.checkpoint} trains the full model in every stage; "
                             "give --rates to measure R at other rates")
    else:
        raise ValueError("--rates is needed with a checkpoint file (the stage rates come from "
                         "a run directory's metrics.csv)")
    second_order, progress = not args.no_second_order, not args.no_progress
    if args.trajectory:
        if not args.checkpoint.is_dir():
            raise ValueError(f"--trajectory needs a run directory, not {args.checkpoint}")
        table = regularizer_trajectory(args.checkpoint, rates, args.samples, args.batches,
                                       args.seed, second_order, args.probes, progress)
        emit_table(args, table)
        return
    run = load_run(args.checkpoint)
    table = regularizer_table(run.model, run.batches("val", args.batches), rates, args.samples,
                              args.probes, second_order, args.seed, progress)
    emit_table(args, table.assign(step=run.step))


def cmd_transitions(args: argparse.Namespace) -> None:
    from est_analysis.diagnostics import transition_table

    _check_positive(args, "samples", "window", "batches")
    emit_table(args, transition_table(args.run, args.samples, args.window, args.batches, args.seed,
                                 progress=not args.no_progress))


def cmd_dynamics(args: argparse.Namespace) -> None:
    from est_analysis.diagnostics import loss_slopes, slope_ratio, slopes_at_equal_loss

    _check_positive(args, "window", "bins", "stage")
    paths = [Path(p) for p in args.runs.split(",")]
    labels = args.labels.split(",") if args.labels else [p.name for p in paths]
    if len(paths) < 2 or len(labels) != len(paths) or len(set(labels)) != len(labels):
        raise ValueError(f"--runs {args.runs!r} / --labels {args.labels!r}: give at least two "
                         "runs and one distinct label per run")
    slopes = {}
    for label, path in zip(labels, paths):
        if not (path / "metrics.csv").exists():
            raise ValueError(f"{path} has no metrics.csv: not a run directory")
        metrics = pd.read_csv(path / "metrics.csv")
        stage = args.stage if args.stage and metrics["stage"].max() > 1 else None
        slopes[label] = loss_slopes(metrics, args.window, args.x, stage)
    table = slopes_at_equal_loss(slopes, args.bins)
    ratios = {f"slope_ratio {label} / {labels[0]}": slope_ratio(table, label, labels[0])
              for label in labels[1:]}
    emit_table(args, table, ratios)


def cmd_curvature(args: argparse.Namespace) -> None:
    from est_analysis.diagnostics import curvature_trajectory

    _check_positive(args, "matvecs", "batches")
    try:
        steps = [int(s) for s in args.steps.split(",")] if args.steps else None
    except ValueError:
        raise ValueError(f"--steps {args.steps!r}: expected integers separated by commas") from None
    emit_table(args, curvature_trajectory(args.run, args.matvecs, args.batches, args.seed,
                                     args.by_block, steps, progress=not args.no_progress))
