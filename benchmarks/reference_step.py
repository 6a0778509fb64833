"""Our compiled full-model training step against the plainest fast GPT-2 step we can write with
the same torch: a minimal reference (pre-LN, fused QKV, SDPA causal attention, GELU MLP, tied
embeddings, the whole model under one torch.compile), timed side by side in alternating rounds
(forward, backward, AdamW step). Issue #18 asks ours to be within 10 % of it.

    python benchmarks/reference_step.py --out benchmarks/results                # gpt2-cpu
    python benchmarks/reference_step.py --model gpt2-124m --batch 16 --seq 1024 --device cuda
"""

from __future__ import annotations

import argparse
import math
import statistics
from pathlib import Path

import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from est_analysis.io import atomic_write_text
from est_analysis.loss import token_loss
from est_analysis.model_config import ModelConfig, get_config
from est_analysis.models import build_model
from est_analysis.repro.walltime import device_name, timed
from est_analysis.training.compiled import compile_blocks
from est_analysis.training.optimizer import make_optimizer


class ReferenceBlock(nn.Module):
    def __init__(self, c: ModelConfig) -> None:
        super().__init__()
        self.ln_1, self.ln_2 = nn.LayerNorm(c.d_model), nn.LayerNorm(c.d_model)
        self.qkv, self.proj = nn.Linear(c.d_model, 3 * c.d_model), nn.Linear(c.d_model, c.d_model)
        self.up, self.down = nn.Linear(c.d_model, c.d_mlp), nn.Linear(c.d_mlp, c.d_model)
        self.n_head = c.n_head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = (z.view(b, t, self.n_head, -1).transpose(1, 2)
                   for z in self.qkv(self.ln_1(x)).split(d, dim=2))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).reshape(b, t, d)
        x = x + self.proj(y)
        return x + self.down(F.gelu(self.up(self.ln_2(x)), approximate="tanh"))


class ReferenceGPT(nn.Module):
    def __init__(self, c: ModelConfig) -> None:
        super().__init__()
        self.wte, self.wpe = nn.Embedding(c.vocab_size, c.d_model), nn.Embedding(c.block_size, c.d_model)
        self.blocks = nn.Sequential(*(ReferenceBlock(c) for _ in range(c.n_layer)))
        self.ln_f = nn.LayerNorm(c.d_model)
        self.head = nn.Linear(c.d_model, c.vocab_size, bias=False)
        self.head.weight = self.wte.weight
        for p in self.parameters():
            if p.dim() > 1:
                nn.init.normal_(p, std=0.02 / math.sqrt(2 * c.n_layer))

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        pos = torch.arange(idx.size(1), device=idx.device)
        return self.head(self.ln_f(self.blocks(self.wte(idx) + self.wpe(pos))))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="gpt2-cpu")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seq", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", type=Path, help="directory for reference_step.csv")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    torch.manual_seed(0)
    ours = build_model(args.model).to(device)
    compile_blocks(ours)
    reference = torch.compile(ReferenceGPT(get_config(args.model)).to(device))
    idx = torch.randint(0, ours.config.vocab_size, (args.batch, args.seq), device=device)
    steps = {}
    for name, model in (("ours (blocks compiled)", ours), ("reference (whole model compiled)", reference)):
        optimizer = make_optimizer(model, lr=1e-4)

        def step(model=model, optimizer=optimizer) -> None:
            token_loss(model(idx), idx.roll(-1, 1)).backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        steps[name] = step
    times: dict[str, list[float]] = {name: [] for name in steps}
    for repeat in range(args.repeats + 2):  # two warm-up rounds compile
        for name, step in steps.items():
            elapsed = timed(step, device)
            if repeat >= 2:
                times[name].append(elapsed)
    reference_ms = statistics.median(times["reference (whole model compiled)"]) * 1e3
    table = pd.DataFrame([{"model": args.model, "micro_batch": args.batch, "seq_len": args.seq,
                           "variant": name, "step_ms": statistics.median(t) * 1e3,
                           "vs_reference": statistics.median(t) * 1e3 / reference_ms}
                          for name, t in times.items()])
    table["device"], table["torch"] = device_name(device, args.threads), torch.__version__
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    if args.out:
        atomic_write_text(args.out / "reference_step.csv", table.to_csv(index=False))


if __name__ == "__main__":
    main()
