"""Run under torchrun by tests/test_distributed.py: every rank draws the subnets of the first
steps of an EST run and rank 0 checks, via all_gather, that all ranks drew the same ones."""

import sys

import torch
import torch.distributed as dist

from est_analysis.methods import build_policy
from est_analysis.models import get_config
from est_analysis.schedule import Schedule


def encode(subnet) -> torch.Tensor:
    parts = [torch.tensor(subnet.layers)]
    parts += [t for t in subnet.heads + subnet.neurons if t is not None]
    return torch.cat(parts)


def main(out: str) -> None:
    dist.init_process_group("gloo")
    torch.manual_seed(dist.get_rank())  # rank-local RNG state must play no part
    policy = build_policy("est", get_config("gpt2-smoke"), 60, seed=7, schedule=Schedule.preset("est-gpt2", 60))
    mismatches = 0
    for step in range(60):
        mine = encode(policy.subnet(step))
        gathered = [torch.empty_like(mine) for _ in range(dist.get_world_size())]
        dist.all_gather(gathered, mine)
        mismatches += sum(not torch.equal(mine, other) for other in gathered)
    if dist.get_rank() == 0:
        with open(out, "w") as f:
            f.write(f"{dist.get_world_size()} {mismatches}")
    dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1])
