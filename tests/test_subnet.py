import pytest
import torch

from est_analysis.models import get_config
from est_analysis.seeding import seeded_generator
from est_analysis.subnet import Subnet

GPT2, LLAMA = get_config("gpt2-smoke"), get_config("llama-smoke")


def test_sample_keeps_exactly_n_times_p_units():
    subnet = Subnet.sample(GPT2, (0.5, 0.25, 0.75), torch.Generator().manual_seed(0))
    assert len(subnet.layers) == 3 and list(subnet.layers) == sorted(subnet.layers)
    for n_heads, n_neurons in subnet.counts(GPT2):
        assert (n_heads, n_neurons) == (2, 64)
    for heads, neurons in zip(subnet.heads, subnet.neurons):
        assert len(set(heads.tolist())) == 2 and len(set(neurons.tolist())) == 64


def test_gqa_samples_whole_kv_groups():
    config = get_config("tinyllama-1.1b")
    subnet = Subnet.sample(config, (0.5, 0.5, 1.0), torch.Generator().manual_seed(0))
    for heads in subnet.heads:
        groups = heads.view(-1, config.group_size) // config.group_size
        assert len(heads) == 16 and torch.all(groups == groups[:, :1])  # 2 of 4 groups


def test_subnet_depends_only_on_seed_and_step():
    a = Subnet.for_step(GPT2, (0.5, 0.5, 0.5), seed=3, step=17)
    assert a.same_as(Subnet.for_step(GPT2, (0.5, 0.5, 0.5), seed=3, step=17))
    assert not a.same_as(Subnet.for_step(GPT2, (0.5, 0.5, 0.5), seed=3, step=18))
    assert not a.same_as(Subnet.for_step(GPT2, (0.5, 0.5, 0.5), seed=4, step=17))
    torch.manual_seed(123)  # global RNG state plays no part
    assert a.same_as(Subnet.for_step(GPT2, (0.5, 0.5, 0.5), seed=3, step=17))
    assert seeded_generator(3, 17).initial_seed() == seeded_generator(3, 17).initial_seed()
    assert seeded_generator(3, 17).initial_seed() != seeded_generator(3, 18).initial_seed()


def test_full_rates_give_the_full_subnet():
    subnet = Subnet.for_step(LLAMA, (1.0, 1.0, 1.0), seed=0, step=5)
    assert subnet.same_as(Subnet.full(LLAMA))
    assert subnet.counts(LLAMA) == [(4, 176)] * 4


@pytest.mark.parametrize("rates, message", [
    ((0.3, 0.5, 0.5), r"p_H .* 0.3 x 2 units = 0.6 is not a whole number"),
    ((0.5, 0.33, 0.5), r"p_M .* not a whole number"),
    ((0.5, 0.5, 0.0), r"p_L .* outside \(0, 1\]"),
    ((1.5, 0.5, 0.5), r"outside \(0, 1\]"),
])
def test_bad_rates_get_clear_errors(rates, message):
    with pytest.raises(ValueError, match=message):
        Subnet.sample(LLAMA, rates, torch.Generator())
