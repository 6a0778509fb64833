"""Lanczos on the Hessian: top eigenvalues and the spectral density by stochastic Lanczos
quadrature (SLQ; Ghorbani, Krishnan & Xiao 2019, the method behind pyhessian's `density`).

Lanczos builds an orthonormal Krylov basis V and a tridiagonal T = V^T H V; T's eigenvalues
(Ritz values) converge to H's extreme eigenvalues first. Full reorthogonalisation keeps V
orthonormal in finite precision, at a memory cost of `iters` flat vectors.
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


def top_eigenvalues(op: LinearOperator, k: int = 1, iters: int | None = None, seed: int = 0,
                    progress: bool = False) -> Eigenvalues:
    """The k largest eigenvalues of H, from `iters` Lanczos steps (default max(3k + 30, 50))."""
    if k > op.size:
        raise ValueError(f"--top {k} asks for more eigenvalues than the model has parameters "
                         f"({op.size:,}); give at most {op.size:,}")
    start_time, before = time.perf_counter(), op.matvecs
    iters = iters or max(3 * k + 30, 50)
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
