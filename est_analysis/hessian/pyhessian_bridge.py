"""Run pyhessian (Yao et al., 2020) on our models, for cross-checking our estimators.

pyhessian expects `model(inputs) -> outputs` and `criterion(outputs, targets)`; our models
return (B, T, vocab) logits, so a thin adapter flattens them to (B*T, vocab) and the targets
to (B*T,). Two of its habits need care: it calls `loss.backward(create_graph=True)`, which
*adds* to existing `.grad` (we zero gradients first), and the CPU fused attention kernel has
no double backward (we run it under the math kernel).

What pyhessian cannot do, and our estimators can: a fixed set of several batches is handled
only through its dataloader mode, which redoes forward+backward for every product (our
operator keeps one graph); its probes come from the global torch RNG (we seed it, but the
draws cannot be shared with our estimators); its trace returns raw samples with a
relative-change stopping rule, not a confidence interval (we compute one from its samples),
and that rule divides by the signed running mean, so it stops after two probes whenever the
trace is negative (we disable it);
it has no Hutch++ and no per-block traces; its `density` calls `torch.eig`, which torch
removed in 1.9 (we substitute `torch.linalg.eigh` for its symmetric tridiagonal matrix during
the call); `cuda=True` is its default, so CPU use must say
`cuda=False`; its eigenvalues are by power iteration (largest magnitude, which may be a
negative eigenvalue).
"""

from __future__ import annotations

import math
import time
import warnings
from contextlib import contextmanager
from typing import Iterator

import numpy as np
import torch
from pyhessian import hessian as PyHessian
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel

from est_analysis.hessian.flat_logits import FlatLogits
from est_analysis.hessian.trace import TraceEstimate
from est_analysis.loss import Batch
from est_analysis.models import Decoder
from est_analysis.stats import t_interval


def pyhessian_engine(model: Decoder, batch: Batch) -> PyHessian:
    """A pyhessian `hessian` object on one batch (gradients zeroed first, math attention)."""
    # pyhessian's own backward(create_graph=True) warns of a .grad reference cycle; every call
    # here clears .grad afterwards, which breaks it
    warnings.filterwarnings("ignore", message="Using backward\\(\\) with create_graph=True")
    model.eval()
    model.zero_grad(set_to_none=True)
    x, y = batch
    device = next(model.parameters()).device
    with sdpa_kernel(SDPBackend.MATH):
        return PyHessian(FlatLogits(model), nn.CrossEntropyLoss(),
                         data=(x.to(device), y.flatten().to(device)), cuda=device.type == "cuda")


def pyhessian_trace(model: Decoder, batch: Batch, probes: int = 100, seed: int = 0) -> TraceEstimate:
    """pyhessian's Hutchinson trace on one batch, `probes` samples (its early stop disabled),
    with our mean / standard error / t-interval computed from its samples."""
    start = time.perf_counter()
    engine = pyhessian_engine(model, batch)
    torch.manual_seed(seed)
    with sdpa_kernel(SDPBackend.MATH):
        # tol=-inf: its rule |mean - prev| / (prev + 1e-6) < tol divides by the signed running
        # mean and would stop after two probes whenever the trace is negative
        samples = np.array(engine.trace(maxIter=probes, tol=-math.inf))
    model.zero_grad(set_to_none=True)
    trace = t_interval(samples)
    n_params = sum(p.numel() for p in model.parameters())
    return TraceEstimate("pyhessian", trace.mean, trace.stderr, trace.low, trace.high,
                         len(samples), time.perf_counter() - start, n_params)


def pyhessian_eigenvalues(model: Decoder, batch: Batch, top: int = 1, max_iter: int = 100,
                          tol: float = 1e-6, seed: int = 0) -> list[float]:
    engine = pyhessian_engine(model, batch)
    torch.manual_seed(seed)
    with sdpa_kernel(SDPBackend.MATH):
        values, _ = engine.eigenvalues(maxIter=max_iter, tol=tol, top_n=top)
    model.zero_grad(set_to_none=True)
    return [float(v) for v in values]


@contextmanager
def _torch_eig_for_symmetric_matrices() -> Iterator[None]:
    """pyhessian 0.1 (the latest release) calls `torch.eig(T, eigenvectors=True)`, removed in
    torch 1.9. Its T is symmetric tridiagonal, so `torch.linalg.eigh` gives the same answer in
    the old format (eigenvalues as (n, 2) real/imaginary columns) for the duration of a call."""
    def eig(matrix: torch.Tensor, eigenvectors: bool = False):
        values, vectors = torch.linalg.eigh(matrix)
        return torch.stack([values, torch.zeros_like(values)], dim=1), vectors

    had_eig, old = hasattr(torch, "eig"), getattr(torch, "eig", None)
    torch.eig = eig
    try:
        yield
    finally:
        if had_eig:
            torch.eig = old
        else:
            del torch.eig


def pyhessian_density(model: Decoder, batch: Batch, iters: int = 80, runs: int = 1,
                      seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """pyhessian's SLQ nodes and weights, shaped (runs, iters)."""
    engine = pyhessian_engine(model, batch)
    torch.manual_seed(seed)
    with sdpa_kernel(SDPBackend.MATH), _torch_eig_for_symmetric_matrices():
        nodes, weights = engine.density(iter=iters, n_v=runs)
    model.zero_grad(set_to_none=True)
    return np.array(nodes), np.array(weights)
