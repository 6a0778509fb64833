"""Data: corpora read as documents (`corpus`), tokenized with a trained BPE and cached
(`tokens`) or with a pretrained tokenizer file (`tokenizer_files`) into prepared memmaps
(`prepared`), chosen per run (`source`), and cut into training and evaluation batches
(`batches`). Nothing is downloaded at run time."""

from est_analysis.data.corpus import (
    BUILTIN_CORPORA,
    CorpusWarning,
    corpus_files,
    read_documents,
)
from est_analysis.data.prepared import (
    PreparedDataError,
    describe,
    load_prepared,
    prepare,
)
from est_analysis.data.source import load_data
from est_analysis.data.tokenizer_files import (
    TokenizerFileError,
    load_tokenizer,
    separator_id,
)
from est_analysis.data.tokens import (
    EOT,
    VAL_FRACTION,
    TokenData,
    cache_dir,
    load_corpus,
)

__all__ = [
    "BUILTIN_CORPORA",
    "EOT",
    "VAL_FRACTION",
    "CorpusWarning",
    "PreparedDataError",
    "TokenData",
    "TokenizerFileError",
    "cache_dir",
    "check_fits",
    "corpus_files",
    "describe",
    "fixed_batches",
    "load_corpus",
    "load_data",
    "load_prepared",
    "load_tokenizer",
    "prepare",
    "random_batch",
    "read_documents",
    "separator_id",
    "step_batch",
]

BATCHES = ("check_fits", "fixed_batches", "random_batch", "step_batch")


def __getattr__(name: str):
    """The batch functions need torch: imported on first use, so that `est data` (and anything
    else that only reads or prepares tokens) starts without loading it."""
    if name in BATCHES:
        from est_analysis.data import batches
        return getattr(batches, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
