"""Wall time of EST against full training (appendix A.3, Tables 8 and 9), measured side by side
by `est_analysis.repro.walltime`; the paper's own speedups are printed beside ours, labelled.

    python benchmarks/walltime.py --out benchmarks/results          # cpu configs, 2 threads
    python benchmarks/walltime.py --models gpt2-124m --batches 8,16,32,48 --seq 1024 --device cuda
    python benchmarks/walltime.py --compile both   # eager and compiled blocks, side by side
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from est_analysis.io import atomic_write_text
from est_analysis.repro.walltime import paper_walltime, walltime_table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="gpt2-cpu,llama-cpu")
    parser.add_argument("--batches", default="1,2,4,8", help="micro-batch sizes")
    parser.add_argument("--seq", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=2, help="CPU threads")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--compile", choices=("off", "on", "both"), default="off",
                        help="time eager blocks, compiled blocks (--compile), or both")
    parser.add_argument("--out", type=Path, help="directory for walltime.csv")
    args = parser.parse_args()
    table = walltime_table(args.models.split(","), [int(b) for b in args.batches.split(",")],
                           args.seq, args.repeats, args.threads, args.device,
                           {"off": (False,), "on": (True,), "both": (False, True)}[args.compile])
    print(f"device: {table['device'].iloc[0]}; torch {torch.__version__}")
    print(table.drop(columns=["device", "torch", "seq_len"]).to_string(
        index=False, float_format=lambda v: f"{v:.3f}"))
    print("\nThe paper's Table 8 (GPT-2 124M, seq 1024) and Table 9 (TinyLlama 1.1B, seq 2048), "
          "A100 80GB, speedups computed from its reported times:")
    print(paper_walltime().to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    if args.out:
        name = "walltime.csv" if args.compile == "off" else f"walltime_compile_{args.compile}.csv"
        atomic_write_text(args.out / name, table.to_csv(index=False))


if __name__ == "__main__":
    main()
