"""EST's `neuron_scaling` option (issue #33): `update` scales the MLP output projection's AdamW
update by p_M while neurons are sampled and leaves every other update as `inverted` makes it;
`classic` trains the kept neurons unscaled, evaluates the full model at p_M times its MLP
output, and folds p_M into the weights at the switch to full width without changing what the
full model computes."""

import copy

import pandas as pd
import pytest
import torch

from est_analysis.loss import token_loss
from est_analysis.methods import build_policy
from est_analysis.methods.est import mlp_output_weights
from est_analysis.schedule import Schedule
from est_analysis.training import TrainConfig, train
from est_analysis.training.metrics import TIMING_COLUMNS
from est_analysis.training.optimizer import make_optimizer, optimizer_step
from tests.helpers import interrupted_at

NEURONS = [(1, 0.5, 1), (1, 1, 1)]  # neurons sampled in stage 1 only


def _policy(config, scaling: str, steps: int = 8):
    return build_policy("est", config, steps, seed=0, schedule=Schedule.custom([0.5, 1], NEURONS, steps),
                        options={"neuron_scaling": scaling})


def _one_step(model, config, scaling, batch, step=0):
    model = copy.deepcopy(model)
    policy = _policy(config, scaling)
    optimizer = make_optimizer(model, 1e-2, 0.1, scaled=policy.scaled_parameters(model))
    for group in optimizer.param_groups:
        group["lr"] = 1e-2 * policy.update_scales(step).get(group.get("scaled"), 1.0)
    subnet = policy.subnet(step)
    token_loss(model(batch[0], subnet), batch[1]).backward()
    optimizer_step(model, optimizer, subnet)
    return model, subnet


def test_update_scaling_moves_the_mlp_output_p_times_as_far_and_nothing_else_differs(model, config, batch):
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    inverted, _ = _one_step(model, config, "inverted", batch)
    scaled, _ = _one_step(model, config, "update", batch)
    outputs = {id(p) for p in mlp_output_weights(scaled)}
    names = {n for n, p in scaled.named_parameters() if id(p) in outputs}
    assert len(names) == config.n_layer
    for (name, a), (_, b) in zip(inverted.named_parameters(), scaled.named_parameters()):
        moved_a, moved_b = a.detach() - before[name], b.detach() - before[name]
        if name in names:  # AdamW's whole update (step and decay) times p_M = 0.5
            torch.testing.assert_close(moved_b, 0.5 * moved_a, rtol=1e-4, atol=1e-7)  # float32 rounding of w + dw
        else:
            torch.testing.assert_close(moved_b, moved_a, rtol=0, atol=0)


def test_classic_trains_kept_neurons_unscaled(model, config, batch):
    subnet = _policy(config, "classic").subnet(0)
    inverted = _policy(config, "inverted").subnet(0)
    assert all(torch.equal(a, b) for a, b in zip(subnet.neurons, inverted.neurons))
    assert subnet.neuron_scale == (1.0,) * len(subnet.layers) and inverted.neuron_scale is None
    block = model.blocks[subnet.layers[0]]
    x = torch.randn(2, 5, config.d_model, generator=torch.Generator().manual_seed(0))
    bias = block.mlp(torch.zeros_like(x), subnet.neurons[0], 0.0)  # the output bias alone
    unscaled = block.mlp(x, subnet.neurons[0], 1.0) - bias
    torch.testing.assert_close(unscaled, 0.5 * (block.mlp(x, subnet.neurons[0]) - bias))


def test_classic_folds_p_into_the_weights_without_changing_the_full_model(model, config, batch):
    policy = _policy(config, "classic")
    eval_before = policy.eval_subnet(3)  # the last sampled step: full width at p_M times the MLP
    assert eval_before.neuron_scale == (0.5,) * config.n_layer
    with torch.no_grad():
        logits_before = model(batch[0], eval_before)
        untouched = model(batch[0])
    policy.grow(4, model, None)  # the switch to full width
    assert policy.eval_subnet(4) is None
    with torch.no_grad():
        torch.testing.assert_close(model(batch[0]), logits_before, rtol=1e-5, atol=1e-5)
        assert not torch.allclose(model(batch[0]), untouched)


@pytest.mark.parametrize("scaling", ["update", "classic"])
def test_a_run_with_each_scaling_resumes_exactly(tmp_path, scaling, monkeypatch):
    config = TrainConfig(scale="smoke", steps=16, ckpt_every=4, stages=[0.5, 1],
                         rates=[[1, 0.5, 0.5], [1, 1, 1]], method_options={"neuron_scaling": scaling})
    whole = train(config, tmp_path / "whole", progress=False)
    interrupted_at(monkeypatch, 10)
    with pytest.raises(KeyboardInterrupt):
        train(config, tmp_path / "cut", progress=False)
    monkeypatch.undo()
    train(config, tmp_path / "cut", resume=True, progress=False)
    read = lambda p: pd.read_csv(p / "metrics.csv").drop(columns=list(TIMING_COLUMNS))  # noqa: E731
    pd.testing.assert_frame_equal(read(tmp_path / "cut"), read(whole))
    inverted = train(config.__class__(**{**config.__dict__, "method_options": None}),
                     tmp_path / "inverted", progress=False)
    assert not read(whole)["train_loss"].equals(read(inverted)["train_loss"])
