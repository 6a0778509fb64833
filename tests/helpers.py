"""Helpers several test folders share (test modules never import each other)."""

import torch
import torch.nn.functional as F

from est_analysis.models import ModelConfig

# ~1.4k-parameter models whose full Hessian can be computed exactly
TINY = {
    "gpt2": ModelConfig("gpt2-tiny", "gpt2", n_layer=2, n_head=2, n_kv_head=2, d_model=8,
                        d_mlp=16, vocab_size=16, block_size=8),
    "llama": ModelConfig("llama-tiny", "llama", n_layer=2, n_head=2, n_kv_head=1, d_model=8,
                         d_mlp=12, vocab_size=16, block_size=8),
}


def loss_of(model, batch, subnet=None) -> float:
    """Cross-entropy written out here, independently of `est_analysis.loss`."""
    x, y = batch
    with torch.no_grad():
        return F.cross_entropy(model(x, subnet).flatten(0, 1), y.flatten()).item()


def perturbed(model, scale: float = 0.05, seed: int = 0):
    """A model whose weights are not at their initialisation (zero biases, unit gains would
    hide mistakes in how they are grown)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=generator) * scale)
    return model


def tiny_bpe_tokenizer(directory, words: str = "some words of text"):
    """A 300-token byte-level BPE trained on `words`, saved as `directory/tok.json`."""
    from tokenizers import Tokenizer
    from tokenizers.models import BPE
    from tokenizers.pre_tokenizers import ByteLevel
    from tokenizers.trainers import BpeTrainer
    tokenizer = Tokenizer(BPE())
    tokenizer.pre_tokenizer = ByteLevel(add_prefix_space=False)
    tokenizer.train_from_iterator([words] * 50, trainer=BpeTrainer(
        vocab_size=300, special_tokens=["<|endoftext|>"], show_progress=False,
        initial_alphabet=ByteLevel.alphabet()))
    tokenizer.save(str(directory / "tok.json"))
    return directory / "tok.json"


def interrupted_at(monkeypatch, stop: int) -> None:
    """Make the training loop raise KeyboardInterrupt when it reaches step `stop`."""
    import est_analysis.training.loop as loop
    real = loop._train_step

    def step(run, trained, context, step, subnet):
        if step == stop:
            raise KeyboardInterrupt
        return real(run, trained, context, step, subnet)
    monkeypatch.setattr(loop, "_train_step", step)
