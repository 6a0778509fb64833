"""The models execute subnets as eq. 5-7 say, and compute them small."""

import pytest
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from est_analysis.cost import layer_step_flops, step_flops
from est_analysis.models import build_model
from est_analysis.subnet import Subnet
from est_analysis.models.masked import masked_forward

ARCHS = ["gpt2-smoke", "llama-smoke"]
RATES = [(0.5, 0.5, 0.5), (0.5, 0.5, 1.0), (1.0, 1.0, 0.5), (0.5, 0.25, 0.75)]


def _model(name, seed=0):
    torch.manual_seed(seed)
    model = build_model(name)
    with torch.no_grad():  # non-zero biases so that bias handling is visible
        for n, p in model.named_parameters():
            if n.endswith("bias"):
                p.normal_(0, 0.1)
    return model


def _idx(model, batch=3, seq=24, seed=1):
    return torch.randint(0, model.config.vocab_size, (batch, seq),
                         generator=torch.Generator().manual_seed(seed))


def _sample(model, rates, seed=0):
    return Subnet.sample(model.config, rates, torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("name", ARCHS)
def test_full_rates_equal_plain_forward(name):
    model = _model(name)
    idx = _idx(model)
    plain = model(idx)
    assert torch.equal(model(idx, Subnet.full(model.config)), plain)
    assert torch.equal(model(idx, _sample(model, (1.0, 1.0, 1.0))), plain)


@pytest.mark.parametrize("name", ARCHS)
@pytest.mark.parametrize("rates", RATES)
def test_sliced_subnet_equals_masked_reference(name, rates):
    model = _model(name)
    idx = _idx(model)
    for seed in range(3):
        subnet = _sample(model, rates, seed)
        torch.testing.assert_close(model(idx, subnet), masked_forward(model, idx, subnet),
                                   rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", ARCHS)
@pytest.mark.parametrize("module", ["mlp", "attn"])
def test_subnet_module_output_is_unbiased(name, module):
    """E over sampled subsets of the 1/p-rescaled module output = the full output (eq. 5, 6)."""
    model = _model(name)
    block = model.blocks[0]
    sub = getattr(block, module)
    x = torch.randn(2, 8, model.config.d_model, generator=torch.Generator().manual_seed(3))
    generator = torch.Generator().manual_seed(4)
    with torch.no_grad():
        full = sub(x)
        draws = []
        for _ in range(3000):
            subnet = Subnet.sample(model.config, (0.5, 0.5, 1.0), generator)
            draws.append(sub(x, subnet.neurons[0] if module == "mlp" else subnet.heads[0]))
        draws = torch.stack(draws)
    mean, stderr = draws.mean(0), draws.std(0) / len(draws) ** 0.5
    z = (mean - full).abs() / (stderr + 1e-12)
    assert z.max() < 5.5, z.max()
    assert (draws[0] - full).abs().max() > 10 * stderr.max()  # single draws really differ


@pytest.mark.parametrize("name", ARCHS)
def test_gradients_outside_the_subnet_are_exactly_zero(name):
    model = _model(name)
    config = model.config
    subnet = _sample(model, (0.5, 0.5, 0.5), seed=2)
    model(_idx(model), subnet).square().mean().backward()
    hd = config.head_dim
    for slot, layer in enumerate(subnet.layers):
        block = model.blocks[layer]
        heads, neurons = subnet.heads[slot], subnet.neurons[slot]
        dropped_heads = sorted(set(range(config.n_head)) - set(heads.tolist()))
        dropped_neurons = sorted(set(range(config.d_mlp)) - set(neurons.tolist()))
        out_grad = block.attn.out.weight.grad.view(config.d_model, config.n_head, hd)
        assert torch.all(out_grad[:, dropped_heads] == 0)
        assert torch.all(out_grad[:, heads.tolist()].abs().sum((0, 2)) > 0)
        up_grad = block.mlp.up.weight.grad
        assert torch.all(up_grad[dropped_neurons] == 0)
        assert torch.all(up_grad[neurons].abs().sum(1) > 0)
        assert torch.all(block.mlp.out.weight.grad[:, dropped_neurons] == 0)
    for layer in set(range(config.n_layer)) - set(subnet.layers):
        assert all(p.grad is None for p in model.blocks[layer].parameters())


@pytest.mark.parametrize("module", ["mlp", "attn"])
def test_output_bias_is_not_rescaled(module):
    model = _model("gpt2-smoke")
    sub = getattr(model.blocks[0], module)
    with torch.no_grad():
        sub.out.weight.zero_()
    subnet = _sample(model, (0.5, 0.5, 1.0))
    units = subnet.neurons[0] if module == "mlp" else subnet.heads[0]
    y = sub(torch.randn(2, 5, model.config.d_model), units)
    torch.testing.assert_close(y, sub.out.bias.detach().expand_as(y))


@pytest.mark.parametrize("name", ARCHS)
@pytest.mark.parametrize("rates", [(1.0, 1.0, 1.0)] + RATES)
def test_counted_flops_match_the_cost_model_and_scale_with_rates(name, rates):
    """FlopCounterMode (math attention: the CPU fused kernel has no FLOP formula) on a real
    forward+backward equals the analytic count used for the metrics."""
    model = _model(name)
    subnet = _sample(model, rates)
    idx = _idx(model, batch=2, seq=32)
    counter = FlopCounterMode(display=False)
    with sdpa_kernel(SDPBackend.MATH), counter:
        model(idx, subnet).logsumexp(-1).sum().backward()
    assert counter.get_total_flops() == step_flops(model.config, subnet, 2, 32)
    p_h, p_m, p_l = rates
    full_layers = layer_step_flops(model.config, None, 2, 32)
    if p_h == p_m:  # then every layer matmul shrinks by the same factor
        assert layer_step_flops(model.config, subnet, 2, 32) == pytest.approx(
            p_l * p_h * full_layers)
