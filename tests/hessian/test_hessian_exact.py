"""Estimators against exact answers: the full Hessian of a tiny model by double backward
(torch.autograd.functional.hessian, float64; torch.func.hessian is not trusted here), and
explicit matrices."""

import pytest
import torch
import torch.nn.functional as F
from torch.func import functional_call
from torch.nn.attention import SDPBackend, sdpa_kernel

from est_analysis.hessian import (HessianOperator, MatrixOperator, hutchinson, hutchpp,
                                  spectral_density, top_eigenvalues)
from est_analysis.models import build_model
from tests.helpers import TINY



def _setup(arch):
    torch.manual_seed(0)
    model = build_model(TINY[arch]).double()
    g = torch.Generator().manual_seed(1)
    batches = [(torch.randint(0, 16, (3, 8), generator=g), torch.randint(0, 16, (3, 8), generator=g))
               for _ in range(2)]
    return model, batches


def _exact_hessian(model, batches):
    names, params = zip(*model.named_parameters())
    flat = torch.cat([p.detach().reshape(-1) for p in params])

    def loss(vector):
        pieces = torch.split(vector, [p.numel() for p in params])
        state = {n: v.view_as(p) for n, v, p in zip(names, pieces, params)}
        with sdpa_kernel(SDPBackend.MATH):
            return sum(F.cross_entropy(functional_call(model, state, (x,)).flatten(0, 1), y.flatten())
                       for x, y in batches) / len(batches)

    return torch.autograd.functional.hessian(loss, flat)


@pytest.fixture(scope="module", params=["gpt2", "llama"])
def exact(request):
    model, batches = _setup(request.param)
    return model, batches, _exact_hessian(model, batches)


def test_hessian_vector_products_are_exact(exact):
    model, batches, hessian = exact
    op = HessianOperator(model, batches)
    v = torch.randn(op.size, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(op.matvec(v), hessian @ v, rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize("estimator", [
    lambda op: hutchinson(op, probes=300, seed=3, by_block=True),
    lambda op: hutchpp(op, matvecs=300, seed=3, by_block=True)])
def test_trace_and_block_traces_within_their_confidence_intervals(exact, estimator):
    model, batches, hessian = exact
    op = HessianOperator(model, batches)
    result = estimator(op)
    assert result.ci_low <= hessian.trace().item() <= result.ci_high
    assert result.matvecs == 300
    assert sum(e for e, _ in result.blocks.values()) == pytest.approx(result.estimate, rel=1e-9, abs=1e-9)
    diagonal = hessian.diagonal()
    for name, index in op.blocks.items():
        block_estimate, block_stderr = result.blocks[name]
        assert abs(block_estimate - diagonal[index].sum().item()) <= 4 * block_stderr + 1e-9, name


def test_top_eigenvalues(exact):
    model, batches, hessian = exact
    result = top_eigenvalues(HessianOperator(model, batches), k=3)
    expected = torch.linalg.eigvalsh(hessian).flip(0)[:3]
    for got, want in zip(result.values, expected.tolist()):
        assert got == pytest.approx(want, rel=1e-3)
    assert result.smallest == pytest.approx(torch.linalg.eigvalsh(hessian)[0].item(), rel=1e-3)


def test_slq_density_matches_the_spectrum(exact):
    model, batches, hessian = exact
    op = HessianOperator(model, batches)
    density = spectral_density(op, iters=op.size if op.size < 80 else 80, runs=8, seed=0)
    assert density.weights.sum(axis=1) == pytest.approx(1.0)
    eigenvalues = torch.linalg.eigvalsh(hessian)
    assert density.nodes.max() == pytest.approx(eigenvalues.max().item(), rel=1e-3)
    assert density.nodes.min() == pytest.approx(eigenvalues.min().item(), rel=1e-3)
    # SLQ estimates spectral moments: the first is Tr(H)/n
    first_moment = (density.nodes * density.weights).sum(axis=1)
    stderr = first_moment.std(ddof=1) / len(first_moment) ** 0.5
    assert abs(first_moment.mean() - eigenvalues.mean().item()) < 4 * stderr


def _decaying_matrix(n=300, seed=0):
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(n, n, generator=g, dtype=torch.float64))
    eigenvalues = torch.arange(1, n + 1, dtype=torch.float64) ** -2.0 * 100
    return q @ torch.diag(eigenvalues) @ q.T


def test_hutchpp_has_lower_variance_than_hutchinson_at_equal_products():
    matrix = _decaying_matrix()
    truth = matrix.trace().item()
    errors = {"hutchinson": [], "hutch++": []}
    for seed in range(30):
        errors["hutchinson"].append(hutchinson(MatrixOperator(matrix), probes=30, seed=seed).estimate - truth)
        errors["hutch++"].append(hutchpp(MatrixOperator(matrix), matvecs=30, seed=seed).estimate - truth)
    mse = {k: torch.tensor(v).square().mean().item() for k, v in errors.items()}
    assert mse["hutch++"] < mse["hutchinson"] / 10, mse


def test_tolerance_stopping_rule():
    matrix = _decaying_matrix()
    result = hutchpp(MatrixOperator(matrix), sketch=10, tol=0.01, seed=0)
    assert result.ci_high - result.estimate <= 0.01 * abs(result.estimate)
    loose = hutchinson(MatrixOperator(matrix), tol=0.2, seed=0)
    assert 10 <= loose.matvecs < 10_000
    assert loose.ci_high - loose.estimate <= 0.2 * abs(loose.estimate)
