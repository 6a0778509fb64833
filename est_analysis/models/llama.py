"""Llama (TinyLlama 1.1B): RMSNorm, SwiGLU MLP, rotary positions, grouped-query attention,
untied LM head, no biases; executes any `Subnet` with sliced weights."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from est_analysis.models.base import Block, Decoder, Slice, SliceableModule
from est_analysis.model_config import ModelConfig
from est_analysis.models.gpt2 import attend, head_rows


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float) -> None:
        super().__init__()
        self.weight, self.eps = nn.Parameter(torch.ones(dim)), eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.rms_norm(x, (x.size(-1),), self.weight, self.eps)


def rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Apply RoPE (half-split layout) to x of shape (B, T, heads*head_dim)."""
    batch, seq, width = x.shape
    x = x.view(batch, seq, -1, cos.size(-1))
    x1, x2 = x.chunk(2, dim=-1)
    rotated = torch.cat([-x2, x1], dim=-1)
    return (x * cos[:seq, None] + rotated * sin[:seq, None]).view(batch, seq, width)


class LlamaAttention(SliceableModule):
    """Grouped-query attention. The sampled units are whole KV groups (see `est_analysis.subnet`):
    kept query heads slice W_Q rows and W_O columns, their groups slice W_K and W_V rows, and
    the output is rescaled by 1/p_H (eq. 5; no bias)."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.n_units, self.head_dim, self.group_size = config.n_head, config.head_dim, config.group_size
        self.unit_width = config.head_dim
        kv_width = config.n_kv_head * config.head_dim
        self.q = nn.Linear(config.d_model, config.d_model, bias=False)
        self.k = nn.Linear(config.d_model, kv_width, bias=False)
        self.v = nn.Linear(config.d_model, kv_width, bias=False)
        self.out = nn.Linear(config.d_model, config.d_model, bias=False)
        inv_freq = 1.0 / config.rope_theta ** (torch.arange(0, self.head_dim, 2) / self.head_dim)
        angles = torch.outer(torch.arange(config.block_size).float(), inv_freq).repeat(1, 2)
        self.register_buffer("cos", angles.cos(), persistent=False)
        self.register_buffer("sin", angles.sin(), persistent=False)

    def sliced_parameters(self, heads: torch.Tensor | None) -> list[Slice]:
        rows = kv_rows = None
        if heads is not None:
            rows = head_rows(heads, self.head_dim)
            kv_rows = head_rows(heads[:: self.group_size] // self.group_size, self.head_dim)
        return [(self.q.weight, 0, rows), (self.k.weight, 0, kv_rows), (self.v.weight, 0, kv_rows),
                (self.out.weight, 1, rows)]

    def forward(self, x: torch.Tensor, heads: torch.Tensor | None = None,
                scale: float | torch.Tensor | None = None) -> torch.Tensor:
        w_q, w_k, w_v, w_out = self.select(heads, scale)
        q = rotate(F.linear(x, w_q), self.cos, self.sin)
        k = rotate(F.linear(x, w_k), self.cos, self.sin)
        y = attend(q, k, F.linear(x, w_v), x.size(0), x.size(1), self.head_dim)
        return F.linear(y, w_out)


class LlamaMLP(SliceableModule):
    """SwiGLU MLP: out(silu(gate x) * up x); neurons slice gate and up rows and out columns,
    rescaled by 1/p_M (eq. 6)."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.n_units = config.d_mlp
        self.gate = nn.Linear(config.d_model, config.d_mlp, bias=False)
        self.up = nn.Linear(config.d_model, config.d_mlp, bias=False)
        self.out = nn.Linear(config.d_mlp, config.d_model, bias=False)

    def sliced_parameters(self, neurons: torch.Tensor | None) -> list[Slice]:
        return [(self.gate.weight, 0, neurons), (self.up.weight, 0, neurons),
                (self.out.weight, 1, neurons)]

    def forward(self, x: torch.Tensor, neurons: torch.Tensor | None = None,
                scale: float | torch.Tensor | None = None) -> torch.Tensor:
        w_gate, w_up, w_out = self.select(neurons, scale)
        return F.linear(F.silu(F.linear(x, w_gate)) * F.linear(x, w_up), w_out)


class Llama(Decoder):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        d, eps = config.d_model, config.norm_eps
        self.wte = nn.Embedding(config.vocab_size, d)
        self.blocks = nn.ModuleList(
            Block(RMSNorm(d, eps), LlamaAttention(config), RMSNorm(d, eps), LlamaMLP(config))
            for _ in range(config.n_layer))
        self.norm_f = RMSNorm(d, eps)
        self.lm_head = nn.Linear(d, config.vocab_size, bias=False)
        self.init_weights()

    def embed(self, idx: torch.Tensor) -> torch.Tensor:
        return self.wte(idx)
