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
import torch.nn.functional as F

from est_analysis.runs import TrainedRun

SENTENCE_END = (".", "!", "?", ";")


def _last_word_targets(run: TrainedRun, passages: int) -> list[tuple[int, int]]:
    """(start, end) token spans of sentence-final words in the validation split, evenly spread,
    each with at least one full context window before it."""
    tokens, tokenizer = np.asarray(run.data.val), run.data.tokenizer
    pieces = [tokenizer.id_to_token(int(t)) or "" for t in range(tokenizer.get_vocab_size())]
    context = run.config.seq_len
    spans = []
    start = None
    for i in range(context, len(tokens) - 1):
        piece = pieces[tokens[i]]
        if piece.startswith("Ġ") and piece[1:].isalpha():
            start = i  # a word starts here
        elif start is not None and not piece.isalpha():
            word = "".join(pieces[t] for t in tokens[start:i])[1:]
            if piece[:1] in SENTENCE_END and len(word) >= 4 and word.isalpha():
                spans.append((start, i))
            start = None
    if not spans:
        raise ValueError("the validation split holds no sentence-final words for last_word_acc")
    keep = np.linspace(0, len(spans) - 1, min(passages, len(spans))).round().astype(int)
    return [spans[k] for k in sorted(set(keep))]


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
            losses.append(F.cross_entropy(logits.flatten(0, 1), y.to(device).flatten()).item())
            hits += (logits.argmax(-1) == y.to(device)).sum().item()
            count += y.numel()
        results[f"{name}_loss"] = float(np.mean(losses))
        if name == "val":
            results["next_token_acc"] = hits / count
    tokens = torch.as_tensor(np.asarray(run.data.val, dtype=np.int64))
    spans = _last_word_targets(run, passages)
    correct = 0
    for first in range(0, len(spans), 32):  # windows ending with the word, 32 at a time
        chunk = spans[first:first + 32]
        windows = torch.stack([tokens[end - run.config.seq_len:end] for _, end in chunk]).to(device)
        predicted = model(windows[:, :-1]).argmax(-1)
        for row, (start, end) in enumerate(chunk):
            width = end - start
            correct += bool((predicted[row, -width:] == windows[row, -width:]).all())
    results["last_word_acc"] = correct / len(spans)
    results["last_word_passages"] = len(spans)
    return results
