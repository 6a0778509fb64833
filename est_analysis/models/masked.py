"""EST by masking, the naive way: every active layer computes at full size, dropped heads and
neurons are zeroed by masks, then rescaled by 1/p before the bias (eq. 5-7).

It is the reference that the sliced execution must equal (it shares no slicing code with
`base.py`), and the baseline of the wall-time benchmark that shows masks save no compute.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from est_analysis.models.base import Decoder
from est_analysis.models.gpt2 import attend
from est_analysis.models.head_loss import head_output
from est_analysis.models.llama import rotate
from est_analysis.subnet import Subnet


def _mask(n: int, kept: torch.Tensor | None) -> torch.Tensor:
    if kept is None:
        return torch.ones(n)
    mask = torch.zeros(n)
    mask[kept] = 1.0
    return mask


def masked_forward(model: Decoder, idx: torch.Tensor, subnet: Subnet,
                   targets: torch.Tensor | None = None) -> torch.Tensor:
    """Logits of `subnet` computed at full size with masks (given `targets`, the loss, as
    `Decoder.forward` gives it)."""
    config = model.config
    x = model.embed(idx)
    batch, seq = idx.shape
    for layer, block in enumerate(model.blocks):
        if layer not in subnet.layers:
            continue  # eq. 7: identity
        slot = subnet.layers.index(layer)
        heads, neurons = subnet.heads[slot], subnet.neurons[slot]
        head_mask, neuron_mask = _mask(config.n_head, heads), _mask(config.d_mlp, neurons)
        p_h, p_m = head_mask.mean(), neuron_mask.mean()

        h = block.norm_1(x)
        attn = block.attn
        if config.arch == "gpt2":
            q, k, v = F.linear(h, attn.qkv.weight, attn.qkv.bias).chunk(3, dim=-1)
        else:
            q = rotate(F.linear(h, attn.q.weight), attn.cos, attn.sin)
            k = rotate(F.linear(h, attn.k.weight), attn.cos, attn.sin)
            v = F.linear(h, attn.v.weight)
        y = attend(q, k, v, batch, seq, config.head_dim)
        y = y * head_mask.repeat_interleave(config.head_dim)
        out = F.linear(y, attn.out.weight) / p_h
        x = x + (out + attn.out.bias if attn.out.bias is not None else out)

        h = block.norm_2(x)
        mlp = block.mlp
        if config.arch == "gpt2":
            a = F.gelu(F.linear(h, mlp.up.weight, mlp.up.bias), approximate="tanh")
        else:
            a = F.silu(F.linear(h, mlp.gate.weight)) * F.linear(h, mlp.up.weight)
        out = F.linear(a * neuron_mask, mlp.out.weight) / p_m
        x = x + (out + mlp.out.bias if mlp.out.bias is not None else out)
    return head_output(model.norm_f(x), model.lm_head, targets)
