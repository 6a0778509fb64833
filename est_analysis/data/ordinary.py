"""Documents encoded as plain text, exactly as if each were encoded whole (issue #26).

Two things set preparation apart from calling a tokenizer on text:
- Text is ordinary text: a literal `<|endoftext|>` (or any special-token string) inside a
  document is encoded as the characters it is, as nanoGPT's `encode_ordinary` does, so data
  cannot inject control tokens; only the separators the pipeline writes are special ids.
- A long document is encoded in pieces (bounded memory), cut only where the tokenizer's
  pre-tokenization cannot join the two sides, so the ids equal those of the whole document:
  - byte-level BPE with GPT-2's pre-tokenizing regex (`*.tiktoken`, vocab.json + merges.txt,
    a `tokenizers` JSON with a ByteLevel pre-tokenizer): before an ASCII whitespace character
    that follows a non-whitespace one. No alternative of the regex matches across that point
    (only whitespace patterns hold whitespace, and they begin at it), it has no look-behind,
    and BPE merges stay inside a pre-token;
  - SentencePiece with identity normalization, whitespace split and a dummy prefix (Llama):
    at a single space between two non-space characters, the space dropped, since the dummy
    prefix of the right side stands for it and pieces never span a space;
  - any other tokenizer: nowhere (each document is encoded whole).
For `*.tiktoken` files tiktoken itself encodes, in a process per core (as nanoGPT's `prepare.py`
does); it gives the same ids as our `tokenizers` conversion (tests/data/test_ordinary.py), and
`benchmarks/prepare_data.py` checks the output against a nanoGPT-style preparation.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
from collections.abc import Callable
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer

from est_analysis.data.tokenizer_files import (
    SEPARATORS,
    SentencePieceTokenizer,
    TextTokenizer,
    load_tokenizer,
    separator_id,
    tokenizer_file,
)

CUT_BEFORE = " \t\n\r"  # whitespace that every regex engine's \s matches
Cut = Callable[[str, int], "tuple[int, int] | None"]
Ids = np.ndarray  # one text's token ids, uint32


class OrdinaryEncoder:
    """`encode(texts)` gives each text's ids as plain text; `cut(text, limit)` gives where a
    text may be split at or before `limit`: (end of the left piece, start of the right), or
    None where it cannot be. `tokenizer` is the loaded tokenizer (None when tiktoken encodes:
    its ranks are not converted, which takes a second). Used as a context manager, an encoder
    may start workers for the time of the block."""

    def __init__(self, encode: Callable[[list[str]], list[Ids]], cut: Cut | None, rule: str,
                 vocab_size: int, separator: int, tokenizer: TextTokenizer | None):
        self.rule, self.vocab_size, self.separator = rule, vocab_size, separator
        self.tokenizer, self._encode, self._cut = tokenizer, encode, cut

    def encode(self, texts: list[str]) -> list[Ids]:
        return self._encode(texts)

    def cut(self, text: str, limit: int) -> tuple[int, int] | None:
        return self._cut(text, limit) if self._cut else None

    def __enter__(self) -> OrdinaryEncoder:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


class TiktokenEncoder(OrdinaryEncoder):
    """tiktoken on a `*.tiktoken` file with GPT-2's regex, in one worker process per core
    inside `with` (as nanoGPT's prepare.py spreads tiktoken over processes; threads cost ~30 %
    more CPU here, taking the GIL to build each result), in this process outside it."""

    def __init__(self, file: Path):
        self.file, self.encoding, self._pool = file, _tiktoken_encoding(file), None
        super().__init__(self._here, _cut_before_whitespace, "before whitespace (tiktoken)",
                         self.encoding.n_vocab, self.encoding.eot_token, None)

    def _here(self, texts: list[str]) -> list[Ids]:
        return [np.asarray(self.encoding.encode_ordinary(t), dtype=np.uint32) for t in texts]

    def encode(self, texts: list[str]) -> list[Ids]:
        if self._pool is None:
            return self._here(texts)
        return [np.frombuffer(b, dtype=np.uint32) for b in self._pool.map(_encode_in_worker, texts)]

    def __enter__(self) -> TiktokenEncoder:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        if (cores or 1) > 1:
            methods = multiprocessing.get_all_start_methods()
            context = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
            self._pool = context.Pool(cores, initializer=_start_worker, initargs=(str(self.file),))
        return self

    def __exit__(self, *exc: object) -> None:
        if self._pool is not None:
            self._pool.terminate()
            self._pool.join()
            self._pool = None


def ordinary_encoder(tokenizer: TextTokenizer | str | Path) -> OrdinaryEncoder:
    """The plain-text encoder of a loaded tokenizer or of a tokenizer file or directory (a
    `*.tiktoken` file is encoded by tiktoken)."""
    if isinstance(tokenizer, (str, Path)):
        file = tokenizer_file(tokenizer)
        if file.suffix == ".tiktoken":
            return TiktokenEncoder(file)
        tokenizer = load_tokenizer(file)
    size, separator = tokenizer.get_vocab_size(), separator_id(tokenizer)
    if isinstance(tokenizer, SentencePieceTokenizer):
        processor = tokenizer.processor
        exact = _sentencepiece_cuts_exact(tokenizer.path)
        return OrdinaryEncoder(lambda texts: [np.asarray(i, dtype=np.uint32) for i in processor.encode(list(texts))],
                               _cut_at_space if exact else None,
                               "at a single space" if exact else "whole documents",
                               size, separator, tokenizer)
    plain = Tokenizer.from_str(tokenizer.to_str())  # a copy: the caller's keeps its behaviour
    plain.encode_special_tokens = True  # special-token strings in the text are text
    byte_level = _gpt2_pre_tokenizer(json.loads(plain.to_str()))

    def encode(texts: list[str]) -> list[Ids]:
        return [np.asarray(e.ids, dtype=np.uint32)
                for e in plain.encode_batch_fast(texts, add_special_tokens=False)]
    return OrdinaryEncoder(encode, _cut_before_whitespace if byte_level else None,
                           "before whitespace" if byte_level else "whole documents",
                           size, separator, tokenizer)


def _tiktoken_encoding(file: Path):
    import tiktoken
    from tiktoken.load import load_tiktoken_bpe
    from tiktoken_ext.openai_public import (
        r50k_pat_str,  # GPT-2's regex (tokenizer_files.py)
    )

    try:
        ranks = load_tiktoken_bpe(str(file))
    except Exception:  # tiktoken's own parse errors: ours name the line
        load_tokenizer(file)
        raise
    return tiktoken.Encoding(file.stem, pat_str=r50k_pat_str, mergeable_ranks=ranks,
                             special_tokens={SEPARATORS[0]: len(ranks)})  # as _from_tiktoken


_WORKER_ENCODING = None  # a worker process's tiktoken encoding


def _start_worker(file: str) -> None:
    global _WORKER_ENCODING
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the main process's to handle
    _WORKER_ENCODING = _tiktoken_encoding(Path(file))


def _encode_in_worker(text: str) -> bytes:
    return np.asarray(_WORKER_ENCODING.encode_ordinary(text), dtype=np.uint32).tobytes()


def _cut_before_whitespace(text: str, limit: int) -> tuple[int, int] | None:
    """The last i <= limit with text[i] ASCII whitespace and text[i-1] not whitespace; a line
    break is preferred within the last quarter of the block."""
    limit = min(limit, len(text) - 1)
    for i in range(limit, limit * 3 // 4, -1):
        if text[i] == "\n" and not text[i - 1].isspace():
            return i, i
    for i in range(limit, 0, -1):
        if text[i] in CUT_BEFORE and not text[i - 1].isspace():
            return i, i
    return None


def _cut_at_space(text: str, limit: int) -> tuple[int, int] | None:
    """The last single space at i <= limit between two non-space characters; the space is
    dropped (the right piece's dummy prefix is it)."""
    for i in range(min(limit, len(text) - 2), 0, -1):
        if text[i] == " " and not text[i - 1].isspace() and not text[i + 1].isspace():
            return i, i + 1
    return None


def _gpt2_pre_tokenizer(config: dict) -> bool:
    """Whether a `tokenizers` JSON pre-tokenizes with GPT-2's regex alone (ByteLevel, regex on,
    no normalizer), where cutting before whitespace is exact."""
    pre = config.get("pre_tokenizer") or {}
    pres = pre.get("pretokenizers", [pre]) if pre.get("type") == "Sequence" else [pre]
    return (config.get("normalizer") is None and len(pres) == 1
            and pres[0].get("type") == "ByteLevel" and pres[0].get("use_regex", True))


def _sentencepiece_cuts_exact(path: Path) -> bool:
    """Whether the model's settings make cutting at a single space exact."""
    from sentencepiece import sentencepiece_model_pb2

    model = sentencepiece_model_pb2.ModelProto()
    model.ParseFromString(path.read_bytes())
    normalizer, trainer = model.normalizer_spec, model.trainer_spec
    return (normalizer.name == "identity" and normalizer.add_dummy_prefix
            and not normalizer.remove_extra_whitespaces and trainer.split_by_whitespace
            and not trainer.treat_whitespace_as_suffix)
