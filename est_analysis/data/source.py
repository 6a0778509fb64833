"""Where a run's tokens come from: prepared data (`--data DIR`), a corpus prepared once into
the cache with a pretrained tokenizer (`--tokenizer FILE`), or a corpus with a BPE trained on
it (the default)."""

from __future__ import annotations

from pathlib import Path

from est_analysis.data.prepared import load_prepared, preparation_fingerprint, prepare
from est_analysis.data.tokens import TokenData, cache_dir, load_corpus


def load_data(corpus: str = "shakespeare", vocab_size: int = 8192, data: str | Path | None = None,
              tokenizer: str | Path | None = None, progress: bool = False) -> TokenData:
    """The tokens of a run; `vocab_size` matters only for the trained BPE."""
    if data is not None:
        return load_prepared(data)
    if tokenizer is not None:
        out = cache_dir() / f"prepared-{preparation_fingerprint(corpus, tokenizer)}"
        return load_prepared(prepare(corpus, tokenizer, out, progress=progress))
    return load_corpus(corpus, vocab_size)
