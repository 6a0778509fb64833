"""Analytic FLOPs of a training step, the single source of truth for the trainer's FLOPs column.

Counted: every matrix multiplication the step executes (2 FLOPs per multiply-add), per module:
attention projections, attention scores (QK^T and AV, quadratic in sequence length; the full
T x T product, as the math attention kernel computes it), MLP, LM head. The backward pass
costs twice the forward (gradients of inputs and of weights), so a step is 3x the forward.
Norms, softmax, activations and embedding lookups are not matmuls and are not counted, as
in `torch.utils.flop_counter.FlopCounterMode`, which the tests compare against.
"""

from __future__ import annotations

from est_analysis.models.config import ModelConfig
from est_analysis.subnet import Subnet

BACKWARD_FACTOR = 3  # forward + backward = 3 x forward for matmuls


def layer_forward_flops(config: ModelConfig, n_heads: int, n_neurons: int, batch_size: int,
                        seq_len: int) -> dict[str, int]:
    """Forward FLOPs of one transformer layer keeping `n_heads` query heads and `n_neurons`."""
    tokens, d, hd = batch_size * seq_len, config.d_model, config.head_dim
    q_width = n_heads * hd
    kv_width = n_heads // config.group_size * hd
    mlp_matrices = 3 if config.arch == "llama" else 2  # SwiGLU has a gate matrix
    return {
        "attn_proj": 2 * tokens * d * (2 * q_width + 2 * kv_width),  # Q, K, V and output
        "attn_scores": 2 * 2 * batch_size * seq_len * seq_len * q_width,  # QK^T and AV
        "mlp": 2 * tokens * d * n_neurons * mlp_matrices,
    }


def forward_flops(config: ModelConfig, subnet: Subnet | None, batch_size: int, seq_len: int
                  ) -> dict[str, int]:
    """Forward FLOPs of the subnet (None = full model) by module kind, plus the LM head."""
    subnet = subnet or Subnet.full(config)
    total = {"attn_proj": 0, "attn_scores": 0, "mlp": 0}
    for n_heads, n_neurons in subnet.counts(config):
        for kind, flops in layer_forward_flops(config, n_heads, n_neurons, batch_size, seq_len).items():
            total[kind] += flops
    total["lm_head"] = 2 * batch_size * seq_len * config.d_model * config.vocab_size
    return total


def step_flops(config: ModelConfig, subnet: Subnet | None, batch_size: int, seq_len: int) -> int:
    """FLOPs of one forward+backward pass of the subnet on a (batch_size, seq_len) batch."""
    return BACKWARD_FACTOR * sum(forward_flops(config, subnet, batch_size, seq_len).values())


def layer_step_flops(config: ModelConfig, subnet: Subnet | None, batch_size: int,
                     seq_len: int) -> int:
    """The transformer-layer part of `step_flops` (everything but the LM head)."""
    per_kind = forward_flops(config, subnet, batch_size, seq_len)
    return BACKWARD_FACTOR * (sum(per_kind.values()) - per_kind["lm_head"])
