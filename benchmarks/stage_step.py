"""EST's stage steps against nanoGPT's own full step (issue #35): how close each stage comes to its
FLOPs-ideal speed-up over the model researchers compare with, eager and compiled.

nanoGPT is not on the package index: pass the `model.py` of a nanoGPT checkout
(https://github.com/karpathy/nanoGPT). Both models get the same config (`gpt2-cpu` by default:
bias, tied embeddings, no dropout), the same batch and AdamW settings (nanoGPT's own
`configure_optimizers`, which fuses AdamW on CUDA only; ours `make_optimizer`, fused on CPU and
CUDA). `efficiency` is against nanoGPT as shipped, `efficiency_same_optimizer` against nanoGPT
given the same fused AdamW, so the optimizer's share of the gain can be read off, and
`efficiency_vs_own_full` against our own full step (how well the subnet alone scales). A step is what each trainer does: forward, loss,
backward, gradient clipping, optimizer step, zero_grad; ours through `optimizer_step` with the
default `dense` treatment of parameters outside the subnet (and stage 1 once more with
`torch-default`, which leaves skipped layers out of AdamW: the price of `dense`). Rounds interleave every variant;
each ratio is the median over `--repeats` rounds of the ratio within a round (with its
quartiles: `efficiency_q25`, `efficiency_q75`), so that a machine whose speed drifts between
rounds moves both sides of a ratio; `step_ms` is the median time. A second table splits each of our steps into
forward and loss (our loss makes its gradient at the head during the forward pass), backward,
clip and optimizer (timers inside one step).

    python benchmarks/stage_step.py --nanogpt ~/nanoGPT/model.py --out benchmarks/results
    # the same with glibc keeping freed memory (no page faults for either side)
    MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=17179869184 MALLOC_TOP_PAD_=1073741824 \
        python benchmarks/stage_step.py --nanogpt ~/nanoGPT/model.py --out benchmarks/results --name stage_step_heap
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import time
from pathlib import Path

import pandas as pd
import torch

from est_analysis.cost.flops import step_flops
from est_analysis.io import atomic_write_text
from est_analysis.models import build_model
from est_analysis.repro.walltime import STAGES, device_name, timed
from est_analysis.subnet import Subnet
from est_analysis.training.compiled import compile_blocks
from est_analysis.training.optimizer import make_optimizer, optimizer_step

# our loss and its gradient at the head are computed in the forward pass (models.head_loss)
PHASES = ("forward+loss", "backward", "clip", "optimizer")


def load_nanogpt(path: Path):
    if not path.is_file() or path.name != "model.py":
        raise SystemExit(f"--nanogpt {path}: give the model.py of a nanoGPT checkout "
                         "(git clone https://github.com/karpathy/nanoGPT)")
    spec = importlib.util.spec_from_file_location("nanogpt_model", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def nanogpt_step(module, config, idx: torch.Tensor, compiled: bool, fused: bool = False):
    """nanoGPT's step; its `configure_optimizers` fuses AdamW on CUDA only, `fused` asks for it here too."""
    model = module.GPT(module.GPTConfig(block_size=config.block_size, vocab_size=config.vocab_size,
                                        n_layer=config.n_layer, n_head=config.n_head,
                                        n_embd=config.d_model, dropout=0.0, bias=True))
    optimizer = model.configure_optimizers(0.1, 1e-4, (0.9, 0.95), idx.device.type)
    if fused:
        groups = [{"params": g["params"], "weight_decay": g["weight_decay"]} for g in optimizer.param_groups]
        optimizer = torch.optim.AdamW(groups, lr=1e-4, betas=(0.9, 0.95), fused=True)
    forward = torch.compile(model) if compiled else model
    targets = idx.roll(-1, 1)

    def step() -> None:
        _, loss = forward(idx, targets)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return step


def our_step(model, optimizer, idx: torch.Tensor, rates, phases: dict | None = None,
             inactive: str = "dense"):
    targets, device, round_ = idx.roll(-1, 1), idx.device, [0]

    def step() -> None:
        subnet = Subnet.for_step(model.config, rates, seed=0, step=round_[0]).to(device)
        round_[0] += 1
        marks = [time.perf_counter()]
        loss = model(idx, subnet, targets)
        marks.append(time.perf_counter())
        loss.backward()
        marks.append(time.perf_counter())
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        marks.append(time.perf_counter())
        optimizer_step(model, optimizer, subnet, inactive)
        optimizer.zero_grad(set_to_none=True)
        marks.append(time.perf_counter())
        if phases is not None:
            for name, a, b in zip(PHASES, marks, marks[1:]):
                phases.setdefault(name, []).append(b - a)
    return step


def measure(module, model_name: str, batch: int, seq: int, repeats: int, compiled: bool,
            device: torch.device) -> tuple[list[dict], list[dict]]:
    torch.manual_seed(0)
    ours = build_model(model_name).to(device)
    if compiled:
        compile_blocks(ours)
    config = ours.config
    idx = torch.randint(0, config.vocab_size, (batch, seq), device=device)
    optimizer = make_optimizer(ours, lr=1e-4)
    phases = {stage: {} for stage in STAGES}
    steps = {"nanoGPT full": nanogpt_step(module, config, idx, compiled),
             "nanoGPT full fused-adamw": nanogpt_step(module, config, idx, compiled, fused=True)}
    steps |= {f"ours {stage}": our_step(ours, optimizer, idx, rates, phases[stage])
              for stage, rates in STAGES.items()}
    # the same stage 1 with skipped layers left out of AdamW (what `dense` costs)
    steps["ours stage1 torch-default"] = our_step(ours, optimizer, idx, STAGES["stage1"],
                                                  inactive="torch-default")
    times: dict[str, list[float]] = {name: [] for name in steps}
    for repeat in range(repeats + 2):  # two warm-up rounds (compilation, allocator)
        for name, step in steps.items():
            elapsed = timed(step, device)
            if repeat >= 2:
                times[name].append(elapsed)
    full_flops = step_flops(config, None, batch, seq)

    def paired(reference: str, name: str) -> list[float]:
        """Per-round speed-ups of `name` over `reference`: both ran in the same round, seconds
        apart, so a machine that drifts between rounds moves both."""
        return [a / b for a, b in zip(times[reference], times[name])]
    rows = []
    for name, values in times.items():
        stage = name.removeprefix("ours ").removeprefix("nanoGPT ").split()[0]
        rates = STAGES.get(stage, (1.0, 1.0, 1.0))
        ideal = full_flops / step_flops(config, Subnet.for_step(config, rates, 0, 0), batch, seq)
        speedups = paired("nanoGPT full", name)
        q25, _, q75 = statistics.quantiles(speedups, n=4)
        rows.append({"model": model_name, "micro_batch": batch, "seq_len": seq, "compiled": compiled,
                     "variant": name, "step_ms": statistics.median(values) * 1e3,
                     "speedup_vs_nanogpt": statistics.median(speedups), "ideal_speedup": ideal,
                     "efficiency": statistics.median(speedups) / ideal,
                     "efficiency_q25": q25 / ideal, "efficiency_q75": q75 / ideal,
                     "efficiency_same_optimizer":
                         statistics.median(paired("nanoGPT full fused-adamw", name)) / ideal,
                     "efficiency_vs_own_full": statistics.median(paired("ours stage3", name)) / ideal})
    profile = [{"model": model_name, "compiled": compiled, "stage": stage, "phase": phase,
                "ms": statistics.median(values[2:]) * 1e3}
               for stage, by_phase in phases.items() for phase, values in by_phase.items()]
    return rows, profile


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nanogpt", type=Path, required=True, help="nanoGPT's model.py")
    parser.add_argument("--model", default="gpt2-cpu")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seq", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--compile", choices=("eager", "compiled", "both"), default="both")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", type=Path, help="directory for NAME.csv and NAME_profile.csv")
    parser.add_argument("--name", default="stage_step", help="file name stem (default %(default)s)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device, module = torch.device(args.device), load_nanogpt(args.nanogpt)
    modes = {"eager": [False], "compiled": [True], "both": [False, True]}[args.compile]
    rows, profile = [], []
    for compiled in modes:
        r, p = measure(module, args.model, args.batch, args.seq, args.repeats, compiled, device)
        rows += r
        profile += p
    table, breakdown = pd.DataFrame(rows), pd.DataFrame(profile)
    table["device"], table["torch"] = device_name(device, args.threads), torch.__version__
    print(table.drop(columns=["device", "torch"]).to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    shares = breakdown.pivot_table(index=["compiled", "stage"], columns="phase", values="ms")[list(PHASES)]
    print(shares.round(1).to_string())
    if args.out:
        atomic_write_text(args.out / f"{args.name}.csv", table.to_csv(index=False))
        atomic_write_text(args.out / f"{args.name}_profile.csv", breakdown.to_csv(index=False))


if __name__ == "__main__":
    main()
