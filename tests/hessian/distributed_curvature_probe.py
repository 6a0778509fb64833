"""Run under torchrun by tests/hessian/test_curvature_distributed.py: each rank builds every
curvature operator on its share of the batches (rank r takes batches r, r + world, ...) and
rank 0 saves the products of fixed vectors, which the test compares with one process."""

import sys

import torch
import torch.distributed as dist

from est_analysis.hessian import OPERATORS, curvature_operator
from tests.hessian.test_curvature_exact import _setup

VECTORS = 3


def products(batches) -> dict[str, torch.Tensor]:
    model, _ = _setup("gpt2")
    size = sum(p.numel() for p in model.parameters())
    v = torch.randn(size, VECTORS, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    return {name: curvature_operator(name, model, batches, mc_samples=3, seed=1).matmat(v)
            for name in sorted(OPERATORS)}


def main(out: str) -> None:
    dist.init_process_group("gloo")
    _, batches = _setup("gpt2")
    rank, world = dist.get_rank(), dist.get_world_size()
    result = products(batches[rank::world])
    if rank == 0:
        torch.save(result, out)
    dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1])
