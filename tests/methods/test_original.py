"""Original is plain training: from the same initial weights and on the same batches, the
trainer's run is bit-identical to a training loop written out here (AdamW groups with torch's
fused kernel, as the trainer's optimizer on CPU, the linear
LR decay of the GPT-2 recipe, clipping, the model's own loss `model(x, targets=y)`), sharing no
code with the trainer but the documented data contract `step_batch` (the batch of a step is a
function of (seed, step, micro-batch)). That loss equals cross-entropy over the full logits to
rounding (tests/models/test_head_loss.py)."""

import torch

from est_analysis.data import load_corpus, step_batch
from est_analysis.training import RunDir, TrainConfig, load_run, train


def test_original_equals_a_plain_training_loop(tmp_path):
    config = TrainConfig(scale="smoke", method="original", steps=12, eval_every=100,
                         snapshot_every=12).resolved()
    run = RunDir(train(config, tmp_path, progress=False))
    trained = load_run(run.path).model
    assert (config.lr_schedule, config.warmup_fraction, config.min_lr_ratio) == ("linear", 0.0, 0.0)

    model = load_run(run.snapshot(0)).model  # the run's initial weights
    tokens = load_corpus(config.corpus, 512).train
    decayed = [p for p in model.parameters() if p.dim() >= 2]
    others = [p for p in model.parameters() if p.dim() < 2]
    optimizer = torch.optim.AdamW([{"params": decayed, "weight_decay": 0.1},
                                   {"params": others, "weight_decay": 0.0}],
                                  lr=config.lr, betas=(0.9, 0.95), fused=True)
    for step in range(config.steps):
        for group in optimizer.param_groups:
            group["lr"] = config.lr * (1 - step / config.steps)
        x, y = step_batch(tokens, config.batch_size, config.seq_len, config.seed, step)
        model(x, targets=y).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    for (name, a), b in zip(trained.named_parameters(), model.parameters()):
        assert torch.equal(a, b), name
