"""`est list`: schedule presets, model configs, scales and methods."""

from __future__ import annotations

import argparse
import json
from dataclasses import fields

from est_analysis.methods import METHOD_SUMMARIES, OPTIONS
from est_analysis.models import MODEL_CONFIGS
from est_analysis.schedule import PRESETS
from est_analysis.training.recipes import RECIPES


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("list", help="show schedule presets, model configs, scales and methods")
    p.add_argument("--json", action="store_true", help="print as JSON")
    p.set_defaults(func=run)


def everything() -> dict:
    return {
        "presets": {n: {"boundaries_in_paper_steps": list(p.boundaries),
                        "rates": [list(r) for r in p.rates], "description": p.description}
                    for n, p in PRESETS.items()},
        "models": {n: c.to_dict() for n, c in MODEL_CONFIGS.items()},
        "scales": {f"{s}/{a}": vars(r) for (s, a), r in RECIPES.items()},
        "methods": {n: {"description": d, "options": {f.name: f.default for f in
                                                       fields(OPTIONS[n])} if OPTIONS[n] else {}}
                    for n, d in METHOD_SUMMARIES.items()},
    }


def run(args: argparse.Namespace) -> None:
    table = everything()
    if args.json:
        print(json.dumps(table, indent=2))
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
    for name, method in table["methods"].items():
        options = " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                           for k, v in method["options"].items())
        print(f"  {name:11s} {method['description']}" + (f"\n  {'':11s} {options}" if options else ""))
