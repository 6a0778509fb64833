"""Memory a run or an HVP batch needs, estimated before anything large is allocated, and the
memory this process may still take (the machine's available memory, a cgroup limit, an address-
space limit, or the GPU's free memory). What cannot fit is refused with both figures; an
allocator failure that still happens is reported the same way instead of a traceback.

The estimate counts fp32 values: weights, gradients and AdamW's two moments (16 bytes per
parameter), and per token of a micro-batch the activations kept for backward, about
8 d + 2 d_mlp + 2 n_head T values per layer (inputs of the norms and projections, the MLP's
hidden units before and after the activation, attention scores and probabilities), plus the
logits, their log-softmax and gradient (3 V). It is a floor, not a bound: allocator slack and
temporaries come on top.
"""

from __future__ import annotations

import torch

from est_analysis.host_memory import gib, host_available_bytes
from est_analysis.model_config import ModelConfig
from est_analysis.models import build_model
from est_analysis.training.config import TrainConfig

BYTES_PER_VALUE = 4
OPTIMIZER_BYTES_PER_PARAM = 16  # weight, gradient, AdamW exp_avg and exp_avg_sq
HVP_GRAPH_FACTOR = 3  # a Hessian-vector product keeps the gradient's graph and differentiates it


def activation_bytes(config: ModelConfig, batch_size: int, seq_len: int) -> int:
    """Activations one micro-batch keeps for backward (full model)."""
    per_token = (config.n_layer * (8 * config.d_model + 2 * config.d_mlp + 2 * config.n_head * seq_len)
                 + 3 * config.vocab_size)
    return batch_size * seq_len * per_token * BYTES_PER_VALUE


def param_count(config: ModelConfig) -> int:
    with torch.device("meta"):
        return sum(p.numel() for p in build_model(config).parameters())


def training_bytes(config: ModelConfig, batch_size: int, seq_len: int) -> int:
    return (param_count(config) * OPTIMIZER_BYTES_PER_PARAM
            + activation_bytes(config, batch_size, seq_len))


def hvp_bytes(config: ModelConfig, batch_size: int, seq_len: int) -> int:
    return (param_count(config) * BYTES_PER_VALUE * 4
            + HVP_GRAPH_FACTOR * activation_bytes(config, batch_size, seq_len))


def available_bytes(device: torch.device) -> int | None:
    """What this process may still allocate on `device` (None: unknown)."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    return host_available_bytes() if device.type == "cpu" else None


def check_memory(need: int, device: torch.device, what: str, fix: str) -> None:
    """Refuse `what` when its estimated `need` exceeds what `device` has available."""
    available = available_bytes(device)
    if available is not None and need > available:
        raise MemoryError(f"{what} needs about {gib(need)} of memory (estimated: "
                          f"est_analysis.training.memory) but {gib(available)} is available on "
                          f"{device}; {fix}")


def is_out_of_memory(err: BaseException) -> bool:
    """An allocator failure (CPU or GPU), whatever torch calls it."""
    if isinstance(err, (MemoryError, torch.OutOfMemoryError)):
        return True
    text = str(err)
    return isinstance(err, RuntimeError) and any(
        s in text for s in ("can't allocate memory", "DefaultCPUAllocator", "out of memory",
                            "not enough memory"))


def out_of_memory_message(cfg: TrainConfig, step: int | None, err: BaseException) -> str:
    """One line for a run that ran out of memory at `step` (None: at start): where, the
    micro-batch, what to change."""
    if isinstance(err, MemoryError) and "needs about" in str(err):
        return str(err)  # refused by `check_memory`: already says it all
    where = "at start" if step is None else f"at step {step}"
    return (f"out of memory {where} (batch {cfg.batch_size} x {cfg.seq_len} tokens per "
            f"micro-batch, {cfg.grad_accum} micro-batches per step): lower --batch-size and raise "
            "--grad-accum to keep the step's tokens, or use a smaller --model")
