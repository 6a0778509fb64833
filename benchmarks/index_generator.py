"""Overhead of subnet sampling (appendix B.3), as a fraction of the training step time.

Measures, side by side at the `cpu` recipe: the time to draw one step's subnet synchronously,
the time the training loop waits on the asynchronous index generator, and the step time.
Also the synchronous draw time for the paper's models, whose index sets are larger.

    python benchmarks/index_generator.py --steps 30
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from est_analysis.loss import token_loss
from est_analysis.methods import build_policy
from est_analysis.models import build_model, get_config
from est_analysis.schedule import Schedule
from est_analysis.training.index_generator import IndexGenerator
from est_analysis.training.optimizer import optimizer_step


def draw_time(model: str, n: int = 50) -> float:
    policy = build_policy("est", get_config(model), 150, seed=0, schedule=Schedule.preset("est-gpt2", 150))
    t0 = time.perf_counter()
    for step in range(n):
        policy.subnet(step)  # steps 0..49 are stage 1: all three dimensions sampled
    return (time.perf_counter() - t0) / n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = build_model("gpt2-cpu")
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, foreach=False)
    idx = torch.randint(0, model.config.vocab_size, (8, 256))
    policy = build_policy("est", model.config, 3 * args.steps, seed=0, schedule=Schedule.preset("est-gpt2", 3 * args.steps))
    waits, steps = [], []
    with IndexGenerator(policy, 0, args.steps) as generator:
        for step in range(args.steps):
            t0 = time.perf_counter()
            subnet = generator.get(step)
            t1 = time.perf_counter()
            token_loss(model(idx, subnet), idx.roll(-1, 1)).backward()
            optimizer_step(model, optimizer, subnet)
            optimizer.zero_grad(set_to_none=True)
            waits.append(t1 - t0)
            steps.append(time.perf_counter() - t0)
    step_s, wait_s = statistics.median(steps[1:]), statistics.median(waits[1:])
    sync_s = draw_time("gpt2-cpu")
    print(f"gpt2-cpu EST step, stages 1-2 (batch 8x256): {step_s * 1e3:.1f} ms (median)")
    print(f"  synchronous subnet draw: {sync_s * 1e3:.3f} ms = {sync_s / step_s:.2%} of a step")
    print(f"  wait on async generator: {wait_s * 1e3:.3f} ms = {wait_s / step_s:.2%} of a step "
          f"(median; mean {statistics.mean(waits[1:]) * 1e3:.3f} ms)")
    for name in ("gpt2-124m", "tinyllama-1.1b"):
        print(f"{name}: synchronous stage-1 subnet draw {draw_time(name) * 1e3:.3f} ms")


if __name__ == "__main__":
    main()
