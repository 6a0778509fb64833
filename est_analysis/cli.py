"""The `est` command."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from est_analysis.checkpoint import CheckpointError
from est_analysis.cost_cli import add_cost_parser, add_method_option_argument
from est_analysis.diagnose_cli import add_diagnose_parser
from est_analysis.hessian_cli import add_hessian_parser
from est_analysis.inactive import INACTIVE_MODES
from est_analysis.landscape_cli import add_landscape_parser
from est_analysis.methods import METHODS
from est_analysis.methods.base import parse_option_pairs
from est_analysis.plot_cli import add_plot_parser
from est_analysis.recipes import SCALES
from est_analysis.repro_cli import add_repro_parser

# the main job: a few minutes on 2 CPU cores at the cpu scale
COMPARE_STEPS, COMPARE_EVAL_EVERY = 200, 25

EXAMPLES = """examples:
  est compare                                   # Original vs EST at cpu scale, a few minutes
  est train --preset est-gpt2 --scale smoke --out runs/smoke
  est train --preset est-tinyllama --scale cpu --method est --out runs/llama --seed 1
  est train --out runs/smoke --resume           # continue an interrupted run exactly
  est cost --preset est-gpt2 --model gpt2-124m  # FLOPs saving of a schedule (26.7 %)
  est hessian trace --checkpoint runs/smoke --json   # Tr(H) with a 95 % CI
  est list                                      # presets, models and scales
"""


def _add_run_options(parser: argparse.ArgumentParser, default_scale: str) -> None:
    from est_analysis.schedule import PRESETS

    parser.add_argument("--preset", default="est-gpt2", choices=sorted(PRESETS),
                        help="sampling-scheduler preset; it also picks the architecture "
                             "(est-tinyllama: Llama, others: GPT-2) (default: %(default)s)")
    parser.add_argument("--scale", default=default_scale, choices=SCALES,
                        help="model/batch/run size: smoke (seconds), cpu (minutes on 2 cores), "
                             "paper (the paper's settings) (default: %(default)s)")
    parser.add_argument("--config", type=Path, help="YAML file of TrainConfig fields; "
                        "command-line options override it")
    parser.add_argument("--stages", help="custom schedule instead of the preset: boundaries as "
                        "fractions (0.2,0.5,1) or steps (20000,70000,150000); needs --rates")
    parser.add_argument("--rates", help="p_H,p_M,p_L per stage, '/'-separated: .5,.5,.5/.5,.5,1/1,1,1")
    parser.add_argument("--model", help="model config name (default: from preset and scale)")
    parser.add_argument("--corpus", help="'shakespeare' (default), 'cpython-stdlib', or a path to "
                        "a text/jsonl file or directory")
    parser.add_argument("--steps", type=int, help="total training steps (default: the scale's)")
    parser.add_argument("--seed", type=int, help="seed of init, data order and subnets (default 0)")
    parser.add_argument("--batch-size", type=int, help="sequences per micro-batch (global: split "
                        "across processes under --nproc / torchrun)")
    parser.add_argument("--grad-accum", type=int, help="micro-batches per optimizer step")
    parser.add_argument("--seq-len", type=int, help="tokens per sequence")
    parser.add_argument("--lr", type=float, help="peak learning rate")
    parser.add_argument("--eval-every", type=int, help="validate the full model every N steps")
    parser.add_argument("--snapshot-every", type=int, help="keep a model snapshot every N steps "
                        "in snapshots/ (one is always kept at each stage boundary), for "
                        "`est diagnose` trajectories")
    parser.add_argument("--inactive-params", choices=INACTIVE_MODES,
                        help="optimizer treatment of parameters outside the subnet "
                             "(see est_analysis.inactive; default dense)")
    parser.add_argument("--device", help="auto (default), cpu, cuda, cuda:1, ...")
    parser.add_argument("--threads", type=int, help="torch CPU threads")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")


def _train_config(args: argparse.Namespace):
    from est_analysis.schedule import Schedule
    from est_analysis.train import TrainConfig

    names = ("preset", "scale", "model", "corpus", "steps", "seed", "batch_size", "grad_accum",
             "seq_len", "lr", "eval_every", "snapshot_every", "inactive_params", "device", "threads")
    overrides = {n: getattr(args, n) for n in names if getattr(args, n, None) is not None}
    if getattr(args, "method", None):
        overrides["method"] = args.method
    if getattr(args, "method_option", None):
        overrides["method_options"] = parse_option_pairs(args.method_option)
    if args.stages or args.rates:
        if not (args.stages and args.rates):
            raise ValueError("--stages and --rates go together")
        boundaries, triples = Schedule.parse(args.stages, args.rates)
        overrides["stages"], overrides["rates"] = boundaries, [list(t) for t in triples]
    if args.config:
        return TrainConfig.from_yaml(args.config, **overrides)
    return TrainConfig(**overrides)


def cmd_train(args: argparse.Namespace) -> None:
    from est_analysis.distributed import torchrun_command
    from est_analysis.train import train

    if args.nproc > 1:  # hand over to torchrun, which starts N copies of this command
        raise SystemExit(subprocess.call(torchrun_command(args.nproc, _without_nproc(args.argv))))
    out = train(_train_config(args), args.out, resume=args.resume, progress=not args.no_progress)
    if int(os.environ.get("RANK", "0")) != 0:
        return
    summary = json.loads((out / "summary.json").read_text())
    if args.json:
        print(json.dumps(summary))
    else:
        print(f"final validation loss {summary['final_val_loss']:.4f}, "
              f"{summary['total_flops']:.3e} training FLOPs, {summary['train_wall_s']:.1f} s; "
              f"metrics in {out / 'metrics.csv'}")


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


def cmd_compare(args: argparse.Namespace) -> None:
    from est_analysis.compare import compare_methods

    if not args.config:  # the main job's defaults; a YAML config brings its own
        args.steps = args.steps or COMPARE_STEPS
        args.eval_every = args.eval_every or COMPARE_EVAL_EVERY
    table = compare_methods(_train_config(args), args.out, tuple(args.methods.split(",")),
                            resume=args.resume, progress=not args.no_progress)
    if args.json:
        print(table.to_json(orient="records"))
        return
    shown = table[["method", "final_val_loss", "flops_saving", "train_wall_s", "wall_ratio", "speedup"]]
    print(shown.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    print(f"\nFLOPs saving counts every matmul of every step (LM head included); "
          f"wall ratio is training time only.\nWrote {Path(args.out) / 'comparison.csv'} and "
          f"{Path(args.out) / 'loss_curves.png'}")


def cmd_list(args: argparse.Namespace) -> None:
    from dataclasses import fields

    from est_analysis.methods import METHOD_SUMMARIES, OPTIONS
    from est_analysis.models import MODEL_CONFIGS
    from est_analysis.recipes import RECIPES
    from est_analysis.schedule import PRESETS

    listing = {
        "presets": {n: {"boundaries_in_paper_steps": list(p.boundaries),
                        "rates": [list(r) for r in p.rates], "description": p.description}
                    for n, p in PRESETS.items()},
        "models": {n: c.to_dict() for n, c in MODEL_CONFIGS.items()},
        "scales": {f"{s}/{a}": vars(r) for (s, a), r in RECIPES.items()},
        "methods": {n: {"description": d, "options": {f.name: f.default for f in
                                                       fields(OPTIONS[n])} if OPTIONS[n] else {}}
                    for n, d in METHOD_SUMMARIES.items()},
    }
    if args.json:
        print(json.dumps(listing, indent=2))
        return
    print("presets (boundaries as in the paper's run; scaled to --steps):")
    for name, p in PRESETS.items():
        stages = ", ".join(f"<{b}: {tuple(r)}" for b, r in zip(p.boundaries, p.rates))
        print(f"  {name:17s} {stages}\n  {'':17s} {p.description}")
    print("models:")
    for name, c in MODEL_CONFIGS.items():
        print(f"  {name:15s} {c.arch:5s} L={c.n_layer} d={c.d_model} heads={c.n_head}/"
              f"{c.n_kv_head}kv mlp={c.d_mlp} vocab={c.vocab_size} ctx={c.block_size}")
    print("scales (scale/arch: model, batch x accum x seq, steps, peak lr):")
    for (s, a), r in RECIPES.items():
        print(f"  {s + '/' + a:12s} {r.model}, {r.batch_size}x{r.grad_accum}x{r.seq_len}, "
              f"{r.steps} steps, lr {r.lr:g} {r.lr_schedule}")
    print("methods (--method; options as --method-option NAME=VALUE, defaults shown):")
    for name, method in listing["methods"].items():
        options = " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                           for k, v in method["options"].items())
        print(f"  {name:11s} {method['description']}" + (f"\n  {'':11s} {options}" if options else ""))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="est", formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EXAMPLES,
        description="Evolving Subnetwork Training (Li et al., ICML 2024): train GPT-2/Llama on "
                    "random subnetworks that grow stage by stage, and compare with full training.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("train", help="train one run (EST or Original) and write metrics.csv",
                       description="Train one run into --out: metrics.csv (one row per step), "
                                   "checkpoint.pt, config.yaml, summary.json.")
    _add_run_options(p, default_scale="smoke")
    p.add_argument("--method", choices=METHODS,
                   help="est (default), original (full model), or a baseline: staged (Staged "
                        "Training), msg (Masked Structural Growth), raptr (random path "
                        "training), layer-drop (progressive layer dropping)")
    add_method_option_argument(p)
    p.add_argument("--out", type=Path, required=True, help="run directory")
    p.add_argument("--resume", action="store_true", help="continue from --out/checkpoint.pt")
    p.add_argument("--json", action="store_true", help="print the run summary as JSON")
    p.add_argument("--nproc", type=int, default=1,
                   help="processes on this machine: runs the same command under torchrun "
                        "(DDP; gloo on CPU, nccl on GPU); --batch-size is the global batch")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("compare", help="train Original and EST side by side; summary + loss curves",
                       description="Train each method on the same recipe, data and seed, then "
                                   "print validation loss, FLOPs saving and wall-clock ratio and "
                                   "write comparison.csv and loss_curves.png. Defaults: cpu "
                                   f"scale, {COMPARE_STEPS} steps, validation every "
                                   f"{COMPARE_EVAL_EVERY} steps (a few minutes on 2 cores).")
    _add_run_options(p, default_scale="cpu")
    p.add_argument("--methods", default="original,est", help="comma-separated, first is the "
                   "reference (default: %(default)s)")
    p.add_argument("--out", type=Path, default=Path("runs/compare"), help="(default: %(default)s)")
    p.add_argument("--resume", action="store_true", help="continue interrupted runs")
    p.add_argument("--json", action="store_true", help="print the table as JSON records")
    p.set_defaults(func=cmd_compare)

    add_cost_parser(sub)
    add_hessian_parser(sub)
    add_diagnose_parser(sub)
    add_landscape_parser(sub)
    add_plot_parser(sub)
    add_repro_parser(sub)

    p = sub.add_parser("list", help="show schedule presets, model configs and scales")
    p.add_argument("--json", action="store_true", help="print as JSON")
    p.set_defaults(func=cmd_list)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    from est_analysis.train import TrainingError

    try:
        args.func(args)
    except (ValueError, OSError, TrainingError, CheckpointError) as err:
        print(f"est {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"est {args.command}: interrupted; rerun with --resume to continue", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
