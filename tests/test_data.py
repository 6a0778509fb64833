import json

import numpy as np
import pytest
import torch

from est_analysis.data import corpus_files, fixed_batches, load_corpus, random_batch


def test_default_corpus_is_local_and_split(tmp_path):
    assert len(corpus_files("shakespeare")) >= 30
    data = load_corpus("shakespeare", 512)
    assert data.vocab_size == 512
    assert len(data.val) == pytest.approx(0.05 * (len(data.train) + len(data.val)), rel=0.01)
    assert "Midsummer Night" in data.tokenizer.decode(data.train[:200000].tolist())
    code = data.encode_other("cpython-stdlib")
    assert len(code) > 1_000_000 and code.max() < 512


def test_user_corpus_from_text_and_jsonl(tmp_path):
    (tmp_path / "a.txt").write_text("the quick brown fox jumps over the lazy dog. " * 200)
    (tmp_path / "b.jsonl").write_text("\n".join(json.dumps({"text": f"line {i} of prose"})
                                                for i in range(300)))
    data = load_corpus(str(tmp_path), 300)
    text = data.tokenizer.decode(np.concatenate([data.train, data.val]).tolist())
    assert "lazy dog" in text and "line 299 of prose" in text


@pytest.mark.parametrize("setup, message", [
    (lambda p: p / "missing", "neither a built-in corpus"),
    (lambda p: (p / "empty.txt").write_text("  \n") and p / "empty.txt", "is empty"),
    (lambda p: p, "has no text files"),
    (lambda p: (p / "bad.jsonl").write_text('{"txt": 1}\n') and p / "bad.jsonl", "'text' field"),
])
def test_bad_corpora_get_clear_errors(tmp_path, setup, message):
    with pytest.raises((ValueError, FileNotFoundError), match=message):
        load_corpus(str(setup(tmp_path)), 300)


def test_batches_are_next_token_windows_and_reproducible():
    tokens = np.arange(1000, dtype=np.uint16)
    x, y = random_batch(tokens, 4, 16, torch.Generator().manual_seed(0))
    assert x.shape == (4, 16) and torch.equal(y, x + 1)
    x2, _ = random_batch(tokens, 4, 16, torch.Generator().manual_seed(0))
    assert torch.equal(x, x2)
    batches = fixed_batches(tokens, 3, 2, 16)
    assert len(batches) == 3 and batches[0][0][0, 0] == 0 and batches[-1][1][-1, -1] == 999
