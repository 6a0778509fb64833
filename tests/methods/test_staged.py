"""Staged Training: the width-growth operator preserves the loss and maps AdamW's state so that
the grown model's Adam steps continue the small model's."""

import pandas as pd
import pytest
import torch
import torch.nn.functional as F

import est_analysis.training.loop as train_module
from est_analysis.methods.staged import half_width
from est_analysis.training.metrics import TIMING_COLUMNS
from est_analysis.methods.width_growth import grow_width
from est_analysis.models import build_model
from est_analysis.training import TrainConfig, train
from tests.helpers import loss_of, perturbed


def _small_and_optimizer(config, batch):
    torch.manual_seed(0)
    small = perturbed(build_model(half_width(config)))
    optimizer = torch.optim.AdamW(small.parameters(), lr=1e-3, weight_decay=0.1)
    for _ in range(3):  # give AdamW some state
        x, y = batch
        F.cross_entropy(small(x).flatten(0, 1), y.flatten()).backward()
        optimizer.step()
        optimizer.zero_grad()
    return small, optimizer


@pytest.mark.parametrize("noise", [0.0, 1e-3])
def test_growth_preserves_the_loss(config, batch, noise):
    small, optimizer = _small_and_optimizer(config, batch)
    generator = torch.Generator().manual_seed(0)
    big, _ = grow_width(small, optimizer, config, noise, generator)
    assert big.config == config and big.num_params() > 3 * small.num_params()
    assert loss_of(big, batch) == pytest.approx(loss_of(small, batch), abs=1e-5)


def test_noise_breaks_the_symmetry_of_the_copies(config, batch):
    small, optimizer = _small_and_optimizer(config, batch)
    big, _ = grow_width(small, optimizer, config, 1e-3, torch.Generator().manual_seed(0))
    w = big.blocks[0].mlp.up.weight
    rows, cols = w.shape[0] // 2, w.shape[1] // 2
    assert not torch.equal(w[:rows, :cols], w[rows:, cols:])
    assert w[:rows, cols:].abs().max() > 0


def test_optimizer_state_continues_the_small_models_adam_steps(config, batch):
    """With noise 0 and no clipping, one AdamW step of the grown model moves every copied
    entry exactly as the small model's step moves its source (final norm excluded, see
    width_growth)."""
    small, optimizer = _small_and_optimizer(config, batch)
    big, big_optimizer = grow_width(small, optimizer, config, 0.0)
    for model, opt in ((small, optimizer), (big, big_optimizer)):
        x, y = batch
        F.cross_entropy(model(x).flatten(0, 1), y.flatten()).backward()
        opt.step()
    step = lambda o, p: int(o.state[p]["step"])  # noqa: E731
    assert step(big_optimizer, big.blocks[0].mlp.up.weight) == step(optimizer, small.blocks[0].mlp.up.weight)
    for name, p_small in small.named_parameters():
        if name.startswith("norm_f"):
            continue
        p_big = dict(big.named_parameters())[name]
        if name.endswith("qkv.bias"):  # the key bias gets no gradient (softmax is shift-
            # invariant), so Adam steps on rounding noise there: compare the q and v parts
            width = p_small.numel() // 3
            copy, p_small = p_big.view(3, -1)[[0, 2], :width], p_small.view(3, -1)[[0, 2]]
        elif p_small.dim() == 1:
            copy = p_big[: p_small.numel()]
        elif p_big.shape[0] == p_small.shape[0]:
            copy = p_big[:, : p_small.shape[1]]
        else:
            chunks = 3 if "qkv" in name else 1
            rows = p_small.shape[0] // chunks
            copy = torch.cat([p_big[2 * c * rows: 2 * c * rows + rows, : p_small.shape[1]]
                              for c in range(chunks)])
        torch.testing.assert_close(copy, p_small, atol=1e-5, rtol=1e-4, msg=name)


def test_staged_run_grows_at_a_third_and_resumes_across_growth(tmp_path, monkeypatch):
    config = TrainConfig(scale="smoke", method="staged", steps=30, eval_every=10, ckpt_every=100)
    reference = pd.read_csv(train(config, tmp_path / "reference", progress=False) / "metrics.csv")
    small_flops = reference.loc[0, "step_flops"]
    assert (reference.loc[reference.step < 10, "step_flops"] == small_flops).all()
    assert (reference.loc[reference.step >= 10, "step_flops"] > 3 * small_flops).all()

    real_step, calls = train_module.optimizer_step, {"n": 0}

    def crash_after_growth(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 13:
            raise KeyboardInterrupt  # the last checkpoint is the one before growth (step 10)
        return real_step(*args, **kwargs)

    monkeypatch.setattr(train_module, "optimizer_step", crash_after_growth)
    with pytest.raises(KeyboardInterrupt):
        train(config, tmp_path / "resumed", progress=False)
    monkeypatch.setattr(train_module, "optimizer_step", real_step)
    resumed = pd.read_csv(train(config, tmp_path / "resumed", resume=True, progress=False)
                          / "metrics.csv")
    pd.testing.assert_frame_equal(resumed.drop(columns=list(TIMING_COLUMNS)),
                                  reference.drop(columns=list(TIMING_COLUMNS)))
