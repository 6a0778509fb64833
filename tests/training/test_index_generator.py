import pytest

from est_analysis.training.index_generator import IndexGenerator
from est_analysis.methods import build_policy
from est_analysis.models import get_config
from est_analysis.schedule import Schedule


def test_prefetched_subnets_equal_direct_draws():
    policy = build_policy("est", get_config("gpt2-smoke"), 60, seed=5, schedule=Schedule.preset("est-gpt2", 60))
    with IndexGenerator(policy, start=10, stop=40, depth=4) as generator:
        for step in range(10, 40):
            assert generator.get(step).same_as(policy.subnet(step))


def test_steps_must_be_requested_in_order():
    policy = build_policy("est", get_config("gpt2-smoke"), 60, seed=5, schedule=Schedule.preset("est-gpt2", 60))
    with IndexGenerator(policy, start=0, stop=60) as generator:
        generator.get(0)
        with pytest.raises(RuntimeError, match="asked for step 5, expected 1"):
            generator.get(5)
