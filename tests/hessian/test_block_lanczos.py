"""Block Lanczos against eigenvalues computed densely by LAPACK: the top eigenvalues of explicit
matrices and of a tiny model's GGN, exact residuals, and one pass over the data per block."""

import numpy as np
import pytest
import torch

from est_analysis.hessian import GGNOperator, MatrixOperator, top_eigenvalues
from est_analysis.models import build_model
from tests.helpers import TINY


def _matrix(eigenvalues, seed=0):
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(len(eigenvalues), len(eigenvalues), generator=g, dtype=torch.float64))
    return q @ torch.diag(eigenvalues) @ q.T


class _CountingPasses(MatrixOperator):
    passes = 0

    def matmat(self, vectors):
        self.passes += 1
        return super().matmat(vectors)


@pytest.mark.parametrize("block", [1, 4, 8])
def test_block_lanczos_finds_the_top_eigenvalues_of_an_indefinite_matrix(block):
    spectrum = torch.cat([torch.tensor([50.0, 40.0, 30.0, 20.0, 10.0]), torch.linspace(-3, 3, 295)]).double()
    matrix = _matrix(spectrum)
    result = top_eigenvalues(MatrixOperator(matrix), k=5, iters=96, block=block)
    np.testing.assert_allclose(result.values, [50, 40, 30, 20, 10], rtol=1e-8)
    assert max(result.residuals) < 1e-6
    assert result.smallest == pytest.approx(-3, abs=0.05)


def test_block_lanczos_residuals_are_the_true_residual_norms():
    spectrum = torch.arange(1, 201, dtype=torch.float64) ** -1.0  # slow decay: not converged
    matrix = _matrix(spectrum, seed=3)
    result = top_eigenvalues(MatrixOperator(matrix), k=3, iters=12, block=4)
    # a Ritz value theta with residual r lies within r of an eigenvalue (Weyl/Bauer-Fike)
    for value, residual in zip(result.values, result.residuals):
        assert residual > 1e-6
        assert np.min(np.abs(spectrum.numpy() - value)) <= residual + 1e-12


def test_block_lanczos_reads_the_data_once_per_block():
    op = _CountingPasses(_matrix(torch.linspace(1, 2, 100).double()))
    result = top_eigenvalues(op, k=2, iters=40, block=8)
    assert (op.passes, result.matvecs) == (5, 40)


def test_block_lanczos_on_a_tiny_models_ggn_matches_the_dense_eigenvalues():
    torch.manual_seed(0)
    model = build_model(TINY["llama"]).double().eval()
    g = torch.Generator().manual_seed(1)
    batches = [(torch.randint(0, 16, (3, 8), generator=g), torch.randint(0, 16, (3, 8), generator=g))]
    op = GGNOperator(model, batches)
    dense = op.matmat(torch.eye(op.size, dtype=torch.float64))
    top = torch.linalg.eigvalsh((dense + dense.T) / 2).flip(0)[:3].numpy()
    result = top_eigenvalues(op, k=3, iters=160, block=16)
    np.testing.assert_allclose(result.values, top, rtol=1e-6)


def test_a_block_krylov_space_larger_than_the_model_is_refused():
    with pytest.raises(ValueError, match="--block 8 and 40 products.*lower them"):
        top_eigenvalues(MatrixOperator(torch.eye(30, dtype=torch.float64)), k=2, iters=40, block=8)
