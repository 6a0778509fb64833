"""The same four curvature matrices as curvlinops (Dangel et al.) builds them, on our models,
for cross-checking and for what curvlinops has and we do not (KFAC/EKFAC, inverses).

curvlinops weighs every datum by 1/N over the data; its datum here is a token (`batch_size_fn`
counts tokens), so with equal-sized batches its matrices are ours: the mean over batches of
each batch's mean over tokens. Measured limits at torch 2.13 (tests/hessian/
test_curvlinops_agreement.py): its Hessian product is forward-over-reverse (`jvp` of
`jacrev`), and that route gets the LayerNorm weights' rows wrong (GPT-2: 8-43 % off finite
differences) and has no forward-mode rule for `silu_backward` (Llama raises); its GGN and
empirical Fisher equal ours to float rounding.
"""

from __future__ import annotations

import torch
from torch import nn

from est_analysis.hessian.flat_logits import FlatLogits
from est_analysis.loss import Batch
from est_analysis.models import Decoder

INSTALL = "pip install curvlinops-for-pytorch==3.0.1 (with torch pinned, or pip pulls a CUDA torch)"


def curvlinops_operator(name: str, model: Decoder, batches: list[Batch], mc_samples: int = 1,
                        seed: int = 0):
    """curvlinops' linear operator for `name` (hessian, ggn, mc-fisher, empirical-fisher) over
    `batches`; `op @ M` multiplies a (size, k) matrix, `op.to_scipy()` serves scipy."""
    try:
        import curvlinops
    except ImportError as error:
        raise ImportError(f"the curvlinops bridge needs curvlinops: {INSTALL}") from error
    classes = {"hessian": curvlinops.HessianLinearOperator, "ggn": curvlinops.GGNLinearOperator,
               "mc-fisher": curvlinops.FisherMCLinearOperator,
               "empirical-fisher": curvlinops.EFLinearOperator}
    if name not in classes:
        raise ValueError(f"curvlinops operator {name!r}: choose one of {', '.join(classes)}")
    model.eval()
    device = next(model.parameters()).device
    data = [(x.to(device), y.to(device).flatten()) for x, y in batches]
    options = {"mc_samples": mc_samples, "seed": seed} if name == "mc-fisher" else {}
    return classes[name](FlatLogits(model), nn.CrossEntropyLoss(),
                         [p for p in model.parameters() if p.requires_grad], data,
                         batch_size_fn=torch.Tensor.numel, check_deterministic=False, **options)
