import json

import numpy as np
import pytest
import torch

from est_analysis.data import (CorpusWarning, corpus_files, fixed_batches, load_corpus,
                               random_batch, read_documents, step_batch)


def test_default_corpus_is_local_and_split(tmp_path):
    assert len(corpus_files("shakespeare")) >= 30
    data = load_corpus("shakespeare", 512)
    assert data.vocab_size == 512
    assert 0.05 <= len(data.val) / (len(data.train) + len(data.val)) < 0.1
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


def test_validation_documents_are_held_out_at_random(tmp_path):
    # 40 documents, each a distinct word repeated: the validation text names which were held out
    for i in range(40):
        (tmp_path / f"doc{i:02d}.txt").write_text(f"w{i:02d}x " * 50)
    data = load_corpus(str(tmp_path), 300)
    decode = data.tokenizer.decode
    held = {f"w{i:02d}x" for i in range(40) if f"w{i:02d}x" in decode(data.val.tolist())}
    trained = {f"w{i:02d}x" for i in range(40) if f"w{i:02d}x" in decode(data.train.tolist())}
    assert len(held) == 2 and not held & trained and len(trained) == 38  # 5 % of 40 documents
    assert held != {"w38x", "w39x"}  # not the last documents in sorted order
    assert load_corpus(str(tmp_path), 300).fingerprint == data.fingerprint  # the same split


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


def test_a_few_undecodable_bytes_are_counted_and_reported(tmp_path):
    clean = "plain words of a small corpus, repeated. " * 400
    (tmp_path / "a.txt").write_bytes(clean.encode() + b"\xff caf\xe9 " + clean.encode())
    with pytest.warns(CorpusWarning, match=r"a\.txt: 2 undecodable byte sequence\(s\) replaced"):
        docs = read_documents(corpus_files(str(tmp_path)))
    assert docs[0].count("\ufffd") == 2 and docs[0].startswith(clean)


def test_windows_crlf_text_reads_as_the_same_text(tmp_path):
    (tmp_path / "unix.txt").write_bytes(b"one line\ntwo lines\n")
    (tmp_path / "dos.txt").write_bytes(b"one line\r\ntwo lines\r\n")
    unix, dos = (read_documents([tmp_path / f"{name}.txt"]) for name in ("unix", "dos"))
    assert unix == dos


def test_the_batch_of_a_step_depends_on_seed_step_and_micro_batch_only():
    tokens = np.arange(10_000, dtype=np.uint16)
    torch.manual_seed(1)  # global RNG state plays no part
    first = step_batch(tokens, 4, 16, seed=3, step=7, micro=1)
    torch.manual_seed(2)
    assert torch.equal(first[0], step_batch(tokens, 4, 16, seed=3, step=7, micro=1)[0])
    for other in ({"seed": 4, "step": 7, "micro": 1}, {"seed": 3, "step": 8, "micro": 1},
                  {"seed": 3, "step": 7, "micro": 0}):
        assert not torch.equal(first[0], step_batch(tokens, 4, 16, **other)[0])
