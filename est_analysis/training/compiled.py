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
architectures, and that no block breaks its graph. Embedding, head and loss stay eager: the
loss is computed blockwise at the head (`models.head_loss`), which measured faster than
inductor's fused cross-entropy over the full logits (fwd+bwd with the head matmul at
2048 x 8192 on the 2-core CPU: 173 ms against 216 ms compiled, 268 ms eager;
benchmarks/results/head_loss.csv).
"""

from __future__ import annotations

import torch

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
