"""Multi-vector products (issue #34): 32 products one vector at a time against `matmat` blocks
of 8, 16 and 32 vectors, per curvature operator, on the same model and batch, interleaved
rounds (median of `--repeats`).

    python benchmarks/curvature_blocks.py --out benchmarks/results
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import pandas as pd
import torch

from est_analysis.hessian import OPERATORS, curvature_operator
from est_analysis.io import atomic_write_text
from est_analysis.models import build_model
from est_analysis.repro.walltime import device_name


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="gpt2-smoke")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--seq", type=int, default=64)
    parser.add_argument("--vectors", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = build_model(args.model)
    batch = [(torch.randint(0, model.config.vocab_size, (args.batch, args.seq)),) * 2]
    rows = []
    for name in sorted(OPERATORS):
        op = curvature_operator(name, model, batch)
        vectors = torch.randn(op.size, args.vectors)
        ways = {"one at a time": lambda: [op.matvec(vectors[:, i]) for i in range(args.vectors)]}
        for chunk in (8, 16, 32):
            ways[f"blocks of {chunk}"] = lambda chunk=chunk: (setattr(op, "chunk", chunk), op.matmat(vectors))
        times: dict[str, list[float]] = {way: [] for way in ways}
        for repeat in range(args.repeats + 1):  # round 0 warms up
            for way, run in ways.items():
                start = time.perf_counter()
                run()
                if repeat:
                    times[way].append(time.perf_counter() - start)
        single = statistics.median(times["one at a time"])
        for way, values in times.items():
            rows.append({"model": args.model, "operator": name, "products": args.vectors, "way": way,
                         "seconds": statistics.median(values), "speedup": single / statistics.median(values)})
    table = pd.DataFrame(rows)
    table["device"], table["torch"] = device_name(torch.device("cpu"), args.threads), torch.__version__
    print(table.drop(columns=["device", "torch"]).to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    if args.out:
        atomic_write_text(args.out / "curvature_blocks.csv", table.to_csv(index=False))


if __name__ == "__main__":
    main()
