"""Data preparation at scale (issue #17): `est data prepare` on a >= 1 GB corpus built from
local text, its peak memory and throughput; the old in-memory path (`load_corpus`: read every
document, train a BPE, encode) side by side on a corpus small enough for it; and the time to
open prepared data for training (memmap + first batch). Each measurement runs in its own
process, so peak RSS is that process's own (`ru_maxrss`); throughput is also given per CPU
second (user + system), which other load on the machine does not inflate.

    scripts/fetch_tokenizers.sh                        # gpt2.tiktoken into .tokenizers/
    python benchmarks/prepare_data.py --gb 1 --out benchmarks/results
"""

from __future__ import annotations

import argparse
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
LOAD_PREPARED = """
import sys, time
from est_analysis.data import load_prepared, step_batch
start = time.perf_counter()
data = load_prepared(sys.argv[1])
x, y = step_batch(data.train, 8, 1024, 0, 0)
print(time.perf_counter() - start, len(data.train))
"""
LOAD_CORPUS = "import sys; from est_analysis.data import load_corpus; load_corpus(sys.argv[1], 8192)"


def build_corpus(out: Path, gigabytes: float, shard_mb: int = 100) -> Path:
    """JSONL shards of documents (Shakespeare's plays and the Python standard library's
    modules in turn, each numbered so no two documents are equal) up to `gigabytes`."""
    sources = [p.read_text(errors="replace") for p in
               corpus_files("shakespeare") + corpus_files("cpython-stdlib")]
    target, written, copy = int(gigabytes * 1e9), 0, 0
    out.mkdir(parents=True, exist_ok=True)
    while written < target:
        shard = out / f"shard{len(list(out.glob('*.jsonl'))):03d}.jsonl"
        with shard.open("w") as f:
            while f.tell() < shard_mb * 1_000_000 and written + f.tell() < target:
                f.write(json.dumps({"text": f"copy {copy}\n{sources[copy % len(sources)]}"}) + "\n")
                copy += 1
            written += f.tell()
    return out


def measured(args: list[str]) -> dict:
    """Wall time, CPU time and peak RSS of a child process running `args`."""
    start = time.perf_counter()
    child = subprocess.Popen(args, stdout=subprocess.PIPE, text=True, cwd=REPO)
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - start
    stdout = child.stdout.read()
    if status:
        raise SystemExit(f"{' '.join(args)} failed ({status})")
    return {"wall_s": wall, "cpu_s": usage.ru_utime + usage.ru_stime,
            "peak_rss_mb": usage.ru_maxrss / 1024, "stdout": stdout}


def size_mb(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gb", type=float, default=1.0, help="size of the large corpus")
    parser.add_argument("--small-mb", type=float, default=100, help="size for the old path")
    parser.add_argument("--tokenizer", default=str(REPO / ".tokenizers" / "gpt2.tiktoken"))
    parser.add_argument("--work", type=Path, default=Path("/tmp/est-prepare-bench"))
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    args = parser.parse_args()
    est = [sys.executable, "-m", "est_analysis.cli"]
    env_note = f"{platform.machine()}, {os.cpu_count()} cores, python {platform.python_version()}"
    rows = []
    for label, gigabytes in (("small", args.small_mb / 1000), ("large", args.gb)):
        corpus = build_corpus(args.work / f"corpus-{label}", gigabytes)
        mb = size_mb(corpus)
        prepared = args.work / f"prepared-{label}"
        shutil.rmtree(prepared, ignore_errors=True)
        run = measured([*est, "data", "prepare", str(corpus), "--tokenizer", args.tokenizer,
                        "--out", str(prepared), "--no-progress", "--json"])
        meta = json.loads(run.pop("stdout"))
        rows.append({"path": "est data prepare (streaming, pretrained tokenizer)", "corpus_mb": mb,
                     **run, "tokens": meta["train_tokens"] + meta["val_tokens"]})
        opened = measured([sys.executable, "-c", LOAD_PREPARED, str(prepared)])
        seconds, _ = opened.pop("stdout").split()
        rows.append({"path": "open prepared data + first batch (memmap)", "corpus_mb": mb,
                     **opened, "load_s": float(seconds)})
        if label == "small":
            os.environ["EST_CACHE_DIR"] = str(args.work / "cache")
            shutil.rmtree(args.work / "cache", ignore_errors=True)
            old = measured([sys.executable, "-c", LOAD_CORPUS, str(corpus)])
            old.pop("stdout")
            rows.append({"path": "load_corpus (in memory, trains a BPE)", "corpus_mb": mb, **old})
    table = pd.DataFrame(rows)
    table["mb_per_s"] = table["corpus_mb"] / table["wall_s"]
    table["mb_per_cpu_s"] = table["corpus_mb"] / table["cpu_s"]
    table["machine"] = env_note
    table["load_avg_1min"] = os.getloadavg()[0]
    atomic_write_text(args.out / "prepare_data.csv", table.to_csv(index=False))
    print(table.drop(columns=["machine"]).to_string(index=False, float_format=lambda v: f"{v:.4g}"))


if __name__ == "__main__":
    main()
