"""Our curvature operators against curvlinops (curvlinops-for-pytorch 3.0.1) on tiny GPT-2 and
Llama models in float64: where curvlinops is right its products equal ours, and where it is not
(its forward-over-reverse Hessian product under torch 2.13) central finite differences of the
gradient side with ours."""

import pytest
import torch
import torch.nn.functional as F
from torch.func import functional_call
from torch.nn.attention import SDPBackend, sdpa_kernel

from est_analysis.hessian import curvature_operator
from est_analysis.hessian.curvlinops_bridge import curvlinops_operator
from est_analysis.models import build_model
from tests.helpers import TINY, perturbed


def _setup(arch):
    torch.manual_seed(0)
    model = perturbed(build_model(TINY[arch]).double().eval())
    g = torch.Generator().manual_seed(1)
    batches = [(torch.randint(0, 16, (3, 8), generator=g), torch.randint(0, 16, (3, 8), generator=g))
               for _ in range(2)]
    vectors = torch.randn(sum(p.numel() for p in model.parameters()), 3, dtype=torch.float64,
                          generator=torch.Generator().manual_seed(2))
    return model, batches, vectors


def _relative(a, b):
    return float((a - b).abs().max() / b.abs().max())


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
@pytest.mark.parametrize("name", ["ggn", "empirical-fisher"])
def test_curvlinops_ggn_and_empirical_fisher_equal_ours(arch, name):
    model, batches, vectors = _setup(arch)
    ours = curvature_operator(name, model, batches).matmat(vectors)
    theirs = curvlinops_operator(name, model, batches) @ vectors
    torch.testing.assert_close(theirs, ours, rtol=1e-10, atol=1e-12)


def test_both_monte_carlo_fishers_estimate_the_exact_ggn():
    model, batches, vectors = _setup("gpt2")
    exact = curvature_operator("ggn", model, batches).matmat(vectors)
    ours = curvature_operator("mc-fisher", model, batches, mc_samples=2000).matmat(vectors)
    theirs = curvlinops_operator("mc-fisher", model, batches, mc_samples=2000) @ vectors
    one_sample = curvature_operator("mc-fisher", model, batches, mc_samples=1).matmat(vectors)
    assert _relative(ours, exact) < 0.1 and _relative(theirs, exact) < 0.1
    assert _relative(one_sample, exact) > 3 * max(_relative(ours, exact), _relative(theirs, exact))


def _gradient_differences(model, batches, v, step):
    """(g(theta + h v) - g(theta - h v)) / 2h, the gradient of the mean loss written out here."""
    names, params = zip(*model.named_parameters())
    flat = torch.cat([p.detach().reshape(-1) for p in params])

    def gradient(vector):
        vector = vector.clone().requires_grad_()
        state = {n: piece.view_as(p) for n, piece, p in
                 zip(names, torch.split(vector, [p.numel() for p in params]), params)}
        with sdpa_kernel(SDPBackend.MATH):
            loss = sum(F.cross_entropy(functional_call(model, state, (x,)).flatten(0, 1), y.flatten())
                       for x, y in batches) / len(batches)
        return torch.autograd.grad(loss, vector)[0]
    return (gradient(flat + step * v) - gradient(flat - step * v)) / (2 * step)


def test_ours_matches_finite_differences_where_curvlinops_hessian_does_not():
    model, batches, vectors = _setup("gpt2")
    v = vectors[:, 0]
    coarse, fine = (_gradient_differences(model, batches, v, h) for h in (1e-4, 5e-5))
    richardson = (4 * fine - coarse) / 3  # O(h^4)
    ours = curvature_operator("hessian", model, batches).matvec(v)
    theirs = curvlinops_operator("hessian", model, batches) @ v
    assert _relative(ours, richardson) < 1e-7
    layer_norm_gains = torch.zeros_like(v, dtype=torch.bool)
    offset = 0
    for name, p in model.named_parameters():
        layer_norm_gains[offset:offset + p.numel()] = "norm" in name and name.endswith("weight")
        offset += p.numel()
    assert _relative(theirs[~layer_norm_gains], richardson[~layer_norm_gains]) < 1e-7
    assert _relative(theirs[layer_norm_gains], richardson[layer_norm_gains]) > 1e-2


def test_curvlinops_hessian_has_no_forward_mode_rule_for_llamas_silu():
    model, batches, vectors = _setup("llama")
    with pytest.raises(NotImplementedError, match="silu_backward"):
        curvlinops_operator("hessian", model, batches) @ vectors
    ours = curvature_operator("hessian", model, batches).matvec(vectors[:, 0])
    coarse, fine = (_gradient_differences(model, batches, vectors[:, 0], h) for h in (1e-4, 5e-5))
    assert _relative(ours, (4 * fine - coarse) / 3) < 1e-7


def test_an_unknown_operator_is_refused_by_name():
    model, batches, _ = _setup("gpt2")
    with pytest.raises(ValueError, match="'kfac'.*hessian, ggn"):
        curvlinops_operator("kfac", model, batches)
