"""`est compare`: the main job, Original and EST (or any methods) side by side."""

from __future__ import annotations

import argparse
from pathlib import Path

from est_analysis.cli.options import add_train_config_options, train_config
from est_analysis.compare import compare_methods

# the main job's defaults: a few minutes on 2 CPU cores
COMPARE_SCALE, COMPARE_STEPS, COMPARE_EVAL_EVERY = "cpu", 200, 25
NOISY_WALL_S = 60  # shorter runs: their wall-clock ratio is reported with a warning


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("compare", help="train Original and EST side by side; summary + loss curves",
                       description="Train each method on the same recipe, data and seed, then "
                                   "print validation loss, FLOPs saving and wall-clock ratio and "
                                   "write comparison.csv and loss_curves.png. Without --config or "
                                   f"--scale: {COMPARE_SCALE} scale, {COMPARE_STEPS} steps, "
                                   f"validation every {COMPARE_EVAL_EVERY} steps (a few minutes on "
                                   "2 cores); with --scale, that scale's recipe. For whether EST "
                                   "saves compute, see `est quickstart`.")
    p.add_argument("--methods", default="original,est", help="comma-separated, first is the "
                   "reference (default: %(default)s)")
    p.add_argument("--out", type=Path, default=Path("runs/compare"), help="(default: %(default)s)")
    p.add_argument("--resume", action="store_true", help="continue interrupted runs")
    p.add_argument("--json", action="store_true", help="print the table as JSON records")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    add_train_config_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> None:
    if not args.config and args.scale is None:  # the defaults; a scale or config brings its own
        args.scale = COMPARE_SCALE
        args.steps = args.steps or COMPARE_STEPS
        args.eval_every = args.eval_every or COMPARE_EVAL_EVERY
    table = compare_methods(train_config(args), args.out, tuple(args.methods.split(",")),
                            resume=args.resume, progress=not args.no_progress)
    if args.json:
        print(table.to_json(orient="records"))
        return
    shown = table[["method", "final_val_loss", "flops_saving", "train_wall_s", "wall_ratio", "speedup"]]
    print(shown.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    if table["train_wall_s"].min() < NOISY_WALL_S:
        print(f"\nNot evidence of speed: runs of under {NOISY_WALL_S} s timed one after another "
              "swing with the machine's load by more than EST's effect; benchmarks/walltime.py "
              "interleaves repeated steps for a wall-clock ratio.")
    print(f"\nFLOPs saving counts every matmul of every step (LM head included); "
          f"wall ratio is training time only.\nWrote {args.out / 'comparison.csv'} and "
          f"{args.out / 'loss_curves.png'}")
