import pytest
import torch

from est_analysis.training.optimizer import make_optimizer, optimizer_step
from est_analysis.models import build_model
from est_analysis.subnet import Subnet


def _step(mode, subnets):
    torch.manual_seed(0)
    model = build_model("gpt2-smoke")
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.1)
    snapshots = []
    for subnet in subnets:
        before = {n: p.detach().clone() for n, p in model.named_parameters()}
        idx = torch.randint(0, 512, (2, 16))
        model(idx, subnet).logsumexp(-1).mean().backward()
        optimizer_step(model, optimizer, subnet, mode)
        optimizer.zero_grad(set_to_none=True)
        snapshots.append(before)
    return model, optimizer, snapshots


def _subnet(seed):
    return Subnet.sample(build_model("gpt2-smoke").config, (0.5, 0.5, 0.5),
                         torch.Generator().manual_seed(seed))


def _dropped(subnet, slot, n=256):
    return sorted(set(range(n)) - set(subnet.neurons[slot].tolist()))


@pytest.mark.parametrize("mode, rows_move, skipped_layers_move", [
    ("dense", True, True), ("frozen", False, False), ("torch-default", True, False)])
def test_parameters_outside_the_subnet(mode, rows_move, skipped_layers_move):
    subnet = _subnet(1)
    model, _, (before,) = _step(mode, [subnet])
    layer = subnet.layers[0]
    name = f"blocks.{layer}.mlp.up.weight"
    up = model.get_parameter(name).detach()
    dropped, kept = _dropped(subnet, 0), subnet.neurons[0]
    assert not torch.equal(up[kept], before[name][kept])
    assert torch.equal(up[dropped], before[name][dropped]) != rows_move
    skipped = next(i for i in range(4) if i not in subnet.layers)
    name = f"blocks.{skipped}.attn.qkv.weight"
    assert torch.equal(model.get_parameter(name).detach(), before[name]) != skipped_layers_move


def test_frozen_keeps_adam_moments_outside_the_subnet():
    first, second = _subnet(1), _subnet(2)
    model, optimizer, _ = _step("frozen", [first])
    layer = next(l for l in first.layers if l in second.layers)
    p = model.get_parameter(f"blocks.{layer}.mlp.up.weight")
    moment_after_first = optimizer.state[p]["exp_avg"].clone()
    assert torch.all(moment_after_first[_dropped(first, first.layers.index(layer))] == 0)
    model, optimizer, _ = _step("frozen", [first, second])
    p = model.get_parameter(f"blocks.{layer}.mlp.up.weight")
    outside_second = _dropped(second, second.layers.index(layer))
    assert torch.equal(optimizer.state[p]["exp_avg"][outside_second],
                       moment_after_first[outside_second])


def test_unknown_mode_is_rejected():
    with pytest.raises(ValueError, match="choose one of"):
        _step("lazy", [_subnet(0)])


@pytest.mark.parametrize("mode", ["dense", "frozen"])
def test_the_fused_update_is_the_per_tensor_adamw_to_float_rounding(mode):
    """make_optimizer's fused kernel against torch's per-tensor loop (an independent
    implementation of the same AdamW), over EST steps with sliced rows and skipped layers, in
    float64 so that rounding cannot hide a difference in what is computed."""
    torch.manual_seed(0)
    fused_model = build_model("gpt2-smoke").double()
    loop_model = build_model("gpt2-smoke").double()
    loop_model.load_state_dict(fused_model.state_dict())
    fused = make_optimizer(fused_model, lr=1e-2)
    loop = make_optimizer(loop_model, lr=1e-2)
    assert fused.defaults["fused"] and not loop.defaults.get("foreach")
    for group in loop.param_groups:
        group["fused"], group["foreach"] = False, False
    for step in range(6):
        subnet = _subnet(step)
        idx = torch.randint(0, 512, (2, 16))
        for model, optimizer in ((fused_model, fused), (loop_model, loop)):
            model(idx, subnet).logsumexp(-1).mean().backward()
            optimizer_step(model, optimizer, subnet, mode)
            optimizer.zero_grad(set_to_none=True)
    for (name, a), b in zip(fused_model.named_parameters(), loop_model.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-10)  # steps are 1e-2
