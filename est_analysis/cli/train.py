"""`est train`: one run into a run directory, on one process or several (DDP under torchrun)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import subprocess
from pathlib import Path

from est_analysis.domains import NONNEGATIVE_INT, environment
from est_analysis.cli.options import add_train_config_options, positive_int, train_config
from est_analysis.training import RunDir, TrainConfig, train
from est_analysis.training.distributed import torchrun_command

EXAMPLES = """examples:
  est train --preset est-gpt2 --scale smoke --out runs/smoke            # seconds
  est train --preset est-gpt2 --scale cpu --method original --out runs/orig --seed 1
  est train --method layer-drop --method-option progressive=false --out runs/sd
  est train --out runs/smoke --resume                                    # exact continuation
                                                     # (the run's own settings, from its checkpoint)
  est train --out runs/x --resume --lr 3e-4      # after a divergence: --lr, --warmup-fraction may change
  est train --config my.yaml --out runs/x                                # YAML of TrainConfig fields
  est train --scale cpu --out runs/ddp --nproc 2                         # DDP on 2 processes
"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train one run (EST, Original or a baseline)",
                       formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EXAMPLES,
                       description="Train one run into --out: metrics.csv (one row per step), "
                                   "checkpoint.pt, config.yaml, summary.json, snapshots/.")
    p.add_argument("--out", type=Path, required=True, help="run directory")
    p.add_argument("--resume", action="store_true", help="continue from --out/checkpoint.pt")
    p.add_argument("--json", action="store_true", help="print the run summary as JSON")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.add_argument("--nproc", type=positive_int, default=1,
                   help="processes on this machine: runs the same command under torchrun "
                        "(DDP; gloo on CPU, nccl on GPU); --batch-size is the global batch")
    add_train_config_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> None:
    if args.nproc > 1:  # hand over to torchrun, which starts N copies of this command
        raise SystemExit(subprocess.call(torchrun_command(args.nproc, _without_nproc(args.argv))))
    out = RunDir(train(_config(args), args.out, resume=args.resume, progress=not args.no_progress))
    if environment("RANK", 0, NONNEGATIVE_INT) != 0:
        return
    summary = out.read_summary()
    if args.json:
        print(json.dumps(summary))
    else:
        print(f"final validation loss {summary['final_val_loss']:.4f}, "
              f"{summary['total_flops']:.3e} training FLOPs, {summary['train_wall_s']:.1f} s; "
              f"metrics in {out.metrics}")


def _config(args: argparse.Namespace) -> TrainConfig:
    """The options' config; on --resume the run's own settings (from its checkpoint) with the
    options given on top, so `est train --out RUN --resume` alone continues the run as it was."""
    given = train_config(args)
    run = RunDir(args.out)
    if not args.resume or args.config or not run.can_resume:
        return given
    state, path = run.newest_checkpoint()
    trained_with = TrainConfig.from_dict(state["config"], f"checkpoint {path}")
    flags = {f.name: getattr(given, f.name) for f in dataclasses.fields(TrainConfig)
             if getattr(args, f.name, None) is not None}
    return dataclasses.replace(trained_with, **flags)


def _without_nproc(argv: list[str]) -> list[str]:
    kept, skip_next = [], False
    for arg in argv:
        if skip_next:
            skip_next = False
        elif arg == "--nproc":
            skip_next = True
        elif not arg.startswith("--nproc="):
            kept.append(arg)
    return kept
