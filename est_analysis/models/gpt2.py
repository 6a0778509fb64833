"""GPT-2 (Radford et al., 2019): pre-LN, learned positions, fused QKV, GELU MLP, biases,
embedding tied to the LM head; executes any `Subnet` with sliced weights."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from est_analysis.models.base import Block, Decoder, Slice, SliceableModule
from est_analysis.model_config import ModelConfig


def head_rows(heads: torch.Tensor, head_dim: int) -> torch.Tensor:
    """Row ids of a projection's output features that belong to `heads`."""
    return (heads[:, None] * head_dim + torch.arange(head_dim, device=heads.device)).flatten()


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, batch: int, seq: int,
           head_dim: int) -> torch.Tensor:
    """Causal attention over (B, T, heads*head_dim) tensors; K/V may have fewer heads (GQA)."""
    q, k, v = (t.view(batch, seq, -1, head_dim).transpose(1, 2) for t in (q, k, v))
    y = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=k.size(1) != q.size(1))
    return y.transpose(1, 2).reshape(batch, seq, -1)


class GPT2Attention(SliceableModule):
    """Multi-head attention; a head subset slices Q/K/V rows and output-projection columns,
    and the output is rescaled by 1/p_H before the output bias (eq. 5)."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.n_units, self.head_dim, self.d_model = config.n_head, config.head_dim, config.d_model
        self.unit_width = config.head_dim
        self.qkv = nn.Linear(config.d_model, 3 * config.d_model)
        self.out = nn.Linear(config.d_model, config.d_model)

    def sliced_parameters(self, heads: torch.Tensor | None) -> list[Slice]:
        rows = qkv_rows = None
        if heads is not None:
            rows = head_rows(heads, self.head_dim)
            qkv_rows = torch.cat([rows, rows + self.d_model, rows + 2 * self.d_model])
        return [(self.qkv.weight, 0, qkv_rows), (self.qkv.bias, 0, qkv_rows), (self.out.weight, 1, rows)]

    def forward(self, x: torch.Tensor, heads: torch.Tensor | None = None,
                scale: float | torch.Tensor | None = None) -> torch.Tensor:
        w_qkv, b_qkv, w_out = self.select(heads, scale)
        q, k, v = F.linear(x, w_qkv, b_qkv).chunk(3, dim=-1)
        y = attend(q, k, v, x.size(0), x.size(1), self.head_dim)
        return F.linear(y, w_out, self.out.bias)


class GPT2MLP(SliceableModule):
    """GELU MLP of width 4d; a neuron subset slices W1 rows and W2 columns, rescaled by 1/p_M
    before the output bias (eq. 6)."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.n_units = config.d_mlp
        self.up = nn.Linear(config.d_model, config.d_mlp)
        self.out = nn.Linear(config.d_mlp, config.d_model)

    def sliced_parameters(self, neurons: torch.Tensor | None) -> list[Slice]:
        return [(self.up.weight, 0, neurons), (self.up.bias, 0, neurons), (self.out.weight, 1, neurons)]

    def forward(self, x: torch.Tensor, neurons: torch.Tensor | None = None,
                scale: float | torch.Tensor | None = None) -> torch.Tensor:
        w_up, b_up, w_out = self.select(neurons, scale)
        h = F.gelu(F.linear(x, w_up, b_up), approximate="tanh")
        return F.linear(h, w_out, self.out.bias)


class GPT2(Decoder):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        d = config.d_model
        self.wte = nn.Embedding(config.vocab_size, d)
        self.wpe = nn.Embedding(config.block_size, d)
        self.blocks = nn.ModuleList(
            Block(nn.LayerNorm(d), GPT2Attention(config), nn.LayerNorm(d), GPT2MLP(config))
            for _ in range(config.n_layer))
        self.norm_f = nn.LayerNorm(d)
        self.lm_head = nn.Linear(d, config.vocab_size, bias=False)
        self.init_weights()
        self.lm_head.weight = self.wte.weight  # tied embeddings

    def embed(self, idx: torch.Tensor) -> torch.Tensor:
        return self.wte(idx) + self.wpe(torch.arange(idx.size(1), device=idx.device))
