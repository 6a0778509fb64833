"""The GGN, Monte-Carlo Fisher and empirical Fisher operators against dense matrices built
apart from them (float64, tiny GPT-2 and Llama): explicit logit Jacobians times the softmax
cross-entropy's Hessian, and outer products of per-token gradients from autograd."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.sparse.linalg import eigsh
from torch.func import functional_call
from torch.nn.attention import SDPBackend, sdpa_kernel

from est_analysis.hessian import (OPERATORS, EmpiricalFisherOperator, GGNOperator, MCFisherOperator,
                                  curvature_operator, top_eigenvalues)
from est_analysis.models import build_model
from tests.helpers import TINY


def _setup(arch):
    torch.manual_seed(0)
    model = build_model(TINY[arch]).double().eval()
    g = torch.Generator().manual_seed(1)
    batches = [(torch.randint(0, 16, (3, 8), generator=g), torch.randint(0, 16, (3, 8), generator=g))
               for _ in range(2)]
    return model, batches


def _functional(model):
    names, params = zip(*model.named_parameters())
    flat = torch.cat([p.detach().reshape(-1) for p in params])

    def logits(vector, x):
        pieces = torch.split(vector, [p.numel() for p in params])
        state = {n: v.view_as(p) for n, v, p in zip(names, pieces, params)}
        with sdpa_kernel(SDPBackend.MATH):
            return functional_call(model, state, (x,)).flatten(0, 1)  # (N, vocab)
    return flat, logits


def _dense_ggn(model, batches):
    flat, logits = _functional(model)
    total = 0
    for x, _ in batches:
        z = logits(flat, x).detach()
        jacobian = torch.autograd.functional.jacobian(lambda v: logits(v, x), flat)  # (N, V, n)
        probs = z.softmax(-1)
        lam = torch.diag_embed(probs) - probs[:, :, None] * probs[:, None, :]  # (N, V, V)
        total = total + torch.einsum("iap,iab,ibq->pq", jacobian, lam, jacobian) / z.shape[0]
    return total / len(batches)


def _dense_empirical_fisher(model, batches):
    flat, logits = _functional(model)
    total = 0
    for x, y in batches:
        grads = [torch.autograd.grad(F.cross_entropy(logits(flat.requires_grad_(), x)[i:i + 1], y.flatten()[i:i + 1]),
                                     flat)[0] for i in range(y.numel())]  # one token's loss at a time
        stacked = torch.stack(grads)
        total = total + stacked.T @ stacked / len(grads)
    return total / len(batches)


@pytest.fixture(scope="module", params=["gpt2", "llama"])
def dense(request):
    model, batches = _setup(request.param)
    return model, batches, _dense_ggn(model, batches), _dense_empirical_fisher(model, batches)


def _probes(size, k=4, seed=2):
    return torch.randn(size, k, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))


def test_ggn_products_are_the_explicit_jacobian_products(dense):
    model, batches, ggn, _ = dense
    op = GGNOperator(model, batches)
    v = _probes(op.size)
    torch.testing.assert_close(op.matmat(v), ggn @ v, rtol=1e-9, atol=1e-11)
    assert torch.linalg.eigvalsh(ggn).min() > -1e-10  # PSD, as the operator's users assume


def test_empirical_fisher_products_are_mean_per_token_gradient_outer_products(dense):
    model, batches, _, fisher = dense
    op = EmpiricalFisherOperator(model, batches)
    v = _probes(op.size)
    torch.testing.assert_close(op.matmat(v), fisher @ v, rtol=1e-9, atol=1e-11)


def test_monte_carlo_fisher_converges_to_the_ggn(dense):
    model, batches, ggn, _ = dense
    v = _probes(ggn.shape[0], k=8)
    target = ggn @ v

    def error(samples, seed):
        op = MCFisherOperator(model, batches, samples=samples, seed=seed)
        return (op.matmat(v) - target).norm().item() / target.norm().item()

    few = np.mean([error(4, seed) for seed in range(3)])
    many = np.mean([error(400, seed) for seed in range(3)])
    assert many < few / 5  # 1/sqrt(M): 10 times smaller expected
    assert many < 0.1


@pytest.mark.parametrize("name", sorted(OPERATORS))
def test_matmat_is_stacked_matvecs_and_the_operator_is_symmetric(dense, name):
    model, batches, _, _ = dense
    op = curvature_operator(name, model, batches)
    v = _probes(op.size, k=5)
    stacked = torch.stack([op.matvec(v[:, i]) for i in range(5)], dim=1)
    product = op.matmat(v)
    torch.testing.assert_close(product, stacked, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(v.T @ product, product.T @ v, rtol=1e-9, atol=1e-10)
    assert op.matvecs == 10


def test_scipy_operator_and_lanczos_find_the_dense_top_eigenvalues(dense):
    model, batches, ggn, _ = dense
    op = GGNOperator(model, batches)
    expected = torch.linalg.eigvalsh(ggn).flip(0)[:3].numpy()
    scipy_values = np.sort(eigsh(op.to_scipy(), k=3, which="LA", tol=1e-10)[0])[::-1]
    np.testing.assert_allclose(scipy_values, expected, rtol=1e-7)
    lanczos = top_eigenvalues(op, k=3, iters=80)
    np.testing.assert_allclose(lanczos.values, expected, rtol=1e-6)


@pytest.mark.parametrize("name", ["hessian", "ggn"])
def test_the_memory_guard_sees_each_pass_and_the_logits_it_multiplies(name, monkeypatch):
    import est_analysis.hessian.operator as operator_module
    needs = []
    monkeypatch.setattr(operator_module, "check_memory", lambda need, *args: needs.append(need))
    model, batches = _setup("gpt2")
    op = curvature_operator(name, model, batches)
    op.chunk = 4
    op.matmat(_probes(op.size, k=10))
    assert len(needs) == 3  # passes of 4, 4 and 2 vectors
    vectors = 3 * 4 * op.size * 8  # float64 copies per pass
    logits = 3 * 4 * batches[0][0].numel() * TINY["gpt2"].vocab_size * 8
    assert needs[0] >= vectors + (logits if name == "ggn" else 0)
