"""Command-line options shared by the commands that analyse one trained checkpoint on fixed
batches (`est hessian`, `est landscape`)."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_checkpoint_options(parser: argparse.ArgumentParser, batches: int = 2) -> None:
    parser.add_argument("--checkpoint", type=Path, required=True,
                        help="run directory, checkpoint.pt or a snapshot file")
    parser.add_argument("--data", default="train", help="'train' or 'val' split of the run's "
                        "corpus, or another corpus (built-in name or path) under its tokenizer "
                        "(default train)")
    parser.add_argument("--batches", type=int, default=batches,
                        help="fixed batches averaged (default %(default)s)")
    parser.add_argument("--batch-size", type=int, help="sequences per batch (default: the run's)")
    parser.add_argument("--seq-len", type=int, help="tokens per sequence (default: the run's)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the probes (default 0)")
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.add_argument("--json", action="store_true", help="print JSON")


def load_checkpoint_batches(args: argparse.Namespace, path: Path | None = None):
    """The run at `path` (default --checkpoint) and its fixed batches per the options."""
    from est_analysis.runs import load_run

    for name in ("batches", "batch_size", "seq_len"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise ValueError(f"--{name.replace('_', '-')} {value} must be a positive integer")
    run = load_run(path or args.checkpoint, args.device)
    return run, run.batches(args.data, args.batches, args.batch_size, args.seq_len)
