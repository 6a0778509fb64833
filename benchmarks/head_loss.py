"""The loss at the LM head, forward and backward with the head matmul: cross-entropy over the
full logits (eager, and compiled by inductor) against the blockwise `linear_cross_entropy`
(`est_analysis.models.head_loss`) at several rows per block, side by side in interleaved
rounds (median), and the peak resident memory of each, measured in a fresh process per
variant (Linux VmHWM, reset after a first call). Same hidden states, weight and targets for
every variant.

    python benchmarks/head_loss.py --out benchmarks/results
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import torch

import est_analysis.models.head_loss as head_loss
from est_analysis.io import atomic_write_text
from est_analysis.repro.walltime import device_name

SHAPES = [(2048, 8192, 256), (2048, 50257, 256)]  # (tokens, vocabulary, d): gpt2-cpu; GPT-2's words
ROWS = [256, 512, 1024, 2048]


def _inputs(tokens: int, vocab: int, d: int):
    g = torch.Generator().manual_seed(0)
    hidden = torch.randn(1, tokens, d, generator=g).requires_grad_()
    weight = (0.02 * torch.randn(vocab, d, generator=g)).requires_grad_()
    return hidden, weight, torch.randint(0, vocab, (1, tokens), generator=g)


def variants(hidden, weight, targets) -> dict:
    compiled = torch.compile(head_loss.token_loss, dynamic=False)
    found = {"cross-entropy eager": lambda: head_loss.token_loss(hidden @ weight.t(), targets),
             "cross-entropy compiled": lambda: compiled(hidden @ weight.t(), targets)}

    def blockwise(rows: int):
        def run():
            head_loss.MIN_ROWS, head_loss.BLOCK_ELEMENTS = rows, 1
            return head_loss.linear_cross_entropy(hidden, weight, targets)
        return run
    found |= {f"blockwise {rows} rows": blockwise(rows) for rows in ROWS}
    return found


def _peak_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise SystemExit("peak memory needs Linux's /proc/self/status")


def one_variant_peak(shape: tuple[int, int, int], name: str, threads: int) -> None:
    """Run one variant in this (fresh) process and print its peak resident memory in MiB, in
    all and above what the process held before the call (the peak is reset through
    /proc/self/clear_refs once the inputs exist and the variant has run once)."""
    torch.set_num_threads(threads)
    hidden, weight, targets = _inputs(*shape)
    run = variants(hidden, weight, targets)[name]
    run().backward()  # compilation, first allocations
    hidden.grad = weight.grad = None
    held = _peak_mib()
    Path("/proc/self/clear_refs").write_text("5")  # reset the peak to the current size
    held = min(held, _peak_mib())
    run().backward()
    print(json.dumps({"peak_mib": _peak_mib(), "peak_above_held_mib": _peak_mib() - held}))


def measure(shape: tuple[int, int, int], repeats: int, threads: int) -> list[dict]:
    hidden, weight, targets = _inputs(*shape)
    runs = variants(hidden, weight, targets)
    times: dict[str, list[float]] = {name: [] for name in runs}
    for repeat in range(repeats + 2):  # two warm-up rounds (compilation, allocator)
        for name, run in runs.items():
            hidden.grad = weight.grad = None
            start = time.perf_counter()
            run().backward()
            if repeat >= 2:
                times[name].append(time.perf_counter() - start)
    rows = []
    for name, values in times.items():
        peak = subprocess.run([sys.executable, __file__, "--peak", json.dumps([list(shape), name, threads])],
                              capture_output=True, text=True, check=True)
        rows.append({"tokens": shape[0], "vocab": shape[1], "d_model": shape[2], "variant": name,
                     "ms": statistics.median(values) * 1e3, **json.loads(peak.stdout.splitlines()[-1])})
    eager = rows[0]["ms"]
    for row in rows:
        row["speedup_vs_eager"] = eager / row["ms"]
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, help="directory for head_loss.csv")
    parser.add_argument("--peak", help=argparse.SUPPRESS)  # internal: one variant's peak memory
    args = parser.parse_args()
    if args.peak:
        shape, name, threads = json.loads(args.peak)
        one_variant_peak(tuple(shape), name, threads)
        return
    torch.set_num_threads(args.threads)
    table = pd.DataFrame([row for shape in SHAPES for row in measure(shape, args.repeats, args.threads)])
    table["device"], table["torch"] = device_name(torch.device("cpu"), args.threads), torch.__version__
    print(table.drop(columns=["device", "torch"]).to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    if args.out:
        atomic_write_text(args.out / "head_loss.csv", table.to_csv(index=False))


if __name__ == "__main__":
    main()
