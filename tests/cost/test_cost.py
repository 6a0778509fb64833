"""The cost simulator reproduces the paper's figures and agrees with real FLOP counts."""

import pytest
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from est_analysis.cost import (cost_table, elementwise_step_flops, method_saving, module_table,
                               policy_step_cost, saving, schedule_costs, schedule_saving, speedup,
                               step_cost, step_flops)
from est_analysis.cost.paper import (MSG_SCHEDULE, head_mlp_ratio_for_saving, paper_comparison,
                                     table1)
from est_analysis.methods import build_policy
from est_analysis.models import build_model, get_config
from est_analysis.schedule import Schedule
from est_analysis.subnet import Subnet

GPT2, LLAMA = get_config("gpt2-124m"), get_config("tinyllama-1.1b")


@pytest.mark.parametrize("preset, config, expected", [
    ("est-gpt2", GPT2, 0.26667), ("est-tinyllama", LLAMA, 0.25), ("est-one-stage", GPT2, 0.5),
    ("est-two-stage-a", GPT2, 0.16667), ("est-two-stage-b", GPT2, 0.23333),
    ("est-two-stage-c", GPT2, 0.3), ("est-three-stage", GPT2, 0.26667)])
def test_paper_accounting_reproduces_the_paper(preset, config, expected):
    assert schedule_saving(config, Schedule.preset(preset), "paper") == pytest.approx(expected, abs=5e-5)


def test_table1():
    table = table1()
    assert table.loc["Total", "EST"] == 1.75 and table.loc["Total", "Original"] == 3
    assert table.loc["Saving", "EST"] == pytest.approx(5 / 12)


def test_paper_comparison_matches_everything_but_msg():
    table = paper_comparison().set_index("schedule")
    assert table.drop(index="msg")["matches_paper"].all()
    assert table.loc["staged", "ours_paper_accounting"] == pytest.approx(1 / 6)
    assert not table.loc["msg", "matches_paper"]
    full = table["ours_full_accounting"]
    assert (full.drop(index=["staged", "p=0.5, r1=r2=r3"]) < table["reported_saving"].drop(
        index=["staged", "p=0.5, r1=r2=r3"])).all()  # the unsampled LM head dilutes the saving


def test_msg_ratio_is_solved_not_forced():
    ratio = head_mlp_ratio_for_saving(GPT2, MSG_SCHEDULE, 0.244)
    assert schedule_saving(GPT2, MSG_SCHEDULE, "paper", head_mlp_ratio=ratio) == pytest.approx(0.244)
    assert 0.28 < ratio < 0.31
    assert schedule_saving(GPT2, MSG_SCHEDULE, "paper", seq_len=1024) < 0.244


def test_lm_head_share_of_gpt2_124m():
    table = module_table(GPT2, 1, 1024).set_index("module")
    assert 0.25 < table.loc["lm_head", "share"] < 0.35
    assert table.loc["norms+embeddings", "share"] < 0.002


@pytest.mark.parametrize("name", ["gpt2-smoke", "llama-smoke", "gpt2-cpu", "llama-cpu"])
@pytest.mark.parametrize("rates", [(1.0, 1.0, 1.0), (0.5, 0.5, 0.5), (0.5, 0.5, 1.0), (1.0, 0.5, 1.0)])
def test_predicted_step_flops_agree_with_flop_counter(name, rates):
    torch.manual_seed(0)
    model = build_model(name)
    subnet = Subnet.sample(model.config, rates, torch.Generator().manual_seed(0))
    idx = torch.randint(0, model.config.vocab_size, (1, 64))
    counter = FlopCounterMode(display=False)
    with sdpa_kernel(SDPBackend.MATH), counter:
        model(idx, subnet).logsumexp(-1).sum().backward()
    counted = counter.get_total_flops()
    assert step_flops(model.config, subnet, 1, 64) == pytest.approx(counted, rel=0.02)
    full = step_flops(model.config, None, 1, 64)
    predicted = step_cost(model.config.with_vocab(model.config.vocab_size), rates, "full", seq_len=64)
    assert predicted == pytest.approx(counted / full, rel=0.02)


def test_efficiency_turns_cost_into_predicted_speedup():
    stages = schedule_costs(GPT2, Schedule.preset("est-gpt2"), "paper")
    ideal, slower = cost_table(stages, 1.0), cost_table(stages, 0.5)
    assert speedup(ideal) == pytest.approx(150 / 110)
    assert speedup(slower) == pytest.approx(150 / (20 * 0.5 + 50 * 1 + 80))
    assert saving(ideal) == saving(slower)


@pytest.mark.parametrize("accounting", ["paper", "full"])
@pytest.mark.parametrize("preset", ["est-gpt2", "est-three-stage", "est-one-stage"])
def test_policy_costs_agree_with_schedule_costs_for_est(preset, accounting):
    schedule = Schedule.preset(preset)
    policy = build_policy("est", GPT2, schedule.total_steps, seed=0, schedule=schedule)
    assert method_saving(policy, accounting) == pytest.approx(
        schedule_saving(GPT2, schedule, accounting), abs=1e-12)


def test_baseline_savings():
    staged = build_policy("staged", GPT2, 150_000, seed=0)
    assert method_saving(staged, "paper") == pytest.approx(1 / 6)  # the paper's 16.7 %
    msg = build_policy("msg", GPT2, 150_000, seed=0)  # a grown part is computed from its
    # growth step on, whatever its mask: the cost is that of the stage rates
    assert method_saving(msg, "paper") == pytest.approx(schedule_saving(GPT2, MSG_SCHEDULE, "paper"))
    raptr = build_policy("raptr", GPT2, 150_000, seed=0)  # paths of 6, 8, 10, 12 of 12 layers
    assert method_saving(raptr, "paper") == pytest.approx(1 - (6 + 8 + 10 + 12) / 48)


def test_trainer_flops_match_the_simulator_for_deterministic_methods():
    """Matmul FLOPs of the subnets a method trains equal the simulator's full-accounting
    step cost once the elementwise estimate is left out (RAPTR: counts are deterministic)."""
    config = get_config("gpt2-smoke")
    for method in ("staged", "msg", "raptr"):
        policy = build_policy(method, config, 60, seed=0)
        for step in (0, 25, 59):
            model_config = policy.model_config_at(step)
            counted = step_flops(model_config, policy.subnet(step), 1, 64)
            loads = policy.expected_loads(step)
            expected_layers = sum(p for p, _, _ in loads)
            full = (step_flops(config, None, 1, 64)
                    + elementwise_step_flops(config, config.n_layer, 1, 64))
            predicted = policy_step_cost(policy, step, "full", seq_len=64) * full
            elementwise = elementwise_step_flops(model_config, round(expected_layers), 1, 64)
            assert predicted - elementwise == pytest.approx(counted)
