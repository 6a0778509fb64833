"""`est export`: a trained run as an HF transformers model directory."""

from __future__ import annotations

import argparse
from pathlib import Path

from est_analysis.cli.options import add_run_argument
from est_analysis.export import export_run

EXAMPLES = """examples:
  est export runs/smoke --to exported/smoke
  python -c "from transformers import AutoModelForCausalLM as M; M.from_pretrained('exported/smoke')"
  est hessian trace exported/smoke      # the analysis commands read such directories too
"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="write a run as an HF transformers model directory "
                       "(GPT2LMHeadModel / LlamaForCausalLM, safetensors, tokenizer)",
                       description=__doc__, epilog=EXAMPLES,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    add_run_argument(p)
    p.add_argument("--to", required=True, type=Path, help="new output directory")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> None:
    out = export_run(args.run, args.to)
    print(f"wrote {out} (load offline: AutoModelForCausalLM.from_pretrained({str(out)!r}))")
