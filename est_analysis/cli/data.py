"""`est data`: corpora tokenized with a pretrained tokenizer into memmaps for `--data`."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from est_analysis.data import describe, load_prepared, prepare

EXAMPLES = """examples:
  est data prepare ~/corpora/owt --tokenizer gpt2.tiktoken --out data/owt   # then: est train --data data/owt
  est data prepare shakespeare --tokenizer llama/tokenizer.model --out data/shakespeare-llama
  est data describe ~/nanoGPT/data/openwebtext --tokenizer gpt2.tiktoken  # nanoGPT's train.bin/val.bin
  est data info data/owt --json
CORPUS is a built-in name, a .txt/.md/.py/.rst/.jsonl file or a directory of them. The
tokenizer is a local file or directory (tokenizer.json, vocab.json + merges.txt, *.tiktoken,
SentencePiece *.model); nothing is downloaded. Each document is encoded as plain text
(a literal <|endoftext|> stays text) and exactly as if encoded whole; an end-of-document id
follows it.
"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("data", help="prepare a corpus with a pretrained tokenizer (--data input)",
                       description=__doc__, epilog=EXAMPLES,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    prep = actions.add_parser("prepare", help="tokenize a corpus into train.bin/val.bin/meta.json "
                              "(streaming: bounded memory, resumable, atomic)")
    prep.add_argument("corpus", metavar="CORPUS",
                      help="'shakespeare', 'cpython-stdlib', a .txt/.md/.py/.rst/.jsonl file, or "
                           "a directory: its files with those suffixes, or those --glob selects")
    prep.add_argument("--glob", metavar="PATTERN",
                      help="in a directory CORPUS, take the files matching PATTERN (relative to "
                           "it) as text, whatever their suffix: '*' for files without one, "
                           "'**/*' for every file below it")
    prep.add_argument("--tokenizer", required=True, help="tokenizer file or directory")
    prep.add_argument("--out", required=True, type=Path, help="output directory")
    prep.add_argument("--newlines", default="keep", choices=("keep", "lf"),
                      help="keep line endings as they are (default), or turn CRLF and CR into LF")
    prep.add_argument("--no-progress", dest="progress", action="store_false")
    prep.add_argument("--json", action="store_true", help="print meta.json and timing as JSON")
    desc = actions.add_parser("describe", help="write meta.json beside existing train.bin/val.bin")
    desc.add_argument("dir", type=Path, metavar="DIR")
    desc.add_argument("--tokenizer", required=True, help="the tokenizer the ids come from")
    desc.add_argument("--dtype", default="uint16", choices=("uint16", "uint32"))
    desc.add_argument("--copy-tokenizer", action="store_true",
                      help="also copy the tokenizer's files into DIR (default: meta.json names "
                           "it by absolute path and hash, and is the only file written)")
    info = actions.add_parser("info", help="show a prepared directory's metadata")
    info.add_argument("dir", type=Path, metavar="DIR")
    info.add_argument("--json", action="store_true", help="print as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> None:
    if args.action == "prepare":
        start = time.perf_counter()
        out = prepare(args.corpus, args.tokenizer, args.out, progress=args.progress,
                      newlines=args.newlines, glob=args.glob)
        _show(out, args.json, {"seconds": round(time.perf_counter() - start, 2)})
    elif args.action == "describe":
        _show(describe(args.dir, args.tokenizer, args.dtype, args.copy_tokenizer).parent, False)
    else:
        _show(args.dir, args.json)


def _show(path: Path, as_json: bool, extra: dict | None = None) -> None:
    load_prepared(path)  # checks the directory as training will read it
    meta = json.loads((path / "meta.json").read_text()) | (extra or {})
    if as_json:
        print(json.dumps(meta))
        return
    print(f"{path}: {meta['train_tokens']:,} training and {meta['val_tokens']:,} validation "
          f"tokens ({meta['dtype']}, vocabulary {meta['vocab_size']:,}, tokenizer "
          f"{meta['tokenizer']}), fingerprint {meta['fingerprint']}")
    print(f"train with: est train --data {path}")
