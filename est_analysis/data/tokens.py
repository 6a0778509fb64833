"""A corpus tokenized: a byte-level BPE trained by the `tokenizers` library on the in-domain
training split, and the token ids of every document, cached under `$EST_CACHE_DIR` (default
`~/.cache/est_analysis`) as uint16/uint32 arrays. The validation split is whole documents
held out at random (seeded, `split_documents`) until they hold `VAL_FRACTION` of the text."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Callable

import numpy as np
from numpy.random import default_rng
from tokenizers import Tokenizer
from tokenizers.decoders import ByteLevel as ByteLevelDecoder
from tokenizers.models import BPE
from tokenizers.pre_tokenizers import ByteLevel
from tokenizers.trainers import BpeTrainer

from est_analysis.data.corpus import corpus_files, fingerprint, read_documents
from est_analysis.data.ordinary import ordinary_encoder
from est_analysis.data.tokenizer_files import TextTokenizer, separator_id
from est_analysis.host_memory import check_host_memory
from est_analysis.io import atomic_write, check_digest, digest_file, record_digest

EOT = "<|endoftext|>"
VAL_FRACTION = 0.05
SPLIT_SEED = 0  # which documents are held out; part of the corpus fingerprint


def cache_dir() -> Path:
    """`$EST_CACHE_DIR` (default ~/.cache/est_analysis), created if missing; a clear error
    naming the variable when it cannot be."""
    named = os.environ.get("EST_CACHE_DIR")
    path = Path(named).expanduser() if named else Path.home() / ".cache" / "est_analysis"
    where = f"environment variable EST_CACHE_DIR={named!r}" if named else f"the cache {path}"
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise OSError(f"{where}: cannot create the cache directory ({err.strerror}); point "
                      "EST_CACHE_DIR at a writable directory") from None
    if not path.is_dir() or not os.access(path, os.W_OK):
        raise OSError(f"{where} is not a writable directory; point EST_CACHE_DIR at one")
    return path


# peak bytes of memory per byte of text while the tokenizer is trained and the documents are
# encoded in memory (measured here: 8 MB of text, one line or many, peaked at 0.85-1.1 GB)
MEMORY_PER_TEXT_BYTE = 130


def check_corpus_memory(files: list[Path]) -> None:
    """Refuse, before reading it, a corpus too large to tokenize in memory here."""
    size = sum(p.stat().st_size for p in files)
    check_host_memory(size * MEMORY_PER_TEXT_BYTE,
                      f"tokenizing the corpus {files[0] if len(files) == 1 else files[0].parent} "
                      f"({size / 2**20:.0f} MiB of text) in memory",
                      "prepare it once with `est data prepare CORPUS --tokenizer T --out DIR` "
                      "(it streams with bounded memory) and train with --data DIR")


def _write_cached(path: Path, build: Callable[[BinaryIO], object]) -> None:
    """Write the cache file `path` with `build`, then its digest beside it."""
    atomic_write(path, build)
    record_digest(path)


def _checked(path: Path) -> Path:
    """The cache file `path`, checked against the digest recorded when it was written."""
    check_digest(path, f"delete it (and {digest_file(path).name}) and it is rebuilt from the corpus")
    return path


def train_tokenizer(docs: list[str], vocab_size: int) -> Tokenizer:
    """Byte-level BPE (GPT-2 style) with `<|endoftext|>` as document separator (id 0)."""
    tokenizer = Tokenizer(BPE())
    tokenizer.pre_tokenizer = ByteLevel(add_prefix_space=False)
    tokenizer.decoder = ByteLevelDecoder()
    trainer = BpeTrainer(vocab_size=vocab_size, special_tokens=[EOT], show_progress=False,
                         initial_alphabet=ByteLevel.alphabet())
    tokenizer.train_from_iterator(docs, trainer=trainer)
    return tokenizer


def encode(tokenizer: TextTokenizer, docs: list[str]) -> np.ndarray:
    """Token ids of the documents as plain text (a special-token string in a document stays
    text), each followed by the end-of-document token."""
    eot = separator_id(tokenizer)
    ids = [np.append(e, eot) for e in ordinary_encoder(tokenizer).encode(docs)]
    dtype = np.uint16 if tokenizer.get_vocab_size() <= 2**16 else np.uint32
    return np.concatenate(ids).astype(dtype)


@dataclass
class TokenData:
    """Tokenized in-domain corpus: tokenizer, train and validation token ids."""

    corpus: str
    tokenizer: TextTokenizer
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
            check_corpus_memory(files)
            _write_cached(path, lambda f: np.save(f, encode(self.tokenizer, read_documents(files))))
        return np.load(_checked(path), mmap_mode="r")


def load_corpus(corpus: str = "shakespeare", vocab_size: int = 8192) -> TokenData:
    """Tokenizer + token arrays for `corpus`, trained/encoded once and then read from cache."""
    files = corpus_files(corpus)
    key = fingerprint(files, corpus, vocab_size, VAL_FRACTION, "random-documents", SPLIT_SEED)
    tok_path = cache_dir() / f"tokenizer-{key}.json"
    train_path, val_path = (cache_dir() / f"tokens-{key}-{part}.npy" for part in ("train", "val"))
    if not all(p.exists() for p in (tok_path, train_path, val_path)):
        check_corpus_memory(files)
        train_docs, val_docs = split_documents(read_documents(files))
        tokenizer = train_tokenizer(train_docs, vocab_size)
        _write_cached(train_path, lambda f: np.save(f, encode(tokenizer, train_docs)))
        _write_cached(val_path, lambda f: np.save(f, encode(tokenizer, val_docs)))
        _write_cached(tok_path, lambda f: f.write(tokenizer.to_str().encode()))
    tokenizer = Tokenizer.from_file(str(_checked(tok_path)))
    return TokenData(corpus, tokenizer, np.load(_checked(train_path), mmap_mode="r"),
                     np.load(_checked(val_path), mmap_mode="r"), key)


def split_documents(docs: list[str]) -> tuple[list[str], list[str]]:
    """(training, validation) documents: documents drawn at random (seed `SPLIT_SEED`) are held
    out until they hold `VAL_FRACTION` of the characters; the others keep their order. A corpus
    of one document is split at a line break `VAL_FRACTION` from its end instead."""
    total = sum(map(len, docs))
    if len(docs) == 1:
        at = int(total * (1 - VAL_FRACTION))
        cut = docs[0].rfind("\n", 0, at) + 1 or at
        return [docs[0][:cut]], [docs[0][cut:]]
    held, held_chars = set(), 0
    for i in default_rng(SPLIT_SEED).permutation(len(docs)):
        if held_chars >= total * VAL_FRACTION or len(held) == len(docs) - 1:
            break
        held.add(int(i))
        held_chars += len(docs[i])
    return ([d for i, d in enumerate(docs) if i not in held],
            [docs[i] for i in sorted(held)])
