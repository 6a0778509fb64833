"""Lanczos on the Hessian: top eigenvalues and the spectral density by stochastic Lanczos
quadrature (SLQ; Ghorbani, Krishnan & Xiao 2019, the method behind pyhessian's `density`).

Lanczos builds an orthonormal Krylov basis V and a tridiagonal T = V^T H V; T's eigenvalues
(Ritz values) converge to H's extreme eigenvalues first. Full reorthogonalisation keeps V
orthonormal in finite precision, at a memory cost of `iters` flat vectors.

Block Lanczos (Golub & Underwood 1977) grows the Krylov space of a block of b vectors, b
products per pass over the data (`matmat`), so the data are read once per b products instead
of once per product. It keeps every block's image H V_j, so the projected matrix V^T H V and the
Ritz pairs' residuals ||H y - theta y|| are exact (no further products), at twice the basis'
memory. For the same number of products its space has lower polynomial degree than
single-vector Lanczos (products / b instead of products), so it needs more products for the
same accuracy and wins where a pass costs much more than the vectors in it.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import torch
from scipy.linalg import eigh_tridiagonal
from tqdm.auto import tqdm

from est_analysis.hessian.operator import LinearOperator
from est_analysis.hessian.trace import rademacher
from est_analysis.training.memory import check_memory


def lanczos(op: LinearOperator, iters: int, start: torch.Tensor,
            progress: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Diagonal (alphas) and off-diagonal (betas) of T after up to `iters` steps from `start`;
    stops early if the Krylov space becomes invariant. `betas` has one entry per step: the
    last is the norm of the final residual (T's off-diagonal is betas[:-1])."""
    iters = min(iters, op.size)
    element = torch.empty((), dtype=op.dtype).element_size()
    check_memory(iters * op.size * element, op.device,
                 f"Lanczos with {iters} steps on {op.size:,} parameters (a basis of {iters} vectors)",
                 "ask for fewer eigenvalues (--top) or Lanczos steps (--iters)")
    basis = torch.empty(iters, op.size, dtype=op.dtype, device=op.device)
    basis[0] = start / start.norm()
    alphas, betas = [], []
    for i in tqdm(range(iters), disable=not progress, desc="Lanczos", unit="hvp"):
        w = op.matvec(basis[i])
        alphas.append(torch.dot(w, basis[i]).item())
        w = w - basis[: i + 1].T @ (basis[: i + 1] @ w)  # full reorthogonalisation (twice is
        w = w - basis[: i + 1].T @ (basis[: i + 1] @ w)  # enough: "twice is enough", Kahan)
        betas.append(w.norm().item())
        if i + 1 == iters or betas[-1] < 1e-10 * max(1.0, abs(alphas[-1])):
            break
        basis[i + 1] = w / betas[-1]
    return np.array(alphas), np.array(betas)


@dataclass
class Eigenvalues:
    values: list[float]  # largest first
    residuals: list[float]  # Lanczos error bounds |beta_m * s_last|
    smallest: float  # the most negative Ritz value (the Hessian can be indefinite)
    matvecs: int
    wall_s: float


def block_lanczos(op: LinearOperator, products: int, block: int, seed: int = 0,
                  progress: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Ritz values of H on the block Krylov space of a random block of `block` vectors, grown
    until it holds `products` vectors, and their exact residual norms, largest value first."""
    passes = max(1, math.ceil(products / block))
    element = torch.empty((), dtype=op.dtype).element_size()
    check_memory(2 * passes * block * op.size * element, op.device,
                 f"block Lanczos with {passes} blocks of {block} on {op.size:,} parameters "
                 "(the basis and its images)", "ask for fewer products (--iters) or a smaller --block")
    generator = torch.Generator().manual_seed(seed)
    start = torch.randn(op.size, block, generator=generator, dtype=torch.float64)
    current = torch.linalg.qr(start.to(device=op.device, dtype=op.dtype)).Q
    basis, images = [], []
    for _ in tqdm(range(passes), disable=not progress, desc="block Lanczos", unit="block"):
        basis.append(current)
        images.append(op.matmat(current))
        if len(basis) == passes:
            break
        span = torch.cat(basis, dim=1)
        w = images[-1] - span @ (span.T @ images[-1])
        w = w - span @ (span.T @ w)  # reorthogonalised twice, as in `lanczos`
        current, triangle = torch.linalg.qr(w)
        if triangle.diagonal().abs().min() < 1e-10 * max(1.0, triangle.abs().max().item()):
            break  # the space is (nearly) invariant: a smaller block would repeat directions
    span, image = torch.cat(basis, dim=1), torch.cat(images, dim=1)
    projected = span.T @ image
    values, vectors = torch.linalg.eigh((projected + projected.T) / 2)
    order = torch.argsort(values, descending=True)
    values, vectors = values[order], vectors[:, order]
    residuals = (image @ vectors - (span @ vectors) * values).norm(dim=0)
    return values.cpu().double().numpy(), residuals.cpu().double().numpy()


def top_eigenvalues(op: LinearOperator, k: int = 1, iters: int | None = None, seed: int = 0,
                    progress: bool = False, block: int = 1) -> Eigenvalues:
    """The k largest eigenvalues of H from `iters` products (default max(3k + 30, 50)): Lanczos
    steps, or with `block` > 1 block Lanczos in passes of `block` products."""
    if k > op.size:
        raise ValueError(f"--top {k} asks for more eigenvalues than the model has parameters "
                         f"({op.size:,}); give at most {op.size:,}")
    start_time, before = time.perf_counter(), op.matvecs
    iters = iters or max(3 * k + 30, 50)
    if block > 1:
        if block * max(1, math.ceil(iters / block)) > op.size:
            raise ValueError(f"block Lanczos with --block {block} and {iters} products needs a "
                             f"space larger than the model's {op.size:,} parameters; lower them")
        values, residuals = block_lanczos(op, iters, block, seed, progress)
        return Eigenvalues(values[:k].tolist(), residuals[:k].tolist(), float(values.min()),
                           op.matvecs - before, time.perf_counter() - start_time)
    start = torch.randn(op.size, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    alphas, betas = lanczos(op, iters, start.to(device=op.device, dtype=op.dtype), progress)
    ritz, vectors = eigh_tridiagonal(alphas, betas[:-1])
    last_beta = betas[-1]
    order = np.argsort(ritz)[::-1][:k]
    return Eigenvalues([float(ritz[i]) for i in order],
                       [float(abs(last_beta * vectors[-1, i])) for i in order],
                       float(ritz.min()), op.matvecs - before, time.perf_counter() - start_time)


@dataclass
class SpectralDensity:
    nodes: np.ndarray  # (runs, iters) Ritz values
    weights: np.ndarray  # (runs, iters) quadrature weights, each run sums to 1
    matvecs: int
    wall_s: float

    def on_grid(self, grid: np.ndarray, sigma: float | None = None) -> np.ndarray:
        """Gaussian-smoothed density of eigenvalues on `grid` (integrates to ~1)."""
        span = self.nodes.max() - self.nodes.min()
        sigma = sigma or max(span, 1e-12) / 100
        kernel = np.exp(-((grid[:, None] - self.nodes.ravel()[None]) ** 2) / (2 * sigma**2))
        return kernel @ self.weights.ravel() / (self.nodes.shape[0] * sigma * math.sqrt(2 * math.pi))

    def trace(self, dimension: int) -> float:
        """SLQ's own trace estimate, n * E[sum_i w_i theta_i]."""
        return float(dimension * (self.nodes * self.weights).sum(axis=1).mean())


def spectral_density(op: LinearOperator, iters: int = 80, runs: int = 4, seed: int = 0,
                     progress: bool = False) -> SpectralDensity:
    """SLQ: `runs` Lanczos runs of `iters` steps from normalised Rademacher vectors; each gives
    Ritz values (nodes) and squared first components of T's eigenvectors (weights)."""
    start_time, before = time.perf_counter(), op.matvecs
    generator = torch.Generator().manual_seed(seed)
    nodes, weights = [], []
    for _ in range(runs):
        alphas, betas = lanczos(op, iters, rademacher(op.size, generator, op.dtype, op.device),
                                progress)
        ritz, vectors = eigh_tridiagonal(alphas, betas[:-1])
        padded = iters - len(ritz)  # an early stop leaves fewer nodes: pad with zero weight
        nodes.append(np.pad(ritz, (0, padded), constant_values=ritz[-1]))
        weights.append(np.pad(vectors[0] ** 2, (0, padded)))
    return SpectralDensity(np.array(nodes), np.array(weights), op.matvecs - before,
                           time.perf_counter() - start_time)
