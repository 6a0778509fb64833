"""Cost of the content digests that guard checkpoints and prepared data (issue #32), measured
side by side with what a load costs anyway, interleaved over rounds:

- a 100 MB checkpoint: `torch.load` alone vs `load_checkpoint` (torch.load + digest check);
- a 1 GB prepared corpus (train.bin + val.bin): reading the files once vs `file_digest`
  (the streaming BLAKE2b pass `load_prepared` makes).

    python benchmarks/digest_cost.py [--out benchmarks/results] [--rounds 3]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from est_analysis.io import file_digest
from est_analysis.training.checkpoint import load_checkpoint, save_checkpoint


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _read(*paths: Path) -> None:
    for path in paths:
        with open(path, "rb") as f:
            while f.read(1 << 20):
                pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(dir=args.out.parent) as tmp:
        tmp = Path(tmp)
        state = {"model": {f"w{i}": torch.randn(1024, 1024) for i in range(25)},  # 100 MiB
                 "step": 1, "config": {}}
        save_checkpoint(tmp / "checkpoint.pt", state)
        bins = [tmp / "train.bin", tmp / "val.bin"]
        rng = np.random.default_rng(0)
        for path, tokens in zip(bins, (475 * 2**20, 25 * 2**20)):  # 1000 MiB of uint16 ids
            rng.integers(0, 50257, tokens, dtype=np.uint16).tofile(path)
        size_ckpt = (tmp / "checkpoint.pt").stat().st_size
        size_bins = sum(p.stat().st_size for p in bins)
        for round_ in range(args.rounds):
            cases = {
                ("checkpoint", "torch.load"): lambda: torch.load(tmp / "checkpoint.pt", weights_only=True),
                ("checkpoint", "load_checkpoint (+ digest)"): lambda: load_checkpoint(tmp / "checkpoint.pt"),
                ("prepared corpus", "read once"): lambda: _read(*bins),
                ("prepared corpus", "file_digest"): lambda: file_digest(*bins),
            }
            for (what, how), fn in cases.items():
                rows.append({"file": what, "how": how, "round": round_, "seconds": _timed(fn),
                             "mib": (size_ckpt if what == "checkpoint" else size_bins) / 2**20})
    table = pd.DataFrame(rows).groupby(["file", "how"], sort=False).agg(
        mib=("mib", "first"), median_s=("seconds", statistics.median)).reset_index()
    table["mib_per_s"] = table["mib"] / table["median_s"]
    table["machine"] = f"{platform.machine()} {torch.get_num_threads()} threads"
    args.out.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out / "digest_cost.csv", index=False)
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3g}"))
    for what, (plain, digest) in (("checkpoint", ("torch.load", "load_checkpoint (+ digest)")),
                                  ("prepared corpus", ("read once", "file_digest"))):
        t = table.set_index(["file", "how"])["median_s"]
        print(f"{what}: digest adds {t[what, digest] - (t[what, plain] if what == 'checkpoint' else 0):.2f} s "
              f"({t[what, digest] / t[what, plain]:.2f}x the plain {plain})")


if __name__ == "__main__":
    main()
