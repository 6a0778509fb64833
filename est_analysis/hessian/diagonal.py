"""Stochastic estimators of a curvature's diagonal, with standard errors per entry, per block
and per parameter tensor.

Hutchinson's diagonal (Bekas, Kokiopoulou & Saad 2007): E[g * (A g)] = diag(A) for Rademacher
g; each probe is one sample.

XDiag (Epperly, Tropp & Webber, SIMAX 2024), the diagonal twin of XTrace: with m = matvecs/2
probes Omega, Y = A Omega = QR and Z = A Q, sample i keeps the basis of every probe's image but
its own, Q_i Q_i^T = Q (I - s_i s_i^T) Q^T (s_i: column i of R^{-T}, normalised), takes that
part of the diagonal exactly and probe i for the rest:
    d_i = diag(Q_i Q_i^T A) + omega_i * ((I - Q_i Q_i^T) A omega_i),
unbiased because omega_i is independent of Q_i. With A symmetric, Q^T A = Z^T, so
diag(Q_i Q_i^T A) = rowsum(Q * Z) - (Q s_i) * (Z s_i) and the remainder needs only
Z^T omega_i: no product beyond the 2m. Its samples are exchangeable, not independent, so its
standard errors are a heuristic, as XTrace's.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import pandas as pd
import torch

from est_analysis.hessian.operator import LinearOperator
from est_analysis.hessian.trace import rademacher_columns
from est_analysis.stats import t_interval
from est_analysis.training.memory import check_memory


@dataclass
class DiagonalEstimate:
    method: str
    samples: torch.Tensor  # (m, size): one unbiased estimate of the diagonal per row
    matvecs: int
    wall_s: float

    @property
    def diagonal(self) -> torch.Tensor:
        return self.samples.mean(0)

    @property
    def stderr(self) -> torch.Tensor:
        return self.samples.std(0) / self.samples.shape[0] ** 0.5

    def summary(self, index: dict[str, slice | torch.Tensor]) -> pd.DataFrame:
        """Per named part of the vector (an operator's `blocks` or `tensors`): its entries, the
        sum of its diagonal with standard error and 95 % CI, and the mean entry."""
        rows = []
        for name, where in index.items():
            sums = self.samples[:, where].sum(1).tolist()
            interval = t_interval(sums)
            entries = self.samples[:, where].shape[1]
            rows.append({"part": name, "entries": entries, "diag_sum": interval.mean,
                         "stderr": interval.stderr, "ci_low": interval.low, "ci_high": interval.high,
                         "diag_mean": interval.mean / entries})
        return pd.DataFrame(rows)


def _samples_memory(op: LinearOperator, rows: int, what: str) -> None:
    element = torch.empty((), dtype=op.dtype).element_size()
    check_memory(3 * rows * op.size * element, op.device,
                 f"{what} with {rows} samples of {op.size:,} entries", "give fewer --probes")


def hutchinson_diagonal(op: LinearOperator, probes: int = 100, seed: int = 0) -> DiagonalEstimate:
    """diag(A) from `probes` Rademacher probes, in blocks of the operator's products."""
    if probes < 2:
        raise ValueError(f"--probes {probes}: a diagonal with a standard error needs at least 2")
    _samples_memory(op, probes, "Hutchinson's diagonal")
    start, before = time.perf_counter(), op.matvecs
    generator = torch.Generator().manual_seed(seed)
    omega = rademacher_columns(op.size, probes, generator, op.dtype, op.device)
    samples = (omega * op.matmat(omega)).T
    return DiagonalEstimate("hutchinson", samples, op.matvecs - before, time.perf_counter() - start)


def xdiag(op: LinearOperator, matvecs: int = 100, seed: int = 0) -> DiagonalEstimate:
    """XDiag with `matvecs` products: half probes, half the basis's images."""
    m = matvecs // 2
    if m < 2 or m >= op.size:
        raise ValueError(f"XDiag with {matvecs} products has {m} probes: give between 4 and "
                         f"{2 * (op.size - 1)} products")
    _samples_memory(op, 2 * m, "XDiag")
    start, before = time.perf_counter(), op.matvecs
    generator = torch.Generator().manual_seed(seed)
    omega = rademacher_columns(op.size, m, generator, op.dtype, op.device)
    images = op.matmat(omega)
    basis, triangle = torch.linalg.qr(images)
    projected = op.matmat(basis)  # Z = A Q
    cross = projected.T @ omega  # column i: Z^T omega_i
    left_out = torch.linalg.inv(triangle).T
    left_out = left_out / left_out.norm(dim=0, keepdim=True)  # column i: s_i
    kept = (basis * projected).sum(1)  # diag(Q Q^T A)
    along, images_along = basis @ left_out, projected @ left_out  # Q s_i, Z s_i for every i
    rest = images - basis @ cross + along * (left_out * cross).sum(0)  # (I - Q_i Q_i^T) A omega_i
    samples = (kept[:, None] - along * images_along + omega * rest).T
    return DiagonalEstimate("xdiag", samples, op.matvecs - before, time.perf_counter() - start)
