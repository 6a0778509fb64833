"""The blockwise loss at the head equals cross-entropy over the full logits, value and
gradients, in float64, float32 and under bf16 autocast, and refuses a second derivative."""

import pytest
import torch
import torch.nn.functional as F

import est_analysis.models.head_loss as head_loss
from est_analysis.models import build_model
from est_analysis.subnet import Subnet


def _problem(dtype, tokens=(3, 50), d=16, vocab=97, seed=0):
    g = torch.Generator().manual_seed(seed)
    hidden = (2 * torch.randn(*tokens, d, generator=g, dtype=dtype)).requires_grad_()
    weight = torch.randn(vocab, d, generator=g, dtype=dtype).requires_grad_()
    targets = torch.randint(0, vocab, tokens, generator=g)
    return hidden, weight, targets


def _reference(hidden, weight, targets):
    """Cross-entropy written out over the full logits, apart from the code under test."""
    logits = (hidden @ weight.t()).flatten(0, 1)
    picked = logits.gather(1, targets.flatten()[:, None]).squeeze(1)
    return (torch.logsumexp(logits, 1) - picked).mean()


@pytest.mark.parametrize("rows", [7, 150, 1000])  # ragged blocks, one block each, one in all
def test_value_and_gradients_equal_the_full_logits_in_float64(rows, monkeypatch):
    monkeypatch.setattr(head_loss, "MIN_ROWS", rows)
    monkeypatch.setattr(head_loss, "BLOCK_ELEMENTS", 1)
    hidden, weight, targets = _problem(torch.float64)
    want = _reference(hidden, weight, targets)
    got = head_loss.linear_cross_entropy(hidden, weight, targets)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=0)
    for a, b in zip(torch.autograd.grad(got, (hidden, weight)), torch.autograd.grad(want, (hidden, weight))):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-14)


def test_buffers_kept_between_calls_of_other_shapes_and_after_release_give_the_same_answers():
    head_loss.release_workspace()
    for vocab, tokens in ((97, (2, 30)), (300, (3, 700)), (97, (1, 5))):
        hidden, weight, targets = _problem(torch.float32, tokens=tokens, vocab=vocab)
        want = _reference(hidden, weight, targets)
        torch.testing.assert_close(head_loss.linear_cross_entropy(hidden, weight, targets), want,
                                   rtol=1e-6, atol=0)
    head_loss.release_workspace()
    assert head_loss.linear_cross_entropy(hidden, weight, targets).item() == pytest.approx(want.item(), rel=1e-6)


def test_float32_matches_f_cross_entropy_to_rounding():
    hidden, weight, targets = _problem(torch.float32, tokens=(4, 300), d=32, vocab=2000)
    want = F.cross_entropy((hidden @ weight.t()).flatten(0, 1), targets.flatten())
    got = head_loss.linear_cross_entropy(hidden, weight, targets)
    torch.testing.assert_close(got, want, rtol=1e-6, atol=0)
    for a, b in zip(torch.autograd.grad(got, (hidden, weight)), torch.autograd.grad(want, (hidden, weight))):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)


def test_a_target_far_below_the_top_logit_gives_its_large_finite_loss():
    hidden, weight, targets = _problem(torch.float32, tokens=(1, 4))
    with torch.no_grad():
        weight[targets[0, 0]] -= 400 * hidden[0, 0] / hidden[0, 0].square().sum()  # logit -400 lower
    want = F.cross_entropy((hidden @ weight.t()).flatten(0, 1), targets.flatten())
    got = head_loss.linear_cross_entropy(hidden, weight, targets)
    assert 90 < want.item() < float("inf")  # its probability underflows float32
    torch.testing.assert_close(got, want, rtol=1e-6, atol=0)


def test_the_incoming_gradient_scales_the_result_and_frozen_inputs_get_none():
    hidden, weight, targets = _problem(torch.float64)
    weight.requires_grad_(False)
    (3.5 * head_loss.linear_cross_entropy(hidden, weight, targets)).backward()
    (want,) = torch.autograd.grad(3.5 * _reference(hidden, weight, targets), hidden)
    torch.testing.assert_close(hidden.grad, want, rtol=1e-10, atol=1e-14)
    assert weight.grad is None


def test_a_second_derivative_raises_instead_of_being_wrong():
    hidden, weight, targets = _problem(torch.float64)
    loss = head_loss.linear_cross_entropy(hidden, weight, targets)
    with pytest.raises(RuntimeError, match="differentiable once; for second derivatives .* use token_loss"):
        torch.autograd.grad(loss, hidden, create_graph=True)


def _grads(model, loss):
    params = list(model.parameters())
    grads = torch.autograd.grad(loss, params, allow_unused=True)  # a subnet skips layers
    return [torch.zeros_like(p) if g is None else g for p, g in zip(params, grads)]


@pytest.mark.parametrize("name", ["gpt2-smoke", "llama-smoke"])
def test_a_decoder_given_targets_returns_its_loss_fused_when_training(name):
    torch.manual_seed(0)
    model = build_model(name)
    idx = torch.randint(0, model.config.vocab_size, (3, 24))
    targets, subnet = idx.roll(-1, 1), Subnet.for_step(model.config, (0.5, 0.5, 0.5), seed=0, step=3)
    unfused = head_loss.token_loss(model(idx, subnet), targets)
    fused = model(idx, subnet, targets)
    assert fused.grad_fn.name().endswith("_LinearCrossEntropyBackward")
    torch.testing.assert_close(fused, unfused, rtol=1e-6, atol=0)
    for a, b in zip(_grads(model, fused), _grads(model, unfused)):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)
    with torch.no_grad():
        assert model(idx, subnet, targets).item() == head_loss.token_loss(model(idx, subnet), targets).item()


def test_under_bf16_autocast_it_is_as_close_to_float32_as_the_unfused_loss():
    torch.manual_seed(0)
    model = build_model("gpt2-smoke")
    idx = torch.randint(0, model.config.vocab_size, (4, 64))
    targets = idx.roll(-1, 1)
    exact = _grads(model, head_loss.token_loss(model(idx), targets))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        unfused = _grads(model, head_loss.token_loss(model(idx).float(), targets))
        fused = _grads(model, model(idx, targets=targets))
    for e, u, f in zip(exact, unfused, fused):
        assert (f - e).norm() <= 1.25 * (u - e).norm() + 1e-6 * e.norm()
