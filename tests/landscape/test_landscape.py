"""Landscape probes against a quadratic toy loss, whose surface is known in closed form:
L(theta) = 1/2 theta^T A theta + c^T theta over the flattened weights of a tiny module."""

import pytest
import torch
from torch import nn

from est_analysis.landscape import (epsilon_sharpness, filter_normalized_direction, interpolate,
                                    slice_1d, slice_2d)


class Toy(nn.Module):
    def __init__(self, seed: int) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        self.weight = nn.Parameter(torch.randn(3, 4, generator=generator, dtype=torch.float64))
        self.bias = nn.Parameter(torch.randn(3, generator=generator, dtype=torch.float64))


def _flat(tensors) -> torch.Tensor:
    return torch.cat([t.reshape(-1) for t in tensors])


@pytest.fixture
def quadratic():
    generator = torch.Generator().manual_seed(0)
    root = torch.randn(15, 15, generator=generator, dtype=torch.float64)
    a, c = root @ root.T / 15, torch.randn(15, generator=generator, dtype=torch.float64)

    def loss(model: nn.Module) -> torch.Tensor:
        theta = _flat(model.parameters())
        return 0.5 * theta @ a @ theta + c @ theta
    return a, c, loss


def _analytic(a, c, theta):
    return float(0.5 * theta @ a @ theta + c @ theta)


def test_directions_are_filter_normalized_and_seeded():
    model = Toy(1)
    d = filter_normalized_direction(model, seed=3)
    assert d["weight"].norm(dim=1) == pytest.approx(model.weight.detach().norm(dim=1))
    assert not d["bias"].any()  # biases (and norms) stay fixed
    assert d["weight"].equal(filter_normalized_direction(model, seed=3)["weight"])
    assert not d["weight"].equal(filter_normalized_direction(model, seed=4)["weight"])


def test_slices_reproduce_the_analytic_surface(quadratic):
    a, c, loss = quadratic
    model = Toy(1)
    theta = _flat(model.parameters()).detach().clone()
    d1, d2 = filter_normalized_direction(model, 5), filter_normalized_direction(model, 6)
    v1, v2 = _flat(d1.values()), _flat(d2.values())
    alphas = torch.linspace(-1, 1, 7)
    line = slice_1d(model, loss, d1, alphas)
    expected = [_analytic(a, c, theta + float(s) * v1) for s in alphas]
    assert line["loss"].to_numpy() == pytest.approx(expected, rel=1e-12)
    plane = slice_2d(model, loss, d1, d2, alphas, [-0.5, 0.0, 0.5])
    expected = [_analytic(a, c, theta + float(s) * v1 + t * v2) for s in alphas for t in (-0.5, 0.0, 0.5)]
    assert plane["loss"].to_numpy() == pytest.approx(expected, rel=1e-12)
    assert _flat(model.parameters()).equal(theta)  # weights restored


def test_interpolation_between_two_models(quadratic):
    a, c, loss = quadratic
    start, end = Toy(1), Toy(2)
    theta_a, theta_b = (_flat(m.parameters()).detach().clone() for m in (start, end))
    curve = interpolate(start, end, loss, [-0.5, 0.0, 0.25, 1.0, 1.5])
    expected = [_analytic(a, c, (1 - s) * theta_a + s * theta_b) for s in curve["alpha"]]
    assert curve["loss"].to_numpy() == pytest.approx(expected, rel=1e-12)
    assert _flat(start.parameters()).equal(theta_a)


def test_sharpness_finds_the_worst_corner_of_a_separable_quadratic():
    model = Toy(1)
    theta = _flat(model.parameters()).detach().clone()
    diag = torch.linspace(0.5, 2.0, 15, dtype=torch.float64)

    def loss(m):
        return 0.5 * (diag * _flat(m.parameters()) ** 2).sum()
    eps = 0.01
    radius = eps * (theta.abs() + 1)
    # separable convex: each coordinate goes to the end of its interval away from 0
    worst = float(0.5 * (diag * (theta + radius * theta.sign()) ** 2).sum())
    result = epsilon_sharpness(model, loss, eps=eps, steps=6)
    base = float(loss(model).detach())
    assert result.max_loss == pytest.approx(worst, rel=1e-12)
    assert result.sharpness == pytest.approx(100 * (worst - base) / (1 + base))
    assert _flat(model.parameters()).equal(theta)


def test_bad_probe_arguments_are_named(quadratic):
    _, _, loss = quadratic
    with pytest.raises(ValueError, match="eps=0"):
        epsilon_sharpness(Toy(1), loss, eps=0)
    with pytest.raises(ValueError, match="does not match"):
        slice_1d(Toy(1), loss, {"weight": torch.zeros(3, 4)}, [0.0])
