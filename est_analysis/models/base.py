"""The pieces GPT-2 and Llama share: a pre-norm residual block and a decoder that executes a
`Subnet` by running only its active layers, each on its kept heads and neurons.

Compute is cut for real: a sliceable module (attention or MLP) names, through
`sliced_parameters(units)`, which rows or columns of which weights the kept units use; the
forward pass `index_select`s those slices and runs smaller matmuls. Gradients flow back
through `index_select` into the full parameters, so rows outside the subnet receive exactly
zero gradient. The 1/p rescaling is applied to the output projection's weight slice, which is
the same as scaling the module output before its bias is added (eq. 5 and 6); per-unit scales
(MSG's growth masks) multiply that slice column-wise in the same place.
"""

from __future__ import annotations

from typing import Iterator

import torch
from torch import nn

from est_analysis.model_config import ModelConfig
from est_analysis.models.head_loss import head_output
from est_analysis.subnet import Subnet

# (parameter, dimension, kept indices along that dimension; None when all are kept)
Slice = tuple[nn.Parameter, int, "torch.Tensor | None"]


class SliceableModule(nn.Module):
    """An attention or MLP module whose units (heads, neurons) can be dropped."""

    n_units: int  # heads (attention) or neurons (MLP) in the full module
    unit_width: int = 1  # output-projection columns per unit (head_dim for attention)

    def sliced_parameters(self, units: torch.Tensor | None) -> list[Slice]:
        """The weights whose rows/columns belong to units, with the kept indices; the output
        projection's weight comes last."""
        raise NotImplementedError

    def select(self, units: torch.Tensor | None,
               scale: float | torch.Tensor | None = None) -> list[torch.Tensor]:
        """The weight slices the kept `units` use (the whole weights for None). The output
        projection's slice is multiplied by `scale`, which rescales each unit's contribution
        before the output bias is added; the default is EST's 1/p = N/|I| (eq. 5 and 6), and 1
        when every unit is kept. A tensor gives one multiplier per kept unit."""
        *inputs, (w_out, dim, idx) = self.sliced_parameters(units)
        if units is None:
            kept, w_out_kept = [p for p, _, _ in inputs], w_out
        else:
            kept, w_out_kept = [p.index_select(d, i) for p, d, i in inputs], w_out.index_select(dim, idx)
        if scale is None:
            scale = 1.0 if units is None else self.n_units / len(units)
        if torch.is_tensor(scale):  # one multiplier per unit -> one per output-projection column
            scale = scale.to(w_out_kept.dtype).repeat_interleave(self.unit_width)
        elif scale == 1.0:
            return kept + [w_out_kept]
        return kept + [w_out_kept * scale]


class Block(nn.Module):
    """x + Attn(norm(x)) then x + MLP(norm(x)) (eq. 1); the block is skipped entirely when its
    layer is not in the subnet (eq. 7). `branch_scale` multiplies both branch outputs (biases
    included): 0 makes the block the identity, as a newly grown MSG layer is."""

    def __init__(self, norm_1: nn.Module, attn: SliceableModule, norm_2: nn.Module,
                 mlp: SliceableModule) -> None:
        super().__init__()
        self.norm_1, self.attn, self.norm_2, self.mlp = norm_1, attn, norm_2, mlp

    def forward(self, x: torch.Tensor, heads: torch.Tensor | None = None,
                neurons: torch.Tensor | None = None, head_scale: float | torch.Tensor | None = None,
                neuron_scale: float | torch.Tensor | None = None,
                branch_scale: float | torch.Tensor = 1.0) -> torch.Tensor:
        unscaled = not torch.is_tensor(branch_scale) and branch_scale == 1.0
        attn = self.attn(self.norm_1(x), heads, head_scale)
        x = x + (attn if unscaled else branch_scale * attn)
        mlp = self.mlp(self.norm_2(x), neurons, neuron_scale)
        return x + (mlp if unscaled else branch_scale * mlp)


class Decoder(nn.Module):
    """Embedding -> active blocks -> final norm -> LM head. Subclasses build the modules."""

    config: ModelConfig
    blocks: nn.ModuleList
    norm_f: nn.Module
    lm_head: nn.Linear

    def embed(self, idx: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, idx: torch.Tensor, subnet: Subnet | None = None,
                targets: torch.Tensor | None = None) -> torch.Tensor:
        """Logits (B, T, vocab) of the subnet; `subnet=None` is the full model. Given (B, T)
        `targets`, the mean next-token loss instead (`head_output`: where a gradient is
        recorded, blockwise without the full logits and differentiable once)."""
        if idx.size(1) > self.config.block_size:
            raise ValueError(f"sequence length {idx.size(1)} exceeds the model's context "
                             f"block_size={self.config.block_size}; use a shorter seq_len")
        x = self.embed(idx)
        for block, plan in self.active_blocks(subnet, idx.device):
            x = block(x, **plan)
        return head_output(self.norm_f(x), self.lm_head, targets)

    def active_blocks(self, subnet: Subnet | None, device: torch.device
                      ) -> Iterator[tuple[Block, dict]]:
        """Each active block with the keyword arguments (kept units, scales) it runs with."""
        if subnet is None:
            for block in self.blocks:
                yield block, {}
            return
        subnet = subnet.to(device)
        for layer, plan in zip(subnet.layers, subnet.layer_plans()):
            if plan["branch_scale"] != 1.0:
                # a tensor input: a compiled block is not re-specialised for every value
                plan["branch_scale"] = torch.tensor(plan["branch_scale"], device=device)
            yield self.blocks[layer], plan

    def subnet_slices(self, subnet: Subnet) -> tuple[list[Slice], list[nn.Parameter]]:
        """What the subnet trains: the kept slices of sliced weights in active layers, and the
        parameters of skipped layers (which it does not touch at all)."""
        kept: list[Slice] = []
        for block, plan in self.active_blocks(subnet, self.lm_head.weight.device):
            for module, units in ((block.attn, plan["heads"]), (block.mlp, plan["neurons"])):
                if units is not None:
                    kept.extend(module.sliced_parameters(units))
        active = set(subnet.layers)
        skipped = [p for i, b in enumerate(self.blocks) if i not in active for p in b.parameters()]
        return kept, skipped

    def init_weights(self) -> None:
        """GPT-2 initialisation: N(0, 0.02), residual output projections scaled by
        1/sqrt(2 n_layer), zero biases."""
        for name, p in self.named_parameters():
            if p.dim() == 1:
                is_gain = "norm" in name and name.endswith("weight")
                nn.init.ones_(p) if is_gain else nn.init.zeros_(p)
            else:
                std = 0.02 / (2 * self.config.n_layer) ** 0.5 if name.endswith("out.weight") else 0.02
                nn.init.normal_(p, mean=0.0, std=std)

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())
