"""Data: corpora read as documents (`corpus`), tokenized and cached (`tokens`), and cut into
training and evaluation batches (`batches`). Nothing is downloaded at run time."""

from est_analysis.data.batches import check_fits, fixed_batches, random_batch, step_batch
from est_analysis.data.corpus import BUILTIN_CORPORA, CorpusWarning, corpus_files, read_documents
from est_analysis.data.tokens import EOT, VAL_FRACTION, TokenData, cache_dir, load_corpus

__all__ = ["BUILTIN_CORPORA", "CorpusWarning", "EOT", "TokenData", "VAL_FRACTION", "cache_dir",
           "check_fits", "corpus_files", "fixed_batches", "load_corpus", "random_batch",
           "read_documents", "step_batch"]
