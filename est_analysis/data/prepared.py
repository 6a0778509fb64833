"""Prepared data: a corpus tokenized once into nanoGPT's layout, `train.bin` and `val.bin`
(flat uint16 token ids, uint32 when the vocabulary needs it), plus `meta.json` naming the
dtype, vocabulary, tokenizer file (copied beside them) and a fingerprint.

Every document is encoded as plain text and exactly as if encoded whole (`ordinary.py`): a
special-token string in the text stays text, and a long document is cut into blocks of about
`BLOCK_CHARS` characters only where the tokenizer cannot join the two sides. Line endings are
kept as they are (`newlines="lf"` turns CRLF and CR into LF). After each document the
tokenizer's end-of-document id is written (the only special id in the output).

`prepare` streams: blocks are encoded `BATCH_CHARS` at a time (the tokenizer's threads share
the cores) and appended to the output, so memory does not depend on the corpus size. It is
atomic (the files get their names only when complete, `meta.json` last) and resumable (a state
file records how many blocks are written; a rerun truncates to it and goes on).

The validation split holds out whole documents (a JSONL record, or a text file) at random: a
hash of (`SPLIT_SEED`, document index) below `VAL_FRACTION`. A corpus of one text file holds
out blocks instead: it is cut after line breaks, and each block is a document (encoded whole,
with no separator between blocks). Loading memmaps
the files and reads only `meta.json`: no corpus hash.
"""

from __future__ import annotations

import codecs
import contextlib
import errno
import hashlib
import json
import os
import shutil
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import chain
from pathlib import Path
from typing import TextIO

import numpy as np
from tokenizers import Tokenizer
from tqdm import tqdm

from est_analysis.data.corpus import CorpusWarning, corpus_files
from est_analysis.data.ordinary import OrdinaryEncoder, ordinary_encoder
from est_analysis.data.tokenizer_files import (
    TextTokenizer,
    load_tokenizer,
    tokenizer_digest,
    tokenizer_files,
)
from est_analysis.data.tokens import SPLIT_SEED, VAL_FRACTION, TokenData
from est_analysis.io import (atomic_write, atomic_write_text, file_digest, file_lock,
                             open_no_follow)

FORMAT = "est-prepared-1"
BLOCK_CHARS = 1 << 18  # a block of text: about 256 Ki characters, cut where no id changes
ENCODING = "ordinary text, as if whole"  # part of the fingerprint: how the text became ids
BATCH_CHARS = 1 << 22  # encoded together: 4 Mi characters, 16 blocks for the threads to share
SAMPLE_BYTES = 1 << 16  # a file's fingerprint reads its first and last 64 KiB, not all of it
META, STATE, LOCK = "meta.json", ".prepare-state.json", ".prepare.lock"
META_TYPES = {"vocab_size": int, "tokenizer": str, "fingerprint": str, "train_tokens": int,
              "val_tokens": int, "max_token_id": int, "bins_digest": str, "content_digest": str}


class PreparedDataError(ValueError):
    """A --data directory that is not prepared data, or prepared from something else."""


@dataclass
class Block:
    text: str
    doc: int  # index of the document it belongs to (the split's unit)
    last: bool  # the document's last block: an end-of-document token follows it


def source_digest(files: list[Path]) -> str:
    """Names, sizes, modification times and the first and last `SAMPLE_BYTES` of each file."""
    digest = hashlib.sha256()
    for path in files:
        stat = path.stat()
        digest.update(f"{path.name}\0{stat.st_size}\0{stat.st_mtime_ns}\0".encode())
        with path.open("rb") as f:
            digest.update(f.read(SAMPLE_BYTES))
            if stat.st_size > 2 * SAMPLE_BYTES:
                f.seek(-SAMPLE_BYTES, os.SEEK_END)
                digest.update(f.read())
    return digest.hexdigest()[:16]


def held_out(doc: int) -> bool:
    """Whether document `doc` belongs to the validation split (seeded hash, `VAL_FRACTION`)."""
    h = hashlib.blake2b(f"{SPLIT_SEED}:{doc}".encode(), digest_size=8).digest()
    return int.from_bytes(h, "little") < VAL_FRACTION * 2**64


NEWLINES = {"keep": "", "lf": None}  # open()'s newline= for each --newlines choice


def blocks(files: list[Path], encoder: OrdinaryEncoder, newlines: str = "keep") -> Iterator[Block]:
    """The corpus as blocks of text, in order, each tagged with its document (blank documents
    are skipped)."""
    if len(files) == 1 and files[0].suffix != ".jsonl":  # one text file: its blocks are documents
        with _open_text(files[0], newlines) as f:
            pieces = _pieces(_chunks(f, files[0]), _after_line_break)
            yield from (Block(piece, doc, False) for doc, piece in
                        enumerate(p for p in pieces if p.strip()))
        return
    doc = 0
    for path in files:
        with _open_text(path, newlines) as f:
            documents = _records(f, path, newlines) if path.suffix == ".jsonl" else [_chunks(f, path)]
            for chunks in documents:
                written = False
                for block in _document(_pieces(chunks, encoder.cut), doc):
                    written = True
                    yield block
                doc += written


@contextmanager
def _open_text(path: Path, newlines: str) -> Iterator[TextIO]:
    """`path` as UTF-8 text, undecodable bytes replaced by U+FFFD, counted and reported as a
    `CorpusWarning` once the file is read (as `est train --corpus` does)."""
    _REPLACED[0] = 0
    with path.open(encoding="utf-8", errors="est-replace-and-count", newline=NEWLINES[newlines]) as f:
        yield f
    if _REPLACED[0]:
        warnings.warn(f"corpus file {path}: {_REPLACED[0]} undecodable byte sequence(s) replaced "
                      "by U+FFFD (is it UTF-8?)", CorpusWarning, stacklevel=2)


_REPLACED = [0]  # undecodable sequences in the file `_open_text` is reading


def _replace_and_count(err: UnicodeDecodeError) -> tuple[str, int]:
    _REPLACED[0] += 1
    return "\ufffd", err.end


codecs.register_error("est-replace-and-count", _replace_and_count)


def _records(f: TextIO, path: Path, newlines: str) -> Iterator[Iterator[str]]:
    """The "text" of each non-blank line of a JSONL file."""
    for n, line in enumerate(f, 1):
        if line.strip():
            text = _record_text(path, n, line)
            yield iter([text.replace("\r\n", "\n").replace("\r", "\n") if newlines == "lf" else text])


def _document(pieces: Iterator[str], doc: int) -> Iterator[Block]:
    """A document's pieces as blocks, the last one marked (its separator follows it); nothing
    when every piece is blank."""
    lead = []
    for piece in pieces:
        lead.append(piece)
        if piece.strip():
            break
    else:
        return
    rest = chain(lead, pieces)
    previous = next(rest)
    for piece in rest:
        yield Block(previous, doc, False)
        previous = piece
    yield Block(previous, doc, True)


def _chunks(f: TextIO, path: Path) -> Iterator[str]:
    while chunk := f.read(BLOCK_CHARS):
        if "\x00" in chunk:
            raise ValueError(f"corpus file {path} is not text: it holds NUL bytes; pass "
                             "text, or describe token files with `est data describe`")
        yield chunk


def _pieces(chunks: Iterator[str], cut: Callable[[str, int], tuple[int, int] | None]
            ) -> Iterator[str]:
    """A document's text in pieces of about `BLOCK_CHARS` characters, cut where `cut` says (a
    piece grows until such a point comes)."""
    pending = ""
    for chunk in chunks:
        pending += chunk
        while len(pending) > BLOCK_CHARS:
            at = cut(pending, BLOCK_CHARS) or cut(pending, len(pending) - 1)
            if at is None:
                break
            yield pending[:at[0]]
            pending = pending[at[1]:]
    if pending:
        yield pending


def _after_line_break(text: str, limit: int) -> tuple[int, int]:
    """After the last line break before `limit` (or at `limit`): the blocks of one text file."""
    at = text.rfind("\n", 0, limit) + 1 or limit
    return at, at


def prepare(corpus: str, tokenizer: str | Path, out: str | Path, progress: bool = True,
            newlines: str = "keep", glob: str | None = None) -> Path:
    """Tokenize `corpus` (built-in name, text/JSONL file or directory; in a directory the files
    `glob` matches, default the text files) with the tokenizer file `tokenizer` into `out`; a
    no-op when `out` already holds exactly this preparation. `newlines`: "keep" the line
    endings, or turn CRLF and CR into "lf"."""
    if newlines not in NEWLINES:
        raise ValueError(f"newlines={newlines!r}: choose one of {', '.join(NEWLINES)}")
    files, out = corpus_files(corpus, glob), Path(out).expanduser()
    encoder = ordinary_encoder(tokenizer)  # a bad tokenizer fails before anything is written
    settings = _settings(files, tokenizer, newlines)
    _check_own_directory(out)
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    try:
        with file_lock(out / LOCK):  # processes preparing one directory (DDP ranks) take turns
            _check_own_directory(out)  # again: another process may have written it meanwhile
            return _prepare(corpus, files, encoder, tokenizer, settings, out, progress)
    except PreparedDataError:
        if created:  # a refusal leaves nothing behind (file_lock removed its lock file)
            with contextlib.suppress(OSError):
                out.rmdir()
        raise


def _check_own_directory(out: Path) -> None:
    """`out` must be new, empty, or a preparation of ours (finished or interrupted): files of
    the user's own are never overwritten."""
    if out.exists() and not out.is_dir():
        raise PreparedDataError(f"--out {out} is a file; give a directory")
    ours = {LOCK, "train.bin.partial", "val.bin.partial"}  # written before the first state
    found = sorted(p.name for p in out.iterdir() if p.name not in ours) if out.is_dir() else []
    if found and not {META, STATE} & set(found):
        listed = ", ".join(found[:5]) + (", ..." if len(found) > 5 else "")
        raise PreparedDataError(f"--out {out} is not empty ({listed}) and holds no preparation "
                                "of ours: choose a new or empty directory (nothing was written)")


def _prepare(corpus: str, files: list[Path], encoder: OrdinaryEncoder, tokenizer: str | Path,
             settings: dict, out: Path, progress: bool) -> Path:
    fingerprint = _digest(settings)
    if (out / META).exists():
        found = _read_meta(out).get("fingerprint")
        if found == fingerprint:
            return out
        raise PreparedDataError(f"{out} already holds prepared data of another corpus or "
                                f"tokenizer (fingerprint {found}, this one {fingerprint}); "
                                "choose a new --out")
    dtype = np.dtype(np.uint16 if encoder.vocab_size <= 2**16 else np.uint32)
    state = _resume_state(out, fingerprint, dtype.itemsize)
    parts = {name: open_no_follow(out / f"{name}.bin.partial", "ab") for name in ("train", "val")}
    for name, f in parts.items():
        f.truncate(state[f"{name}_tokens"] * dtype.itemsize)
    total_bytes = sum(p.stat().st_size for p in files)
    try:
        # the encoder's workers start before the progress bar's thread does
        with encoder, tqdm(total=total_bytes, unit="B", unit_scale=True, desc="prepare",
                           disable=not progress) as bar:
            _stream(blocks(files, encoder, settings["newlines"]), encoder, dtype, parts, state,
                    out, bar)
    except OSError as err:
        if err.errno != errno.ENOSPC:
            raise
        _discard_partial(out, parts)
        raise PreparedDataError(f"no space left on the device writing {out} "
                                f"({shutil.disk_usage(out).free // 2**20} MiB free): the partial "
                                "files were removed; free some space or choose another --out, "
                                "then run the same command again") from None
    finally:
        for f in parts.values():
            f.close()
    if state["val_tokens"] == 0 or state["train_tokens"] == 0:
        _discard_partial(out, parts)
        raise PreparedDataError(f"corpus {corpus!r} is too small to split: {state['train_tokens']} "
                                f"training and {state['val_tokens']} validation tokens (documents "
                                f"are held out with probability {VAL_FRACTION}); use more "
                                "documents (the partial files were removed)")
    for name in ("train", "val"):
        os.replace(out / f"{name}.bin.partial", out / f"{name}.bin")
    meta = {**_tokenizer_meta(encoder, tokenizer, out, dtype.name), "train_tokens": state["train_tokens"], "val_tokens": state["val_tokens"],
            "documents": state["documents"], "val_documents": state["val_documents"],
            "max_token_id": state.get("max_token_id", -1), "bins_digest": _bins_digest(out),
            "content_digest": file_digest(out / "train.bin", out / "val.bin"),
            "corpus": str(corpus), "files": len(files), "bytes": total_bytes,
            **settings, "fingerprint": fingerprint}
    atomic_write_text(out / META, json.dumps(meta, indent=2) + "\n")
    (out / STATE).unlink(missing_ok=True)
    return out


def _discard_partial(out: Path, parts: dict) -> None:
    """Close and remove the partial token files and the resume state (nothing half-written
    stays behind a refusal)."""
    for f in parts.values():
        f.close()
    for name in ("train", "val"):
        (out / f"{name}.bin.partial").unlink(missing_ok=True)
    (out / STATE).unlink(missing_ok=True)


def _stream(corpus_blocks: Iterator[Block], encoder: OrdinaryEncoder, dtype: np.dtype,
            parts: dict, state: dict, out: Path, bar: tqdm) -> None:
    """Encode the blocks not yet written, a batch at a time, saving the state after each."""
    batch: list[Block] = []
    for n, block in enumerate(corpus_blocks, 1):
        bar.update(len(block.text.encode()))
        if n <= state["blocks"]:
            continue
        batch.append(block)
        if sum(len(b.text) for b in batch) >= BATCH_CHARS:
            _write_batch(batch, encoder, dtype, parts, state)
            state["blocks"] = n
            _save_state(out, state, parts)
            batch = []
    _write_batch(batch, encoder, dtype, parts, state)
    state["blocks"] += len(batch)


def preparation_fingerprint(corpus: str, tokenizer: str | Path, newlines: str = "keep") -> str:
    """The fingerprint `prepare(corpus, tokenizer, ...)` gives its output, without preparing."""
    return _digest(_settings(corpus_files(corpus), tokenizer, newlines))


def load_prepared(path: str | Path) -> TokenData:
    """The prepared data in directory `path` as memmaps, with its tokenizer."""
    path = Path(path).expanduser()
    meta = _read_meta(path)
    dtype = np.dtype(meta["dtype"])
    arrays = {}
    for name in ("train", "val"):
        file = path / f"{name}.bin"
        if not file.exists():
            raise PreparedDataError(f"{file} is missing; --data needs train.bin and val.bin")
        if file.stat().st_size % dtype.itemsize:
            raise PreparedDataError(f"{file} is {file.stat().st_size} bytes, not a whole number "
                                    f"of {dtype.name} tokens; is meta.json's dtype right?")
        arrays[name] = np.memmap(file, dtype=dtype, mode="r")
    if "content_digest" in meta and file_digest(path / "train.bin", path / "val.bin") != meta["content_digest"]:
        raise PreparedDataError(f"{path}: train.bin or val.bin changed since {META} was written "
                                "(their content digest differs): restore them, or prepare "
                                "(`est data prepare`) or describe (`est data describe`) them again")
    source = path / meta["tokenizer"]  # a name inside the directory, or an absolute path
    if Path(meta["tokenizer"]).is_absolute() and meta.get("tokenizer_digest") not in (
            None, tokenizer_digest(source)):
        raise PreparedDataError(f"{path}: the tokenizer {source} named in meta.json changed since "
                                "the ids were described; describe them again with the tokenizer "
                                "they come from")
    tokenizer = load_tokenizer(source)
    if tokenizer.get_vocab_size() > meta["vocab_size"]:
        raise PreparedDataError(f"{path}: tokenizer {meta['tokenizer']} has "
                                f"{tokenizer.get_vocab_size()} tokens, meta.json says "
                                f"{meta['vocab_size']}")
    largest = meta.get("max_token_id")
    if largest is None or meta.get("bins_digest") != _bins_digest(path):
        # not recorded, or the files changed since: read every id once (chunked memmap)
        largest = max(max_token_id(a) for a in arrays.values())
    if largest >= meta["vocab_size"]:
        which = next(n for n, a in arrays.items() if max_token_id(a) == largest)
        raise PreparedDataError(f"{path}/{which}.bin holds token id {largest}, outside the "
                                f"vocabulary of {meta['vocab_size']} in meta.json: it was "
                                "tokenized with another tokenizer (or a wrong --dtype)")
    return TokenData(str(path), tokenizer, arrays["train"], arrays["val"], meta["fingerprint"])


def _bins_digest(path: Path) -> str:
    """Identifies train.bin and val.bin by content (sizes, first and last bytes; not times, so
    that the same preparation writes the same meta.json): the recorded largest id holds while
    it matches. The training loop still checks every batch's ids."""
    digest = hashlib.sha256()
    for name in ("train.bin", "val.bin"):
        file = path / name
        size = file.stat().st_size
        digest.update(f"{name}\0{size}\0".encode())
        with file.open("rb") as f:
            digest.update(f.read(SAMPLE_BYTES))
            if size > 2 * SAMPLE_BYTES:
                f.seek(-SAMPLE_BYTES, os.SEEK_END)
                digest.update(f.read())
    return digest.hexdigest()[:16]


def max_token_id(tokens: np.ndarray, chunk: int = 1 << 24) -> int:
    """The largest id in a token array (-1 if empty), read in chunks: bounded memory for a
    memmap of any size."""
    return max((int(tokens[i:i + chunk].max()) for i in range(0, len(tokens), chunk)), default=-1)


def describe(path: str | Path, tokenizer: str | Path, dtype: str = "uint16",
             copy_tokenizer: bool = False) -> Path:
    """Write `meta.json` for train.bin/val.bin made elsewhere (e.g. by nanoGPT's prepare.py):
    the only file written into the user's directory, naming the tokenizer by absolute path and
    hash (checked when loaded), unless `copy_tokenizer` copies its files in beside it."""
    path = Path(path).expanduser()
    bins = [path / "train.bin", path / "val.bin"]
    missing = [str(b) for b in bins if not b.exists()]
    if missing:
        raise PreparedDataError(f"{', '.join(missing)} not found; a --data directory holds "
                                "train.bin and val.bin")
    if dtype not in ("uint16", "uint32"):
        raise PreparedDataError(f"dtype {dtype!r}: choose uint16 or uint32")
    encoder = ordinary_encoder(tokenizer)
    settings = {"source_digest": source_digest(bins), "tokenizer_digest": tokenizer_digest(tokenizer)}
    itemsize = np.dtype(dtype).itemsize
    for b in bins:
        if b.stat().st_size % itemsize or not b.stat().st_size:
            raise PreparedDataError(f"{b} is {b.stat().st_size} bytes: not a whole, non-empty "
                                    f"array of {dtype} tokens (is --dtype right?)")
    largest = {b.name: max_token_id(np.memmap(b, dtype=dtype, mode="r")) for b in bins}
    for name, value in largest.items():
        if value >= encoder.vocab_size:
            raise PreparedDataError(f"{path / name} holds token id {value}, outside the "
                                    f"tokenizer's vocabulary of {encoder.vocab_size}: it was "
                                    "made with another tokenizer (or --dtype is wrong)")
    named = (_tokenizer_meta(encoder, tokenizer, path, dtype) if copy_tokenizer else
             {"format": FORMAT, "dtype": dtype, "vocab_size": encoder.vocab_size,
              "separator_id": encoder.separator, "tokenizer": str(Path(tokenizer).expanduser().resolve())})
    meta = {**named, "train_tokens": bins[0].stat().st_size // itemsize,
            "val_tokens": bins[1].stat().st_size // itemsize, "max_token_id": max(largest.values()),
            "bins_digest": _bins_digest(path), "content_digest": file_digest(*bins),
            **settings, "fingerprint": _digest(settings)}
    return atomic_write_text(path / META, json.dumps(meta, indent=2) + "\n")


def _tokenizer_meta(encoder: OrdinaryEncoder, source: str | Path, out: Path, dtype: str) -> dict:
    """The part of `meta.json` that names the format and the tokenizer (kept in `out`)."""
    return {"format": FORMAT, "dtype": dtype, "vocab_size": encoder.vocab_size,
            "separator_id": encoder.separator, "tokenizer": _keep_tokenizer(encoder.tokenizer, source, out)}


def _keep_tokenizer(tok: TextTokenizer | None, source: str | Path, out: Path) -> str:
    """Copy the tokenizer's files into `out`, plus a `tokenizer.json` where the tokenizer is a
    `tokenizers` one (what HF fast tokenizers read; a `*.tiktoken` file is kept as it is, and
    converted when the data is loaded); the name of the file to load it from. A file of the
    same name already in `out` with other contents is never overwritten: refused up front."""
    copies = {out / f.name: f.read_bytes() for f in tokenizer_files(source)
              if f.resolve() != (out / f.name).resolve()}
    if isinstance(tok, Tokenizer):
        copies[out / "tokenizer.json"] = tok.to_str().encode()
    clashes = [p.name for p, data in copies.items()
               if os.path.lexists(p) and (not p.is_file() or p.is_symlink() or p.read_bytes() != data)]
    if clashes:
        raise PreparedDataError(f"{out} already holds {', '.join(clashes)}, which differs from the "
                                "tokenizer's own file: est does not overwrite it; leave out "
                                "--copy-tokenizer (meta.json then names the tokenizer by its "
                                "path) or move that file away")
    for path, data in copies.items():
        atomic_write(path, lambda f, data=data: f.write(data))
    if isinstance(tok, Tokenizer):
        return "tokenizer.json"
    return tokenizer_files(source)[0].name


def _settings(files: list[Path], tokenizer: str | Path, newlines: str) -> dict:
    return {"source_digest": source_digest(files), "tokenizer_digest": tokenizer_digest(tokenizer),
            "val_fraction": VAL_FRACTION, "split_seed": SPLIT_SEED, "block_chars": BLOCK_CHARS,
            "encoding": ENCODING, "newlines": newlines}


def _digest(settings: dict) -> str:
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]


def _record_text(path: Path, n: int, line: str) -> str:
    try:
        return json.loads(line)["text"]
    except (ValueError, KeyError, TypeError) as err:
        raise ValueError(f"{path}:{n}: expected a JSON object with a 'text' field ({err})") from None


def _write_batch(batch: list[Block], encoder: OrdinaryEncoder, dtype: np.dtype, parts: dict,
                 state: dict) -> None:
    """Encode the blocks together and append each to its split, separators after documents."""
    encoded = encoder.encode([b.text for b in batch]) if batch else []
    for block, encoding in zip(batch, encoded):
        name = "val" if held_out(block.doc) else "train"
        ids = (np.append(encoding, encoder.separator) if block.last else encoding).astype(dtype)
        parts[name].write(ids.tobytes())
        state[f"{name}_tokens"] += len(ids)
        state["max_token_id"] = max(state.get("max_token_id", -1), int(ids.max()) if len(ids) else -1)
        if block.doc == state["documents"]:  # the first block of a new document
            state["documents"] += 1
            state["val_documents"] += name == "val"


def _resume_state(out: Path, fingerprint: str, itemsize: int) -> dict:
    """The state of an interrupted preparation of the same data, if its files are intact;
    otherwise a fresh start."""
    state_file = out / STATE
    if state_file.exists():
        state = json.loads(state_file.read_text())
        partial = [out / f"{name}.bin.partial" for name in ("train", "val")]
        if state.get("fingerprint") == fingerprint and all(
                p.exists() and p.stat().st_size >= state[f"{name}_tokens"] * itemsize
                for p, name in zip(partial, ("train", "val"))):
            return state
    for name in ("train", "val"):
        (out / f"{name}.bin.partial").unlink(missing_ok=True)
    return {"fingerprint": fingerprint, "blocks": 0, "train_tokens": 0, "val_tokens": 0,
            "documents": 0, "val_documents": 0}


def _save_state(out: Path, state: dict, parts: dict) -> None:
    for f in parts.values():
        f.flush()
        os.fsync(f.fileno())
    atomic_write_text(out / STATE, json.dumps(state))


def _read_meta(path: Path) -> dict:
    if not path.is_dir():
        raise PreparedDataError(f"--data {str(path)!r} is not a directory of prepared data")
    file = path / META
    if not file.exists():
        raise PreparedDataError(
            f"{path} has no {META}. Prepare a corpus with `est data prepare CORPUS --tokenizer T "
            f"--out {path}`, or describe existing nanoGPT train.bin/val.bin with `est data "
            f"describe {path} --tokenizer T [--dtype uint16]`")
    try:
        meta = json.loads(file.read_text())
    except ValueError as err:
        raise PreparedDataError(f"{file} is not valid JSON: {err}") from None
    if not isinstance(meta, dict):
        raise PreparedDataError(f"{file} must hold a JSON object; rewrite it with `est data describe`")
    missing = {"format", "dtype", "vocab_size", "tokenizer", "fingerprint"} - set(meta)
    if missing or meta["format"] != FORMAT or meta["dtype"] not in ("uint16", "uint32"):
        raise PreparedDataError(f"{file} is not {FORMAT} metadata (missing {sorted(missing)} or "
                                f"dtype {meta.get('dtype')!r}); rewrite it with `est data describe`")
    for key, kind in META_TYPES.items():
        if key in meta and (not isinstance(meta[key], kind) or isinstance(meta[key], bool)):
            raise PreparedDataError(f"{file}: {key}={meta[key]!r} must be "
                                    f"{'an integer' if kind is int else 'a string'}; rewrite it "
                                    "with `est data describe`")
    if meta["vocab_size"] < 1:
        raise PreparedDataError(f"{file}: vocab_size={meta['vocab_size']} must be positive")
    return meta
