"""`--compile`: torch.compile of each transformer block, not of the whole model.

A subnet changes every step (which heads, neurons and layers are kept) and at every stage
boundary. Compiling the whole model would specialise on the set of active layers (C(L, L/2)
graphs for EST's layer sampling). Compiling each block instead leaves the choice of layers to
eager Python, and a block's graph depends only on its kept-unit counts (the indices are tensor
inputs of fixed length), which take one value per stage: one training graph per distinct
(heads, neurons) count, one for the full block, and one inference graph for evaluation. The
blocks share their code, so the graphs are shared by all layers. Scales that vary per step
(layer-drop's 1/p, MSG's ramps) reach the block as tensors, not constants. Measured at smoke
scale over 150 steps: EST 3 graphs (Llama too), Original 2, RAPTR 2, layer-drop 3, Staged 4;
MSG's growth phases (new layers, then heads, then neurons, each ramped in) are distinct block
structures, 12 graphs. `tests/training/test_compiled.py` checks these bounds for both
architectures, and that no block breaks its graph. Embedding and
head stay eager (one matmul each). The loss is compiled too (`loss_function`): inductor fuses
the log-softmax over the vocabulary, the target gather and their backward into fewer passes
over the (tokens, vocab) logits, which no subnet shrinks (fwd+bwd at 2048 x 8192 on the 2-core
CPU: 35 ms compiled, 54 ms eager; same gradients, the loss equal to float rounding).
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import torch

from est_analysis.loss import token_loss
from est_analysis.models import Decoder

# graphs a block may compile before dynamo falls back to eager for it (its default is 8,
# which MSG's growth phases exceed)
GRAPH_LIMIT = 32
# torch.compile's code generator; tests swap in "aot_eager" to trace every method quickly
BACKEND = "inductor"


def compile_blocks(model: Decoder) -> None:
    """Compile every block of `model` in place (blocks already compiled are left as they are:
    a grown model keeps its compiled blocks and compiles the new ones)."""
    torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, GRAPH_LIMIT)
    for block in model.blocks:
        if getattr(block, "_compiled_call_impl", None) is None:
            block.compile(dynamic=False, backend=BACKEND)


def loss_function(compiled: bool) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """`token_loss`, compiled when the blocks are (one graph per logits shape)."""
    return _compiled_loss(BACKEND) if compiled else token_loss


@functools.cache
def _compiled_loss(backend: str) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    return torch.compile(token_loss, dynamic=False, backend=backend)
