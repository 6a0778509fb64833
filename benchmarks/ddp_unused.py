"""Cost of DDP's `find_unused_parameters=True`, which the trainer turns on for schedules that
skip layers: full-model training steps timed with the flag on and off, interleaved, on 2 CPU
processes (gloo), `cpu`-scale GPT-2, 4 sequences x 256 tokens per rank.

    python benchmarks/ddp_unused.py            # launches itself under torchrun
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from est_analysis.loss import token_loss
from est_analysis.models import build_model
from est_analysis.training.optimizer import make_optimizer


def worker(rounds: int = 6, steps: int = 4) -> None:
    dist.init_process_group("gloo")
    wrapped, optimizers = {}, {}
    for flag in (False, True):  # one model per DDP instance: a reducer hooks its parameters
        torch.manual_seed(0)
        model = build_model("gpt2-cpu")
        wrapped[flag] = DistributedDataParallel(model, find_unused_parameters=flag)
        optimizers[flag] = make_optimizer(model, lr=1e-4)
    idx = torch.randint(0, model.config.vocab_size, (4, 256))
    times: dict[bool, list[float]] = {False: [], True: []}
    for round_ in range(rounds + 1):
        for flag, ddp in wrapped.items():
            t0 = time.perf_counter()
            for _ in range(steps):
                token_loss(ddp(idx), idx.roll(-1, 1)).backward()
                optimizers[flag].step()
                optimizers[flag].zero_grad(set_to_none=True)
            if round_:
                times[flag].append((time.perf_counter() - t0) / steps)
    if dist.get_rank() == 0:
        off, on = statistics.median(times[False]), statistics.median(times[True])
        print(f"2 gloo ranks, gpt2-cpu, 4x256 per rank: step {off * 1e3:.1f} ms without "
              f"find_unused_parameters, {on * 1e3:.1f} ms with it ({on / off - 1:+.1%})")
    dist.destroy_process_group()


if __name__ == "__main__":
    if "WORLD_SIZE" in os.environ:
        worker()
    else:
        sys.exit(subprocess.call([sys.executable, "-m", "torch.distributed.run", "--standalone",
                                  "--nproc_per_node=2", __file__]))
