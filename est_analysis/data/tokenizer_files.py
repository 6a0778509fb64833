"""Pretrained tokenizers read from local files, never downloaded.

Four formats, each given as the file or as a directory holding it:
- a `tokenizers` JSON (`tokenizer.json`, what HF fast tokenizers save);
- GPT-2 style `vocab.json` + `merges.txt` (byte-level BPE, GPT-2's pre-tokenizing regex);
- a tiktoken BPE ranks file (`*.tiktoken`: base64 token, rank), converted here to the same
  byte-level BPE: each token's merge is the split its own bytes reach under the ranks below it.
  GPT-2's regex is assumed (true of `gpt2.tiktoken`/r50k/p50k; not of cl100k or o200k);
- a SentencePiece model (`*.model`, Llama style), run by the `sentencepiece` library itself.
  (HF's conversion of SentencePiece BPE to a merge list differs from SentencePiece on runs of
  spaces, so it is not used.)

Every loader returns an object with the part of the `tokenizers.Tokenizer` API the toolkit
uses (`encode_batch`, `decode`, `get_vocab_size`, `token_to_id`, `id_to_token`), so trained
and pretrained tokenizers are interchangeable downstream.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union

from tokenizers import Tokenizer
from tokenizers.decoders import ByteLevel as ByteLevelDecoder
from tokenizers.models import BPE
from tokenizers.pre_tokenizers import ByteLevel

# end-of-document tokens, in order of preference: the separator written after every document
SEPARATORS = ("<|endoftext|>", "</s>", "<|end_of_text|>", "<eos>")
FORMATS = ("tokenizer.json", "vocab.json + merges.txt", "*.tiktoken", "*.model (SentencePiece)")


class TokenizerFileError(ValueError):
    """A tokenizer file that exists but cannot be read as its format."""


@dataclass
class Encoding:
    ids: list[int]


class SentencePieceTokenizer:
    """A SentencePiece model behind the `tokenizers.Tokenizer` methods the toolkit calls."""

    def __init__(self, path: Path):
        import sentencepiece

        self.path = path
        self.processor = sentencepiece.SentencePieceProcessor(model_file=str(path))

    def encode_batch(self, texts: list[str], add_special_tokens: bool = False) -> list[Encoding]:
        return [Encoding(ids) for ids in self.processor.encode(list(texts))]

    def decode(self, ids: list[int]) -> str:
        return self.processor.decode(list(ids))

    def get_vocab_size(self) -> int:
        return self.processor.vocab_size()

    def token_to_id(self, token: str) -> int | None:
        i = self.processor.piece_to_id(token)
        return None if i == self.processor.unk_id() and token != self.processor.id_to_piece(i) else i

    def id_to_token(self, i: int) -> str | None:
        return self.processor.id_to_piece(i) if 0 <= i < self.get_vocab_size() else None


TextTokenizer = Union[Tokenizer, SentencePieceTokenizer]


def tokenizer_file(path: str | Path) -> Path:
    """The tokenizer file `path` names: itself, or the one a directory holds."""
    path = Path(path).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"tokenizer {str(path)!r} does not exist; pass a local file or "
                                f"directory holding one of: {', '.join(FORMATS)}")
    if path.is_file():
        return path
    for pattern in ("tokenizer.json", "vocab.json", "*.tiktoken", "tokenizer.model", "*.model"):
        found = sorted(path.glob(pattern))
        if found:
            return found[0]
    raise ValueError(f"directory {path} holds no tokenizer file ({', '.join(FORMATS)})")


def load_tokenizer(path: str | Path) -> TextTokenizer:
    """The tokenizer in the local file or directory `path` (formats in the module docstring)."""
    file = tokenizer_file(path)
    if file.suffix not in (".json", ".tiktoken", ".model"):
        raise ValueError(f"tokenizer {file} is not a known format; use one of: {', '.join(FORMATS)}")
    vocab = file.suffix == ".json" and _is_vocab(file)
    if vocab and not file.with_name("merges.txt").exists():
        raise ValueError(f"{file} is a BPE vocabulary but {file.with_name('merges.txt')} is missing")
    try:
        if file.suffix == ".tiktoken":
            return _from_tiktoken(file)
        if file.suffix == ".model":
            return SentencePieceTokenizer(file)
        if vocab:
            return _byte_level(BPE.from_file(str(file), str(file.with_name("merges.txt"))))
        return Tokenizer.from_file(str(file))
    except TokenizerFileError:
        raise
    except Exception as err:  # the libraries' own parse errors (tokenizers raises bare Exception)
        raise TokenizerFileError(f"cannot read tokenizer {file}: {err}") from None


def tokenizer_files(path: str | Path) -> list[Path]:
    """The files that make up the tokenizer at `path` (to copy beside data or a model)."""
    file = tokenizer_file(path)
    return [file, file.with_name("merges.txt")] if file.suffix == ".json" and _is_vocab(file) else [file]


def tokenizer_digest(path: str | Path) -> str:
    """A hash of the tokenizer's files: part of the fingerprint of data tokenized with it."""
    digest = hashlib.sha256()
    for file in tokenizer_files(path):
        digest.update(file.read_bytes())
    return digest.hexdigest()[:16]


def separator_id(tokenizer: TextTokenizer) -> int:
    """The id of the tokenizer's end-of-document token (the first of `SEPARATORS` it has)."""
    for token in SEPARATORS:
        i = tokenizer.token_to_id(token)
        if i is not None:
            return i
    raise ValueError(f"the tokenizer has none of the end-of-document tokens {SEPARATORS}; "
                     "documents need a separator: add one of them as a special token")


def _is_vocab(file: Path) -> bool:
    """A GPT-2 style vocab.json (a flat token -> id map), not a `tokenizers` JSON."""
    with file.open("rb") as f:
        head = f.read(4096).decode("utf-8", errors="ignore")
    return '"model"' not in head and '"version"' not in head


def _byte_level(model: BPE) -> Tokenizer:
    tokenizer = Tokenizer(model)
    tokenizer.pre_tokenizer = ByteLevel(add_prefix_space=False)
    tokenizer.decoder = ByteLevelDecoder()
    return tokenizer


def _byte_chars() -> dict[int, str]:
    """GPT-2's printable stand-in for every byte (the alphabet of byte-level BPE)."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1),
                 *range(ord("®"), ord("ÿ") + 1)]
    others = [b for b in range(256) if b not in printable]
    return {**{b: chr(b) for b in printable}, **{b: chr(256 + n) for n, b in enumerate(others)}}


def _from_tiktoken(file: Path) -> Tokenizer:
    ranks: dict[bytes, int] = {}
    for n, line in enumerate(file.read_text().splitlines(), 1):
        if line.strip():
            try:
                token, rank = line.split()
                ranks[base64.b64decode(token)] = int(rank)
            except ValueError:
                raise TokenizerFileError(f"{file}:{n}: expected 'base64-token rank', got "
                                         f"{line[:60]!r}") from None
    chars = _byte_chars()

    def text(token: bytes) -> str:
        return "".join(chars[b] for b in token)

    vocab = {text(token): rank for token, rank in ranks.items()}
    merges = [tuple(map(text, _merge_of(token, rank, ranks)))
              for token, rank in sorted(ranks.items(), key=lambda item: item[1]) if len(token) > 1]
    tokenizer = _byte_level(BPE(vocab=vocab, merges=merges))
    tokenizer.add_special_tokens([SEPARATORS[0]])  # GPT-2's <|endoftext|>: the next id (50256)
    return tokenizer


def _merge_of(token: bytes, rank: int, ranks: dict[bytes, Any]) -> tuple[bytes, bytes]:
    """The two parts byte-pair merging of `token` reaches with the tokens ranked below it."""
    parts = [token[i:i + 1] for i in range(len(token))]
    while len(parts) > 2:
        pairs = [(ranks.get(parts[i] + parts[i + 1], rank), i) for i in range(len(parts) - 1)]
        best, i = min(pairs)
        if best >= rank:
            break
        parts[i:i + 2] = [parts[i] + parts[i + 1]]
    if len(parts) != 2:
        raise TokenizerFileError(f"tiktoken rank {rank} ({token!r}) is not reachable by merging "
                                 "lower ranks")
    return parts[0], parts[1]
