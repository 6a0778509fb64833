"""Wall time of EST against full training, appendix A.3 (Tables 8 and 9), measured side by side.

For a GPT-2-style and a Llama-style config and several micro-batch sizes:
- forward time of the MHA module, the MLP module and a whole transformer layer, full vs EST
  (p_H = p_M = 0.5), as the paper's "GPU time" rows;
- time of a whole training step (forward, backward, the trainer's AdamW) in stage 1
  (0.5, 0.5, 0.5), stage 2 (0.5, 0.5, 1) and stage 3 (Original), plus the same stage-1/2
  subnets computed by naive masking (full-size matmuls with zeroed heads and neurons,
  `tests/models/masked_reference.py`), which saves nothing but skipped layers.
Every time is the median of `--repeats` rounds in which all variants run in turn (drift hits
all alike). `ideal_speedup` is the FLOPs ratio (full accounting, `est_analysis.cost`);
`efficiency` = measured speedup / ideal speedup. The paper's own Table 8/9 speedups (A100)
are printed beside ours, labelled, from `benchmarks/paper_walltime.csv`.

    python benchmarks/walltime.py --out benchmarks/results          # cpu configs, 2 threads
    python benchmarks/walltime.py --models gpt2-124m --batches 8,16,32,48 --seq 1024 --device cuda
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

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from est_analysis.cost import layer_forward_flops, step_flops  # noqa: E402
from est_analysis.inactive import optimizer_step  # noqa: E402
from est_analysis.io import atomic_write_text  # noqa: E402
from est_analysis.models import build_model  # noqa: E402
from est_analysis.subnet import Subnet  # noqa: E402
from est_analysis.train import TrainConfig, make_optimizer  # noqa: E402
from tests.models.masked_reference import masked_forward  # noqa: E402

STAGES = {"stage1": (0.5, 0.5, 0.5), "stage2": (0.5, 0.5, 1.0), "stage3": (1.0, 1.0, 1.0)}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _timed(fn, device: torch.device) -> float:
    _sync(device)
    t0 = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - t0


def _train_step(model, optimizer, idx, subnet, masked: bool) -> None:
    logits = masked_forward(model, idx, subnet) if masked else model(idx, subnet)
    F.cross_entropy(logits.flatten(0, 1), idx.roll(-1, 1).flatten()).backward()
    optimizer_step(model, optimizer, subnet, "dense")
    optimizer.zero_grad(set_to_none=True)


def measure(model_name: str, batch: int, seq: int, repeats: int, device: torch.device) -> list[dict]:
    torch.manual_seed(0)
    model = build_model(model_name).to(device)
    config = model.config
    optimizer = make_optimizer(model, TrainConfig(lr=1e-4))
    idx = torch.randint(0, config.vocab_size, (batch, seq), device=device)
    x = torch.randn(batch, seq, config.d_model, device=device)
    block = model.blocks[0]
    half = Subnet.sample(config, (0.5, 0.5, 1.0), torch.Generator().manual_seed(0)).to(device)
    heads, neurons = half.heads[0], half.neurons[0]
    modules = {  # forward only, as the paper's GPU-time rows
        ("MHA", "full"): lambda: block.attn(x), ("MHA", "est"): lambda: block.attn(x, heads),
        ("MLP", "full"): lambda: block.mlp(x), ("MLP", "est"): lambda: block.mlp(x, neurons),
        ("layer", "full"): lambda: block(x), ("layer", "est"): lambda: block(x, heads, neurons),
    }
    steps = {(stage, "sliced"): rates for stage, rates in STAGES.items()}
    steps |= {(stage, "masked"): STAGES[stage] for stage in ("stage1", "stage2")}
    times: dict[tuple[str, str], list[float]] = {}
    for repeat in range(repeats + 1):  # round 0 warms up
        for key, fn in modules.items():
            elapsed = statistics.median(_timed(fn, device) for _ in range(5))
            if repeat:
                times.setdefault(key, []).append(elapsed)
        for (stage, how), rates in steps.items():
            subnet = Subnet.for_step(config, rates, seed=0, step=repeat).to(device)
            elapsed = _timed(lambda: _train_step(model, optimizer, idx, subnet, how == "masked"), device)
            if repeat:
                times.setdefault((stage, how), []).append(elapsed)

    rows = []
    n_heads, n_neurons = len(heads), len(neurons)
    full_layer = layer_forward_flops(config, config.n_head, config.d_mlp, batch, seq)
    est_layer = layer_forward_flops(config, n_heads, n_neurons, batch, seq)
    module_flops = {
        "MHA": (full_layer["attn_proj"] + full_layer["attn_scores"], est_layer["attn_proj"] + est_layer["attn_scores"]),
        "MLP": (full_layer["mlp"], est_layer["mlp"]),
        "layer": (sum(full_layer.values()), sum(est_layer.values())),
    }
    for part, (flops_full, flops_est) in module_flops.items():
        t_full, t_est = (statistics.median(times[(part, v)]) for v in ("full", "est"))
        rows.append({"part": f"{part} forward", "variant": "EST p=0.5", "full_ms": t_full * 1e3,
                     "variant_ms": t_est * 1e3, "ideal_speedup": flops_full / flops_est})
    full_step = statistics.median(times[("stage3", "sliced")])
    full_flops = step_flops(config, None, batch, seq)
    for (stage, how), rates in steps.items():
        if stage == "stage3":
            continue
        subnet = Subnet.for_step(config, rates, seed=0, step=0)
        rows.append({"part": "training step", "variant": f"{stage} {how}", "full_ms": full_step * 1e3,
                     "variant_ms": statistics.median(times[(stage, how)]) * 1e3,
                     "ideal_speedup": full_flops / step_flops(config, subnet, batch, seq)})
    for row in rows:
        row.update(model=model_name, micro_batch=batch, seq_len=seq)
        row["speedup"] = row["full_ms"] / row["variant_ms"]
        row["efficiency"] = row["speedup"] / row["ideal_speedup"]
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="gpt2-cpu,llama-cpu")
    parser.add_argument("--batches", default="1,2,4,8", help="micro-batch sizes")
    parser.add_argument("--seq", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=2, help="CPU threads")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", type=Path, help="directory for walltime.csv")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    rows = [row for model in args.models.split(",") for batch in map(int, args.batches.split(","))
            for row in measure(model, batch, args.seq, args.repeats, device)]
    table = pd.DataFrame(rows)[["model", "micro_batch", "seq_len", "part", "variant", "full_ms",
                                "variant_ms", "speedup", "ideal_speedup", "efficiency"]]
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else (
        f"cpu {platform.machine()}, {args.threads} threads")
    table["device"], table["torch"] = name, torch.__version__
    print(f"device: {name}; torch {torch.__version__}")
    print(table.drop(columns=["device", "torch", "seq_len"]).to_string(
        index=False, float_format=lambda v: f"{v:.3f}"))
    paper = pd.read_csv(ROOT / "benchmarks" / "paper_walltime.csv")
    paper["paper_speedup"] = paper["paper_full_ms"] / paper["paper_variant_ms"]
    print("\nThe paper's Table 8 (GPT-2 124M, seq 1024) and Table 9 (TinyLlama 1.1B, seq 2048), "
          "A100 80GB, speedups computed from its reported times:")
    print(paper.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    if args.out:
        atomic_write_text(args.out / "walltime.csv", table.to_csv(index=False))


if __name__ == "__main__":
    main()
