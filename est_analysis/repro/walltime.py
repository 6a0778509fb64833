"""Wall time of EST against full training, appendix A.3 (Tables 8 and 9), measured side by side.

For each model config and micro-batch size:
- forward time of the MHA module, the MLP module and a whole transformer layer, full vs EST
  (p_H = p_M = 0.5), as the paper's "GPU time" rows;
- time of a whole training step (forward, backward, the trainer's AdamW) in stage 1
  (0.5, 0.5, 0.5), stage 2 (0.5, 0.5, 1) and stage 3 (Original), plus the same stage-1/2
  subnets computed by masking (`models.masked`: full-size matmuls with zeroed heads and
  neurons), which saves nothing but skipped layers.
Every time is the median of `repeats` rounds in which all variants run in turn (drift hits all
alike). With `compiled`, every block is compiled first (`training.compiled`, as `--compile`
trains) and round 0 compiles each variant's graphs; the module rows stay eager. `ideal_speedup` is the FLOPs ratio (full accounting, `est_analysis.cost`);
`efficiency` = measured speedup / ideal speedup. `paper_walltime` gives the paper's own
Table 8/9 speedups (A100), for display beside ours.
"""

from __future__ import annotations

import platform
import statistics
import time
from typing import Callable

import pandas as pd
import torch

from est_analysis.cost.flops import layer_forward_flops, step_flops
from est_analysis.models import Decoder, build_model
from est_analysis.models.masked import masked_forward
from est_analysis.paper import paper_numbers
from est_analysis.subnet import Subnet
from est_analysis.training.compiled import compile_blocks
from est_analysis.training.optimizer import make_optimizer, optimizer_step

STAGES = {"stage1": (0.5, 0.5, 0.5), "stage2": (0.5, 0.5, 1.0), "stage3": (1.0, 1.0, 1.0)}
COLUMNS = ["model", "micro_batch", "seq_len", "compiled", "part", "variant", "full_ms",
           "variant_ms", "speedup", "ideal_speedup", "efficiency"]


def timed(fn: Callable[[], object], device: torch.device) -> float:
    """Seconds `fn` takes, the device synchronised before and after (CUDA)."""
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t0


def _train_step(model: Decoder, optimizer: torch.optim.Optimizer, idx: torch.Tensor,
                subnet: Subnet, masked: bool) -> None:
    targets = idx.roll(-1, 1)
    loss = masked_forward(model, idx, subnet, targets) if masked else model(idx, subnet, targets)
    loss.backward()
    optimizer_step(model, optimizer, subnet, "dense")
    optimizer.zero_grad(set_to_none=True)


def measure(model_name: str, batch: int, seq: int, repeats: int, device: torch.device,
            compiled: bool = False) -> list[dict]:
    """The rows of one model at one micro-batch size (columns `COLUMNS`)."""
    torch.manual_seed(0)
    model = build_model(model_name).to(device)
    if compiled:
        compile_blocks(model)
    config = model.config
    optimizer = make_optimizer(model, lr=1e-4)
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
            elapsed = statistics.median(timed(fn, device) for _ in range(5))
            if repeat:
                times.setdefault(key, []).append(elapsed)
        for (stage, how), rates in steps.items():
            subnet = Subnet.for_step(config, rates, seed=0, step=repeat).to(device)
            elapsed = timed(lambda: _train_step(model, optimizer, idx, subnet, how == "masked"), device)
            if repeat:
                times.setdefault((stage, how), []).append(elapsed)

    rows = []
    full_layer = layer_forward_flops(config, config.n_head, config.d_mlp, batch, seq)
    est_layer = layer_forward_flops(config, len(heads), len(neurons), batch, seq)
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
        row.update(model=model_name, micro_batch=batch, seq_len=seq, compiled=compiled)
        row["speedup"] = row["full_ms"] / row["variant_ms"]
        row["efficiency"] = row["speedup"] / row["ideal_speedup"]
    return rows


def device_name(device: torch.device, threads: int) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu {platform.machine()}, {threads} threads"


def walltime_table(models: list[str], batches: list[int], seq: int, repeats: int = 7,
                   threads: int = 2, device: str | torch.device = "cpu",
                   compiled: tuple[bool, ...] = (False,)) -> pd.DataFrame:
    """Every model at every micro-batch size, eager and/or compiled (`compiled`), with the
    device and torch version; the torch thread count is set to `threads` for the measurement
    and restored afterwards."""
    device, previous = torch.device(device), torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        rows = [row for model in models for batch in batches for mode in compiled
                for row in measure(model, batch, seq, repeats, device, mode)]
    finally:
        torch.set_num_threads(previous)
    table = pd.DataFrame(rows)[COLUMNS]
    table["device"], table["torch"] = device_name(device, threads), torch.__version__
    return table


def paper_walltime() -> pd.DataFrame:
    """The paper's Table 8 (GPT-2 124M, seq 1024) and Table 9 (TinyLlama 1.1B, seq 2048) times
    on an A100 80GB, with the speedups computed from them."""
    times = paper_numbers("walltime").pivot_table(
        index=["source", "model", "micro_batch", "part", "label"], columns="metric",
        values="value", sort=False).reset_index()
    table = times.rename(columns={"label": "variant", "full_ms": "paper_full_ms",
                                  "variant_ms": "paper_variant_ms"})
    table["paper_speedup"] = table["paper_full_ms"] / table["paper_variant_ms"]
    return table[["source", "model", "micro_batch", "part", "variant", "paper_full_ms",
                  "paper_variant_ms", "paper_speedup"]]
