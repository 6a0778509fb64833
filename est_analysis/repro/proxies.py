"""Downstream proxies (the paper's GLUE, SQuAD, LAMBADA and GPT4All cannot be downloaded here):
honest stand-ins measured on held-out text, each named for what it is.

- `val_loss`: in-domain validation loss (the run's own held-out split);
- `ood_loss`: loss on another domain's corpus (default: the Python standard library source,
  whose text the model never saw) under the run's tokenizer: out-of-domain generalization;
- `next_token_acc`: top-1 next-token accuracy on the validation split;
- `last_word_acc`: a LAMBADA-style score: the last word of held-out sentences (a word of at
  least 4 letters right before '.', '!', '?' or ';'), predicted from the preceding context
  (up to the run's sequence length); a hit when greedy prediction produces every token of
  the word. Paperno et al. (2016) pick passages where humans need the broad context; ours are
  all sentence-final words, so the score measures local fluency as much as long context.
"""

from __future__ import annotations

import numpy as np
import torch

from est_analysis.loss import token_loss
from est_analysis.training import TrainedRun

SENTENCE_END = (".", "!", "?", ";")


def _word_spans(tokens: np.ndarray, pieces: list[str], eot: int, passages: bool
                ) -> list[tuple[int, int]]:
    """(start, end) token spans of target words: sentence-final words of at least 4 letters
    (`passages=False`), or the last word of every passage, i.e. before each end-of-text token
    (`passages=True`, the LAMBADA protocol)."""
    spans, start = [], None
    for i in range(1, len(tokens)):
        piece = pieces[tokens[i]]
        if piece.startswith("Ġ") and piece[1:].isalpha():
            start = i  # a word starts here
        elif start is not None and not piece.isalpha():
            word = "".join(pieces[t] for t in tokens[start:i])[1:]
            if passages and tokens[i] == eot and word.isalpha():
                spans.append((start, i))
            elif not passages and piece[:1] in SENTENCE_END and len(word) >= 4 and word.isalpha():
                spans.append((start, i))
            start = None
    return spans


def last_word_accuracy(run: TrainedRun, corpus: str = "val", passages: int = 256) -> tuple[float, int]:
    """Share of target words whose every token the model predicts greedily, from the preceding
    context (at most the run's sequence length; within the passage for a passage corpus).
    `corpus="val"`: sentence-final words of the validation split (the proxy). A path to a
    JSONL file with one {"text": passage} per line (e.g. LAMBADA's test set, where available
    locally): the last word of each passage, as LAMBADA is scored."""
    model = run.model.eval()
    device = next(model.parameters()).device
    tokenizer = run.data.tokenizer
    tokens = np.asarray(run.data.val if corpus == "val" else run.data.encode_other(corpus), dtype=np.int64)
    pieces = [tokenizer.id_to_token(t) or "" for t in range(tokenizer.get_vocab_size())]
    eot = int(tokens[-1])  # every document ends with the end-of-text token
    spans = _word_spans(tokens, pieces, eot, passages=corpus != "val")
    boundaries = np.flatnonzero(tokens == eot)
    windows = []
    for start, end in spans:
        passage_start = 0 if corpus == "val" else int(boundaries[boundaries < start].max(initial=-1)) + 1
        first = max(passage_start, end - run.config.seq_len)
        if start - first >= 1:  # at least one token of context
            windows.append((first, start, end))
    if not windows:
        raise ValueError(f"no target words found in {corpus!r} for the last-word accuracy")
    keep = np.linspace(0, len(windows) - 1, min(passages, len(windows))).round().astype(int)
    correct = 0
    with torch.no_grad():
        for k in sorted(set(keep)):
            first, start, end = windows[k]
            window = torch.as_tensor(tokens[first:end], device=device)
            predicted = model(window[None, :-1]).argmax(-1)[0]
            correct += bool((predicted[start - first - 1:] == window[start - first:]).all())
    return correct / len(set(keep)), len(set(keep))


@torch.no_grad()
def downstream_proxies(run: TrainedRun, batches: int = 8, passages: int = 256,
                       ood_corpus: str = "cpython-stdlib") -> dict[str, float]:
    """The four proxies of the module docstring for a trained run's full model."""
    model = run.model.eval()
    device = next(model.parameters()).device
    results: dict[str, float] = {}
    for name, corpus in (("val", "val"), ("ood", ood_corpus)):
        losses, hits, count = [], 0, 0
        for x, y in run.batches(corpus, batches):
            logits = model(x.to(device))
            losses.append(token_loss(logits, y).item())
            hits += (logits.argmax(-1) == y.to(device)).sum().item()
            count += y.numel()
        results[f"{name}_loss"] = float(np.mean(losses))
        if name == "val":
            results["next_token_acc"] = hits / count
    results["last_word_acc"], results["last_word_passages"] = last_word_accuracy(run, "val", passages)
    return results
