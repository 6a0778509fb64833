"""Multi-process training on PyTorch's DistributedDataParallel, launched by `torchrun`.

`torchrun` sets RANK, WORLD_SIZE and LOCAL_RANK; `init_from_env` joins the process group
(`nccl` on CUDA, `gloo` on CPU). Subnets are drawn from (seed, step) in every process, so all
ranks train the same subnet without communicating; each rank takes its own rows of the
step's global batch (no overlap), DDP averages the gradients, and only rank 0 writes files.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

import torch
import torch.distributed as dist

from est_analysis.domains import NONNEGATIVE_INT, POSITIVE_INT, environment


@dataclass(frozen=True)
class DistContext:
    rank: int = 0
    world_size: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world_size > 1

    def rows(self, batch_size: int) -> slice:
        """This rank's rows of a global batch of `batch_size` sequences."""
        if batch_size % self.world_size:
            raise ValueError(f"batch_size={batch_size} is not divisible by the {self.world_size} "
                             "processes; the global batch is split evenly across ranks")
        share = batch_size // self.world_size
        return slice(self.rank * share, (self.rank + 1) * share)

    def mean(self, value: float) -> float:
        """The average of `value` over all ranks."""
        if not self.active:
            return value
        tensor = torch.tensor([value], dtype=torch.float64, device=self.device)
        dist.all_reduce(tensor)
        return tensor.item() / self.world_size

    def agree(self, flag: bool) -> bool:
        """True on every rank if any rank says True (e.g. 'an error occurred')."""
        if not self.active:
            return flag
        tensor = torch.tensor([float(flag)], device=self.device)
        dist.all_reduce(tensor)
        return tensor.item() > 0

    def barrier(self) -> None:
        if self.active:
            dist.barrier()


def init_from_env(device: torch.device) -> DistContext:
    """Join the process group torchrun set up, or return a single-process context."""
    world_size = environment("WORLD_SIZE", 1, POSITIVE_INT)
    rank = environment("RANK", 0, NONNEGATIVE_INT)
    local_rank = environment("LOCAL_RANK", 0, NONNEGATIVE_INT)
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):  # torch ignores bad ones silently
        environment(name, None, POSITIVE_INT)
    if rank >= world_size:
        raise ValueError(f"environment variable RANK={rank} must be below WORLD_SIZE={world_size}")
    if world_size == 1:
        return DistContext(device=device)
    if device.type == "cuda":
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return DistContext(dist.get_rank(), world_size, device)


def shutdown(context: DistContext) -> None:
    if context.active and dist.is_initialized():
        dist.destroy_process_group()


def torchrun_command(nproc: int, cli_args: list[str]) -> list[str]:
    """`torchrun --standalone --nproc_per_node N -m est_analysis.cli ARGS` for this Python."""
    return [sys.executable, "-m", "torch.distributed.run", "--standalone",
            f"--nproc_per_node={nproc}", "-m", "est_analysis.cli", *cli_args]
