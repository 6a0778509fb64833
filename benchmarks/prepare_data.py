"""Data preparation (issues #17, #26): `est data prepare` against a nanoGPT-style tiktoken
preparation on the same corpus, side by side: the same bytes out (checked), MB per CPU second
(user + system, which other load on the machine does not inflate) and peak RSS, and that peak
against the interpreter plus tokenizer alone. A large corpus shows memory does not grow with
size; the time to open prepared data for training is measured too. Every measurement runs in a
child process of its own, so its peak RSS (`ru_maxrss`) is its own; the two preparations
alternate, `--rounds` times each, and the medians are reported.

    scripts/fetch_tokenizers.sh                        # gpt2.tiktoken into .tokenizers/
    python benchmarks/prepare_data.py --documents-from /usr/share/doc --gb 1 --out benchmarks/results
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

from est_analysis.data import corpus_files
from est_analysis.io import atomic_write_text

REPO = Path(__file__).resolve().parents[1]
# nanoGPT's prepare.py, single process: each document encode_ordinary'd + <|endoftext|>, then
# the splits concatenated into uint16 files; the held-out documents are the ones est holds out
# (SPLIT_SEED 0, VAL_FRACTION 0.05), written out so that the reference imports only numpy and
# tiktoken, as nanoGPT's does
NANOGPT = """
import json, sys, numpy as np, tiktoken
from tiktoken.load import load_tiktoken_bpe
from tiktoken_ext.openai_public import r50k_pat_str
import hashlib
def held_out(doc):  # est's split (prepared.held_out): same documents held out
    h = hashlib.blake2b(f"0:{doc}".encode(), digest_size=8).digest()
    return int.from_bytes(h, "little") < 0.05 * 2**64
corpus, tokenizer, out = sys.argv[1:]
ranks = load_tiktoken_bpe(tokenizer)
enc = tiktoken.Encoding("gpt2", pat_str=r50k_pat_str, mergeable_ranks=ranks,
                        special_tokens={"<|endoftext|>": len(ranks)})
splits = {"train": [], "val": []}
with open(corpus, encoding="utf-8") as f:
    for doc, line in enumerate(f):
        ids = enc.encode_ordinary(json.loads(line)["text"]) + [enc.eot_token]
        splits["val" if held_out(doc) else "train"].append(np.array(ids, dtype=np.uint16))
for name, parts in splits.items():
    np.concatenate(parts).tofile(f"{out}/{name}.bin")
"""
BASELINE = """
import sys
import est_analysis.cli.main, est_analysis.cli.data  # what `est data prepare` imports
from est_analysis.data.ordinary import ordinary_encoder
ordinary_encoder(sys.argv[1]).encode(["warm up"])
"""
LOAD_PREPARED = """
import sys, time
from est_analysis.data import load_prepared, step_batch
start = time.perf_counter()
data = load_prepared(sys.argv[1])
x, y = step_batch(data.train, 8, 1024, 0, 0)
print(time.perf_counter() - start, len(data.train))
"""


def build_corpus(out: Path, gigabytes: float, shard_mb: int = 100) -> Path:
    """JSONL shards of documents (Shakespeare's plays and the Python standard library's
    modules in turn, each numbered so no two documents are equal) up to `gigabytes`."""
    sources = [p.read_text(errors="replace") for p in
               corpus_files("shakespeare") + corpus_files("cpython-stdlib")]
    target, written, copy = int(gigabytes * 1e9), 0, 0
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    while written < target:
        shard = out / f"shard{len(list(out.glob('*.jsonl'))):03d}.jsonl"
        with shard.open("w") as f:
            while f.tell() < shard_mb * 1_000_000 and written + f.tell() < target:
                f.write(json.dumps({"text": f"copy {copy}\n{sources[copy % len(sources)]}"}) + "\n")
                copy += 1
            written += f.tell()
    return out


def documents_from(directory: Path, out: Path, megabytes: float) -> Path:
    """One JSONL document per UTF-8 text file under `directory` (gzip files decompressed;
    line endings and special-token strings kept as they are), up to `megabytes`: a corpus
    nobody tuned for."""
    with out.open("w") as f:
        for path in sorted(p for p in directory.rglob("*") if p.is_file() and not p.is_symlink()):
            if f.tell() >= megabytes * 1e6:
                break
            raw = path.read_bytes()
            try:
                text = (gzip.decompress(raw) if path.suffix == ".gz" else raw).decode("utf-8")
            except (OSError, UnicodeDecodeError, EOFError):
                continue
            if text.strip() and "\x00" not in text:
                f.write(json.dumps({"text": text}) + "\n")
    return out


def measured(args: list[str]) -> dict:
    """Wall time, CPU time and peak RSS of a child process running `args`."""
    start = time.perf_counter()
    child = subprocess.Popen(args, stdout=subprocess.PIPE, text=True, cwd=REPO)
    stdout = child.stdout.read()
    _, status, usage = os.wait4(child.pid, 0)
    if status:
        raise SystemExit(f"{' '.join(args)} failed ({status})")
    return {"wall_s": time.perf_counter() - start, "cpu_s": usage.ru_utime + usage.ru_stime,
            "peak_rss_mb": usage.ru_maxrss / 1024, "stdout": stdout}


def size_mb(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 1e6 if path.is_dir() \
        else path.stat().st_size / 1e6


def same_bytes(a: Path, b: Path) -> bool:
    return all((a / n).read_bytes() == (b / n).read_bytes() for n in ("train.bin", "val.bin"))


def side_by_side(corpus: Path, tokenizer: str, work: Path, rounds: int) -> list[dict]:
    """est data prepare and the nanoGPT-style preparation, alternating, on one JSONL file."""
    est = [sys.executable, "-m", "est_analysis.cli", "data", "prepare", str(corpus),
           "--tokenizer", tokenizer, "--no-progress", "--json"]
    mb, rows = size_mb(corpus), []
    for round_ in range(rounds):
        for path in ("est data prepare", "nanoGPT-style tiktoken, 1 process"):
            out = work / f"{'est' if path.startswith('est') else 'nanogpt'}"
            shutil.rmtree(out, ignore_errors=True)
            out.mkdir(parents=True)
            command = ([*est, "--out", str(out)] if path.startswith("est") else
                       [sys.executable, "-c", NANOGPT, str(corpus), tokenizer, str(out)])
            run = measured(command)
            run.pop("stdout")
            rows.append({"path": path, "round": round_, "corpus_mb": mb, **run,
                         "tokens": sum((out / n).stat().st_size // 2 for n in ("train.bin", "val.bin"))})
        rows[-1]["same_bytes_as_est"] = rows[-2]["same_bytes_as_est"] = same_bytes(work / "est", work / "nanogpt")
    baseline = measured([sys.executable, "-c", BASELINE, tokenizer])
    baseline.pop("stdout")
    rows.append({"path": "interpreter + imports + tokenizer (baseline)", "corpus_mb": mb, **baseline})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--documents-from", type=Path,
                        help="build the side-by-side corpus from this directory's text files "
                             "(default: Shakespeare and the standard library)")
    parser.add_argument("--small-mb", type=float, default=45, help="size of that corpus")
    parser.add_argument("--gb", type=float, default=1.0, help="size of the large corpus (0: none)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tokenizer", default=str(REPO / ".tokenizers" / "gpt2.tiktoken"))
    parser.add_argument("--work", type=Path, default=Path("/tmp/est-prepare-bench"))
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    if args.documents_from:
        corpus = documents_from(args.documents_from, args.work / "documents.jsonl", args.small_mb)
    else:
        corpus = next(build_corpus(args.work / "corpus-small", args.small_mb / 1000).glob("*.jsonl"))
    rows = side_by_side(corpus, args.tokenizer, args.work / "side-by-side", args.rounds)
    if args.gb:
        large = build_corpus(args.work / "corpus-large", args.gb)
        prepared = args.work / "prepared-large"
        shutil.rmtree(prepared, ignore_errors=True)
        run = measured([sys.executable, "-m", "est_analysis.cli", "data", "prepare", str(large),
                        "--tokenizer", args.tokenizer, "--out", str(prepared), "--no-progress", "--json"])
        meta = json.loads(run.pop("stdout"))
        rows.append({"path": "est data prepare", "corpus_mb": size_mb(large), **run,
                     "tokens": meta["train_tokens"] + meta["val_tokens"]})
        opened = measured([sys.executable, "-c", LOAD_PREPARED, str(prepared)])
        seconds, _ = opened.pop("stdout").split()
        rows.append({"path": "open prepared data + first batch (memmap)", "corpus_mb": size_mb(large),
                     **opened, "load_s": float(seconds)})
    table = pd.DataFrame(rows)
    table["mb_per_s"] = table["corpus_mb"] / table["wall_s"]
    table["mb_per_cpu_s"] = table["corpus_mb"] / table["cpu_s"]
    table["machine"] = f"{platform.machine()}, {os.cpu_count()} cores, python {platform.python_version()}"
    table["load_avg_1min"] = os.getloadavg()[0]
    summary = table[table["round"].notna()].groupby("path", sort=False)[
        ["wall_s", "cpu_s", "peak_rss_mb", "mb_per_cpu_s"]].median()
    est, nanogpt = summary.iloc[0], summary.iloc[1]
    baseline = table.loc[table["path"].str.startswith("interpreter"), "peak_rss_mb"].iloc[0]
    ratios = {"corpus": str(corpus), "corpus_mb": round(size_mb(corpus), 1),
              "same_bytes": bool(table["same_bytes_as_est"].dropna().all()),
              "cpu_s_ratio_est_over_tiktoken": round(est["cpu_s"] / nanogpt["cpu_s"], 3),
              "wall_s_ratio_est_over_tiktoken": round(est["wall_s"] / nanogpt["wall_s"], 3),
              "est_rss_over_baseline_mb": round(est["peak_rss_mb"] - baseline, 1)}
    atomic_write_text(args.out / "prepare_data.csv", table.to_csv(index=False))
    atomic_write_text(args.out / "prepare_data_ratios.json", json.dumps(ratios, indent=2) + "\n")
    print(table.drop(columns=["machine"]).to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    print(json.dumps(ratios, indent=2))


if __name__ == "__main__":
    main()
