"""Step time of EST's stages against full training and against the FLOPs ideal, side by side.

For each model, measured in one process with variants interleaved round-robin (so drift
hits all alike), median over repeats:
- `layers`: forward+backward of the transformer layers only, on a fixed hidden state;
- `step`: a whole training step (embedding, layers, LM head, loss, backward, AdamW);
for the full model, EST stage 1 (0.5, 0.5, 0.5) and stage 2 (0.5, 0.5, 1) computed by
slicing, and (whole step only) the same subnets computed by masking heads and neurons
(`tests/models/masked_reference.py`: full-size matmuls, skipped layers still skipped). `ideal` is the FLOPs ratio from `est_analysis.cost`.

    python benchmarks/step_time.py --models gpt2-cpu,llama-cpu --repeats 7 --out benchmarks/results
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from pathlib import Path

import pandas as pd
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from est_analysis.cost import layer_step_flops, step_flops  # noqa: E402
from est_analysis.inactive import optimizer_step  # noqa: E402
from est_analysis.io import atomic_write_text  # noqa: E402
from est_analysis.models import build_model  # noqa: E402
from est_analysis.subnet import Subnet  # noqa: E402
from tests.models.masked_reference import masked_forward  # noqa: E402

VARIANTS = {"full": (1.0, 1.0, 1.0), "stage1": (0.5, 0.5, 0.5), "stage2": (0.5, 0.5, 1.0)}


def _layers_only(model, x, subnet):
    h = x
    for block, heads, neurons in model.active_blocks(subnet, x.device):
        h = block(h, heads, neurons)
    h.square().mean().backward()


def _train_step(model, optimizer, idx, subnet, masked):
    logits = masked_forward(model, idx, subnet) if masked else model(idx, subnet)
    F.cross_entropy(logits.flatten(0, 1), idx.roll(-1, 1).flatten()).backward()
    optimizer_step(model, optimizer, subnet, "dense")
    optimizer.zero_grad(set_to_none=True)


def benchmark(model_name: str, batch: int, seq: int, repeats: int) -> pd.DataFrame:
    torch.manual_seed(0)
    model = build_model(model_name)
    config = model.config
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, foreach=False)
    idx = torch.randint(0, config.vocab_size, (batch, seq))
    x = torch.randn(batch, seq, config.d_model, requires_grad=True)
    timings: dict[tuple[str, str], list[float]] = {}
    jobs = []
    for name, rates in VARIANTS.items():
        for masked in ([False] if name == "full" else [False, True]):
            label = f"{name}-masked" if masked else name
            jobs.append((label, rates, masked))
    for repeat in range(repeats + 1):  # the first round warms up
        for label, rates, masked in jobs:
            subnet = Subnet.for_step(config, rates, seed=0, step=repeat)
            for kind in ("step",) if masked else ("layers", "step"):
                t0 = time.perf_counter()
                if kind == "layers":
                    _layers_only(model, x, subnet)
                    model.zero_grad(set_to_none=True)
                else:
                    _train_step(model, optimizer, idx, subnet, masked)
                if repeat:
                    timings.setdefault((label, kind), []).append(time.perf_counter() - t0)
    rows = []
    full_subnet = Subnet.full(config)
    for label, rates, masked in jobs:
        subnet = Subnet.for_step(config, rates, seed=0, step=0)
        ideal = {"layers": layer_step_flops(config, subnet, batch, seq)
                 / layer_step_flops(config, full_subnet, batch, seq),
                 "step": step_flops(config, subnet, batch, seq) / step_flops(config, full_subnet, batch, seq)}
        for kind in ("step",) if masked else ("layers", "step"):
            median = statistics.median(timings[(label, kind)])
            rows.append({"model": model_name, "variant": label, "part": kind,
                         "median_s": median, "ideal_ratio": ideal[kind]})
    table = pd.DataFrame(rows)
    full = table[table.variant == "full"].set_index("part")["median_s"]
    table["time_ratio"] = table["median_s"] / table["part"].map(full)
    table["ratio_over_ideal"] = table["time_ratio"] / table["ideal_ratio"]
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="gpt2-cpu,llama-cpu")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seq", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, help="directory for step_time.csv")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    table = pd.concat([benchmark(m, args.batch, args.seq, args.repeats)
                       for m in args.models.split(",")])
    table["device"] = f"cpu {platform.processor() or platform.machine()}, {args.threads} threads"
    table["torch"] = torch.__version__
    table["batch_x_seq"] = f"{args.batch}x{args.seq}"
    print(table.drop(columns=["device", "torch"]).to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    if args.out:
        atomic_write_text(args.out / "step_time.csv", table.to_csv(index=False))


if __name__ == "__main__":
    main()
