"""Windows of a token array as (inputs, next-token targets) batches: the random batches of a
training step, a function of (seed, step, micro-batch) only, and fixed evaluation batches."""

from __future__ import annotations

import numpy as np
import torch

from est_analysis.seeding import seeded_generator

DATA_SALT = 1  # separates the data draws from other seeded draws of the same (seed, step)


def check_fits(tokens: np.ndarray, batch_size: int, seq_len: int, what: str) -> None:
    """A split must hold at least one batch of distinct windows."""
    needed = batch_size * seq_len + 1
    if len(tokens) < needed:
        raise ValueError(f"the {what} split has {len(tokens)} tokens, fewer than one batch "
                         f"({batch_size} x {seq_len} + 1 = {needed}); use a larger corpus or a "
                         "smaller --batch-size / --seq-len")


def random_batch(tokens: np.ndarray, batch_size: int, seq_len: int,
                 generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """`batch_size` random windows (inputs, next-token targets), positions from `generator`."""
    starts = torch.randint(len(tokens) - seq_len - 1, (batch_size,), generator=generator)
    return _windows(tokens, starts.tolist(), seq_len)


def step_batch(tokens: np.ndarray, batch_size: int, seq_len: int, seed: int, step: int,
               micro: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """The training batch of micro-batch `micro` of step `step` of a run seeded with `seed`."""
    return random_batch(tokens, batch_size, seq_len, seeded_generator(seed, step, micro, DATA_SALT))


def fixed_batches(tokens: np.ndarray, n_batches: int, batch_size: int, seq_len: int
                  ) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Evenly spaced windows covering the split: the same evaluation set for every run."""
    n_windows = n_batches * batch_size
    starts = np.linspace(0, len(tokens) - seq_len - 1, n_windows).astype(int).tolist()
    return [_windows(tokens, starts[i:i + batch_size], seq_len)
            for i in range(0, n_windows, batch_size)]


def _windows(tokens: np.ndarray, starts: list[int], seq_len: int
             ) -> tuple[torch.Tensor, torch.Tensor]:
    rows = torch.from_numpy(np.stack([tokens[s:s + seq_len + 1].astype(np.int64) for s in starts]))
    return rows[:, :-1], rows[:, 1:]
