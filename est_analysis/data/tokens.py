"""A corpus tokenized: a byte-level BPE trained by the `tokenizers` library on the in-domain
training split, and the token ids of every document, cached under `$EST_CACHE_DIR` (default
`~/.cache/est_analysis`) as uint16/uint32 arrays. The validation split is the last
`VAL_FRACTION` of the in-domain token stream (documents in sorted order)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer
from tokenizers.decoders import ByteLevel as ByteLevelDecoder
from tokenizers.models import BPE
from tokenizers.pre_tokenizers import ByteLevel
from tokenizers.trainers import BpeTrainer

from est_analysis.data.corpus import corpus_files, fingerprint, read_documents
from est_analysis.io import atomic_write

EOT = "<|endoftext|>"
VAL_FRACTION = 0.05


def cache_dir() -> Path:
    return Path(os.environ.get("EST_CACHE_DIR", Path.home() / ".cache" / "est_analysis"))


def train_tokenizer(docs: list[str], vocab_size: int) -> Tokenizer:
    """Byte-level BPE (GPT-2 style) with `<|endoftext|>` as document separator (id 0)."""
    tokenizer = Tokenizer(BPE())
    tokenizer.pre_tokenizer = ByteLevel(add_prefix_space=False)
    tokenizer.decoder = ByteLevelDecoder()
    trainer = BpeTrainer(vocab_size=vocab_size, special_tokens=[EOT], show_progress=False,
                         initial_alphabet=ByteLevel.alphabet())
    tokenizer.train_from_iterator(docs, trainer=trainer)
    return tokenizer


def encode(tokenizer: Tokenizer, docs: list[str]) -> np.ndarray:
    """Token ids of the documents, each followed by `<|endoftext|>`."""
    eot = tokenizer.token_to_id(EOT)
    ids = [np.array(e.ids + [eot]) for e in tokenizer.encode_batch(docs)]
    dtype = np.uint16 if tokenizer.get_vocab_size() <= 2**16 else np.uint32
    return np.concatenate(ids).astype(dtype)


@dataclass
class TokenData:
    """Tokenized in-domain corpus: tokenizer, train and validation token ids."""

    corpus: str
    tokenizer: Tokenizer
    train: np.ndarray
    val: np.ndarray
    fingerprint: str  # identifies corpus + tokenizer; stored in checkpoints

    @property
    def vocab_size(self) -> int:
        return self.tokenizer.get_vocab_size()

    def encode_other(self, corpus: str) -> np.ndarray:
        """Another corpus (e.g. the held-out domain) under this tokenizer, cached."""
        files = corpus_files(corpus)
        path = cache_dir() / f"tokens-{fingerprint(files, corpus, self.fingerprint)}.npy"
        if not path.exists():
            atomic_write(path, lambda f: np.save(f, encode(self.tokenizer, read_documents(files))))
        return np.load(path, mmap_mode="r")


def load_corpus(corpus: str = "shakespeare", vocab_size: int = 8192) -> TokenData:
    """Tokenizer + token arrays for `corpus`, trained/encoded once and then read from cache."""
    files = corpus_files(corpus)
    key = fingerprint(files, corpus, vocab_size, VAL_FRACTION)
    tok_path, ids_path = cache_dir() / f"tokenizer-{key}.json", cache_dir() / f"tokens-{key}.npy"
    if not (tok_path.exists() and ids_path.exists()):
        docs = read_documents(files)
        split = _split_point(docs)
        tokenizer = train_tokenizer(docs[:split] or docs, vocab_size)
        atomic_write(ids_path, lambda f: np.save(f, encode(tokenizer, docs)))
        atomic_write(tok_path, lambda f: f.write(tokenizer.to_str().encode()))
    tokenizer = Tokenizer.from_file(str(tok_path))
    ids = np.load(ids_path, mmap_mode="r")
    n_val = max(1, int(len(ids) * VAL_FRACTION))
    return TokenData(corpus, tokenizer, ids[:-n_val], ids[-n_val:], key)


def _split_point(docs: list[str]) -> int:
    """Documents before this index are (mostly) training text; the tokenizer sees only them."""
    total, seen = sum(map(len, docs)), 0
    for i, doc in enumerate(docs):
        seen += len(doc)
        if seen > total * (1 - VAL_FRACTION):
            return i
    return len(docs)
