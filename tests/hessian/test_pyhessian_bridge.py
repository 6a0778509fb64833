"""Our estimators and pyhessian's agree on the same model and batch."""

import pytest
import torch

from est_analysis.hessian import HessianOperator, hutchpp, spectral_density, top_eigenvalues
from est_analysis.hessian.pyhessian_bridge import (pyhessian_density, pyhessian_eigenvalues,
                                                   pyhessian_trace)
from est_analysis.models import build_model
from tests.helpers import TINY


@pytest.fixture(scope="module")
def model_and_batch():
    torch.manual_seed(0)
    model = build_model(TINY["gpt2"]).double()
    g = torch.Generator().manual_seed(5)
    return model, (torch.randint(0, 16, (4, 8), generator=g), torch.randint(0, 16, (4, 8), generator=g))


def test_traces_agree_within_confidence_intervals(model_and_batch):
    model, batch = model_and_batch
    ours = hutchpp(HessianOperator(model, [batch]), matvecs=150, seed=0)
    theirs = pyhessian_trace(model, batch, probes=150, seed=0)
    assert theirs.matvecs == 150
    assert ours.ci_low <= theirs.ci_high and theirs.ci_low <= ours.ci_high
    assert all(p.grad is None for p in model.parameters())  # the bridge leaves no gradients


def test_top_eigenvalue_and_density_agree(model_and_batch):
    model, batch = model_and_batch
    op = HessianOperator(model, [batch])
    ours = top_eigenvalues(op, k=1).values[0]
    theirs = pyhessian_eigenvalues(model, batch, top=1, max_iter=300, tol=1e-8)[0]
    assert abs(theirs) == pytest.approx(max(abs(ours), abs(top_eigenvalues(op, k=1).smallest)), rel=1e-3)
    nodes, weights = pyhessian_density(model, batch, iters=60, runs=1)
    density = spectral_density(op, iters=60, runs=1)
    assert nodes.max() == pytest.approx(density.nodes.max(), rel=1e-3)
    assert weights.sum() == pytest.approx(1.0, abs=1e-6)
