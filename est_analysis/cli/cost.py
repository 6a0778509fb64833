"""`est cost`: the scheduler cost simulator on the command line (section 3.3, eq. 8-10)."""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import pandas as pd

from est_analysis.domains import FRACTION, POSITIVE, UNIT
from est_analysis.io import read_csv_file
from est_analysis.cli.options import option_pair, positive_int
from est_analysis.cost import (ACCOUNTINGS, cost_table, method_saving, policy_costs, saving,
                               schedule_costs, speedup)
from est_analysis.cost.paper import msg_note, paper_comparison, table1
from est_analysis.cost.search import search_schedules
from est_analysis.methods import METHODS, SubnetPolicy, build_policy
from est_analysis.models import get_config
from est_analysis.schedule import PRESETS, Schedule, parse_boundaries, parse_rates
from est_analysis.training import TrainConfig
from est_analysis.training.recipes import PRESET_ARCH

EXAMPLES = """examples:
  est cost --preset est-gpt2 --model gpt2-124m --accounting paper      # 26.7 %
  est cost --stages 20000,70000,150000 --rates .5,.5,.5/.5,.5,1/1,1,1 --accounting full
  est cost --preset est-gpt2 --efficiency 0.9       # predicted wall-clock speedup
  est cost paper                                    # every saving the paper reports, beside ours
  est cost search --model gpt2-124m --steps 150000 --target-saving 0.3 --min-final 0.4
  est cost --method staged                          # a baseline's saving beside EST's
  est cost --method layer-drop --method-option theta=0.5 --accounting full
"""

# the help of `est train`'s --method-option, from its TrainConfig field
METHOD_OPTION_HELP = next(f.metadata["help"] for f in dataclasses.fields(TrainConfig)
                          if f.name == "method_options")


def _schedule_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", help="model config (default: the preset's paper model, "
                                        "gpt2-124m or tinyllama-1.1b)")
    parser.add_argument("--seq-len", type=positive_int,
                        help="sequence length (default: the model's context)")
    parser.add_argument("--accounting", choices=ACCOUNTINGS, default="paper",
                        help="paper: only C_H and C_M as eq. 8-10; full: every matmul of the step "
                             "(LM head included) plus norms and embeddings (default: %(default)s)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("cost", help="scheduler cost simulator: FLOPs saving of a schedule",
                       formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EXAMPLES,
                       description="Price a sampling schedule: per-stage step cost relative to "
                                   "the full model, stage cost, total FLOPs saving versus "
                                   "Original, and predicted wall-clock speedup.")
    p.add_argument("--preset", default="est-gpt2", choices=sorted(PRESETS),
                   help="schedule preset (default: %(default)s)")
    p.add_argument("--stages", help="custom boundaries, in steps (20000,70000,150000) or "
                                    "fractions (0.2,0.5,1); needs --rates")
    p.add_argument("--rates", help="p_H,p_M,p_L per stage, '/'-separated: .5,.5,.5/.5,.5,1/1,1,1")
    p.add_argument("--steps", type=positive_int, help="total steps (default: the preset's paper run)")
    p.add_argument("--head-mlp-ratio", type=POSITIVE.argtype(),
                   help="C_H : C_M for the paper accounting (default: from the FLOPs model)")
    p.add_argument("--efficiency", type=UNIT.argtype(), default=1.0,
                   help="ideal / measured step-time ratio of subnet steps, e.g. from "
                        "benchmarks/walltime.py (default 1: the FLOPs ideal)")
    p.add_argument("--efficiency-from", type=Path, metavar="CSV",
                   help="use the efficiencies measured by benchmarks/walltime.py (its "
                        "walltime.csv) for stage-1/2 rates; pair with --accounting full")
    p.add_argument("--efficiency-model", help="which model's rows of that CSV (default: the "
                                              "one with the largest micro-batch for --model)")
    p.add_argument("--method", choices=METHODS,
                   help="price a training method instead of an EST schedule (staged, msg, raptr, "
                        "layer-drop: their own stages; raptr also takes --stages/--rates); EST's "
                        "saving with --preset is printed beside it")
    p.add_argument("--method-option", action="append", default=[], type=option_pair,
                   metavar="NAME=VALUE", help=METHOD_OPTION_HELP)
    _schedule_options(p)
    p.set_defaults(func=run)
    cost_sub = p.add_subparsers(dest="cost_command", metavar="[paper|search]")

    q = cost_sub.add_parser("paper", help="the paper's reported savings beside ours")
    q.add_argument("--seq-len", type=positive_int,
                   help="sequence length for C_H : C_M (default: context)")
    q.add_argument("--json", action="store_true", help="print JSON")
    q.set_defaults(func=run_paper)

    q = cost_sub.add_parser("search", help="enumerate and rank schedules meeting a target saving",
                            description="Enumerate growing schedules (last stage full) on a grid "
                                        "and rank by cost. A planning tool: it predicts FLOPs, "
                                        "not loss.")
    q.add_argument("--steps", type=positive_int, default=150_000,
                   help="total steps (default: %(default)s)")
    goal = q.add_mutually_exclusive_group(required=True)
    goal.add_argument("--target-saving", type=FRACTION.argtype(), help="wanted saving, e.g. 0.25")
    goal.add_argument("--budget", type=UNIT.argtype(), help="FLOPs budget as a fraction of Original's")
    q.add_argument("--tolerance", type=POSITIVE.argtype(), default=0.01, help="for --target-saving (default %(default)s)")
    q.add_argument("--min-final", type=UNIT.argtype(), default=0.3,
                   help="shortest allowed full final stage, fraction of the run (default %(default)s)")
    q.add_argument("--stage-counts", default="2,3", help="numbers of stages to try (default %(default)s)")
    q.add_argument("--grid", type=UNIT.argtype(), default=0.05, help="boundary grid as a fraction of the run")
    q.add_argument("--rate-values", default="0.25,0.5,0.75,1", help="allowed rates (default %(default)s)")
    q.add_argument("--sample", default="heads,neurons,layers",
                   help="which components a stage may sample, e.g. heads,layers to keep every "
                        "MLP neuron (default %(default)s)")
    q.add_argument("--top", type=positive_int, default=15, help="rows to show (default %(default)s)")
    _schedule_options(q)
    q.set_defaults(func=run_search)


def _model_name(args: argparse.Namespace) -> str:
    if args.model:
        return args.model
    return "tinyllama-1.1b" if PRESET_ARCH.get(getattr(args, "preset", ""), "gpt2") == "llama" else "gpt2-124m"


def _floats(text: str, what: str) -> list[float]:
    try:
        return [float(v) for v in text.split(",")]
    except ValueError:
        raise ValueError(f"{what} {text!r} must be comma-separated numbers") from None


def measured_efficiency(csv: Path, model: str | None) -> dict[str, float]:
    """Stage label -> efficiency of the whole training step, from walltime.csv (largest
    micro-batch of `model`)."""
    if not csv.is_file():
        raise FileNotFoundError(f"--efficiency-from {csv}: no such file; run "
                                "`python benchmarks/walltime.py --out DIR` first")
    table = read_csv_file(csv, "--efficiency-from")
    missing = sorted({"part", "variant", "model", "micro_batch", "efficiency"} - set(table.columns))
    if missing:
        raise ValueError(f"--efficiency-from {csv} has no column {', '.join(missing)}: it is not "
                         "a walltime.csv; give the CSV written by `python benchmarks/walltime.py "
                         "--out DIR` (paper_repro/results/walltime.csv)")
    steps = table[(table["part"] == "training step") & table["variant"].str.endswith("sliced")]
    if model is None:
        model = steps["model"].iloc[0]
    steps = steps[steps["model"] == model]
    if steps.empty:
        raise ValueError(f"{csv} has no training-step rows for model {model!r}; it has "
                         f"{sorted(table['model'].unique())} (use --efficiency-model)")
    largest = steps[steps["micro_batch"] == steps["micro_batch"].max()]
    labels = {"stage1 sliced": "(0.5, 0.5, 0.5)", "stage2 sliced": "(0.5, 0.5, 1)"}
    return {labels[v]: float(e) for v, e in zip(largest["variant"], largest["efficiency"])}


def run(args: argparse.Namespace) -> None:
    config = get_config(_model_name(args))
    if args.stages or args.rates:
        if not (args.stages and args.rates):
            raise ValueError("--stages and --rates go together")
        boundaries, rates = parse_boundaries(args.stages), parse_rates(args.rates)
        last = boundaries[-1]
        steps = args.steps or (int(last) if last > 1 else PRESETS[args.preset].paper_steps)
        schedule = Schedule.custom(boundaries, rates, steps)
    else:
        schedule = Schedule.preset(args.preset, args.steps or PRESETS[args.preset].paper_steps)
    efficiency = (measured_efficiency(args.efficiency_from, args.efficiency_model)
                  if args.efficiency_from else args.efficiency)
    if args.method:
        custom = bool(args.stages) and args.method in ("est", "raptr")
        policy = build_policy(args.method, config, schedule.total_steps, seed=0,
                              schedule=schedule if args.method == "est" or custom else None,
                              options=dict(args.method_option))
        stages = policy_costs(policy, args.accounting, args.seq_len, args.head_mlp_ratio)
    else:
        stages = schedule_costs(config, schedule, args.accounting, args.seq_len, args.head_mlp_ratio)
    table = cost_table(stages, efficiency)
    result = {"model": config.name, "method": args.method or "est", "accounting": args.accounting,
              "saving": saving(table), "predicted_speedup": speedup(table),
              "efficiency": efficiency, "stages": table.to_dict(orient="records")}
    if args.method:
        result["savings_by_accounting"] = _method_savings(policy, args.seq_len)
        est = build_policy("est", config, schedule.total_steps, seed=0, schedule=schedule)
        result["est_savings_by_accounting"] = _method_savings(est, args.seq_len)
    if args.json:
        print(json.dumps(result))
        return
    title = f"method {args.method}" if args.method else "EST schedule"
    print(f"{title}, {config.name}, {args.accounting} accounting, {schedule.total_steps} steps")
    print(table.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    print(f"\nFLOPs saving vs Original: {result['saving']:.1%}")
    shown = (", ".join(f"{label} {e:.3f}" for label, e in efficiency.items())
             if isinstance(efficiency, dict) else f"{efficiency:g}")
    print(f"predicted wall-clock speedup at efficiency {shown}: {result['predicted_speedup']:.3f}x")
    if args.method:
        ours, est = result["savings_by_accounting"], result["est_savings_by_accounting"]
        print(f"{args.method}: {ours['paper']:.1%} (paper accounting), {ours['full']:.1%} (full); "
              f"EST {args.preset}: {est['paper']:.1%} / {est['full']:.1%}")
    if args.efficiency_from and args.accounting == "paper":
        print("note: measured efficiencies are relative to full-accounting FLOPs; "
              "use --accounting full with --efficiency-from")


def _method_savings(policy: SubnetPolicy, seq_len: int | None) -> dict[str, float]:
    return {accounting: method_saving(policy, accounting, seq_len) for accounting in ACCOUNTINGS}


def run_paper(args: argparse.Namespace) -> None:
    table = paper_comparison(args.seq_len)
    if args.json:
        print(json.dumps({"comparison": table.to_dict(orient="records"), "msg_note": msg_note(),
                          "table1": table1().to_dict()}))
        return
    print("Table 1 (units of r N_L (C_H + C_M)), computed:")
    print(table1().to_string(float_format=lambda v: f"{v:.4g}"))
    print("\nFLOPs savings: the paper's reported figures beside ours")
    shown = table[["item", "model", "reported_saving", "ours_paper_accounting",
                   "ours_full_accounting", "matches_paper", "source"]]
    print(shown.to_string(index=False, float_format=lambda v: f"{v:.1%}"))
    print("\n" + msg_note())
    print("Staged Training: the paper's 16.7 % counts the half-width stage at half cost; the "
          "full accounting counts the half-width model's real FLOPs.")


def run_search(args: argparse.Namespace) -> None:
    table = search_schedules(
        get_config(_model_name(args)), args.steps, target_saving=args.target_saving,
        budget=args.budget, tolerance=args.tolerance,
        stage_counts=tuple(int(v) for v in _floats(args.stage_counts, "--stage-counts")),
        grid=args.grid, rate_values=tuple(_floats(args.rate_values, "--rate-values")),
        min_final_fraction=args.min_final, accounting=args.accounting, seq_len=args.seq_len,
        top=args.top, sampled=tuple(c.strip() for c in args.sample.split(",") if c.strip()))
    if args.json:
        print(table.to_json(orient="records"))
    elif table.empty:
        print("no schedule meets the target and constraints; widen --tolerance, lower "
              "--min-final or add --rate-values")
    else:
        with pd.option_context("display.max_colwidth", 80, "display.width", 200):
            print(table.to_string(float_format=lambda v: f"{v:.3f}"))
