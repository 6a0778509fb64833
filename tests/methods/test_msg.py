"""MSG: each stage computes only its structure, and growth (layer copies, masks from 0)
preserves the loss exactly at every transition."""

import pytest
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

import est_analysis.training.loop as train_module
from est_analysis.cost import forward_flops
from est_analysis.methods import build_policy
from est_analysis.models import build_model
from est_analysis.training import TrainConfig, load_run, train
from est_analysis.training.optimizer import make_optimizer
from tests.helpers import loss_of

STEPS = 150


def test_stages_follow_the_papers_schedule(config):
    policy = build_policy("msg", config, STEPS, seed=0)
    assert policy.schedule.boundaries == (20, 40, 70, 150)
    L, H, M = config.n_layer, config.n_head, config.d_mlp
    expected = {0: (L // 2, H // 2, M // 2), 20: (L, H // 2, M // 2), 40: (L, H, M // 2),
                70: (L, H, M), 149: (L, H, M)}
    for step, (layers, heads, neurons) in expected.items():
        subnet = policy.subnet(step)
        assert len(subnet.layers) == layers
        assert set(subnet.counts(config)) == {(heads, neurons)}


def test_compute_is_that_of_the_small_structure(config, batch):
    """Stage 1 runs half the layers, heads and neurons: FlopCounterMode sees the FLOPs of
    that structure, not of the masked full model."""
    policy, model = build_policy("msg", config, STEPS, seed=0), build_model(config)
    subnet = policy.subnet(0)
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        model(batch[0], subnet)
    assert counter.get_total_flops() == sum(forward_flops(config, subnet, *batch[0].shape).values())
    assert counter.get_total_flops() < 0.5 * sum(forward_flops(config, None, *batch[0].shape).values())


def test_masks_rise_linearly_from_zero(config):
    policy = build_policy("msg", config, STEPS, seed=0, options={"ramp": 0.04})  # 6 steps
    assert policy.ramp_steps == 6
    new_layer = [policy.subnet(20 + k).branch_scale for k in range(8)]
    assert [s[-1] for s in new_layer[:6]] == pytest.approx([k / 6 for k in range(6)])
    assert new_layer[6] is None  # fully grown: no mask
    heads = policy.subnet(43).head_scale[0]
    assert heads[: config.n_head // 2].eq(1).all() and heads[config.n_head // 2:].eq(0.5).all()


@pytest.mark.parametrize("ramp", [0.04, 0.0])
def test_growth_preserves_the_loss_at_every_transition(model, batch, ramp):
    config = model.config
    policy = build_policy("msg", config, STEPS, seed=0, options={"ramp": ramp})
    optimizer = make_optimizer(model, lr=1e-3)
    for boundary in policy.schedule.boundaries[:-1]:
        before = loss_of(model, batch, policy.subnet(boundary - 1))
        model, optimizer = policy.grow(boundary, model, optimizer)
        assert loss_of(model, batch, policy.subnet(boundary)) == pytest.approx(before, abs=1e-5)


def test_new_layers_start_as_copies_of_the_first(model):
    policy = build_policy("msg", model.config, STEPS, seed=0)
    optimizer = make_optimizer(model, lr=1e-3)
    half = model.config.n_layer // 2
    policy.grow(20, model, optimizer)
    for i in range(half):
        for a, b in zip(model.blocks[i].parameters(), model.blocks[half + i].parameters()):
            assert torch.equal(a, b)


def test_parts_not_yet_grown_keep_their_initial_weights(tmp_path, monkeypatch):
    """Outside the structure nothing moves (no weight decay either), whatever
    --inactive-params says: stop a run in stage 2 and compare with the initial weights."""
    real_step, calls = train_module.optimizer_step, {"n": 0}

    def stop_in_stage_two(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 12:
            raise KeyboardInterrupt  # the checkpoint holds the end of stage 1 (step 8)
        return real_step(*args, **kwargs)

    monkeypatch.setattr(train_module, "optimizer_step", stop_in_stage_two)
    config = TrainConfig(scale="smoke", method="msg", steps=60, eval_every=100, ckpt_every=100,
                         inactive_params="dense")
    with pytest.raises(KeyboardInterrupt):
        train(config, tmp_path, progress=False)
    run = load_run(tmp_path)
    assert run.step == 8
    torch.manual_seed(train_module.init_seed(0))
    initial = build_model(run.model.config)
    half_layers, half_neurons = run.model.config.n_layer // 2, run.model.config.d_mlp // 2
    for i, (trained, init) in enumerate(zip(run.model.blocks, initial.blocks)):
        if i >= half_layers:  # layers not grown yet: untouched
            assert all(torch.equal(a, b) for a, b in zip(trained.parameters(), init.parameters()))
        else:  # neurons not grown yet: untouched; grown ones trained
            assert torch.equal(trained.mlp.up.weight[half_neurons:], init.mlp.up.weight[half_neurons:])
            assert not torch.equal(trained.mlp.up.weight[:half_neurons], init.mlp.up.weight[:half_neurons])
