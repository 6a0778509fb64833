"""Downstream proxies: the last-word accuracy scores exactly the final word of each passage."""

import dataclasses
import json
import math

import pytest
import torch
from torch import nn

from est_analysis.repro.proxies import downstream_proxies, last_word_accuracy
from est_analysis.training import load_run
from est_analysis.training import TrainConfig, train


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = train(TrainConfig(scale="smoke", steps=4), tmp_path_factory.mktemp("proxy-run"), progress=False)
    return load_run(out)


class Always(nn.Module):
    """Predicts the same token everywhere."""

    def __init__(self, token: int, vocab: int) -> None:
        super().__init__()
        self.token, self.vocab, self.dummy = token, vocab, nn.Parameter(torch.zeros(1))

    def forward(self, idx):
        logits = torch.zeros(*idx.shape, self.vocab)
        logits[..., self.token] = 1.0
        return logits


def test_passage_mode_scores_the_last_word_of_each_passage(run, tmp_path):
    the = run.data.tokenizer.token_to_id("Ġthe")
    assert the is not None  # a single token at every vocabulary size we use
    passages = ["and so he went to see the", "where is the king of the",
                "the queen walked to the castle"]
    corpus = tmp_path / "lambada_like.jsonl"
    corpus.write_text("\n".join(json.dumps({"text": p}) for p in passages))
    oracle = dataclasses.replace(run, model=Always(the, run.data.vocab_size))
    accuracy, scored = last_word_accuracy(oracle, str(corpus))
    assert scored == 3 and accuracy == pytest.approx(2 / 3)  # 'the', 'the' hit; 'castle' missed


def test_proxies_of_a_trained_run(run):
    proxies = downstream_proxies(run, batches=2, passages=16)
    # 60 smoke steps: below the uniform loss in-domain; the other domain is only checked to be
    # scored (at this length it is not reliably worse than the in-domain loss)
    assert 0 < proxies["val_loss"] < math.log(run.data.vocab_size) and proxies["ood_loss"] > 0
    assert 0 <= proxies["next_token_acc"] <= 1 and proxies["last_word_passages"] == 16
