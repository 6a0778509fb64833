"""Stochastic trace estimators with confidence intervals: Hutchinson (Rademacher probes) and
Hutch++ (Meyer, Musco, Musco & Woodruff, SOSA 2021).

Hutchinson: Tr(H) = E[g^T H g] for Rademacher g; the estimate is the mean of m samples, its
standard error their standard deviation / sqrt(m).

Hutch++: spend k products on a sketch H S, orthonormalise it to Q, take Tr(Q^T H Q) exactly
(k more products), and estimate the rest, Tr((I - QQ^T) H (I - QQ^T)), with Hutchinson on
projected probes w = (I - QQ^T) g. When the spectrum decays, the top directions carry most of
the trace and the remainder has far smaller variance. Given Q the estimator is unbiased and
its error is that of the remainder's mean, so the CI is conditional on Q (valid for any Q).

Per-block traces come from the same products: for a coordinate block b with selector E_b,
Tr(E_b H) = sum_j <H q_j, q_j>_b + E[<H w, w>_b] (both parts restricted to b's coordinates),
so block estimates are unbiased and sum to the total.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Iterator

import torch
from tqdm.auto import tqdm

from est_analysis.hessian.operator import DEFAULT_CHUNK, LinearOperator
from est_analysis.stats import t_interval

# Rademacher probes multiplied per pass in Hutchinson's estimator and Hutch++'s remainder
PROBE_BLOCK = DEFAULT_CHUNK


@dataclass
class TraceEstimate:
    method: str
    estimate: float
    stderr: float
    ci_low: float
    ci_high: float
    matvecs: int  # Hessian-vector products used
    wall_s: float
    n_params: int
    exact_part: float = 0.0  # Hutch++: Tr(Q^T H Q)
    blocks: dict[str, tuple[float, float]] = field(default_factory=dict)  # name -> (estimate, stderr)

    @property
    def per_param(self) -> float:
        """Trace divided by the number of parameters (the mean Hessian diagonal). The paper's
        Table 5 values (11763 and 2510 for GPT-2 124M) are most plausibly totals: as
        per-parameter values they would be mean diagonal entries of ~10^4."""
        return self.estimate / self.n_params

    def to_dict(self) -> dict:
        return {"method": self.method, "trace": self.estimate, "stderr": self.stderr,
                "ci95": [self.ci_low, self.ci_high], "trace_per_param": self.per_param,
                "n_params": self.n_params, "hvps": self.matvecs, "wall_s": self.wall_s,
                "blocks": {k: {"trace": e, "stderr": s} for k, (e, s) in self.blocks.items()}}


def rademacher(size: int, generator: torch.Generator, dtype: torch.dtype,
               device: torch.device) -> torch.Tensor:
    signs = torch.randint(0, 2, (size,), generator=generator, dtype=torch.int8)
    return (signs * 2 - 1).to(device=device, dtype=dtype)


def rademacher_columns(size: int, k: int, generator: torch.Generator, dtype: torch.dtype,
                       device: torch.device) -> torch.Tensor:
    """k Rademacher probes as the columns of a (size, k) matrix, drawn in order from `generator`
    (the same probes `rademacher` gives one at a time)."""
    return torch.stack([rademacher(size, generator, dtype, device) for _ in range(k)], dim=1)


def _probe_products(op: LinearOperator, generator: torch.Generator, count: int,
                    basis: torch.Tensor | None = None) -> Iterator[torch.Tensor]:
    """w * (A w) for `count` Rademacher probes w (projected off `basis`'s span when given), in
    the order drawn, multiplied PROBE_BLOCK at a time: one pass over the data per block. A
    caller that stops early (a tolerance met) leaves the rest of its block unused; the
    estimate's `matvecs` counts them."""
    done = 0
    while done < count:
        k = min(PROBE_BLOCK, count - done)
        probes = rademacher_columns(op.size, k, generator, op.dtype, op.device)
        if basis is not None:
            probes = probes - basis @ (basis.T @ probes)
        products = probes * op.matmat(probes)
        done += k
        yield from products.T


def _block_sums(product: torch.Tensor, blocks: dict) -> dict[str, float]:
    return {name: product[idx].sum().item() for name, idx in blocks.items()}


def _converged(samples: list[float], offset: float, tol: float | None, min_samples: int) -> bool:
    if tol is None or len(samples) < min_samples:
        return False
    interval = t_interval(samples, offset=offset)
    return interval.half_width <= tol * abs(interval.mean)


def _estimate(method: str, op: LinearOperator, matvecs: int, offset: float,
              samples: list[float], block_offsets: dict[str, float],
              block_samples: dict[str, list[float]], start: float) -> TraceEstimate:
    total = t_interval(samples, offset=offset)
    blocks = {}
    for name, values in block_samples.items():
        block = t_interval(values, offset=block_offsets.get(name, 0.0))
        blocks[name] = (block.mean, block.stderr)
    return TraceEstimate(method, total.mean, total.stderr, total.low, total.high, matvecs,
                         time.perf_counter() - start, op.size, offset, blocks)


def hutchinson(op: LinearOperator, probes: int = 100, tol: float | None = None,
               max_probes: int = 10_000, min_probes: int = 10, seed: int = 0,
               by_block: bool = False, progress: bool = False) -> TraceEstimate:
    """Hutchinson's estimator with `probes` Rademacher probes, or, with `tol`, as many as it
    takes for the 95 % CI half-width to fall below tol x |estimate| (up to `max_probes`)."""
    start, matvecs_before = time.perf_counter(), op.matvecs
    generator = torch.Generator().manual_seed(seed)
    limit = max_probes if tol is not None else probes
    samples: list[float] = []
    block_samples: dict[str, list[float]] = {name: [] for name in op.blocks} if by_block else {}
    for product in tqdm(_probe_products(op, generator, limit), total=limit, disable=not progress,
                        desc="Hutchinson", unit="hvp"):
        samples.append(product.sum().item())
        for name, value in (_block_sums(product, op.blocks).items() if by_block else ()):
            block_samples[name].append(value)
        if _converged(samples, 0.0, tol, min_probes):
            break
    return _estimate("hutchinson", op, op.matvecs - matvecs_before, 0.0, samples, {},
                     block_samples, start)


def hutchpp(op: LinearOperator, matvecs: int = 99, sketch: int | None = None,
            tol: float | None = None, max_matvecs: int = 10_000, min_probes: int = 10,
            seed: int = 0, by_block: bool = False, progress: bool = False) -> TraceEstimate:
    """Hutch++ with a budget of `matvecs` products split in thirds (sketch, exact part,
    remainder probes), as in Meyer et al.'s Algorithm 1; `sketch` overrides the sketch size,
    and `tol` keeps adding remainder probes until the CI is tight enough."""
    start, matvecs_before = time.perf_counter(), op.matvecs
    generator = torch.Generator().manual_seed(seed)
    k = sketch if sketch is not None else max(1, matvecs // 3)
    if k >= op.size:
        raise ValueError(f"sketch size {k} must be smaller than the dimension {op.size}")
    bar = tqdm(total=(max_matvecs if tol is not None else matvecs), disable=not progress,
               desc="Hutch++", unit="hvp")
    sketch = rademacher_columns(op.size, k, generator, op.dtype, op.device)
    basis = torch.linalg.qr(op.matmat(sketch)).Q  # the sketch and the exact part in blocks
    bar.update(k)
    products = basis * op.matmat(basis)
    bar.update(k)
    exact = products.sum().item()
    block_exact = _block_sums(products, op.blocks) if by_block else {}
    del sketch, products
    remainder_probes = (max_matvecs if tol is not None else matvecs) - 2 * k
    if remainder_probes < 2:
        raise ValueError(f"a budget of {matvecs} products leaves {remainder_probes} remainder "
                         f"probes after a sketch of {k}; give at least {2 * k + 2}")
    samples: list[float] = []
    block_samples: dict[str, list[float]] = {name: [] for name in op.blocks} if by_block else {}
    for product in _probe_products(op, generator, remainder_probes, basis):
        samples.append(product.sum().item())
        for name, value in (_block_sums(product, op.blocks).items() if by_block else ()):
            block_samples[name].append(value)
        bar.update()
        if _converged(samples, exact, tol, min_probes):
            break
    bar.close()
    return _estimate("hutch++", op, op.matvecs - matvecs_before, exact, samples, block_exact,
                     block_samples, start)


def xtrace(op: LinearOperator, matvecs: int = 100, seed: int = 0) -> TraceEstimate:
    """XTrace (Epperly, Tropp & Webber, SIMAX 2024): Hutch++ made exchangeable. With m = matvecs/2
    Rademacher probes Omega, Y = A Omega = QR and Z = A Q, estimate i uses the basis of every
    probe's image but its own, Q_i = range(Y without column i), and probe i for the rest:
        t_i = Tr(Q_i^T A Q_i) + w_i^T A w_i,   w_i = (I - Q_i Q_i^T) omega_i,
    unbiased because omega_i is independent of Q_i. range(Q_i) is range(Q) less the unit vector
    s_i of R^m orthogonal to R's other columns (column i of R^{-T}, normalised), so
    Q_i Q_i^T = Q (I - s_i s_i^T) Q^T and every t_i comes from the m x m products Q^T Z,
    Q^T Omega, Z^T Omega and R at no further cost. The estimate is the mean of the t_i; they
    are exchangeable, not independent, so std/sqrt(m) (the paper's error estimate) and the
    t-interval built on it are a heuristic, checked for coverage in the tests."""
    start, matvecs_before = time.perf_counter(), op.matvecs
    m = matvecs // 2
    if m < 2 or m >= op.size:
        raise ValueError(f"XTrace with {matvecs} products has {m} probes: give between 4 and "
                         f"{2 * (op.size - 1)} products")
    generator = torch.Generator().manual_seed(seed)
    omega = rademacher_columns(op.size, m, generator, op.dtype, op.device)
    images = op.matmat(omega)
    basis, triangle = torch.linalg.qr(images)
    projected = op.matmat(basis)  # Z = A Q
    small = basis.T @ projected  # H = Q^T A Q
    small = (small + small.T) / 2
    coords = basis.T @ omega  # W: each probe's coordinates in Q
    cross = projected.T @ omega  # T = Z^T Omega
    left_out = torch.linalg.inv(triangle).T
    left_out = left_out / left_out.norm(dim=0, keepdim=True)  # S: column i is s_i
    estimates = []
    for i in range(m):
        s, w, r, t = left_out[:, i], coords[:, i], triangle[:, i], cross[:, i]
        c = s @ w  # s_i . (Q^T omega_i): the part of omega_i on the left-out direction
        # P omega = r_perp + Q s c with r_perp = omega - Q w; A P omega = y - Z w + c Z s
        quadratic = (omega[:, i] @ images[:, i] - w @ r  # r_perp . y  (Q^T y_i = R_i)
                     - (t @ w - w @ small @ w)  # - r_perp . Z w
                     + c * (t @ s - w @ small @ s)  # + c r_perp . Z s
                     + c * (s @ r) - c * (s @ small @ w) + c * c * (s @ small @ s))
        estimates.append((small.trace() - s @ small @ s + quadratic).item())
    return _estimate("xtrace", op, op.matvecs - matvecs_before, 0.0, estimates, {}, {}, start)
