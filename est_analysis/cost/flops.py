"""The FLOPs model: matmul FLOPs of a training step of any subnet (the trainer's `step_flops`
column) and of each module kind.

Matmul FLOPs (2 per multiply-add) are counted per module: attention projections, attention
scores (QK^T and AV, quadratic in sequence length; the full T x T product, as the math
attention kernel computes it), MLP, LM head. The backward pass costs twice the forward
(gradients of inputs and of weights), so a step is 3x the forward. This is exactly what
`torch.utils.flop_counter.FlopCounterMode` counts (tested), and what `metrics.csv` reports.

Elementwise work (norms, embedding gradients) is not matmul work; `elementwise_step_flops`
estimates it at `ELEMENTWISE_FLOPS` per element for the simulator's `full` accounting.
"""

from __future__ import annotations

import pandas as pd

from est_analysis.model_config import ModelConfig
from est_analysis.subnet import Subnet

BACKWARD_FACTOR = 3  # forward + backward = 3 x forward for matmuls
# Forward FLOPs per element of elementwise work (estimates; FlopCounterMode ignores them):
# a norm reads, centres/scales and applies its gain; an embedding lookup computes nothing
# forward and scatter-adds its gradient backward.
ELEMENTWISE_FLOPS = {"layernorm": 8, "rmsnorm": 5}


def layer_forward_flops(config: ModelConfig, n_heads: int, n_neurons: int, batch_size: int,
                        seq_len: int) -> dict[str, int]:
    """Forward matmul FLOPs of one transformer layer keeping `n_heads` query heads and
    `n_neurons` MLP neurons."""
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
    """Forward matmul FLOPs of the subnet (None = full model) by module kind, plus the LM head."""
    subnet = subnet or Subnet.full(config)
    total = {"attn_proj": 0, "attn_scores": 0, "mlp": 0}
    for n_heads, n_neurons in subnet.counts(config):
        for kind, flops in layer_forward_flops(config, n_heads, n_neurons, batch_size, seq_len).items():
            total[kind] += flops
    total["lm_head"] = 2 * batch_size * seq_len * config.d_model * config.vocab_size
    return total


def step_flops(config: ModelConfig, subnet: Subnet | None, batch_size: int, seq_len: int) -> int:
    """Matmul FLOPs of one forward+backward pass of the subnet on a (batch_size, seq_len) batch."""
    return BACKWARD_FACTOR * sum(forward_flops(config, subnet, batch_size, seq_len).values())


def layer_step_flops(config: ModelConfig, subnet: Subnet | None, batch_size: int,
                     seq_len: int) -> int:
    """The transformer-layer part of `step_flops` (everything but the LM head)."""
    per_kind = forward_flops(config, subnet, batch_size, seq_len)
    return BACKWARD_FACTOR * (sum(per_kind.values()) - per_kind["lm_head"])


def elementwise_step_flops(config: ModelConfig, n_layers: int, batch_size: int, seq_len: int) -> int:
    """Estimated norm and embedding-gradient FLOPs of a step with `n_layers` active layers."""
    tokens, d = batch_size * seq_len, config.d_model
    per_element = ELEMENTWISE_FLOPS["rmsnorm" if config.arch == "llama" else "layernorm"]
    norms = (2 * n_layers + 1) * tokens * d * per_element
    embedding_grads = tokens * d * (2 if config.arch == "gpt2" else 1)  # token (+ position) table
    return BACKWARD_FACTOR * norms + embedding_grads


def module_table(config: ModelConfig, batch_size: int = 1, seq_len: int | None = None) -> pd.DataFrame:
    """Forward and backward FLOPs of each module kind for one full step (per `batch_size`
    sequences of `seq_len` tokens, default the model's context)."""
    seq_len = seq_len or config.block_size
    forward = forward_flops(config, None, batch_size, seq_len)
    elementwise = elementwise_step_flops(config, config.n_layer, batch_size, seq_len)
    rows = [{"module": k, "forward": v, "backward": (BACKWARD_FACTOR - 1) * v, "kind": "matmul"}
            for k, v in forward.items()]
    rows.append({"module": "norms+embeddings", "forward": elementwise // BACKWARD_FACTOR,
                 "backward": elementwise - elementwise // BACKWARD_FACTOR, "kind": "elementwise (est.)"})
    table = pd.DataFrame(rows)
    table["step"] = table["forward"] + table["backward"]
    table["share"] = table["step"] / table["step"].sum()
    return table


def head_mlp_costs(config: ModelConfig, seq_len: int | None = None) -> tuple[float, float]:
    """(C_H, C_M) of eq. 8 from the FLOPs model: per-layer MHA (projections and scores) and
    MLP cost of one sequence."""
    flops = layer_forward_flops(config, config.n_head, config.d_mlp, 1, seq_len or config.block_size)
    return float(flops["attn_proj"] + flops["attn_scores"]), float(flops["mlp"])
