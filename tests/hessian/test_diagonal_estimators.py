"""Diagonal estimators against exact diagonals: XDiag's closed form against the leave-one-out
computed by brute force, unbiasedness over seeds, interval coverage of block sums, and the
Hessian diagonal of a tiny model per parameter tensor."""

import pytest
import torch

from est_analysis.hessian import HessianOperator, MatrixOperator
from est_analysis.hessian.diagonal import hutchinson_diagonal, xdiag
from est_analysis.hessian.trace import rademacher
from tests.hessian.test_hessian_exact import _exact_hessian, _setup
from tests.hessian.test_trace_estimators import DECAYING, INDEFINITE, _matrix


def test_xdiag_samples_are_the_brute_force_leave_one_out_estimates():
    matrix, m = _matrix(INDEFINITE[:120]), 8
    generator = torch.Generator().manual_seed(4)
    omega = torch.stack([rademacher(120, generator, torch.float64, torch.device("cpu")) for _ in range(m)], 1)
    images = matrix @ omega
    expected = []
    for i in range(m):
        basis = torch.linalg.qr(images[:, [j for j in range(m) if j != i]]).Q
        projector = basis @ basis.T
        expected.append(torch.diagonal(projector @ matrix) + omega[:, i] * ((torch.eye(120) - projector) @ matrix @ omega[:, i]))
    result = xdiag(MatrixOperator(matrix), matvecs=2 * m, seed=4)
    torch.testing.assert_close(result.samples, torch.stack(expected), rtol=1e-9, atol=1e-10)
    assert result.matvecs == 2 * m


BLOCKS = {"first": slice(0, 50), "rest": slice(50, 200)}


@pytest.fixture(scope="module")
def repeated():
    """Both estimators at 30 products on a 1/i^2 spectrum, 200 seeds each."""
    matrix = _matrix(DECAYING)
    return torch.diagonal(matrix), {
        "hutchinson": [hutchinson_diagonal(MatrixOperator(matrix, BLOCKS), probes=30, seed=s) for s in range(200)],
        "xdiag": [xdiag(MatrixOperator(matrix, BLOCKS), matvecs=30, seed=s) for s in range(200)]}


@pytest.mark.parametrize("name", ["hutchinson", "xdiag"])
def test_diagonal_estimates_are_unbiased(repeated, name):
    truth, results = repeated
    estimates = torch.stack([r.diagonal for r in results[name]])
    spread = estimates.std(0) / len(results[name]) ** 0.5
    assert ((estimates.mean(0) - truth).abs() <= 4 * spread + 1e-12).float().mean() >= 0.99


def _coverage(results, truth, where):
    rows = [r.summary({"part": where}).iloc[0] for r in results]
    return sum(row.ci_low <= truth[where].sum().item() <= row.ci_high for row in rows) / len(rows)


def test_hutchinson_block_intervals_cover_at_their_rate(repeated):
    truth, results = repeated
    for where in BLOCKS.values():
        assert _coverage(results["hutchinson"], truth, where) >= 0.92


def test_xdiag_is_far_more_accurate_than_hutchinson_but_its_interval_is_a_heuristic(repeated):
    """XDiag's samples are exchangeable, not independent: its standard error understates the
    error (coverage 0.775-0.865 here, stated in docs/curvature.md), while its error is far
    below Hutchinson's at equal products."""
    truth, results = repeated
    for where in BLOCKS.values():
        errors = {name: sum((r.diagonal[where].sum().item() - truth[where].sum().item()) ** 2
                            for r in rs) / len(rs) for name, rs in results.items()}
        assert errors["xdiag"] < errors["hutchinson"] / 100, errors
        assert 0.7 <= _coverage(results["xdiag"], truth, where) < 0.95


def test_hessian_diagonal_per_tensor_of_a_tiny_model():
    model, batches = _setup("gpt2")
    hessian = _exact_hessian(model, batches)
    op = HessianOperator(model, batches)
    result = hutchinson_diagonal(op, probes=400, seed=0)
    table = result.summary(op.tensors).set_index("part")
    assert list(table.index) == [n for n, _ in model.named_parameters()]
    for name, where in op.tensors.items():
        exact = torch.diagonal(hessian)[where].sum().item()
        assert abs(table.loc[name, "diag_sum"] - exact) <= 5 * table.loc[name, "stderr"] + 1e-9, name
