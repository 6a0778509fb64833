"""`est plot`: a run directory (or several) turned into figures, PNG and PDF."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import pandas as pd

from est_analysis import plotting
from est_analysis.cli.options import add_run_argument, positive_int
from est_analysis.training import RunDir
from est_analysis.training.metrics import X_AXES

EXAMPLES = """examples:
  est plot runs/est                                  # into runs/est/figures/
  est plot runs/orig_s0 runs/orig_s1 runs/est_s0 runs/est_s1 --labels original,original,est,est \\
      --x step,flops,wall --out figures/seeds         # seed bands: repeated labels are seeds
  est diagnose transitions runs/est --csv runs/est/diagnostics/transitions.csv
  est plot runs/est                                  # now also draws transitions.png
"""

# diagnostics/<name>.csv in a run directory -> the figure drawn from it
DIAGNOSTIC_FIGURES = {
    "regularizer": "regularizer_trajectory", "regularizer_final": "regularizer_prediction",
    "transitions": "transition_drops",
    "dynamics": "slopes_vs_loss", "curvature": "trace_bars", "slice_1d": "landscape_1d",
    "slice_2d": "landscape_2d", "interpolation": "landscape_1d",
}


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("plot", help="render run directories as figures (PNG and PDF)",
                       formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EXAMPLES,
                       description="Loss curves (training and validation) of one or more runs "
                                   "against each --x axis, stages shaded and labelled, runs with "
                                   "the same label drawn as a mean with a +-1 std seed band; and, "
                                   "for each run, a figure per diagnostics/<name>.csv it holds "
                                   "(and the runs' Hessian traces together) "
                                   f"({', '.join(DIAGNOSTIC_FIGURES)}; written by `est diagnose` "
                                   "/ `est landscape` with --csv).")
    add_run_argument(p, nargs="+", help="run directories")
    p.add_argument("--labels", help="comma-separated, one per run (default: directory names)")
    p.add_argument("--x", default="step,flops",
                   help="x axes among step,tokens,flops,wall (default %(default)s)")
    p.add_argument("--smooth", type=positive_int, default=10,
                   help="training-loss moving average (steps)")
    p.add_argument("--out", type=Path, help="output directory (default: RUN/figures for one run, "
                   "figures/ in the runs' common parent directory for several)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> None:
    labels = args.labels.split(",") if args.labels else [run.name for run in args.runs]
    if len(labels) != len(args.runs):
        raise ValueError(f"--labels gives {len(labels)} names for {len(args.runs)} runs")
    axes = args.x.split(",")
    unknown = [x for x in axes if x not in X_AXES]
    if unknown:
        raise ValueError(f"--x {args.x!r}: unknown axis {unknown[0]!r}; choose among {sorted(X_AXES)}")
    run_dirs = [RunDir(path) for path in args.runs]
    runs: dict[str, list[pd.DataFrame]] = {}
    for label, run in zip(labels, run_dirs):
        runs.setdefault(label, []).append(run.read_metrics())
    # one run: its own figures/; several: figures/ beside them, not inside the first one
    out = args.out or (run_dirs[0].figures if len(run_dirs) == 1 else
                       Path(os.path.commonpath([os.path.abspath(r.path) for r in run_dirs])) / "figures")
    written = []
    for x in axes:
        for y in ("train", "val"):
            figure = plotting.loss_curves(runs, x, y, args.smooth)
            written += plotting.save(figure, out / f"loss_{y}_vs_{x}")
    for label, run in zip(labels, run_dirs):
        for name, function in DIAGNOSTIC_FIGURES.items():
            table_path = run.diagnostics(name)
            if table_path.exists():
                figure = getattr(plotting, function)(_diagnostic_table(name, table_path))
                written += plotting.save(figure, out / f"{label}_{name}")
    curvature = {label: pd.read_csv(run.diagnostics("curvature"))
                 for label, run in zip(labels, run_dirs) if run.diagnostics("curvature").exists()}
    if len(curvature) > 1:
        written += plotting.save(plotting.trace_trajectories(curvature), out / "curvature")
    for path in written:
        print(path)


def _diagnostic_table(name: str, path: Path):
    table = pd.read_csv(path)
    return {path.stem: table} if name in ("slice_1d", "interpolation") else table
